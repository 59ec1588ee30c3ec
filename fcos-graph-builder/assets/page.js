// The page's state, its elements, and helpers to build DOM and SVG and to
// write numbers, times and versions.

export const SVG_NS = 'http://www.w3.org/2000/svg';
export const PREFIX = 'org.fedoraproject.coreos.';
export const KEYS = {
  ageIndex: PREFIX + 'releases.age_index',
  barrier: PREFIX + 'updates.barrier',
  barrierReason: PREFIX + 'updates.barrier_reason',
  deadend: PREFIX + 'updates.deadend',
  deadendReason: PREFIX + 'updates.deadend_reason',
  rollout: PREFIX + 'updates.rollout',
  startEpoch: PREFIX + 'updates.start_epoch',
  startValue: PREFIX + 'updates.start_value',
  duration: PREFIX + 'updates.duration_minutes',
};
export const SCHEMES = [
  { id: 'checksum', title: 'OSTree', oci: false, note: 'payloads are OSTree commit checksums' },
  { id: 'oci', title: 'OCI', oci: true, note: 'payloads are container image pullspecs' },
];
// Fedora's streams, in the order Fedora lists them everywhere; other
// streams follow by name. Only these have a release notes page.
export const FEDORA_STREAMS = ['stable', 'testing', 'next'];
export const RELEASE_NOTES = 'https://fedoraproject.org/coreos/release-notes/';

// Geometry, in pixels, at zoom 1 (100%).
export const COLUMN = 76; // distance between two releases
export const RIGHT = 56;
export const RADIUS = 9; // node
export const LABEL_ANGLE = 40; // version labels rise to the right at this angle
export const LABEL_GAP = 22; // least distance between two drawn version labels
// Zoom: a factor of the column width, from fit-to-width up to ZOOM_MAX.
export const ZOOM_MAX = 2;
export const ZOOM_STEP = 1.5; // one click of the zoom buttons
// Overview strip.
export const OVERVIEW_LEFT = 58; // room for the row titles
export const OVERVIEW_RIGHT = 12;
export const OVERVIEW_ROW = 18;

// The screens the page lays out for phones (as viewer.css).
export const PHONE = '(max-width: 640px)';
export const RETRY_MS = 10000; // wait before asking again for a graph not built yet

// Fleet policy: day names as the policy file writes them, Monday first.
export const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
export const WEEKDAYS = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
export const WEEK_MINUTES = 7 * 24 * 60; // how far ahead the next window is looked for
export const POLICY_STALE_MS = 60000; // the policy is read again when older, on a group change

export const $ = (id) => document.getElementById(id);
export const ui = {
  stream: $('stream'),
  basearch: $('basearch'),
  releaseNotes: $('release-notes'),
  group: $('group'),
  groupField: $('group-field'),
  wariness: $('wariness'),
  warinessValue: $('wariness-value'),
  warinessClamp: $('wariness-clamp'),
  at: $('at'),
  uuid: $('uuid'),
  uuidWariness: $('uuid-wariness'),
  more: $('more'),
  now: $('now'),
  reload: $('reload'),
  status: $('status'),
  policy: $('policy'),
  policyError: $('policy-error'),
  policyClosed: $('policy-closed'),
  policyRules: $('policy-rules'),
  legendWithheld: $('legend-withheld'),
  legendHalted: $('legend-halted'),
  legendOutcomes: $('legend-outcomes'),
  rolloutsStatus: $('rollouts-status'),
  navigator: $('navigator'),
  overview: $('overview'),
  gotoForm: $('goto'),
  gotoVersion: $('goto-version'),
  gotoVersions: $('goto-versions'),
  gotoMessage: $('goto-message'),
  zoomOut: $('zoom-out'),
  zoomIn: $('zoom-in'),
  zoomFit: $('zoom-fit'),
  zoomFull: $('zoom-full'),
  zoomValue: $('zoom-value'),
  inView: $('in-view'),
  panels: $('panels'),
  skip: $('skip'),
  summary: $('summary'),
  summaryTitle: $('summary-title'),
  summaryWarnings: $('summary-warnings'),
  summaryTable: $('summary-table'),
  legendBox: $('legend-box'),
  detailsEmpty: $('details-empty'),
  detailsList: $('details-list'),
  detailsClose: $('details-close'),
};

export const state = {
  streams: {}, // stream -> [basearch]
  stream: '',
  basearch: '',
  scheme: 'both', // 'both', 'checksum' or 'oci'
  wariness: 0,
  uuid: null, // the node UUID the wariness is derived from, if any
  group: null, // the Zincati group of the client shown, null for a node that sends none
  // The fleet policy: status 'loading', 'none' (not configured), 'ok'
  // (groups: name -> rules, now: the server's time) or 'error'.
  policy: { status: 'loading' },
  // The policy-engine's rollout outcomes and halts (see rollouts.js):
  // status 'loading', 'none' (not configured), 'ok' or 'error'.
  rollouts: { status: 'loading', signature: '' },
  at: null, // seconds since the epoch, null for now
  zoom: 1, // factor of the full column width, or 'fit'
  graphs: {}, // scheme id -> {model} or {error}
  loaded: '', // 'stream/basearch' of the graphs
  selected: null, // {scheme, version}
  cursor: null, // {scheme, version}: the release the arrow keys last moved to
  loading: 0, // sequence number of the latest load
  view: null, // geometry of the graphs drawn: see render()
};

// ---- helpers ---------------------------------------------------------

export function svg(tag, attributes, parent) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    element.setAttribute(name, String(value));
  }
  if (parent) parent.appendChild(element);
  return element;
}

export function html(tag, attributes, children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === 'text') element.textContent = value;
    else if (name === 'className') element.className = value;
    else element.setAttribute(name, String(value));
  }
  for (const child of children || []) {
    element.append(child);
  }
  return element;
}

export function integer(text, fallback) {
  const value = Number.parseInt(text, 10);
  return Number.isFinite(value) ? value : fallback;
}

export function number(text, fallback) {
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : fallback;
}

export function clamp(value, low, high) {
  return Math.min(Math.max(value, low), high);
}

export function plural(count, singular, many) {
  return count + ' ' + (count === 1 ? singular : many || singular + 's');
}

export function now() {
  return state.at !== null ? state.at : Math.floor(Date.now() / 1000);
}

export function utc(epoch) {
  const date = new Date(epoch * 1000);
  if (Number.isNaN(date.getTime())) return String(epoch);
  return date.toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
}

// A share as a percentage with at most one decimal.
export function percent(share) {
  const value = Math.round(share * 1000) / 10;
  return (Number.isInteger(value) ? String(value) : value.toFixed(1)) + '%';
}

export function minutesText(minutes) {
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  const parts = [];
  if (days) parts.push(days + ' d');
  if (hours) parts.push(hours + ' h');
  if (rest || !parts.length) parts.push(rest + ' min');
  return minutes + ' minutes (' + parts.join(' ') + ')';
}

// The build date in a Fedora CoreOS version (`44.20260707.3.1` was built
// on 2026-07-07), as YYYY-MM-DD, or null when the version holds none.
export function buildDate(version) {
  const match = /^\d+\.(\d{4})(\d{2})(\d{2})\.\d+(\.\d+)*$/.exec(version);
  if (!match) return null;
  const [year, month, day] = match.slice(1, 4).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    return null;
  }
  return match[1] + '-' + match[2] + '-' + match[3];
}

// Fedora's streams first, in Fedora's order, then the others by name.
export function streamOrder(names) {
  const known = FEDORA_STREAMS.filter((name) => names.includes(name));
  const others = names.filter((name) => !FEDORA_STREAMS.includes(name)).sort();
  return known.concat(others);
}

// The release notes page of a stream and architecture, or null for a
// stream Fedora publishes no notes for.
export function releaseNotesUrl(stream, basearch) {
  if (!FEDORA_STREAMS.includes(stream) || !basearch) return null;
  return RELEASE_NOTES + '?' + new URLSearchParams({ arch: basearch, stream });
}

// A reason as text, or as a link when it is a web address.
export function reason(text) {
  const value = text || 'generic';
  if (/^https?:\/\//i.test(value)) {
    try {
      const url = new URL(value);
      return html('a', { href: url.href, rel: 'noopener noreferrer', target: '_blank', text: value });
    } catch (_) {
      // not a valid URL: shown as text
    }
  }
  return document.createTextNode(value);
}
