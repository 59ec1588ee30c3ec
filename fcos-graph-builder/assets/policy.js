// The fleet policy: the rules a client of a group gets, when its windows
// and freezes close it, and what they withhold, as the policy-engine
// computes it.

import { modelOf } from './data.js';
import { DAYS, SCHEMES, WEEKDAYS, WEEK_MINUTES, clamp, state, utc } from './page.js';
import { groupLabel, haltText, haltedFor } from './rollouts.js';

// The rules a client of the group picked gets, as the policy-engine
// picks them (Policy::rules_for): the group's table, else
// [groups.default] (each with [fleet]'s rules added by the server), else
// [fleet]'s alone, else none. A node that sends no group (`state.group`
// null, the default view) gets the same as a group without a table.
// `table` names the table the rules come from.
export function groupRules() {
  return rulesOf(state.group);
}

// The rules a client of group `name` gets (null: a node that sends no
// group), as groupRules().
export function rulesOf(name) {
  const groups = state.policy.groups;
  if (!groups) return null;
  if (name !== null && groups.has(name)) return { table: name, rules: groups.get(name), own: true };
  if (groups.has('default')) return { table: 'default', rules: groups.get('default'), own: false };
  if (state.policy.fleet) return { table: null, rules: state.policy.fleet, own: false };
  return null;
}

// The name the page gives a group without a table of its own: `other`
// (as in the metrics), unless the file names a group so.
export function otherGroupName() {
  let name = 'other';
  for (let i = 2; state.policy.groups && state.policy.groups.has(name); i += 1) name = 'other-' + i;
  return name;
}

// The wariness of the client shown: the slider's, clamped into the
// group's bounds.
export function clientWariness() {
  const group = groupRules();
  if (!group) return state.wariness;
  return clamp(state.wariness, group.rules.wariness_min, group.rules.wariness_max);
}

export function tableName(group) {
  return group.table === null ? '[fleet]' : '[groups.' + group.table + ']';
}

export function minutesOf(hhmm) {
  const [hours, minutes] = String(hhmm).split(':').map(Number);
  return hours * 60 + minutes;
}

export function seconds(rfc3339) {
  return Math.trunc(Date.parse(rfc3339) / 1000);
}

// The local weekday (0 for Monday) and minute of the day at `epoch` in
// an IANA time zone. Throws a RangeError for a zone the browser does not
// know.
export const localFormats = new Map();
export function localTime(timezone, epoch) {
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
export function windowOpen(window, epoch) {
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
export const nextWindows = new Map();
export function nextWindow(windows, epoch) {
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
export function freezeAt(rules, epoch) {
  return (rules.freezes || []).find((f) => seconds(f.from) <= epoch && epoch < seconds(f.to)) || null;
}

// Whether the rules give no update at all at `epoch`, and why
// (Group::closed_at): paused, inside a freeze, or outside every window.
export function closedAt(rules, epoch) {
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
export function closedState(rules) {
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
export function policyView() {
  return viewOf(groupRules());
}

// What the rules of `group` (from rulesOf()) do at the time of the view.
function viewOf(group) {
  if (!group) return null;
  return { group, closed: closedState(group.rules), deny: new Set(group.rules.deny || []) };
}

// Where the nodes of group `name` (null: no group) end up in `model` at
// the time of the view and the slider's wariness (clamped into the
// group's bounds), following the update each release is offered (the
// target with the highest age index, as Zincati takes it): the release
// reached from the most releases (`converges`, the newest on a tie; null
// when each release is reached from itself alone), and
// the other releases that are offered no update at all (`stuck`). Reads
// each rollout's progress as evaluate() left it. The releases halted for
// the group are withheld too.
export function groupSummary(model, name) {
  const group = rulesOf(name);
  const policy = modelPolicy(model, viewOf(group));
  const halted = haltedFor(model, groupLabel(name));
  const wariness = group ? clamp(state.wariness, group.rules.wariness_min, group.rules.wariness_max) : state.wariness;
  const next = new Map();
  for (const node of model.nodes) {
    let best = null;
    for (const edge of node.outEdges) {
      const to = edge.to;
      if ((to.rollout !== null && wariness > to.progress) || withheldInto(policy, to) || halted.has(to.version)) continue;
      if (!best || to.ageIndex > best.ageIndex) best = to;
    }
    next.set(node, best);
  }
  // Where the walk from each release ends: updates go to higher age
  // indexes, so from the newest release down each ends where its update's
  // does.
  const end = new Map();
  const reached = new Map();
  for (const node of [...model.nodes].sort((a, b) => b.ageIndex - a.ageIndex)) {
    const to = next.get(node);
    const last = to && to.ageIndex > node.ageIndex ? end.get(to) || to : node;
    end.set(node, last);
    reached.set(last, (reached.get(last) || 0) + 1);
  }
  let converges = null;
  for (const [node, count] of reached) {
    const best = converges ? reached.get(converges) : -1;
    if (count > best || (count === best && node.ageIndex > converges.ageIndex)) converges = node;
  }
  // Reached from no other release: nothing converges (every update is
  // withheld, say).
  if (converges && reached.get(converges) === 1 && model.nodes.length > 1) converges = null;
  const stuck = model.nodes.filter((node) => node !== converges && !next.get(node));
  return { group, converges, stuck, closed: policy ? policy.closed : null };
}

// The rules of the policy that change nothing in `models` (the graphs of
// the stream and architecture shown): a deny of a release that no update
// leads into, and a max_version of the stream at such a release (no node
// reaches it: its nodes stop at an older release).
// [fleet]'s rules are named once, as [fleet]'s.
export function idleRules(models, stream) {
  const policy = state.policy;
  if (!policy.groups) return [];
  const present = new Set();
  const targets = new Set();
  for (const model of models) {
    for (const node of model.nodes) present.add(node.version);
    for (const edge of model.edges) targets.add(edge.to.version);
  }
  const idle = (version) => present.has(String(version)) && !targets.has(String(version));
  const fleetDeny = new Set((policy.fleet && policy.fleet.deny) || []);
  const tables = [[null, policy.fleet], ...[...policy.groups].sort((a, b) => (a[0] < b[0] ? -1 : 1))];
  const found = [];
  for (const [table, rules] of tables) {
    if (!rules) continue;
    const name = table === null ? '[fleet]' : '[groups.' + table + ']';
    for (const version of rules.deny || []) {
      if (table !== null && fleetDeny.has(version)) continue;
      if (idle(version)) found.push({ table: name, rule: 'deny', version, text: 'deny ' + version + ' in ' + name + ' changes nothing: no update leads into ' + version });
    }
    const pin = (rules.max_version || {})[stream];
    if (pin !== undefined && idle(pin)) {
      found.push({
        table: name,
        rule: 'max_version',
        version: String(pin),
        text: 'max_version ' + stream + ' = ' + pin + ' in ' + name + ': no update leads into ' + pin + ', so no node of the group reaches it',
      });
    }
  }
  return found;
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
export function modelPolicy(model, view) {
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
export function withheldInto(policy, node) {
  if (!policy) return null;
  if (policy.closed) return policy.closed;
  if (policy.deny.has(node.version)) return policy.denied(node.version);
  if (policy.pinned && node.ageIndex > policy.pinned.ageIndex) return policy.newer;
  return null;
}

// Whether `reason` comes from [fleet] (the server adds its rules to every
// group's) rather than from the group's own table.
export function fromFleet(reason) {
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
export function reasonText(reason, policy) {
  if (reason.reason === 'halted') return haltText(reason.halt);
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

export function windowText(window) {
  const days = window.days && window.days.length < 7
    ? window.days.map((d) => d.charAt(0).toUpperCase() + d.slice(1)).join(', ') + ' '
    : 'every day ';
  return days + window.start + '–' + window.end + ' ' + window.timezone;
}
