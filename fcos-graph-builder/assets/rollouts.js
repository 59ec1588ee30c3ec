// Rollout outcomes and halts: the policy-engine's, read from the
// graph-builder's `v1/rollouts` (when it has `[rollouts] url`): what
// happened to the nodes offered each release (offered, arrived, stuck,
// rolled back, lost, arrival times, by group and platform), and the
// releases a guard halted. A halted release has the updates into it
// withheld, as the policy-engine withholds them: for a group's halt in
// that group's view only; a platform's halt is marked, its updates drawn
// as offered (the page has no platform).

import { fetchJson } from './data.js';
import { render } from './draw.js';
import { html, percent, plural, state, svg, ui, utc } from './page.js';

export const ROLLOUTS_REFRESH_MS = 10000; // how often the outcomes are read again

const KEY_TEXT = {
  max_rolled_back: ['arrived', 'rolled back'],
  max_lost: ['offered', 'lost'],
  max_stuck: ['offered', 'stuck'],
};

// ---- loading -------------------------------------------------------------

// Reads `v1/rollouts`: state.rollouts is {status: 'none'} without
// `[rollouts] url`, {status: 'error', error} while none was ever read,
// else {status: 'ok', releases, halts, readAt, ageSeconds, failingSince}.
// Draws again only when the outcomes or halts changed.
let rolloutsLoading = 0;
let rolloutsTimer = 0;
export async function loadRollouts() {
  const sequence = ++rolloutsLoading;
  let rollouts;
  try {
    const body = await fetchJson('v1/rollouts');
    if (!body.rollouts) {
      rollouts = { status: 'none' };
    } else {
      const document = body.rollouts;
      rollouts = {
        status: 'ok',
        at: document.at || null,
        readAt: body.read_at || null,
        ageSeconds: Number(body.age_seconds) || 0,
        failingSince: body.failing_since || null,
        releases: new Map((document.releases || []).map((r) => [releaseKey(r.stream, r.basearch, r.scheme, r.release), r])),
        halts: document.halts || [],
        signature: JSON.stringify([document.releases, document.halts]),
      };
    }
  } catch (error) {
    rollouts = { status: 'error', error: error.message, signature: '' };
  }
  if (sequence !== rolloutsLoading) return;
  const before = state.rollouts;
  state.rollouts = rollouts;
  window.clearTimeout(rolloutsTimer);
  if (rollouts.status !== 'none') rolloutsTimer = window.setTimeout(loadRollouts, ROLLOUTS_REFRESH_MS);
  showRolloutsStatus();
  if (!state.view) return;
  if (before.status !== rollouts.status || before.signature !== rollouts.signature) render();
}

function releaseKey(stream, basearch, scheme, release) {
  return [stream, basearch, scheme, release].join(' ');
}

// Above the graphs: why the outcomes cannot be read, or how old they are
// while the policy-engine cannot be read.
export function showRolloutsStatus() {
  const rollouts = state.rollouts;
  const element = ui.rolloutsStatus;
  let text = '';
  if (rollouts.status === 'error') {
    text = 'Rollout outcomes and halts cannot be read: ' + rollouts.error + '. The graphs are shown without them.';
  } else if (rollouts.status === 'ok' && rollouts.failingSince) {
    text = 'The policy-engine cannot be read since ' + rfcText(rollouts.failingSince) + ': the rollout outcomes and halts shown are those read ' +
      ageText(rollouts.ageSeconds) + ' ago (' + rfcText(rollouts.readAt) + ').';
  }
  element.hidden = !text;
  element.textContent = text;
  element.dataset.status = rollouts.status + (rollouts.failingSince ? ' stale' : '');
  ui.legendHalted.hidden = rollouts.status !== 'ok';
  ui.legendOutcomes.hidden = rollouts.status !== 'ok';
}

function rfcText(text) {
  return text ? String(text).replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC') : 'never';
}

function ageText(seconds) {
  if (seconds < 120) return plural(seconds, 'second');
  if (seconds < 7200) return plural(Math.round(seconds / 60), 'minute');
  return plural(Math.round(seconds / 3600), 'hour');
}

// ---- halts -------------------------------------------------------------

// The group label the policy-engine gives a node of group `name` (null:
// one that sends none): the group when the policy file has a table for
// it, else `other` (Policy::group_label).
export function groupLabel(name) {
  const groups = state.policy.groups;
  return name !== null && groups && groups.has(name) ? name : 'other';
}

// The halts of `model`'s scope (the stream, architecture and scheme shown).
function scopeHalts(model) {
  if (state.rollouts.status !== 'ok') return [];
  return state.rollouts.halts.filter((h) => h.stream === model.stream && h.basearch === state.basearch && h.scheme === model.scheme);
}

// The releases of `model` halted for a node of group label `label` and no
// platform, as the policy-engine halts them (Halt::applies): version ->
// the halt. A platform's halt is not among them.
export function haltedFor(model, label) {
  const halted = new Map();
  for (const halt of scopeHalts(model)) {
    if (halt.platform === null && (halt.group === null || halt.group === label) && !halted.has(halt.release)) {
      halted.set(halt.release, halt);
    }
  }
  return halted;
}

// Per render: each release's halt in the view (`node.halt`), every halt of
// it (`node.halts`, whatever the group or platform), the platforms it is
// halted on for the view's group (`node.platformHalts`), and its outcomes
// (`node.outcomes`). Returns the halts in the view (version -> halt).
export function evaluateRollouts(model) {
  const halted = haltedFor(model, groupLabel(state.group));
  const all = new Map();
  for (const halt of scopeHalts(model)) {
    if (!all.has(halt.release)) all.set(halt.release, []);
    all.get(halt.release).push(halt);
  }
  const label = groupLabel(state.group);
  const releases = state.rollouts.status === 'ok' ? state.rollouts.releases : null;
  for (const node of model.nodes) {
    node.halt = halted.get(node.version) || null;
    node.halts = all.get(node.version) || [];
    node.platformHalts = node.halts.filter((h) => h.platform !== null && (h.group === null || h.group === label));
    node.outcomes = releases ? releases.get(releaseKey(model.stream, state.basearch, model.scheme, node.version)) || null : null;
  }
  return halted;
}

// Why the updates into `node` are withheld by a halt: a reason as the
// rules' (see policy.js reasonText), or null.
export function haltReason(halt) {
  return halt ? { reason: 'halted', halt } : null;
}

// A halt, for people: "halted: max_rolled_back 0.667 > 0.5, 2 of 3
// arrived nodes rolled back, since 2027-01-15 08:50 UTC".
export function haltText(halt) {
  const [of, what] = KEY_TEXT[halt.key] || ['counted', 'counted'];
  const where = [];
  if (halt.group !== null) where.push('in group ' + halt.group);
  if (halt.platform !== null) where.push('on platform ' + halt.platform);
  return 'halted' + (where.length ? ' ' + where.join(' ') : '') + ': ' + halt.key + ' ' + fraction(halt.value) + ' > ' + halt.limit + ', ' +
    halt.count + ' of ' + plural(halt.of, of + ' node') + ' ' + what + ', since ' + utc(halt.since);
}

function fraction(value) {
  return Number(value).toFixed(3);
}

// ---- drawing -----------------------------------------------------------

// An octagon of radius `r` (a stop sign), as path data.
function octagon(r) {
  const points = [];
  for (let i = 0; i < 8; i += 1) {
    const angle = (Math.PI / 8) * (2 * i + 1);
    points.push((r * Math.cos(angle)).toFixed(2) + ' ' + (r * Math.sin(angle)).toFixed(2));
  }
  return 'M' + points.join(' L') + ' Z';
}

// The marks of a release's rollout outcomes and halts, drawn once with the
// release (a change of group restyles them, see styleNode(); a zoom
// places them, see placeRolloutMarks()): a stop sign at its lower right
// for a release halted in some view (filled while it is halted in the
// view shown), a hollow one naming each platform it is halted on, and a
// small diamond at its lower left when it has outcomes.
export function drawRolloutMarks(group, node) {
  const marks = {};
  if (node.halts.some((h) => h.platform === null)) {
    marks.ring = svg('circle', { class: 'halt-ring' }, group);
    marks.halt = svg('path', { class: 'halt-sign' }, group);
  }
  if (node.platformHalts.length) {
    marks.platform = svg('path', { class: 'platform-sign' }, group);
    marks.platformText = svg('text', { class: 'platform-halt', 'text-anchor': 'end' }, group);
    marks.platformText.textContent = node.platformHalts.map((h) => h.platform).join(', ');
  }
  if (node.outcomes) marks.outcome = svg('path', { class: 'outcome-sign' }, group);
  node.rolloutMarks = marks;
}

// Places the marks of drawRolloutMarks() around a release of radius `r`
// drawn at geometry `g` (the platform's name only where there is room).
export function placeRolloutMarks(node, r, g) {
  const marks = node.rolloutMarks;
  const size = Math.max(2.5, Math.min(5, r * 0.6));
  if (marks.ring) {
    marks.ring.setAttribute('r', g.ring + 2.5);
    marks.halt.setAttribute('d', octagon(size));
    marks.halt.setAttribute('transform', 'translate(' + (r + size) + ' ' + (r + size) + ')');
  }
  if (marks.platform) {
    marks.platform.setAttribute('d', octagon(size));
    marks.platform.setAttribute('transform', 'translate(' + (-r - size) + ' ' + (-r - size - 2) + ')');
    if (g.percents) {
      marks.platformText.removeAttribute('display');
      marks.platformText.setAttribute('x', -r - 2 * size - 2);
      marks.platformText.setAttribute('y', -r - size + 1);
    } else {
      marks.platformText.setAttribute('display', 'none');
    }
  }
  if (marks.outcome) {
    marks.outcome.setAttribute('d', 'M0 ' + -size + ' L' + size + ' 0 L0 ' + size + ' L' + -size + ' 0 Z');
    marks.outcome.setAttribute('transform', 'translate(' + (-r - size) + ' ' + (r + size) + ')');
  }
}

// What a release's outcomes and halts add to its description.
export function describeRollout(node) {
  const kinds = [];
  if (node.halt) kinds.push('rollout halted (' + node.halt.key + ')');
  for (const halt of node.platformHalts) kinds.push('rollout halted on platform ' + halt.platform + ' (' + halt.key + ')');
  if (node.outcomes) {
    const c = node.outcomes;
    kinds.push('outcomes: ' + c.offered + ' offered, ' + c.arrived + ' arrived, ' + c.rolled_back + ' rolled back');
  }
  return kinds;
}

// In the overview: a stop sign over each release halted in some view,
// filled while it is halted in the view shown.
export function drawOverviewHalts(row, model, x, y) {
  for (const node of model.nodes) {
    if (!node.halts.length) continue;
    const mark = svg('path', {
      class: 'ov-halt',
      d: octagon(3.5),
      transform: 'translate(' + x(node) + ' ' + (y - 9) + ')',
      'data-version': node.version,
      'data-scheme': model.scheme,
    }, row);
    svg('title', {}, mark).textContent = node.version + ': ' + node.halts.map(haltText).join('; ');
  }
  styleOverviewHalts();
}

// The overview's stop signs as the view shown has them.
export function styleOverviewHalts() {
  for (const mark of ui.overview.querySelectorAll('.ov-halt')) {
    const model = state.graphs[mark.dataset.scheme] && state.graphs[mark.dataset.scheme].model;
    const node = model && model.byVersion.get(mark.dataset.version);
    mark.classList.toggle('here', Boolean(node && (node.halt || node.platformHalts.length)));
  }
}

// ---- details -----------------------------------------------------------

// Rows of a release's details: its halts (in this view, and elsewhere),
// then its outcomes, every node together and by platform and group.
export function rolloutRows(node, row) {
  if (state.rollouts.status !== 'ok') return;
  if (node.halts.length) {
    const lines = node.halts.map((halt) => html('span', {
      className: 'halt-line' + (halt === node.halt || node.platformHalts.includes(halt) ? ' here' : ''),
      'data-key': halt.key,
      'data-group': halt.group === null ? '' : halt.group,
      'data-platform': halt.platform === null ? '' : halt.platform,
      text: haltText(halt) + (halt === node.halt ? ' (this view: the updates into it are withheld)'
        : halt.platform !== null ? ' (updates drawn as offered: the page has no platform)' : ' (not in this view)'),
    }));
    row('halt', 'Halted', ...lines);
  }
  const c = node.outcomes;
  if (!c) {
    row('outcomes', 'Outcomes', html('span', { className: 'muted', text: 'none: not offered to a node that polled in the last 30 days' }));
    return;
  }
  row('outcomes', 'Outcomes', outcomeList(c));
  row('arrival', 'Arrival', 'p50 ' + seconds(c.arrival_seconds.p50) + ', p90 ' + seconds(c.arrival_seconds.p90) +
    (c.last_offered ? ' (last offered ' + rfcText(c.last_offered) + ')' : ''));
  for (const [key, label, list] of [['by-platform', 'By platform', c.by_platform], ['by-group', 'By group', c.by_group]]) {
    const names = Object.keys(list || {}).sort();
    if (!names.length) continue;
    row(key, label, html('span', { className: 'outcomes-by' }, names.map((name) =>
      html('span', { className: 'outcomes-of', 'data-name': name }, [html('b', { text: name }), ' ', compact(list[name])]))));
  }
}

const OUTCOMES = [['offered', 'offered'], ['arrived', 'arrived'], ['stuck', 'stuck'], ['rolled_back', 'rolled back'], ['lost', 'lost']];

function outcomeList(c) {
  return html('span', { className: 'outcomes' }, OUTCOMES.map(([key, text]) => html('span', { className: 'outcome' }, [
    html('b', { 'data-outcome': key, text: String(c[key]) }),
    ' ' + text + (key !== 'offered' && c.offered ? ' (' + percent(c[key] / c.offered) + ')' : ''),
  ])));
}

// "3/3/0/2/0": offered, arrived, stuck, rolled back, lost.
function compact(c) {
  return html('span', { title: OUTCOMES.map(([key, text]) => c[key] + ' ' + text).join(', '), text: OUTCOMES.map(([key]) => c[key]).join('/') });
}

function seconds(value) {
  if (value === null || value === undefined) return '—';
  if (value < 120) return Math.round(value) + ' s';
  if (value < 7200) return Math.round(value / 60) + ' min';
  if (value < 172800) return (value / 3600).toFixed(1) + ' h';
  return (value / 86400).toFixed(1) + ' d';
}

