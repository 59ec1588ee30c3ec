// Graph viewer of the Fedora CoreOS update service.
//
// Reads the configured streams from `v1/streams` and the graphs of one
// stream and architecture from `v1/graph` (both payload schemes), and draws
// them left to right as SVG: one column per release in release order (the
// columns of the two schemes line up by age index), updates as arcs whose
// height grows with the distance they jump. Barriers, dead-ends and rollouts
// are marked, and a client wariness slider shows what such a client is
// offered. An overview strip shows the whole history at once; the graphs
// zoom from fit-to-width to full size. When the server has a fleet policy
// (`v1/policy`), a group picker shows what a client of a Zincati group is
// offered under its rules: its wariness clamped, and the updates the rules
// withhold drawn dashed, with why. The page state lives in the query
// string, so a view can be linked to.
//
// Served under a Content-Security-Policy without 'unsafe-inline': this file
// builds the page with DOM calls only (no HTML strings, no inline styles).

'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PREFIX = 'org.fedoraproject.coreos.';
  const KEYS = {
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
  const SCHEMES = [
    { id: 'checksum', title: 'OSTree', oci: false, note: 'payloads are OSTree commit checksums' },
    { id: 'oci', title: 'OCI', oci: true, note: 'payloads are container image pullspecs' },
  ];
  // Fedora's streams, in the order Fedora lists them everywhere; other
  // streams follow by name. Only these have a release notes page.
  const FEDORA_STREAMS = ['stable', 'testing', 'next'];
  const RELEASE_NOTES = 'https://fedoraproject.org/coreos/release-notes/';

  // Geometry, in pixels, at zoom 1 (100%).
  const COLUMN = 76; // distance between two releases
  const RIGHT = 56;
  const RADIUS = 9; // node
  const LABEL_ANGLE = 40; // version labels rise to the right at this angle
  const LABEL_GAP = 22; // least distance between two drawn version labels
  // Zoom: a factor of the column width, from fit-to-width up to ZOOM_MAX.
  const ZOOM_MAX = 2;
  const ZOOM_STEP = 1.5; // one click of the zoom buttons
  // Overview strip.
  const OVERVIEW_LEFT = 58; // room for the row titles
  const OVERVIEW_RIGHT = 12;
  const OVERVIEW_ROW = 18;

  const RETRY_MS = 10000; // wait before asking again for a graph not built yet

  // Fleet policy: day names as the policy file writes them, Monday first.
  const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  const WEEKDAYS = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
  const WEEK_MINUTES = 7 * 24 * 60; // how far ahead the next window is looked for
  const POLICY_STALE_MS = 60000; // the policy is read again when older, on a group change

  const $ = (id) => document.getElementById(id);
  const ui = {
    stream: $('stream'),
    basearch: $('basearch'),
    releaseNotes: $('release-notes'),
    group: $('group'),
    groupField: $('group-field'),
    wariness: $('wariness'),
    warinessValue: $('wariness-value'),
    warinessClamp: $('wariness-clamp'),
    at: $('at'),
    now: $('now'),
    reload: $('reload'),
    status: $('status'),
    policy: $('policy'),
    policyError: $('policy-error'),
    policyClosed: $('policy-closed'),
    policyRules: $('policy-rules'),
    legendWithheld: $('legend-withheld'),
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
    detailsEmpty: $('details-empty'),
    detailsList: $('details-list'),
    detailsClose: $('details-close'),
  };

  const state = {
    streams: {}, // stream -> [basearch]
    stream: '',
    basearch: '',
    scheme: 'both', // 'both', 'checksum' or 'oci'
    wariness: 0,
    group: null, // the Zincati group of the client shown, null for no group rules
    // The fleet policy: status 'loading', 'none' (not configured), 'ok'
    // (groups: name -> rules, now: the server's time) or 'error'.
    policy: { status: 'loading' },
    at: null, // seconds since the epoch, null for now
    zoom: 1, // factor of the full column width, or 'fit'
    graphs: {}, // scheme id -> {model} or {error}
    loaded: '', // 'stream/basearch' of the graphs
    selected: null, // {scheme, version}
    loading: 0, // sequence number of the latest load
    view: null, // geometry of the graphs drawn: see render()
  };

  // ---- helpers ---------------------------------------------------------

  function svg(tag, attributes, parent) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      element.setAttribute(name, String(value));
    }
    if (parent) parent.appendChild(element);
    return element;
  }

  function html(tag, attributes, children) {
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

  function integer(text, fallback) {
    const value = Number.parseInt(text, 10);
    return Number.isFinite(value) ? value : fallback;
  }

  function number(text, fallback) {
    const value = Number.parseFloat(text);
    return Number.isFinite(value) ? value : fallback;
  }

  function clamp(value, low, high) {
    return Math.min(Math.max(value, low), high);
  }

  function plural(count, singular, many) {
    return count + ' ' + (count === 1 ? singular : many || singular + 's');
  }

  function now() {
    return state.at !== null ? state.at : Math.floor(Date.now() / 1000);
  }

  function utc(epoch) {
    const date = new Date(epoch * 1000);
    if (Number.isNaN(date.getTime())) return String(epoch);
    return date.toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
  }

  // A share as a percentage with at most one decimal.
  function percent(share) {
    const value = Math.round(share * 1000) / 10;
    return (Number.isInteger(value) ? String(value) : value.toFixed(1)) + '%';
  }

  function minutesText(minutes) {
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
  function buildDate(version) {
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
  function streamOrder(names) {
    const known = FEDORA_STREAMS.filter((name) => names.includes(name));
    const others = names.filter((name) => !FEDORA_STREAMS.includes(name)).sort();
    return known.concat(others);
  }

  // The release notes page of a stream and architecture, or null for a
  // stream Fedora publishes no notes for.
  function releaseNotesUrl(stream, basearch) {
    if (!FEDORA_STREAMS.includes(stream) || !basearch) return null;
    return RELEASE_NOTES + '?' + new URLSearchParams({ arch: basearch, stream });
  }

  // A reason as text, or as a link when it is a web address.
  function reason(text) {
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

  // ---- model -----------------------------------------------------------

  // Rollout parameters of a node's metadata, or null when it has none.
  function rolloutOf(metadata) {
    if (metadata[KEYS.rollout] !== 'true') return null;
    const duration = metadata[KEYS.duration];
    const minutes = duration === undefined ? null : integer(duration, null);
    return {
      startEpoch: integer(metadata[KEYS.startEpoch], 0),
      startValue: number(metadata[KEYS.startValue], 0),
      durationMinutes: minutes === null ? null : Math.max(minutes, 1),
      given: {
        startEpoch: metadata[KEYS.startEpoch] !== undefined,
        startValue: metadata[KEYS.startValue] !== undefined,
      },
    };
  }

  // Share of the fleet offered a rollout at `at` (seconds since the epoch).
  function progress(rollout, at) {
    if (at < rollout.startEpoch) return 0;
    if (rollout.durationMinutes === null) return rollout.startValue;
    const seconds = rollout.durationMinutes * 60;
    if (at > rollout.startEpoch + seconds) return 1;
    return rollout.startValue + ((1 - rollout.startValue) * (at - rollout.startEpoch)) / seconds;
  }

  function buildModel(scheme, stream, graph) {
    const nodes = (graph.nodes || []).map((raw, index) => {
      const metadata = raw.metadata || {};
      const version = String(raw.version);
      return {
        scheme,
        index,
        version,
        date: buildDate(version),
        payload: String(raw.payload),
        metadata,
        ageIndex: integer(metadata[KEYS.ageIndex], index),
        barrier: metadata[KEYS.barrier] === 'true',
        barrierReason: metadata[KEYS.barrierReason] || '',
        deadend: metadata[KEYS.deadend] === 'true',
        deadendReason: metadata[KEYS.deadendReason] || '',
        rollout: rolloutOf(metadata),
        inEdges: [],
        outEdges: [],
      };
    });
    const edges = [];
    for (const pair of graph.edges || []) {
      const from = nodes[pair[0]];
      const to = nodes[pair[1]];
      if (!from || !to) continue;
      const edge = { from, to };
      edges.push(edge);
      from.outEdges.push(edge);
      to.inEdges.push(edge);
    }
    return {
      scheme,
      stream,
      nodes,
      edges,
      byVersion: new Map(nodes.map((n) => [n.version, n])),
      byAge: new Map(nodes.map((n) => [n.ageIndex, n])),
    };
  }

  // Per-render facts: each rollout's progress, which edges a client of the
  // chosen wariness (clamped by its group's rules) sees, and which of
  // those its group's rules withhold (`view`: see policyView()).
  function evaluate(model, view) {
    const at = now();
    const wariness = clientWariness();
    const policy = modelPolicy(model, view);
    model.policy = policy;
    for (const node of model.nodes) {
      node.progress = node.rollout ? progress(node.rollout, at) : null;
      node.inProgress = node.rollout !== null && node.progress < 1;
      node.withheld = withheldInto(policy, node);
    }
    let hidden = 0;
    let withheld = 0;
    for (const edge of model.edges) {
      edge.hidden = edge.to.rollout !== null && wariness > edge.to.progress;
      edge.withheld = edge.hidden ? null : edge.to.withheld;
      if (edge.hidden) hidden += 1;
      else if (edge.withheld) withheld += 1;
    }
    return {
      nodes: model.nodes.length,
      edges: model.edges.length - hidden - withheld,
      hidden,
      withheld,
      barriers: model.nodes.filter((n) => n.barrier).length,
      deadends: model.nodes.filter((n) => n.deadend).length,
      rollouts: model.nodes.filter((n) => n.rollout).length,
      inProgress: model.nodes.filter((n) => n.inProgress).length,
    };
  }

  // The update a client on `node` takes: the target with the highest age
  // index of the out-edges it is offered (or, with `withheld`, of those it
  // would be offered without its group's rules).
  function nextUpdate(node, withheld) {
    let best = null;
    for (const edge of node.outEdges) {
      if (!edge.hidden && (withheld || !edge.withheld) && (!best || edge.to.ageIndex > best.ageIndex)) best = edge.to;
    }
    return best;
  }

  function modelOf(schemeId) {
    const graph = state.graphs[schemeId];
    return graph && graph.model ? graph.model : null;
  }

  // Where the graph of `schemeId` has no release while the other graph has
  // some: the releases of the other graph before its first release and
  // after its last one. Null when it has no release at all.
  function coverage(schemeId) {
    const model = modelOf(schemeId);
    if (!model || !model.nodes.length) return null;
    const ages = model.nodes.map((n) => n.ageIndex);
    const first = model.byAge.get(Math.min(...ages));
    const last = model.byAge.get(Math.max(...ages));
    const other = SCHEMES.find((s) => s.id !== schemeId);
    const otherModel = modelOf(other.id);
    const otherNodes = otherModel ? otherModel.nodes : [];
    return {
      first,
      last,
      before: otherNodes.filter((n) => n.ageIndex < first.ageIndex),
      after: otherNodes.filter((n) => n.ageIndex > last.ageIndex),
      other,
    };
  }

  // ---- fleet policy --------------------------------------------------------

  // The rules a client of the group picked gets, as the policy-engine
  // picks them: the group's table, else [groups.default] (each with
  // [fleet]'s rules added by the server), else [fleet]'s alone, else none.
  // `table` names the table the rules come from.
  function groupRules() {
    const groups = state.policy.groups;
    if (state.group === null || !groups) return null;
    if (groups.has(state.group)) return { table: state.group, rules: groups.get(state.group), own: true };
    if (groups.has('default')) return { table: 'default', rules: groups.get('default'), own: false };
    if (state.policy.fleet) return { table: null, rules: state.policy.fleet, own: false };
    return null;
  }

  // The name the page gives a group without a table of its own: `other`
  // (as in the metrics), unless the file names a group so.
  function otherGroupName() {
    let name = 'other';
    for (let i = 2; state.policy.groups && state.policy.groups.has(name); i += 1) name = 'other-' + i;
    return name;
  }

  // The wariness of the client shown: the slider's, clamped into the
  // group's bounds.
  function clientWariness() {
    const group = groupRules();
    if (!group) return state.wariness;
    return clamp(state.wariness, group.rules.wariness_min, group.rules.wariness_max);
  }

  function tableName(group) {
    return group.table === null ? '[fleet]' : '[groups.' + group.table + ']';
  }

  function minutesOf(hhmm) {
    const [hours, minutes] = String(hhmm).split(':').map(Number);
    return hours * 60 + minutes;
  }

  function seconds(rfc3339) {
    return Math.trunc(Date.parse(rfc3339) / 1000);
  }

  // The local weekday (0 for Monday) and minute of the day at `epoch` in
  // an IANA time zone. Throws a RangeError for a zone the browser does not
  // know.
  const localFormats = new Map();
  function localTime(timezone, epoch) {
    let format = localFormats.get(timezone);
    if (!format) {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        weekday: 'short',
        hour: 'numeric',
        minute: 'numeric',
        hourCycle: 'h23',
      });
      localFormats.set(timezone, format);
    }
    const parts = {};
    for (const part of format.formatToParts(new Date(epoch * 1000))) parts[part.type] = part.value;
    return { day: WEEKDAYS[parts.weekday], minute: (Number(parts.hour) % 24) * 60 + Number(parts.minute) };
  }

  // Whether a maintenance window is open at `epoch` (Window::is_open): on
  // its days from its start to its end, local time; an end before the
  // start wraps past midnight into the next day.
  function windowOpen(window, epoch) {
    const { day, minute } = localTime(window.timezone, epoch);
    const days = window.days || DAYS;
    const start = minutesOf(window.start);
    const end = minutesOf(window.end);
    const on = (d) => days.includes(DAYS[d]);
    if (start < end) return on(day) && minute >= start && minute < end;
    return (on(day) && minute >= start) || (on((day + 6) % 7) && minute < end);
  }

  // When the windows next open after `epoch`, to the minute, within a week
  // (Group::next_window), or null. Minute by minute, so remembered.
  const nextWindows = new Map();
  function nextWindow(windows, epoch) {
    const key = JSON.stringify(windows) + '@' + epoch;
    if (nextWindows.has(key)) return nextWindows.get(key);
    const start = epoch - (((epoch % 60) + 60) % 60) + 60;
    let found = null;
    for (let m = 0; m < WEEK_MINUTES && found === null; m += 1) {
      const t = start + m * 60;
      if (windows.some((w) => windowOpen(w, t))) found = t;
    }
    if (nextWindows.size > 64) nextWindows.clear();
    nextWindows.set(key, found);
    return found;
  }

  // The freeze of `rules` in force at `epoch`, if any (Group::freeze_at).
  function freezeAt(rules, epoch) {
    return (rules.freezes || []).find((f) => seconds(f.from) <= epoch && epoch < seconds(f.to)) || null;
  }

  // Whether the rules give no update at all at `epoch`, and why
  // (Group::closed_at): paused, inside a freeze, or outside every window.
  function closedAt(rules, epoch) {
    if (rules.paused) return { reason: 'paused', at: epoch };
    const freeze = freezeAt(rules, epoch);
    if (freeze) return { reason: 'freeze', at: epoch, freeze };
    if (rules.windows && !rules.windows.some((w) => windowOpen(w, epoch))) {
      return { reason: 'window', at: epoch, next: nextWindow(rules.windows, epoch) };
    }
    return null;
  }

  // Whether the group is closed at the time of the view: as the server
  // computed it for /v1/policy when the view is at the current time, else
  // computed here, the same way, at the time picked. `current` says which.
  function closedState(rules) {
    if (state.at !== null) {
      try {
        return closedAt(rules, state.at);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        // A time zone this browser does not know: the server's answer.
      }
    }
    const at = state.policy.now;
    if (!rules.closed) return null;
    return {
      reason: rules.closed,
      at,
      current: true,
      stale: state.at !== null,
      freeze: rules.closed === 'freeze' ? freezeAt(rules, at) || { reason: rules.freeze_reason || '' } : null,
      next: rules.next_window ? seconds(rules.next_window) : null,
    };
  }

  // What the group's rules do at the time of the view, for every graph:
  // null without rules.
  function policyView() {
    const group = groupRules();
    if (!group) return null;
    return { group, closed: closedState(group.rules), deny: new Set(group.rules.deny || []) };
  }

  // What the rules withhold in `model`, as the policy-engine removes it
  // (PreparedGraph::removes): while the group is closed, every update;
  // else the updates into a denied release, then those into a release
  // newer (by age index, the place in the release index) than the group's
  // max_version of the stream. The pinned release's age index comes from
  // this graph, else from the graph of the other scheme (a release without
  // an OCI image is only in the OSTree one); a pin in neither withholds
  // every update, as the policy-engine holds a group whose pin no graph of
  // the stream has.
  function modelPolicy(model, view) {
    if (!view) return null;
    const pins = view.group.rules.max_version || {};
    const pin = Object.hasOwn(pins, model.stream) ? String(pins[model.stream]) : null;
    let pinned = null;
    if (pin !== null) {
      const others = SCHEMES.map((s) => modelOf(s.id)).filter((m) => m && m !== model && m.stream === model.stream);
      pinned = model.byVersion.get(pin) || others.map((m) => m.byVersion.get(pin)).find(Boolean) || { ageIndex: -1 };
    }
    return {
      ...view,
      pinned,
      denied: (version) => ({ reason: 'deny', version }),
      newer: { reason: 'max_version', version: pin, stream: model.stream },
    };
  }

  // Why `policy` withholds the updates into `node`, or null.
  function withheldInto(policy, node) {
    if (!policy) return null;
    if (policy.closed) return policy.closed;
    if (policy.deny.has(node.version)) return policy.denied(node.version);
    if (policy.pinned && node.ageIndex > policy.pinned.ageIndex) return policy.newer;
    return null;
  }

  // Whether `reason` comes from [fleet] (the server adds its rules to every
  // group's) rather than from the group's own table.
  function fromFleet(reason) {
    const fleet = state.policy.fleet;
    if (!fleet) return false;
    switch (reason.reason) {
      case 'paused':
        return fleet.paused;
      case 'deny':
        return (fleet.deny || []).includes(reason.version);
      case 'freeze':
        return (fleet.freezes || []).some((f) => reason.freeze && f.from === reason.freeze.from &&
          f.to === reason.freeze.to && f.reason === reason.freeze.reason);
      default:
        return false;
    }
  }

  // Why updates are withheld, for people.
  function reasonText(reason, policy) {
    const table = fromFleet(reason) ? '[fleet]' : tableName(policy.group);
    switch (reason.reason) {
      case 'deny':
        return 'denied in ' + table;
      case 'max_version':
        return 'newer than ' + reason.version + ', the max_version of ' + reason.stream + ' in ' + table;
      case 'paused':
        return table + ' is paused';
      case 'window':
        return 'outside the maintenance windows of ' + table + '; ' +
          (reason.next !== null ? 'the next opens ' + utc(reason.next) : 'none opens within a week');
      case 'freeze': {
        const freeze = reason.freeze || {};
        return 'inside a freeze of ' + table + (freeze.reason ? ': ' + freeze.reason : '') +
          (freeze.to ? ' (until ' + utc(seconds(freeze.to)) + ')' : '');
      }
      default:
        return reason.reason;
    }
  }

  function windowText(window) {
    const days = window.days && window.days.length < 7
      ? window.days.map((d) => d.charAt(0).toUpperCase() + d.slice(1)).join(', ') + ' '
      : 'every day ';
    return days + window.start + '–' + window.end + ' ' + window.timezone;
  }

  // ---- loading -----------------------------------------------------------

  async function fetchJson(url) {
    const response = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-cache' });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.value ? body.value : response.statusText;
      const error = new Error(detail + ' (HTTP ' + response.status + ')');
      error.status = response.status;
      throw error;
    }
    if (body === null) throw new Error('the answer is not JSON');
    return body;
  }

  async function loadStreams() {
    try {
      state.streams = await fetchJson('v1/streams');
    } catch (error) {
      setStatus('Cannot read the list of streams: ' + error.message, true);
      return;
    }
    const names = streamOrder(Object.keys(state.streams));
    if (!names.length) {
      setStatus('No stream is configured.', true);
      return;
    }
    if (!names.includes(state.stream)) state.stream = names[0];
    ui.stream.replaceChildren(...names.map((name) => html('option', { value: name, text: name })));
    ui.stream.value = state.stream;
    ui.stream.disabled = false;
    fillArches();
    await loadGraphs(true);
  }

  function fillArches() {
    const arches = state.streams[state.stream] || [];
    if (!arches.includes(state.basearch)) {
      state.basearch = arches.includes('x86_64') ? 'x86_64' : arches[0] || '';
    }
    ui.basearch.replaceChildren(...arches.map((name) => html('option', { value: name, text: name })));
    ui.basearch.value = state.basearch;
    ui.basearch.disabled = arches.length === 0;
    showReleaseNotes();
  }

  function showReleaseNotes() {
    const url = releaseNotesUrl(state.stream, state.basearch);
    ui.releaseNotes.hidden = !url;
    if (url) {
      ui.releaseNotes.href = url;
      ui.releaseNotes.textContent = state.stream + ' release notes (' + state.basearch + ')';
      ui.releaseNotes.title = 'The release notes of Fedora CoreOS ' + state.stream + ' for ' + state.basearch;
    } else {
      ui.releaseNotes.removeAttribute('href');
    }
  }

  async function loadGraphs(keepSelection) {
    const sequence = ++state.loading;
    if (!keepSelection) state.selected = null;
    setStatus('Loading ' + state.stream + ' ' + state.basearch + '…');
    document.body.classList.add('loading');
    const results = await Promise.all(
      SCHEMES.map(async (scheme) => {
        const query = new URLSearchParams({ basearch: state.basearch, stream: state.stream });
        if (scheme.oci) query.set('oci', 'true');
        try {
          return { model: buildModel(scheme.id, state.stream, await fetchJson('v1/graph?' + query)) };
        } catch (error) {
          return { error: error.message, retry: error.status === 503 };
        }
      }),
    );
    if (sequence !== state.loading) return; // a newer load is under way
    document.body.classList.remove('loading');
    const scope = state.stream + '/' + state.basearch;
    const sameView = state.loaded === scope && scrollers().length > 0;
    state.graphs = {};
    state.loaded = scope;
    SCHEMES.forEach((scheme, i) => {
      state.graphs[scheme.id] = results[i];
    });
    const selected = state.selected && state.graphs[state.selected.scheme];
    if (!selected || !selected.model || !selected.model.byVersion.has(state.selected.version)) {
      state.selected = null;
    }
    setStatus('');
    fillVersions();
    // A new stream opens at its newest releases, or at the release the
    // address names; a reload keeps the view.
    if (sameView) render();
    else render(state.selected ? { reveal: true, center: true } : { end: true });
    // Not built yet (the server is starting): try again shortly.
    if (results.some((r) => r.retry)) {
      window.setTimeout(() => {
        if (sequence === state.loading) loadGraphs(true);
      }, RETRY_MS);
    }
  }

  // The fleet policy (`v1/policy`), read again on Reload: whether there is
  // one, its groups, or why it cannot be read.
  let policyLoading = 0;
  async function loadPolicy() {
    const sequence = ++policyLoading;
    let policy;
    try {
      const body = await fetchJson('v1/policy');
      if (!body.policy) {
        policy = { status: 'none' };
      } else {
        policy = {
          status: 'ok',
          groups: new Map(Object.entries(body.policy.groups || {})),
          fleet: body.policy.fleet || null,
          now: integer(body.now, Math.floor(Date.now() / 1000)),
          hash: body.policy.hash,
          source: body.policy.source,
          loadedAt: body.policy.loaded_at,
          // The file on disk refused: the policy above (the last good one)
          // is still the one in force.
          refused: body.refused_since
            ? { since: body.refused_since, reason: body.refused_reason || 'invalid' }
            : null,
        };
      }
    } catch (error) {
      policy = { status: 'error', error: error.message };
    }
    if (sequence !== policyLoading) return;
    policy.fetched = Date.now();
    state.policy = policy;
    fillGroups();
    if (state.view) render();
  }

  // The group picker: "(no group rules)", the groups of the file, and
  // "other group" (any group without a table) when the file has
  // [groups.default] or [fleet]. Hidden without a policy; disabled when it
  // cannot be read.
  function fillGroups() {
    const policy = state.policy;
    ui.groupField.hidden = policy.status === 'none' || policy.status === 'loading';
    ui.groupField.dataset.policy = policy.status;
    ui.groupField.dataset.refused = String(Boolean(policy.refused));
    const options = [html('option', { value: '', text: '(no group rules)' })];
    if (policy.groups) {
      for (const name of [...policy.groups.keys()].sort()) {
        options.push(html('option', { value: 'group:' + name, text: name }));
      }
      if (policy.groups.has('default') || policy.fleet) {
        options.push(html('option', {
          value: 'other',
          text: 'other group',
          title: 'A group the policy file has no table for: it gets ' +
            (policy.groups.has('default') ? '[groups.default]' : 'the rules of [fleet]'),
        }));
      }
    }
    ui.group.replaceChildren(...options);
    ui.group.disabled = policy.status !== 'ok';
    showGroup();
  }

  // The option of the group shown: a group without a table is "other
  // group" when the file has [groups.default] or [fleet], else it has no
  // rules.
  function showGroup() {
    const group = groupRules();
    ui.group.value = !group ? '' : group.own ? 'group:' + group.table : 'other';
    showWariness();
  }

  // The slider's value and, when the group's rules clamp it, the wariness
  // its clients get and why.
  function showWariness() {
    ui.warinessValue.textContent = state.wariness.toFixed(2);
    const group = groupRules();
    const effective = clientWariness();
    const clamped = group !== null && effective !== state.wariness;
    ui.warinessClamp.hidden = !clamped;
    if (!clamped) {
      ui.warinessClamp.textContent = '';
      delete ui.warinessClamp.dataset.wariness;
      return;
    }
    const bound = effective > state.wariness ? 'wariness_min' : 'wariness_max';
    ui.warinessClamp.textContent = '→ ' + effective.toFixed(2) + ' (' + bound + ')';
    ui.warinessClamp.dataset.wariness = String(effective);
    ui.warinessClamp.title =
      'A client of wariness ' + state.wariness.toFixed(2) + ' in this group is offered what a client of ' +
      effective.toFixed(2) + ' is: ' + tableName(group) + ' has ' + bound + ' = ' + effective;
  }

  function setStatus(text, isError) {
    ui.status.textContent = text;
    ui.status.hidden = !text;
    ui.status.classList.toggle('error', Boolean(isError));
  }

  // The versions "go to version" offers: every release of the stream and
  // architecture, newest first.
  function fillVersions() {
    const byAge = new Map();
    for (const scheme of SCHEMES) {
      const model = modelOf(scheme.id);
      if (model) model.nodes.forEach((n) => byAge.set(n.ageIndex, n.version));
    }
    const versions = [...byAge.entries()].sort((a, b) => b[0] - a[0]).map((entry) => entry[1]);
    ui.gotoVersions.replaceChildren(...versions.map((v) => html('option', { value: v })));
  }

  // ---- drawing -----------------------------------------------------------

  // Estimated width of a version label (12px digits and dots).
  function labelWidth(text) {
    let width = 0;
    for (const c of text) width += c === '.' ? 4 : 7.8;
    return width;
  }

  // Estimated width of a line of 12px text.
  function textWidth(text) {
    return text.length * 6.6;
  }

  function shownSchemes() {
    return SCHEMES.filter((s) => state.scheme === 'both' || state.scheme === s.id);
  }

  // Sizes of what is drawn at `zoom`: below full size, nodes shrink, labels
  // thin out to one every few columns, and arcs flatten.
  function geometry(zoom) {
    const column = COLUMN * zoom;
    const radius = clamp(column * 0.3, 2, RADIUS);
    const ring = radius + (radius >= 6 ? 4 : 1.5);
    let labelEvery = 1;
    for (const every of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) {
      labelEvery = every;
      if (column * every >= LABEL_GAP) break;
    }
    return {
      zoom,
      column,
      radius,
      ring,
      labelTop: ring + 30, // where a label ends, under its node
      labelEvery,
      arcScale: Math.min(1, Math.sqrt(zoom)),
      arrows: column >= 14,
      percents: column >= 34,
      wall: clamp(column * 0.6, 3, 24),
    };
  }

  function arcHeight(span, g) {
    return (14 + 26 * Math.sqrt(Math.max(span, 1))) * g.arcScale;
  }

  // The scrolling box of each graph drawn (they scroll together).
  function scrollers() {
    return [...ui.panels.querySelectorAll('.scroll')];
  }

  // The release column at `fraction` of the visible width of the graphs.
  function viewAnchor(fraction) {
    const scroller = scrollers()[0];
    const view = state.view;
    if (!scroller || !view) return null;
    const px = scroller.scrollLeft + scroller.clientWidth * fraction;
    return { column: (px - view.left) / view.column, fraction };
  }

  // Scrolls the graphs so that release column `column` is at `fraction`
  // of their visible width.
  function scrollToColumn(column, fraction) {
    const view = state.view;
    for (const scroller of scrollers()) {
      scroller.scrollLeft = view.left + column * view.column - scroller.clientWidth * fraction;
    }
    updateViewport();
  }

  // The columns fully in view, as {first, last} (last < first: none).
  function visibleColumns() {
    const scroller = scrollers()[0];
    const view = state.view;
    if (!scroller || !view) return null;
    const margin = view.geometry.radius;
    const first = Math.ceil((scroller.scrollLeft + margin - view.left) / view.column);
    const last = Math.floor((scroller.scrollLeft + scroller.clientWidth - margin - view.left) / view.column);
    return { first: Math.max(first, 0), last: Math.min(last, view.ages.length - 1) };
  }

  // Scrolls the selected release into view: centred when `center` or when
  // it is out of view, else left where it is.
  function revealSelected(center) {
    const view = state.view;
    if (!view || !state.selected) return;
    const model = modelOf(state.selected.scheme);
    const node = model && model.byVersion.get(state.selected.version);
    const column = node ? view.columns.get(node.ageIndex) : undefined;
    if (column === undefined) return;
    const visible = visibleColumns();
    if (center || !visible || column < visible.first || column > visible.last) {
      scrollToColumn(column, 0.5);
    }
  }

  function render(options) {
    const opts = options || {};
    const focused = document.activeElement;
    const refocus =
      focused && focused.dataset && focused.dataset.version && focused.dataset.scheme
        ? { scheme: focused.dataset.scheme, version: focused.dataset.version }
        : null;
    const previousScroll = scrollers()[0];
    const scrollLeft = previousScroll ? previousScroll.scrollLeft : 0;
    const anchor = opts.anchor ? viewAnchor(opts.anchor.fraction) : null;
    if (anchor && opts.anchor.column !== undefined) anchor.column = opts.anchor.column;

    const policy = policyView();
    for (const scheme of SCHEMES) {
      const model = modelOf(scheme.id);
      if (model) model.counts = evaluate(model, policy);
    }
    const shown = shownSchemes();
    showGroup();
    renderPolicy(policy, shown);
    const models = shown.map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length);
    // Columns: every age index of the graphs shown, in release order.
    const ages = new Set();
    models.forEach((model) => model.nodes.forEach((n) => ages.add(n.ageIndex)));
    const sortedAges = [...ages].sort((a, b) => a - b);
    // Room for the rotated labels: left of the first node and under all.
    let longest = 0;
    models.forEach((model) => model.nodes.forEach((n) => (longest = Math.max(longest, labelWidth(n.version)))));
    const radians = (LABEL_ANGLE * Math.PI) / 180;
    const left = Math.ceil(Math.max(48, longest * Math.cos(radians) + 20));

    // Zoom: fit-to-width is the whole history in the width of a panel
    // (never larger than full size).
    const available = Math.max(ui.panels.clientWidth - 2, 200); // a panel's border
    const spans = Math.max(sortedAges.length - 1, 1);
    const fitZoom = Math.max((available - 1 - left - RIGHT) / (spans * COLUMN), 0.01);
    const minZoom = Math.min(fitZoom, 1);
    const zoom = state.zoom === 'fit' ? minZoom : clamp(state.zoom, minZoom, ZOOM_MAX);
    const g = geometry(zoom);
    const layout = {
      geometry: g,
      columns: new Map(sortedAges.map((age, i) => [age, i])),
      ages: sortedAges,
      left,
      below: Math.ceil(g.labelTop + longest * Math.sin(radians) + 18),
    };
    state.view = {
      geometry: g,
      zoom,
      fitZoom,
      minZoom,
      left,
      column: g.column,
      columns: layout.columns,
      ages: sortedAges,
    };

    const panels = shown.map((scheme) => renderPanel(scheme, layout));
    ui.panels.replaceChildren(...panels);
    ui.panels.classList.toggle('single', panels.length === 1);
    ui.panels.dataset.scope = state.loaded;
    ui.panels.dataset.zoom = zoom.toFixed(4);

    const boxes = scrollers();
    for (const scroller of boxes) {
      scroller.scrollLeft = opts.end ? scroller.scrollWidth : scrollLeft;
      scroller.addEventListener('scroll', () => {
        for (const other of boxes) {
          if (other !== scroller && other.scrollLeft !== scroller.scrollLeft) {
            other.scrollLeft = scroller.scrollLeft;
          }
        }
        scheduleViewport();
      });
      scroller.addEventListener('wheel', (event) => onWheel(event, scroller), { passive: false });
    }
    renderNavigator(sortedAges.length > 0);
    if (anchor) scrollToColumn(anchor.column, anchor.fraction);
    if (opts.reveal) revealSelected(Boolean(opts.center));
    updateViewport();
    if (refocus) {
      const again = ui.panels.querySelector(
        '.node[data-scheme="' + refocus.scheme + '"][data-version="' + CSS.escape(refocus.version) + '"]',
      );
      if (again) again.focus({ preventScroll: true });
    }
    renderDetails();
    saveState();
  }

  // Above the graphs: why the fleet policy cannot be read, or the rules of
  // the group picked and a banner when they give it no update at all.
  function renderPolicy(policy, shown) {
    const status = state.policy.status;
    ui.legendWithheld.hidden = !policy;
    const refused = status === 'ok' ? state.policy.refused : null;
    ui.policyError.hidden = status !== 'error' && !refused;
    if (status === 'error') {
      ui.policyError.textContent = 'Cannot read the fleet policy: ' + state.policy.error + '. The graphs are shown without group rules.';
    } else if (refused) {
      ui.policyError.textContent = 'The policy file on disk was refused (since ' + refused.since.replace('T', ' ').replace(/Z$/, ' UTC') + '): ' + refused.reason + '. The last good policy is still in force and is the one shown.';
    } else {
      ui.policyError.textContent = '';
    }
    ui.policy.hidden = status !== 'error' && !(status === 'ok' && state.group !== null);
    if (status === 'ok') {
      ui.policy.title = 'Policy ' + state.policy.hash + (state.policy.source ? ' (' + state.policy.source + ')' : '') + ', read ' + utc(state.policy.now);
    }

    const closed = policy ? policy.closed : null;
    ui.policyClosed.hidden = !closed;
    if (closed) {
      const who = policy.group.own ? 'group ' + state.group : 'other groups';
      const when = closed.current ? 'now (' + utc(closed.at) + ')' : 'at ' + utc(closed.at);
      ui.policyClosed.dataset.reason = closed.reason;
      ui.policyClosed.textContent = 'No updates for ' + who + ' ' + when + ': ' + reasonText(closed, policy) + '.' +
        (closed.stale ? ' This browser cannot evaluate its windows at the time picked: this is the server\'s answer for now.' : '');
    } else {
      ui.policyClosed.textContent = '';
      delete ui.policyClosed.dataset.reason;
    }

    if (status !== 'ok' || state.group === null) {
      ui.policyRules.replaceChildren();
      return;
    }
    if (!policy) {
      ui.policyRules.replaceChildren(html('p', {
        className: 'policy-head',
        text: 'A client of group ' + state.group + ' gets no rules: the policy file has no table for it, no [groups.default] and no [fleet].',
      }));
      return;
    }
    const rules = policy.group.rules;
    const items = [];
    const item = (key, ...content) => items.push(html('li', { 'data-rule': key }, content));
    if (rules.wariness_min > 0 || rules.wariness_max < 1) {
      const effective = clientWariness();
      item('wariness',
        'wariness clamped into [' + rules.wariness_min.toFixed(2) + ', ' + rules.wariness_max.toFixed(2) + ']' +
        (effective !== state.wariness ? ': a client sending ' + state.wariness.toFixed(2) + ' gets ' + effective.toFixed(2) : ''));
    }
    for (const [stream, version] of Object.entries(rules.max_version || {})) {
      const missing = stream === state.stream
        ? shown.filter((s) => modelOf(s.id) && !modelOf(s.id).byVersion.has(version)).map((s) => s.title)
        : [];
      item('max_version', 'max_version ' + stream + ' = ' + version +
        (missing.length === shown.length && missing.length > 0
          ? ' (in no graph shown: every update withheld unless another architecture has it)'
          : missing.length ? ' (not in the ' + missing.join(' and ') + ' graph' + (missing.length > 1 ? 's' : '') + ': its place in the release index still applies there)' : ''));
    }
    // The rules [fleet] adds to a group's table are marked as such (the
    // rules of [fleet] alone need no mark).
    const marked = (reason) => policy.group.table !== null && fromFleet(reason);
    const byFleet = (text, reason) => text + (marked(reason) ? ' (from [fleet])' : '');
    const pulled = (rules.deny || []).filter((version) => marked({ reason: 'deny', version }));
    const ownDeny = (rules.deny || []).filter((version) => !pulled.includes(version));
    if (ownDeny.length) item('deny', 'deny ' + ownDeny.join(', '));
    if (pulled.length) item('deny', 'deny ' + pulled.join(', ') + ' (from [fleet])');
    if (rules.paused) item('paused', byFleet('paused', { reason: 'paused' }));
    if (rules.windows) item('windows', 'windows: ' + rules.windows.map(windowText).join('; '));
    for (const freeze of rules.freezes || []) {
      item('freeze', byFleet('freeze ' + freeze.from + ' to ' + freeze.to + (freeze.reason ? ' (' + freeze.reason + ')' : ''),
        { reason: 'freeze', freeze }));
    }
    if (!items.length) item('none', 'no rules: the client gets what Fedora offers');
    const head = policy.group.own
      ? 'Group ' + state.group + ', ' + tableName(policy.group) + ':'
      : 'Other group (' + state.group + ', no table of its own): ' + tableName(policy.group) + ':';
    ui.policyRules.replaceChildren(
      html('p', { className: 'policy-head', text: head }),
      html('ul', { className: 'rules' }, items),
    );
  }

  function renderPanel(scheme, layout) {
    const graph = state.graphs[scheme.id];
    const panel = html('section', { className: 'panel', id: 'panel-' + scheme.id, 'data-scheme': scheme.id });
    const head = html('div', { className: 'panel-head' }, [
      html('h2', {}, [
        scheme.title + ' ',
        html('span', { className: 'scope', text: state.stream + ' · ' + state.basearch }),
      ]),
      html('span', { className: 'note', text: scheme.note }),
    ]);
    panel.append(head);
    if (!graph) return panel;
    if (graph.error) {
      const retry = graph.retry ? ' Trying again in ' + RETRY_MS / 1000 + ' s.' : '';
      panel.append(html('p', { className: 'message error', text: 'Cannot load this graph: ' + graph.error + '.' + retry }));
      return panel;
    }
    const model = graph.model;
    panel.append(renderCounts(model.counts, model.policy));
    if (!model.nodes.length) {
      panel.append(html('p', { className: 'message', text: 'No release of this stream has a payload of this kind for this architecture.' }));
      return panel;
    }
    // Why this graph starts later (or ends earlier) than the other: in a
    // band over the stretch when both are drawn and it holds the text,
    // else here.
    const span = coverage(scheme.id);
    const both = shownSchemes().length > 1;
    for (const [edge, columns] of span ? [['start', span.before.length], ['end', span.after.length]] : []) {
      const lines = columns ? gapText(scheme, span, edge) : null;
      if (lines && !(both && gapHolds(columns, layout.geometry, lines))) {
        panel.append(html('p', { className: 'coverage', 'data-edge': edge, text: gapSentence(lines) }));
      }
    }
    const scroller = html('div', { className: 'scroll' });
    scroller.append(drawGraph(scheme, model, layout));
    panel.append(scroller);
    return panel;
  }

  function dated(node) {
    return node.version + (node.date ? ' (built ' + node.date + ')' : '');
  }

  // Why a graph has no release where the other one has: before its first
  // release (`edge` 'start') or after its last ('end'). A title and the
  // lines of the explanation.
  function gapText(scheme, span, edge) {
    const other = span.other.title;
    if (edge === 'start') {
      const count = span.before.length;
      return [
        'No ' + scheme.title + ' payloads before ' + (span.first.date || span.first.version),
        'The ' + scheme.title + ' graph starts at ' + dated(span.first) + ', the first release of ' + state.stream +
          ' with an ' + scheme.title + ' payload for ' + state.basearch + ';',
        'the ' + plural(count, 'release') + ' before it ' + (count === 1 ? 'has ' : 'have ') + other + ' payloads only.',
      ];
    }
    const count = span.after.length;
    return [
      'No ' + scheme.title + ' payloads after ' + (span.last.date || span.last.version),
      'The ' + scheme.title + ' graph ends at ' + dated(span.last) + ';',
      'the ' + plural(count, 'newer release') + ' ' + (count === 1 ? 'has ' : 'have ') + other + ' payloads only.',
    ];
  }

  // The explanation as one sentence.
  function gapSentence(lines) {
    const [title, ...rest] = lines;
    const body = rest.join(' ');
    return title + ': ' + body.charAt(0).toLowerCase() + body.slice(1);
  }

  // Whether a band of `columns` columns holds the whole explanation.
  function gapHolds(columns, g, lines) {
    return columns * g.column - 16 >= Math.max(...lines.map(textWidth)) + 24;
  }

  function renderCounts(counts, policy) {
    const item = (key, value, singular, many) =>
      html('li', {}, [
        html('b', { 'data-count': key, text: String(value) }),
        ' ' + (value === 1 ? singular : many),
      ]);
    const list = html('ul', { className: 'counts' }, [
      item('nodes', counts.nodes, 'node', 'nodes'),
      item('edges', counts.edges, 'edge', 'edges'),
      item('barriers', counts.barriers, 'barrier', 'barriers'),
      item('deadends', counts.deadends, 'dead-end', 'dead-ends'),
      item('rollouts', counts.rollouts, 'rollout', 'rollouts'),
    ]);
    if (counts.inProgress) {
      list.append(html('li', { className: 'extra' }, [
        html('b', { 'data-count': 'in-progress', text: String(counts.inProgress) }),
        ' in progress',
      ]));
    }
    if (counts.hidden) {
      list.append(html('li', { className: 'extra' }, [
        html('b', { 'data-count': 'hidden', text: String(counts.hidden) }),
        ' hidden at wariness ' + clientWariness().toFixed(2),
      ]));
    }
    if (policy) {
      list.append(html('li', { className: 'extra' }, [
        html('b', { 'data-count': 'withheld', text: String(counts.withheld) }),
        ' withheld by ' + tableName(policy.group) + (policy.group.table !== null && state.policy.fleet ? ' and [fleet]' : ''),
      ]));
    }
    return list;
  }

  function drawGraph(scheme, model, layout) {
    const g = layout.geometry;
    const columns = layout.columns;
    const x = (node) => layout.left + columns.get(node.ageIndex) * g.column;
    const counts = model.counts;
    let maxSpan = 1;
    for (const edge of model.edges) {
      maxSpan = Math.max(maxSpan, Math.abs(columns.get(edge.to.ageIndex) - columns.get(edge.from.ageIndex)));
    }
    const base = Math.ceil(arcHeight(maxSpan, g)) + 28;
    const width = Math.ceil(layout.left + (columns.size - 1) * g.column + RIGHT);
    const height = base + layout.below;
    const root = svg('svg', {
      class: 'graph',
      width,
      height,
      viewBox: '0 0 ' + width + ' ' + height,
      role: 'group',
      'aria-label':
        scheme.title + ' update graph of ' + state.stream + ' ' + state.basearch + ': ' +
        counts.nodes + ' nodes, ' + counts.edges + ' edges',
    });

    const defs = svg('defs', {}, root);
    const markers = {};
    for (const kind of ['plain', 'throttled', 'in', 'out', 'dim', 'withheld']) {
      const id = scheme.id + '-arrow-' + kind;
      const marker = svg('marker', {
        id,
        viewBox: '0 0 10 10',
        refX: 9,
        refY: 5,
        markerWidth: 8,
        markerHeight: 8,
        markerUnits: 'userSpaceOnUse',
        orient: 'auto',
      }, defs);
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow ' + kind }, marker);
      markers[kind] = 'url(#' + id + ')';
    }
    const hatch = svg('pattern', {
      id: scheme.id + '-hatch',
      width: 8,
      height: 8,
      patternUnits: 'userSpaceOnUse',
      patternTransform: 'rotate(45)',
    }, defs);
    svg('rect', { class: 'hatch-bg', width: 8, height: 8 }, hatch);
    svg('line', { class: 'hatch-line', x1: 0, y1: 0, x2: 0, y2: 8 }, hatch);

    const selected = state.selected;
    const mine = selected && selected.scheme === scheme.id ? model.byVersion.get(selected.version) : null;
    const peer = selected && selected.scheme !== scheme.id ? model.byVersion.get(selected.version) : null;
    const next = mine ? nextUpdate(mine) : null;
    const policy = model.policy;

    // Where this graph has no release while the other one, drawn beside
    // it, has: a hatched band saying why.
    const span = coverage(scheme.id);
    if (span) {
      const firstColumn = columns.get(span.first.ageIndex);
      const lastColumn = columns.get(span.last.ageIndex);
      if (firstColumn > 0) {
        drawGap(root, scheme, layout, height, 0, firstColumn - 1, gapText(scheme, span, 'start'), 'start');
      }
      if (lastColumn < columns.size - 1) {
        drawGap(root, scheme, layout, height, lastColumn + 1, columns.size - 1, gapText(scheme, span, 'end'), 'end');
      }
    }

    // Barriers: a wall across the graph, which every update path crosses
    // through the barrier node.
    const walls = svg('g', { class: 'walls' + (g.wall < 12 ? ' narrow' : '') }, root);
    for (const node of model.nodes) {
      if (node.barrier) {
        svg('rect', { class: 'wall', x: x(node) - g.wall / 2, y: 6, width: g.wall, height: base + g.radius, rx: Math.min(5, g.wall / 2) }, walls);
      }
    }

    // Edges: arcs above the nodes, leaving a node right of its centre and
    // landing left of it; selected ones drawn last, on top.
    const edgeLayer = svg('g', { class: 'edges' }, root);
    // Withheld updates under the others, the selected release's on top.
    const rank = (edge) => (mine && (edge.from === mine || edge.to === mine) ? 2 : edge.withheld ? 0 : 1);
    const ordered = model.edges.filter((e) => !e.hidden).sort((a, b) => rank(a) - rank(b));
    const offset = Math.min(3, g.radius / 3);
    for (const edge of ordered) {
      const x1 = x(edge.from) + offset;
      const x2 = x(edge.to) - offset;
      const span = Math.abs(columns.get(edge.to.ageIndex) - columns.get(edge.from.ageIndex));
      const lift = arcHeight(span, g) * 4 / 3; // a cubic's peak is 3/4 of its control height
      const y1 = base - g.radius;
      const y2 = base - (edge.to.inProgress ? g.ring : g.radius) - 1;
      let kind = edge.withheld ? 'withheld' : edge.to.inProgress ? 'throttled' : 'plain';
      if (mine) {
        if (edge.to === mine) kind = 'in';
        else if (edge.from === mine) kind = 'out';
        else kind = 'dim';
      }
      const classes = ['edge', kind];
      if (mine && edge.from === mine && edge.to === next) classes.push('next');
      if (kind === 'dim' && edge.to.inProgress && !edge.withheld) classes.push('throttled');
      if (edge.withheld && kind !== 'withheld') classes.push('withheld');
      const attributes = {
        d: 'M' + x1 + ' ' + y1 + ' C' + x1 + ' ' + (y1 - lift) + ' ' + x2 + ' ' + (y2 - lift) + ' ' + x2 + ' ' + y2,
        class: classes.join(' '),
        'data-from': edge.from.version,
        'data-to': edge.to.version,
      };
      if (edge.withheld) attributes['data-withheld'] = edge.withheld.reason;
      if (g.arrows || kind === 'in' || kind === 'out') attributes['marker-end'] = markers[kind];
      const path = svg('path', attributes, edgeLayer);
      svg('title', {}, path).textContent = edge.from.version + ' → ' + edge.to.version +
        (edge.withheld ? '\nwithheld: ' + reasonText(edge.withheld, policy) : '');
    }

    const nodeLayer = svg('g', { class: 'nodes' }, root);
    for (const node of model.nodes) {
      const column = columns.get(node.ageIndex);
      const label = column % g.labelEvery === 0 || node === mine || node === peer;
      drawNode(nodeLayer, scheme, node, x(node), base, g, { selected: node === mine, peer: node === peer, label });
    }
    return root;
  }

  // A hatched band over columns `from` to `to` of a graph with no release
  // there, and the explanation, kept in view while the band is (see
  // updateViewport): all its lines when they fit, else the title when it
  // fits (the panel's head then has the whole of it), else none.
  function drawGap(root, scheme, layout, height, from, to, lines, edge) {
    const g = layout.geometry;
    const x1 = Math.max(layout.left + (from - 0.5) * g.column, 2);
    const x2 = layout.left + (to + 0.5) * g.column;
    const band = svg('g', { class: 'gap', 'data-edge': edge }, root);
    svg('rect', {
      class: 'gap-band',
      x: x1,
      y: 6,
      width: x2 - x1,
      height: height - 12,
      rx: 6,
      fill: 'url(#' + scheme.id + '-hatch)',
    }, band);
    svg('title', {}, band).textContent = gapSentence(lines);
    const holds = gapHolds(to - from + 1, g, lines);
    const shown = holds ? lines : x2 - x1 >= textWidth(lines[0]) + 40 ? lines.slice(0, 1) : [];
    if (!shown.length) return;
    const note = svg('g', {
      class: 'gap-note',
      'data-x1': x1 + 12,
      'data-x2': x2 - 12,
      'data-width': Math.max(...shown.map(textWidth)),
      'data-title-width': textWidth(shown[0]),
    }, band);
    const top = Math.max(28, height / 2 - 18);
    shown.forEach((line, i) => {
      svg('text', { class: i === 0 ? 'gap-title' : 'gap-text', x: 0, y: top + i * 18 }, note).textContent = line;
    });
  }

  // Keeps the note of a hatched band in the part of the band in view: all
  // of it when it fits there, else its title, else nothing.
  function placeGapNote(note, scroller) {
    const x1 = Math.max(number(note.dataset.x1, 0), scroller.scrollLeft + 16);
    const x2 = Math.min(number(note.dataset.x2, 0), scroller.scrollLeft + scroller.clientWidth - 16);
    const full = number(note.dataset.width, 0);
    const title = number(note.dataset.titleWidth, 0);
    const width = x2 - x1 >= full ? full : x2 - x1 >= title ? title : null;
    note.classList.toggle('off', width === null);
    note.classList.toggle('title-only', width !== null && width < full);
    if (width !== null) note.setAttribute('transform', 'translate(' + x1.toFixed(1) + ' 0)');
  }

  function describe(node) {
    const kinds = [];
    if (node.barrier) kinds.push('barrier');
    if (node.deadend) kinds.push('dead-end');
    if (node.rollout) {
      kinds.push('rollout ' + (node.inProgress ? 'at ' + percent(node.progress) : 'complete'));
    }
    if (releaseWithheld(node)) kinds.push('updates into it withheld (' + node.withheld.reason + ')');
    return kinds;
  }

  // Whether the group's rules withhold the updates into this release in
  // particular (denied, or newer than its max_version), rather than all.
  function releaseWithheld(node) {
    return Boolean(node.withheld) && (node.withheld.reason === 'deny' || node.withheld.reason === 'max_version');
  }

  function drawNode(layer, scheme, node, cx, cy, g, marks) {
    const classes = ['node'];
    if (node.barrier) classes.push('barrier');
    if (node.deadend) classes.push('deadend');
    if (node.rollout) classes.push('rollout');
    if (node.inProgress) classes.push('in-progress');
    if (releaseWithheld(node)) classes.push('withheld');
    if (marks.selected) classes.push('selected');
    if (marks.peer) classes.push('peer');
    const kinds = describe(node);
    const group = svg('g', {
      class: classes.join(' '),
      transform: 'translate(' + cx + ' ' + cy + ')',
      tabindex: 0,
      role: 'button',
      'aria-pressed': marks.selected ? 'true' : 'false',
      'aria-label': node.version + (kinds.length ? ', ' + kinds.join(', ') : ''),
      'data-scheme': scheme.id,
      'data-version': node.version,
    }, layer);
    svg('title', {}, group).textContent =
      node.version + (kinds.length ? ' (' + kinds.join(', ') + ')' : '') +
      (node.date ? '\nbuilt ' + node.date : '') + '\nage index ' + node.ageIndex;
    svg('circle', { class: 'hit', r: Math.max(g.radius + 2, Math.min(g.radius + 10, g.column / 2)) }, group);
    // Barriers, dead-ends and rollouts in progress stay visible when small.
    const r = node.barrier || node.deadend || node.inProgress ? Math.max(g.radius, 3.5) : g.radius;
    const ring = Math.max(g.ring, r + 1.5);
    if (marks.selected || marks.peer) svg('circle', { class: 'halo', r: ring + 4 }, group);
    if (node.inProgress) {
      const circumference = 2 * Math.PI * ring;
      svg('circle', { class: 'ring-bg', r: ring }, group);
      if (node.progress > 0) {
        svg('circle', {
          class: 'ring',
          r: ring,
          'stroke-dasharray': (node.progress * circumference).toFixed(2) + ' ' + circumference.toFixed(2),
          transform: 'rotate(-90)',
        }, group);
      }
    }
    if (node.barrier) {
      svg('rect', { class: 'shape', x: -r, y: -r, width: 2 * r, height: 2 * r, rx: Math.min(2, r / 3) }, group);
    } else {
      svg('circle', { class: 'shape', r }, group);
    }
    if (node.deadend && r >= 6) svg('rect', { class: 'glyph', x: -5, y: -1.5, width: 10, height: 3 }, group);
    if (node.inProgress && g.percents) {
      svg('text', { class: 'pct', y: ring + 13, 'text-anchor': 'middle' }, group).textContent =
        Math.floor(node.progress * 100) + '%';
    }
    if (marks.label) {
      svg('text', {
        class: 'version',
        'text-anchor': 'end',
        transform: 'translate(4 ' + g.labelTop + ') rotate(-' + LABEL_ANGLE + ')',
      }, group).textContent = node.version;
    }

    const choose = () => select(scheme.id, node.version);
    group.addEventListener('click', choose);
    group.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        choose();
      }
    });
  }

  // ---- overview and zoom ---------------------------------------------------

  // The overview: every release of the graphs shown, fit to the width of
  // the page, one row per graph, barriers, dead-ends and rollouts in
  // progress marked, the years under them, and a window over what the
  // graphs below show. Click or drag in it to move the graphs there.
  function renderNavigator(hasReleases) {
    ui.navigator.hidden = !hasReleases;
    if (!hasReleases) {
      ui.overview.replaceChildren();
      return;
    }
    const view = state.view;
    const rows = shownSchemes().filter((s) => modelOf(s.id) && modelOf(s.id).nodes.length);
    const width = Math.max(ui.navigator.clientWidth - 2, 200);
    const count = view.ages.length;
    const step = count > 1 ? (width - OVERVIEW_LEFT - OVERVIEW_RIGHT) / (count - 1) : 0;
    const x = (column) => (count > 1 ? OVERVIEW_LEFT + column * step : (OVERVIEW_LEFT + width - OVERVIEW_RIGHT) / 2);
    const top = 8;
    const axis = top + rows.length * OVERVIEW_ROW + 4;
    const height = axis + 18;
    view.overview = { x, step, width, count };

    const root = ui.overview;
    root.replaceChildren();
    root.setAttribute('width', width);
    root.setAttribute('height', height);
    root.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    root.setAttribute(
      'aria-label',
      'Overview of the ' + plural(count, 'release') + ' of ' + state.stream + ' ' + state.basearch +
        ': click or drag to move the graphs there, double-click to zoom in there',
    );
    const mark = Math.max(1, Math.min(3, step * 0.6));

    rows.forEach((scheme, i) => {
      const model = modelOf(scheme.id);
      const y = top + i * OVERVIEW_ROW + OVERVIEW_ROW / 2;
      const row = svg('g', { class: 'ov-row', 'data-scheme': scheme.id }, root);
      svg('text', { class: 'ov-title', x: 6, y: y + 4 }, row).textContent = scheme.title;
      svg('line', { class: 'ov-axis', x1: OVERVIEW_LEFT - 4, y1: y, x2: width - OVERVIEW_RIGHT + 4, y2: y }, row);
      const span = coverage(scheme.id);
      if (span && rows.length > 1) {
        const firstColumn = view.columns.get(span.first.ageIndex);
        const lastColumn = view.columns.get(span.last.ageIndex);
        if (firstColumn > 0) {
          const band = svg('rect', { class: 'ov-gap', x: x(0) - 2, y: y - 6, width: x(firstColumn) - x(0) - 1, height: 12 }, row);
          svg('title', {}, band).textContent = 'No ' + scheme.title + ' payloads before ' + (span.first.date || span.first.version);
        }
        if (lastColumn < count - 1) {
          const band = svg('rect', { class: 'ov-gap', x: x(lastColumn) + 2, y: y - 6, width: x(count - 1) - x(lastColumn), height: 12 }, row);
          svg('title', {}, band).textContent = 'No ' + scheme.title + ' payloads after ' + (span.last.date || span.last.version);
        }
      }
      for (const node of model.nodes) {
        const cx = x(view.columns.get(node.ageIndex));
        const classes = ['ov-release'];
        let shape;
        if (node.barrier) {
          classes.push('ov-barrier');
          shape = svg('rect', { x: cx - Math.max(mark, 1.5), y: y - 8, width: 2 * Math.max(mark, 1.5), height: 16, rx: 1 }, row);
        } else if (node.deadend) {
          classes.push('ov-deadend');
          shape = svg('circle', { cx, cy: y, r: Math.max(mark + 1, 2.5) }, row);
        } else if (node.inProgress) {
          classes.push('ov-rollout');
          shape = svg('circle', { cx, cy: y, r: Math.max(mark + 1, 2.5) }, row);
        } else {
          shape = svg('line', { x1: cx, y1: y - 5, x2: cx, y2: y + 5 }, row);
        }
        const chosen = state.selected && state.selected.scheme === scheme.id && state.selected.version === node.version;
        if (chosen) classes.push('ov-selected');
        shape.setAttribute('class', classes.join(' '));
        shape.setAttribute('data-version', node.version);
        svg('title', {}, shape).textContent = node.version + (node.date ? ' (' + node.date + ')' : '');
      }
    });

    // Years, at the first release built in each.
    const dates = view.ages.map((age) => {
      for (const scheme of rows) {
        const node = modelOf(scheme.id).byAge.get(age);
        if (node) return node.date;
      }
      return null;
    });
    let lastYear = null;
    let lastX = -Infinity;
    dates.forEach((date, column) => {
      if (!date) return;
      const year = date.slice(0, 4);
      if (year === lastYear) return;
      lastYear = year;
      const at = x(column);
      svg('line', { class: 'ov-tick', x1: at, y1: top - 2, x2: at, y2: axis + 2 }, root);
      if (at - lastX >= 34 && at + 30 <= width) {
        svg('text', { class: 'ov-year', x: at + 3, y: axis + 13 }, root).textContent = year;
        lastX = at;
      }
    });
    svg('rect', { id: 'overview-window', class: 'ov-window', x: 0, y: 2, width: 0, height: axis }, root);
  }

  // After a scroll or a render: the overview's window, the "in view" count,
  // and the notes of the hatched bands kept in view.
  function updateViewport() {
    const view = state.view;
    const scroller = scrollers()[0];
    if (!view || !scroller) {
      ui.inView.textContent = '';
      return;
    }
    const visible = visibleColumns();
    const count = view.ages.length;
    const shown = Math.max(visible.last - visible.first + 1, 0);
    const frame = $('overview-window');
    if (frame && view.overview) {
      const fromColumn = clamp((scroller.scrollLeft - view.left) / view.column, 0, count - 1);
      const toColumn = clamp((scroller.scrollLeft + scroller.clientWidth - view.left) / view.column, 0, count - 1);
      const x1 = view.overview.x(fromColumn) - 4;
      const x2 = view.overview.x(toColumn) + 4;
      frame.setAttribute('x', x1);
      frame.setAttribute('width', Math.max(x2 - x1, 8));
    }
    const dateOf = (column) => {
      for (const scheme of SCHEMES) {
        const model = modelOf(scheme.id);
        const node = model && model.byAge.get(view.ages[column]);
        if (node && node.date) return node.date;
      }
      return null;
    };
    let text = shown === count ? 'All ' + plural(count, 'release') + ' in view' : shown + ' of ' + count + ' releases in view';
    if (shown > 0 && shown < count) {
      const from = dateOf(visible.first);
      const to = dateOf(visible.last);
      if (from && to) text += ': ' + from + ' to ' + to;
    }
    ui.inView.textContent = text;
    ui.inView.dataset.shown = String(shown);
    ui.inView.dataset.total = String(count);
    for (const note of ui.panels.querySelectorAll('.gap-note')) placeGapNote(note, scroller);
    showZoom();
  }

  let viewportFrame = 0;
  function scheduleViewport() {
    if (viewportFrame) return;
    viewportFrame = window.requestAnimationFrame(() => {
      viewportFrame = 0;
      updateViewport();
    });
  }

  function showZoom() {
    const view = state.view;
    if (!view) return;
    const value = Math.round(view.zoom * 100) + '%';
    ui.zoomValue.textContent = state.zoom === 'fit' ? 'fit (' + value + ')' : value;
    ui.zoomValue.dataset.zoom = view.zoom.toFixed(4);
    ui.zoomOut.disabled = view.zoom <= view.minZoom + 1e-6;
    ui.zoomIn.disabled = view.zoom >= ZOOM_MAX - 1e-6;
  }

  // Zooms by `factor`, keeping the release at `fraction` of the visible
  // width where it is.
  function zoomBy(factor, fraction) {
    const view = state.view;
    if (!view) return;
    setZoom(view.zoom * factor, fraction);
  }

  function setZoom(zoom, fraction, column) {
    const view = state.view;
    if (!view) return;
    state.zoom = zoom <= view.minZoom * 1.001 ? 'fit' : Math.min(zoom, ZOOM_MAX);
    render({ anchor: { fraction, column } });
  }

  // The wheel scrolls the graphs sideways (until an end is reached, then
  // the page); with Ctrl, it zooms around the pointer.
  let wheelZoom = { factor: 1, frame: 0, fraction: 0.5 };
  function onWheel(event, scroller) {
    const unit = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? scroller.clientWidth : 1;
    if (event.ctrlKey || event.metaKey) {
      event.preventDefault();
      const bounds = scroller.getBoundingClientRect();
      wheelZoom.fraction = clamp((event.clientX - bounds.left) / bounds.width, 0, 1);
      wheelZoom.factor *= Math.exp(-clamp(event.deltaY * unit, -300, 300) / 300);
      if (!wheelZoom.frame) {
        wheelZoom.frame = window.requestAnimationFrame(() => {
          const { factor, fraction } = wheelZoom;
          wheelZoom = { factor: 1, frame: 0, fraction };
          zoomBy(factor, fraction);
        });
      }
      return;
    }
    if (Math.abs(event.deltaX) >= Math.abs(event.deltaY)) return; // already sideways
    const delta = event.deltaY * unit;
    const max = scroller.scrollWidth - scroller.clientWidth;
    if (max <= 0) return;
    if ((delta < 0 && scroller.scrollLeft <= 0) || (delta > 0 && scroller.scrollLeft >= max - 1)) return;
    event.preventDefault();
    scroller.scrollLeft = clamp(scroller.scrollLeft + delta, 0, max);
  }

  // The release column under a pointer event on the overview.
  function overviewColumn(event) {
    const view = state.view;
    if (!view || !view.overview || view.overview.count < 2) return 0;
    const bounds = ui.overview.getBoundingClientRect();
    const px = ((event.clientX - bounds.left) * view.overview.width) / bounds.width;
    return clamp((px - OVERVIEW_LEFT) / view.overview.step, 0, view.overview.count - 1);
  }

  function startOverview() {
    let dragging = false;
    ui.overview.addEventListener('pointerdown', (event) => {
      if (event.button !== 0) return;
      dragging = true;
      ui.overview.setPointerCapture(event.pointerId);
      scrollToColumn(overviewColumn(event), 0.5);
    });
    ui.overview.addEventListener('pointermove', (event) => {
      if (dragging) scrollToColumn(overviewColumn(event), 0.5);
    });
    const stop = () => {
      dragging = false;
    };
    ui.overview.addEventListener('pointerup', stop);
    ui.overview.addEventListener('pointercancel', stop);
    ui.overview.addEventListener('dblclick', (event) => {
      const view = state.view;
      if (view) setZoom(Math.max(1, view.zoom), 0.5, overviewColumn(event));
    });
    ui.overview.addEventListener('wheel', (event) => {
      const scroller = scrollers()[0];
      if (scroller) onWheel(event, scroller);
    }, { passive: false });
    ui.overview.addEventListener('keydown', (event) => {
      const scroller = scrollers()[0];
      if (!scroller) return;
      const page = scroller.clientWidth * 0.5;
      const moves = {
        ArrowLeft: scroller.scrollLeft - page,
        ArrowRight: scroller.scrollLeft + page,
        Home: 0,
        End: scroller.scrollWidth,
      };
      if (!(event.key in moves)) return;
      event.preventDefault();
      for (const box of scrollers()) box.scrollLeft = moves[event.key];
      updateViewport();
    });
  }

  // "Go to version": selects the release named (or the only one whose
  // version contains what is typed) and scrolls it into view.
  function goTo(text) {
    const wanted = text.trim();
    ui.gotoMessage.textContent = '';
    ui.gotoMessage.classList.remove('error');
    if (!wanted) return;
    const shown = shownSchemes().filter((s) => modelOf(s.id));
    const preferred = state.selected ? shown.find((s) => s.id === state.selected.scheme) : null;
    const order = preferred ? [preferred, ...shown.filter((s) => s !== preferred)] : shown;
    let found = null;
    for (const scheme of order) {
      if (modelOf(scheme.id).byVersion.has(wanted)) {
        found = { scheme: scheme.id, version: wanted };
        break;
      }
    }
    if (!found) {
      const matches = new Map();
      for (const scheme of order) {
        for (const node of modelOf(scheme.id).nodes) {
          if (node.version.includes(wanted) && !matches.has(node.version)) matches.set(node.version, scheme.id);
        }
      }
      if (matches.size === 1) {
        const [[version, scheme]] = [...matches];
        found = { scheme, version };
      } else {
        ui.gotoMessage.classList.add('error');
        ui.gotoMessage.textContent = matches.size
          ? matches.size + ' releases match "' + wanted + '": type more of the version'
          : 'No release ' + wanted + ' in ' + state.stream + ' ' + state.basearch;
        return;
      }
    }
    state.selected = found;
    ui.gotoVersion.value = found.version;
    render({ reveal: true, center: true });
  }

  // ---- details -------------------------------------------------------------

  function select(scheme, version, reveal) {
    const same = state.selected && state.selected.scheme === scheme && state.selected.version === version;
    state.selected = same ? null : { scheme, version };
    render(reveal ? { reveal: true } : undefined);
  }

  function renderDetails() {
    const selected = state.selected;
    const graph = selected && state.graphs[selected.scheme];
    const node = graph && graph.model ? graph.model.byVersion.get(selected.version) : null;
    ui.detailsEmpty.hidden = Boolean(node);
    ui.detailsList.hidden = !node;
    ui.detailsClose.hidden = !node;
    if (!node) {
      ui.detailsList.replaceChildren();
      return;
    }
    const scheme = SCHEMES.find((s) => s.id === selected.scheme);
    const other = SCHEMES.find((s) => s.id !== selected.scheme);
    const rows = [];
    const row = (key, label, ...content) => {
      rows.push(html('dt', { text: label }));
      rows.push(html('dd', { id: 'details-' + key }, content));
    };

    row('version', 'Version', node.version);
    row('build-date', 'Build date', node.date || html('span', { className: 'muted', text: 'not in the version' }));
    row('graph', 'Graph', scheme.title + ' · ' + state.stream + ' · ' + state.basearch);
    const notes = releaseNotesUrl(state.stream, state.basearch);
    if (notes) {
      row('release-notes', 'Release notes', html('a', {
        href: notes,
        rel: 'noopener noreferrer',
        target: '_blank',
        text: state.stream + ' · ' + state.basearch,
      }));
    }
    row('payload', 'Payload', html('code', { text: node.payload }));
    const twin = modelOf(other.id) ? modelOf(other.id).byVersion.get(node.version) : null;
    row(
      'other-payload',
      other.title + ' payload',
      twin ? html('code', { text: twin.payload }) : html('span', { className: 'muted', text: 'not in the ' + other.title + ' graph' }),
    );
    row('age-index', 'Age index', String(node.ageIndex) + ' (node ' + (node.index + 1) + ' of ' + graph.model.nodes.length + ')');
    row('barrier', 'Barrier', ...(node.barrier ? ['yes: ', reason(node.barrierReason)] : ['no']));
    row('deadend', 'Dead-end', ...(node.deadend ? ['yes: ', reason(node.deadendReason)] : ['no']));

    if (node.rollout) {
      const r = node.rollout;
      row('rollout-start', 'Rollout start', r.given.startEpoch ? utc(r.startEpoch) + ' (' + r.startEpoch + ')' : 'not given (0)');
      row('rollout-start-value', 'Start value', r.given.startValue ? percent(r.startValue) : 'not given (0%)');
      row('rollout-duration', 'Duration', r.durationMinutes === null ? 'none: stays at the start value' : minutesText(r.durationMinutes));
      const phase = now() < r.startEpoch ? 'not started' : node.progress >= 1 ? 'complete' : 'in progress';
      row('rollout-progress', 'Progress', html('b', { text: percent(node.progress) }), ' ' + phase + ', at ' + (state.at === null ? 'now, ' : '') + utc(now()));
      row('rollout-clients', 'Offered to', 'clients of wariness up to ' + node.progress.toFixed(3));
    } else {
      row('rollout', 'Rollout', 'no');
    }

    const policy = graph.model.policy;
    const clientValue = clientWariness();
    const wariness = clientValue.toFixed(2);
    const forGroup = policy ? ' for ' + tableName(policy.group) : '';
    const offeredIn = node.inEdges.filter((e) => !e.hidden && !e.withheld);
    const withheldIn = node.inEdges.filter((e) => e.withheld);
    const hiddenIn = node.inEdges.filter((e) => e.hidden).length;
    const from = [
      offeredIn.length
        ? versionList(offeredIn.map((e) => e.from), scheme.id)
        : hiddenIn ? 'none at wariness ' + wariness : withheldIn.length ? 'none' + forGroup : 'none',
    ];
    if (hiddenIn) {
      // Every update into a rollout is hidden together: the client is not
      // offered the rollout yet.
      from.push(html('span', {
        className: 'hidden-note',
        text:
          plural(hiddenIn, 'update') + ' into it hidden: a client of wariness ' + wariness + ' is offered this rollout once it reaches ' +
          percent(clientValue) + ' (now at ' + percent(node.progress) + '). Set the client wariness to 0 to see them.',
      }));
    }
    row('from', 'Updates from', ...from);
    if (withheldIn.length) {
      // Every update into a release is withheld for the same reason.
      row('withheld-from', 'Withheld into it', html('span', {
        className: 'withheld-note',
        'data-reason': node.withheld.reason,
        text: plural(withheldIn.length, 'update') + ' into it withheld: ' + reasonText(node.withheld, policy) + '. From:',
      }), versionList(withheldIn.map((e) => e.from), scheme.id));
    }
    const next = nextUpdate(node);
    const offeredOut = node.outEdges.filter((e) => !e.hidden && !e.withheld);
    const withheldOut = node.outEdges.filter((e) => e.withheld);
    const hiddenOut = node.outEdges.filter((e) => e.hidden);
    row(
      'to',
      'Updates to',
      offeredOut.length
        ? versionList(offeredOut.map((e) => e.to), scheme.id, next)
        : node.deadend ? 'none (dead-end)' : withheldOut.length ? 'none' + forGroup : 'none',
    );
    if (withheldOut.length) {
      // By reason: each rule, or the one reason the group is closed.
      // (keyed by the text: each denied release has a reason of its own).
      const byReason = new Map();
      for (const edge of withheldOut) {
        const text = reasonText(edge.withheld, policy);
        if (!byReason.has(text)) byReason.set(text, { reason: edge.withheld, targets: [] });
        byReason.get(text).targets.push(edge.to);
      }
      const lines = [...byReason].map(([text, { reason, targets }]) =>
        html('span', { className: 'withheld-line', 'data-reason': reason.reason }, [
          text + ': ',
          versionList(targets, scheme.id),
        ]));
      row('withheld-to', 'Withheld', plural(withheldOut.length, 'update') + ' out of it withheld' + forGroup, ...lines);
    }
    if (hiddenOut.length) {
      const targets = hiddenOut.map((e) => e.to.version + ' at ' + percent(e.to.progress));
      row('hidden', 'Hidden', plural(hiddenOut.length, 'update') + ' not offered at wariness ' + wariness +
        ': into rollouts that have not reached it (' + targets.join(', ') + ')');
    }
    const without = policy ? nextUpdate(node, true) : null;
    row(
      'next',
      'Next update',
      next ? next.version : 'none',
      html('span', { className: 'muted', text: next ? ' (the highest age index: what a client at this wariness takes)' : '' }),
      ...(without && without !== next && without.withheld
        ? [html('span', {
          className: 'withheld-note',
          'data-reason': without.withheld.reason,
          text: 'Without the group\'s rules: ' + without.version + ', withheld: ' + reasonText(without.withheld, policy) + '.',
        })]
        : []),
    );
    ui.detailsList.replaceChildren(...rows);
  }

  function versionList(nodes, scheme, highlight) {
    const sorted = [...nodes].sort((a, b) => a.ageIndex - b.ageIndex);
    const list = html('span', { className: 'versions' });
    for (const target of sorted) {
      const button = html('button', { type: 'button', className: 'link' + (target === highlight ? ' next' : ''), text: target.version });
      button.addEventListener('click', () => select(scheme, target.version, true));
      list.append(button);
    }
    return list;
  }

  // ---- page state ------------------------------------------------------------

  function readState() {
    const query = new URLSearchParams(window.location.search);
    state.stream = query.get('stream') || '';
    state.basearch = query.get('basearch') || '';
    const scheme = query.get('scheme');
    if (scheme === 'checksum' || scheme === 'oci') state.scheme = scheme;
    const wariness = number(query.get('wariness'), 0);
    state.wariness = clamp(wariness, 0, 1);
    state.group = query.get('group') || null;
    const zoom = query.get('zoom');
    state.zoom = zoom === 'fit' ? 'fit' : clamp(number(zoom, 1), 0.01, ZOOM_MAX);
    const at = integer(query.get('at'), null);
    state.at = at;
    const release = query.get('release');
    const graph = query.get('graph');
    if (release && (graph === 'checksum' || graph === 'oci')) state.selected = { scheme: graph, version: release };
  }

  function saveState() {
    const query = new URLSearchParams();
    if (state.stream) query.set('stream', state.stream);
    if (state.basearch) query.set('basearch', state.basearch);
    if (state.scheme !== 'both') query.set('scheme', state.scheme);
    if (state.group !== null) query.set('group', state.group);
    if (state.wariness) query.set('wariness', state.wariness.toFixed(2));
    if (state.zoom !== 1) query.set('zoom', state.zoom === 'fit' ? 'fit' : state.zoom.toFixed(2));
    if (state.at !== null) query.set('at', String(state.at));
    if (state.selected) {
      query.set('graph', state.selected.scheme);
      query.set('release', state.selected.version);
    }
    const search = '?' + query;
    if (search !== window.location.search) window.history.replaceState(null, '', search);
  }

  function showControls() {
    ui.wariness.value = String(state.wariness);
    showWariness();
    ui.at.value = state.at === null ? '' : new Date(state.at * 1000).toISOString().slice(0, 16);
    for (const radio of document.querySelectorAll('input[name="scheme"]')) {
      radio.checked = radio.value === state.scheme;
    }
  }

  function start() {
    readState();
    showControls();
    ui.stream.addEventListener('change', () => {
      state.stream = ui.stream.value;
      fillArches();
      loadGraphs(false);
    });
    ui.basearch.addEventListener('change', () => {
      state.basearch = ui.basearch.value;
      showReleaseNotes();
      loadGraphs(false);
    });
    for (const radio of document.querySelectorAll('input[name="scheme"]')) {
      radio.addEventListener('change', () => {
        if (!radio.checked) return;
        state.scheme = radio.value;
        // Keep the selection in view: the same release in the graph shown.
        const selected = state.selected;
        if (selected && state.scheme !== 'both' && selected.scheme !== state.scheme) {
          const model = modelOf(state.scheme);
          const twin = model && model.byVersion.has(selected.version);
          state.selected = twin ? { scheme: state.scheme, version: selected.version } : null;
        }
        render(state.selected ? { reveal: true, center: true } : { end: true });
      });
    }
    ui.wariness.addEventListener('input', () => {
      state.wariness = number(ui.wariness.value, 0);
      showWariness();
      render();
    });
    ui.group.addEventListener('change', () => {
      const value = ui.group.value;
      state.group = value === '' ? null : value === 'other' ? otherGroupName() : value.slice('group:'.length);
      showWariness();
      render();
      // Whether a group is closed now is the server's answer of when the
      // policy was read: read it again when that is a while ago.
      if (state.at === null && Date.now() - state.policy.fetched > POLICY_STALE_MS) loadPolicy();
    });
    ui.at.addEventListener('change', () => {
      const parsed = Date.parse(ui.at.value + 'Z');
      state.at = Number.isNaN(parsed) ? null : Math.floor(parsed / 1000);
      render();
    });
    ui.now.addEventListener('click', () => {
      state.at = null;
      showControls();
      render();
    });
    ui.reload.addEventListener('click', () => {
      loadPolicy();
      loadGraphs(true);
    });
    ui.detailsClose.addEventListener('click', () => {
      state.selected = null;
      render();
    });
    ui.zoomOut.addEventListener('click', () => zoomBy(1 / ZOOM_STEP, 0.5));
    ui.zoomIn.addEventListener('click', () => zoomBy(ZOOM_STEP, 0.5));
    ui.zoomFit.addEventListener('click', () => setZoom(0, 0.5));
    ui.zoomFull.addEventListener('click', () => setZoom(1, 0.5));
    ui.gotoForm.addEventListener('submit', (event) => {
      event.preventDefault();
      goTo(ui.gotoVersion.value);
    });
    startOverview();
    // A new width: the overview and fit-to-width follow.
    let width = ui.panels.clientWidth;
    new ResizeObserver(() => {
      if (ui.panels.clientWidth === width) return;
      width = ui.panels.clientWidth;
      if (state.view) render({ anchor: { fraction: 0.5 } });
    }).observe(ui.panels);
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && state.selected) {
        state.selected = null;
        render();
      }
    });
    document.getElementById('controls').addEventListener('submit', (event) => event.preventDefault());
    loadPolicy();
    loadStreams();
  }

  start();
})();
