// End-to-end test of the graph viewer in a real Chromium: opens the page of
// a running graph-builder, checks the order of the streams, picks a stream
// and an architecture, checks the counts and the drawing of both graphs
// against the graphs the server serves, clicks releases and checks the
// details panel (build date, release notes, rollout progress, hidden
// updates), the time field, moves the wariness slider, and checks dark
// mode. With --long-stream, opens a long history and checks the overview,
// the zoom, the wheel, a deep link to an old release (the OCI graph folded
// to its note), "go to version", the keyboard (one tab stop, arrow keys,
// + and -), measures a slider step, a group change and a zoom (and checks
// that the first two restyle what is drawn), checks a phone's screen, and
// saves a screenshot. With --policy-engine (a policy-engine reading the
// server's fleet policy, its clock at --at), checks the group picker: for
// no group and every group, the updates shown offered are the
// policy-engine's and the others are shown withheld, with why (paused,
// pinned, denied, the wariness clamp, windows, freezes); where each group
// ends up and the rules that change nothing; a node UUID's wariness and
// what it is offered; with --policy-file, that the page says why when the
// file is refused; with --no-policy-url, that a server without a policy
// shows no picker. With --expect-halts, the server's rollouts (read from
// the policy-engine) have a halt for every node, one for a group and one
// for a platform on --stream: checks that each is shown where it applies,
// the updates into it withheld as the policy-engine withholds them, and a
// release's outcomes. Figures are printed on lines starting with '# '.
//
//   node viewer.mjs --url http://127.0.0.1:8080/ --screenshot viewer.png \
//       [--stream stable] [--basearch x86_64] [--at EPOCH] [--wariness 0.7] \
//       [--click VERSION [--expect-payload PAYLOAD]] \
//       [--rollout VERSION [--expect-progress 60%]] [--long-stream next] \
//       [--policy-engine URL [--window-group GROUP --expect-next-window EPOCH]] \
//       [--policy-file FILE] [--no-policy-url URL] [--expect-halts] [--part short|long|all]
//
// --click: a release of the OSTree graph to click (default: its last);
// --rollout: a rollout of the OCI graph to click last (its progress is
// checked when --expect-progress is given); --at pins the time rollout
// progress is computed at; --long-stream: a stream of the same basearch
// with a long history (at least 60 releases, OCI payloads starting later
// than OSTree ones); --part: the short part (pickers, details, groups on
// --stream, the summary, a node UUID, dark mode, the policy file), the
// long part (--long-stream: overview, zoom, keyboard, the figures of a
// slider step, a group change and a zoom, a phone's screen, the
// screenshot), both (the default), or 'measure': the figures alone, on
// --long-stream (else --stream), no check. Exits 0 when every check
// passed.
// VIEWER_KEEP_GOING=1 reports every failed check rather than stopping at
// the first.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TIMEOUT_MS = 120_000;
const PREFIX = 'org.fedoraproject.coreos.';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    screenshot: { type: 'string' },
    stream: { type: 'string', default: 'stable' },
    basearch: { type: 'string', default: 'x86_64' },
    at: { type: 'string' },
    wariness: { type: 'string', default: '0.7' },
    click: { type: 'string' },
    'expect-payload': { type: 'string' },
    rollout: { type: 'string' },
    'expect-progress': { type: 'string' },
    'long-stream': { type: 'string' },
    'policy-engine': { type: 'string' },
    'policy-file': { type: 'string' },
    'no-policy-url': { type: 'string' },
    'window-group': { type: 'string' },
    'expect-next-window': { type: 'string' },
    'expect-halts': { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
  },
});
if (!args.url || !args.screenshot) {
  console.error('usage: node viewer.mjs --url BASE_URL --screenshot FILE.png [options]');
  process.exit(2);
}
const base = new URL(args.url);
const at = args.at === undefined ? null : Number.parseInt(args.at, 10);
const wariness = Number.parseFloat(args.wariness);
// 'short', 'long' or 'all' (both, one after the other).
const part = args.part;

let checks = 0;
let failed = 0;
// VIEWER_KEEP_GOING=1: a failed check is reported and the test goes on
// (to see every check an older page fails), and the test fails at the end.
const keepGoing = process.env.VIEWER_KEEP_GOING === '1';
function check(condition, what, detail) {
  if (!condition) {
    const message = 'check failed: ' + what + (detail === undefined ? '' : ': ' + JSON.stringify(detail));
    if (!keepGoing) throw new Error(message);
    failed += 1;
    console.log('not ok - ' + message.slice(0, 400));
    return;
  }
  checks += 1;
  console.log('ok - ' + what);
}
function equal(actual, expected, what) {
  check(
    JSON.stringify(actual) === JSON.stringify(expected),
    what + ' = ' + JSON.stringify(expected),
    { actual, expected },
  );
}

async function getJson(relative) {
  return getJsonFrom(base, relative);
}

async function getJsonFrom(server, relative) {
  const response = await fetch(new URL(relative, server), { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(relative + ': HTTP ' + response.status);
  return response.json();
}

// What the page should show, computed from the raw graph independently of
// the page's code.
function rolloutProgress(metadata, now) {
  const start = Number.parseInt(metadata[PREFIX + 'updates.start_epoch'] ?? '0', 10);
  const value = Number.parseFloat(metadata[PREFIX + 'updates.start_value'] ?? '0');
  const duration = metadata[PREFIX + 'updates.duration_minutes'];
  if (now < start) return 0;
  if (duration === undefined) return value;
  const seconds = Math.max(Number.parseInt(duration, 10), 1) * 60;
  if (now > start + seconds) return 1;
  return value + ((1 - value) * (now - start)) / seconds;
}
function expectedCounts(graph, w, now) {
  const flag = (node, key) => node.metadata[PREFIX + key] === 'true';
  const hidden = graph.edges.filter(([, to]) => {
    const node = graph.nodes[to];
    return flag(node, 'updates.rollout') && w > rolloutProgress(node.metadata, now);
  }).length;
  return {
    nodes: graph.nodes.length,
    edges: graph.edges.length - hidden,
    barriers: graph.nodes.filter((n) => flag(n, 'updates.barrier')).length,
    deadends: graph.nodes.filter((n) => flag(n, 'updates.deadend')).length,
    rollouts: graph.nodes.filter((n) => flag(n, 'updates.rollout')).length,
    hidden,
  };
}

async function pageCounts(page, scheme) {
  return page.evaluate((scheme) => {
    const panel = document.getElementById('panel-' + scheme);
    const count = (key) => {
      const element = panel.querySelector('[data-count="' + key + '"]');
      return element ? Number(element.textContent) : 0;
    };
    return {
      counts: {
        nodes: count('nodes'),
        edges: count('edges'),
        barriers: count('barriers'),
        deadends: count('deadends'),
        rollouts: count('rollouts'),
        hidden: count('hidden'),
      },
      withheld: count('withheld'),
      drawnNodes: panel.querySelectorAll('.node').length,
      drawnEdges: panel.querySelectorAll('path.edge').length,
      drawnWalls: panel.querySelectorAll('.wall').length,
      drawnDeadends: panel.querySelectorAll('.node.deadend').length,
      drawnRings: panel.querySelectorAll('.node.in-progress .ring-bg').length,
    };
  }, scheme);
}

async function checkReason(page, key, reason) {
  const text = reason || 'generic';
  if (/^https?:\/\//.test(text)) {
    const href = await page.locator('#details-' + key + ' a').getAttribute('href');
    equal(href, new URL(text).href, key + ' reason is a link');
  } else {
    const shown = await page.locator('#details-' + key).textContent();
    check(shown.includes(text), key + ' reason shown: ' + text, shown);
  }
}

// Fedora's order of its streams (stable, testing, next), then the others
// by name.
function fedoraOrder(names) {
  const first = ['stable', 'testing', 'next'].filter((name) => names.includes(name));
  return first.concat(names.filter((name) => !first.includes(name)).sort());
}

function releaseNotes(stream, basearch) {
  return 'https://fedoraproject.org/coreos/release-notes/?arch=' + basearch + '&stream=' + stream;
}

// The build date in a Fedora CoreOS version: 44.20260707.3.1 -> 2026-07-07.
function versionDate(version) {
  const part = version.split('.')[1] ?? '';
  return /^\d{8}$/.test(part) ? part.slice(0, 4) + '-' + part.slice(4, 6) + '-' + part.slice(6) : null;
}

const ageOf = (node) => Number.parseInt(node.metadata[PREFIX + 'releases.age_index'], 10);
// ---- the group picker ------------------------------------------------------

// The value of the picker's option for `group` (a group of the policy,
// 'other' for "other group", null for a node that sends none).
function groupOption(group) {
  return group === null ? '' : group === 'other' ? 'other' : 'group:' + group;
}

// The releases of `stream` `scheme` halted for a node of `group` (null: one
// that sends none) and no platform, as the policy-engine halts them: the
// group's halts when the policy has a table for it (else `other`'s), and
// those for every group.
function haltedFor(rollouts, policy, stream, scheme, group) {
  const label = group !== null && policy.groups[group] ? group : 'other';
  return new Set((rollouts?.halts ?? [])
    .filter((h) => h.stream === stream && h.basearch === args.basearch && h.scheme === scheme && h.platform === null && (h.group === null || h.group === label))
    .map((h) => h.release));
}

// A halt as the page says it.
function haltSentence(halt) {
  const [of, what] = { max_rolled_back: ['arrived', 'rolled back'], max_lost: ['offered', 'lost'], max_stuck: ['offered', 'stuck'] }[halt.key];
  const where = [halt.group !== null ? 'in group ' + halt.group : null, halt.platform !== null ? 'on platform ' + halt.platform : null].filter(Boolean);
  return 'halted' + (where.length ? ' ' + where.join(' ') : '') + ': ' + halt.key + ' ' + halt.value.toFixed(3) + ' > ' + halt.limit + ', ' +
    halt.count + ' of ' + halt.of + ' ' + of + ' node' + (halt.of === 1 ? '' : 's') + ' ' + what + ', since ' + utcText(halt.since);
}

async function pickGroup(page, group) {
  await page.selectOption('#group', groupOption(group));
}

// The rules a node of `group` gets: its table, else [groups.default], else
// [fleet]'s (the server adds [fleet]'s rules to every group's).
function rulesOf(policy, group) {
  return policy.groups[group] ?? policy.groups.default ?? policy.fleet ?? null;
}

const key = ([from, to]) => from + ' > ' + to;
const sorted = (pairs) => pairs.map(key).sort();

// Two lists of updates are the same (said with their number only: they
// are long).
function sameEdges(actual, expected, what) {
  const shown = new Set(sorted(actual));
  const wanted = new Set(sorted(expected));
  const missing = [...wanted].filter((e) => !shown.has(e));
  const extra = [...shown].filter((e) => !wanted.has(e));
  check(
    missing.length === 0 && extra.length === 0 && actual.length === expected.length,
    what + ' (' + plural(expected.length, 'update') + ')',
    { missing, extra },
  );
}

function plural(count, singular) {
  return count + ' ' + singular + (count === 1 ? '' : 's');
}

// The edges of a served graph, as version pairs.
function versionEdges(graph) {
  return graph.edges.map(([from, to]) => [graph.nodes[from].version, graph.nodes[to].version]);
}

// The edges of the raw graph a client of wariness `w` is offered without
// a policy: those into rollouts below `w` hidden.
function visibleEdges(graph, w, now) {
  return versionEdges(graph).filter((_, i) => {
    const node = graph.nodes[graph.edges[i][1]];
    return !(node.metadata[PREFIX + 'updates.rollout'] === 'true' && w > rolloutProgress(node.metadata, now));
  });
}

// The edges the page draws for a graph: offered, and withheld with why.
async function pageEdges(page, scheme) {
  return page.evaluate((scheme) => {
    const edges = [...document.querySelectorAll('#panel-' + scheme + ' path.edge')];
    const pair = (e) => [e.dataset.from, e.dataset.to];
    return {
      offered: edges.filter((e) => !e.classList.contains('withheld')).map(pair),
      withheld: edges.filter((e) => e.classList.contains('withheld')).map((e) => [...pair(e), e.dataset.withheld]),
    };
  }, scheme);
}

// What the policy-engine serves a node of `group` of wariness `w` (its
// clock at the time the page is pinned to).
const served = new Map();
async function servedTo(stream, scheme, group, w) {
  const key = [stream, scheme, group, w].join(' ');
  if (!served.has(key)) served.set(key, await fetchServed(stream, scheme, group, w));
  return served.get(key);
}
async function fetchServed(stream, scheme, group, w) {
  const query = new URLSearchParams({ basearch: args.basearch, stream, rollout_wariness: String(w) });
  // null: a node that sends no group.
  if (group !== null) query.set('group', group);
  if (scheme === 'oci') query.set('oci', 'true');
  const response = await fetch(new URL('v1/graph?' + query, args['policy-engine']), { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error('policy-engine: HTTP ' + response.status);
  return response.json();
}

// The page, with `group` picked and the slider at `w`, shows offered the
// updates the policy-engine serves a node of that group and wariness, and
// the other updates of the raw graph at its clamped wariness withheld.
async function checkAgainstPolicyEngine(page, raw, policy, stream, group, w, now) {
  const label = stream + ', ' + (group === null ? 'no group' : 'group ' + group) + ', wariness ' + w;
  const rules = rulesOf(policy, group);
  const clamped = rules ? Math.min(Math.max(w, rules.wariness_min), rules.wariness_max) : w;
  await page.locator('#wariness').fill(String(w));
  for (const scheme of ['checksum', 'oci']) {
    const served = versionEdges(await servedTo(stream, scheme, group, w));
    const shown = await pageEdges(page, scheme);
    sameEdges(shown.offered, served, label + ': the ' + scheme + ' updates offered are the policy-engine\'s');
    const offered = new Set(served.map(key));
    const rest = visibleEdges(raw[scheme], clamped, now).filter((e) => !offered.has(key(e)));
    sameEdges(shown.withheld, rest, label + ': the other ' + scheme + ' updates are drawn withheld');
    const counts = await pageCounts(page, scheme);
    equal([counts.counts.edges, counts.withheld], [served.length, rest.length], label + ': the ' + scheme + ' counts');
  }
}

// Where the nodes of a group end up in a served graph, following the
// update each release is offered (the target with the highest age index):
// the release reached from the most releases (the newest on a tie; none
// when each is reached from itself alone), and how many other releases
// are offered no update.
function whereItEnds(graph) {
  const next = graph.nodes.map(() => null);
  for (const [from, to] of graph.edges) {
    if (next[from] === null || ageOf(graph.nodes[to]) > ageOf(graph.nodes[next[from]])) next[from] = to;
  }
  const reached = new Map();
  graph.nodes.forEach((_, i) => {
    let end = i;
    while (next[end] !== null) end = next[end];
    reached.set(end, (reached.get(end) ?? 0) + 1);
  });
  let converges = null;
  for (const [i, count] of reached) {
    if (converges === null || count > reached.get(converges) || (count === reached.get(converges) && ageOf(graph.nodes[i]) > ageOf(graph.nodes[converges]))) converges = i;
  }
  // Reached from no other release: nothing converges.
  if (reached.get(converges) === 1 && graph.nodes.length > 1) converges = null;
  const stuck = next.filter((n, i) => n === null && i !== converges).length;
  return { converges: converges === null ? '' : graph.nodes[converges].version, stuck };
}

// The summary under the graphs: for no group and every group, where its
// nodes end up in each graph, as in the policy-engine's answers; and the
// rules that change nothing (a deny of a release no update leads into).
async function checkSummary(page, raw, policy, stream, w) {
  await page.locator('#wariness').fill(String(w));
  const shown = await page.evaluate(() => [...document.querySelectorAll('#summary-table tr[data-group]')].map((row) => ({
    group: row.dataset.group,
    cells: Object.fromEntries([...row.querySelectorAll('td[data-converges]')].map((td) => [td.dataset.scheme, {
      converges: td.dataset.converges,
      stuck: Number(row.querySelector('td[data-stuck][data-scheme="' + td.dataset.scheme + '"]').dataset.stuck),
    }])),
  })));
  const names = Object.keys(policy.groups).sort();
  equal(shown.map((r) => r.group), ['', ...names], stream + ': the summary has a row for no group and each group');
  for (const row of shown) {
    const group = row.group === '' ? null : row.group;
    const expected = {};
    for (const scheme of ['checksum', 'oci']) expected[scheme] = whereItEnds(await servedTo(stream, scheme, group, w));
    equal(row.cells, expected, stream + ', wariness ' + w + ', ' + (group ?? 'no group') + ': where its nodes end up, as the policy-engine serves it');
  }
  const targets = new Set(['checksum', 'oci'].flatMap((s) => versionEdges(raw[s]).map(([, to]) => to)));
  const present = new Set(['checksum', 'oci'].flatMap((s) => raw[s].nodes.map((n) => n.version)));
  const fleetDeny = new Set(policy.fleet?.deny ?? []);
  const idle = [];
  for (const [table, rules] of [['[fleet]', policy.fleet], ...names.map((n) => ['[groups.' + n + ']', policy.groups[n]])]) {
    for (const version of rules?.deny ?? []) {
      if (table !== '[fleet]' && fleetDeny.has(version)) continue;
      if (present.has(version) && !targets.has(version)) idle.push('deny ' + table + ' ' + version);
    }
    const pin = rules?.max_version?.[stream];
    if (pin !== undefined && present.has(pin) && !targets.has(pin)) idle.push('max_version ' + table + ' ' + pin);
  }
  const warned = await page.locator('#summary-warnings li').evaluateAll((items) => items.map((i) => i.dataset.rule + ' ' + i.dataset.table + ' ' + i.dataset.version));
  equal(warned, idle, stream + ': the summary warns about each deny of, and each max_version at, a release no update leads into');
}

// The group picker: the groups of the policy; for each, what the page
// shows offered and withheld against what the policy-engine serves; a
// paused group's banner, a pinned group, a denied release, the wariness
// clamp, a window and a freeze, the address, and the policy file
// unreadable for a moment.
async function checkGroups(page, raw, now) {
  const stream = args.stream;
  const { policy } = await getJson('v1/policy');
  check(policy !== null, 'the server has a fleet policy');
  const names = Object.keys(policy.groups).sort();
  // The releases [fleet] denies to every group.
  const fleetDeny = new Set(policy.fleet?.deny || []);
  await page.locator('#group-field[data-policy="ok"]').waitFor();
  check(await page.locator('#group-field').isVisible(), 'the group picker is shown');
  const options = await page.locator('#group option').evaluateAll((os) => os.map((o) => o.textContent));
  equal(options, ['(no group)', ...names, ...(names.includes('default') || policy.fleet ? ['other group'] : [])], 'the group picker lists the groups');
  // The default view: what a node that sends no group gets, [fleet]'s
  // rules included, and said so.
  equal(await page.locator('#group').inputValue(), '', 'the default view is a node without a group');
  check(await page.locator('#legend-withheld').isVisible(), 'no group, with [fleet]: the legend has withheld updates');
  const head = await page.locator('#policy-head').textContent();
  const inForce = rulesOf(policy, null) === policy.fleet ? '[fleet]' : '[groups.default]';
  check(head.startsWith('No group: ') && head.includes(inForce) && (!policy.fleet || head.includes('[fleet]')), 'no group: the page says which rules are in force, [fleet]\'s included', head);

  // No group, every group and one without a table, against the
  // policy-engine.
  for (const group of [null, ...names, 'other']) {
    await pickGroup(page, group);
    for (const w of [0, wariness]) await checkAgainstPolicyEngine(page, raw, policy, stream, group, w, now);
  }

  check(page.url().includes('group=other'), 'the address names "other group" as group=other', page.url());
  for (const w of [0, wariness]) await checkSummary(page, raw, policy, stream, w);
  await checkNodeUuid(page, policy, stream);

  // Paused: a banner, and every update withheld.
  const paused = names.find((n) => policy.groups[n].paused);
  await pickGroup(page, paused);
  await page.locator('#wariness').fill('0');
  check(await page.locator('#legend-withheld').isVisible(), 'with a group, the legend has withheld updates');
  const banner = page.locator('#policy-closed');
  check(await banner.isVisible(), paused + ': a banner says the group gets no updates');
  equal(await banner.getAttribute('data-reason'), 'paused', paused + ': the banner says why');
  const bannerText = await banner.textContent();
  check(bannerText.includes('[groups.' + paused + '] is paused') && bannerText.includes('at ' + utcText(now)), paused + ': the banner text', bannerText);
  for (const scheme of ['checksum', 'oci']) {
    const shown = await pageEdges(page, scheme);
    equal(shown.offered.length, 0, paused + ': no ' + scheme + ' update offered');
    equal(shown.withheld.length, raw[scheme].edges.length, paused + ': every ' + scheme + ' update drawn withheld');
    check(shown.withheld.every((e) => e[2] === 'paused'), paused + ': withheld because the group is paused');
  }
  await page.locator('#panel-checksum .node[data-version="' + raw.checksum.nodes[0].version + '"] .shape').click();
  const out = await page.locator('#details-withheld-to').textContent();
  check(out.includes('is paused'), paused + ': a release\'s details say its updates are withheld and why', out);
  await page.keyboard.press('Escape');

  // Pinned: the updates into releases newer than the pin are withheld.
  const pinned = names.find((n) => {
    const pin = (policy.groups[n].max_version || {})[stream];
    return pin && ['checksum', 'oci'].every((s) => raw[s].nodes.some((node) => node.version === pin));
  });
  const pin = policy.groups[pinned].max_version[stream];
  const { rollouts } = await getJson('v1/rollouts');
  await pickGroup(page, pinned);
  check(await banner.isHidden(), pinned + ': no banner');
  for (const scheme of ['checksum', 'oci']) {
    const ages = new Map(raw[scheme].nodes.map((n) => [n.version, ageOf(n)]));
    // Denied releases first (as the policy-engine decides), then newer
    // ones, then the halted ones.
    const visible = visibleEdges(raw[scheme], 0, now);
    const halted = haltedFor(rollouts, policy, stream, scheme, pinned);
    const pulled = visible.filter(([, to]) => fleetDeny.has(to));
    const newer = visible.filter(([, to]) => !fleetDeny.has(to) && ages.get(to) > ages.get(pin));
    const stopped = visible.filter(([, to]) => !fleetDeny.has(to) && !(ages.get(to) > ages.get(pin)) && halted.has(to));
    const reason = (to) => (fleetDeny.has(to) ? 'deny' : ages.get(to) > ages.get(pin) ? 'max_version' : 'halted');
    const shown = await pageEdges(page, scheme);
    check(newer.length > 0, pinned + ': ' + scheme + ' has updates into releases newer than ' + pin);
    sameEdges(shown.withheld, [...pulled, ...newer, ...stopped], pinned + ': the ' + scheme + ' updates into releases newer than ' + pin + ', into those [fleet] denies and into halted ones are withheld');
    check(shown.withheld.every((e) => e[2] === reason(e[1])), pinned + ': withheld by max_version, by deny for the releases [fleet] denies, else halted', shown.withheld);
  }
  const ages = new Map(raw.checksum.nodes.map((n) => [n.version, ageOf(n)]));
  const beyond = raw.checksum.nodes.find((n) => ageOf(n) > ages.get(pin) && raw.checksum.edges.some(([, to]) => raw.checksum.nodes[to] === n));
  await page.locator('#panel-checksum .node[data-version="' + beyond.version + '"] .shape').click();
  const into = page.locator('#details-withheld-from .withheld-note');
  equal(await into.getAttribute('data-reason'), 'max_version', pinned + ': the details of ' + beyond.version + ' say why updates into it are withheld');
  const intoText = await into.textContent();
  check(intoText.includes('newer than ' + pin + ', the max_version of ' + stream + ' in [groups.' + pinned + ']'), pinned + ': the reason names the pinned version', intoText);
  equal(await page.locator('#details-from').textContent(), 'none for [groups.' + pinned + ']', pinned + ': no update into ' + beyond.version + ' offered');
  await page.locator('#panel-checksum .node[data-version="' + pin + '"] .shape').click();
  const line = page.locator('#details-withheld-to .withheld-line');
  equal(await line.getAttribute('data-reason'), 'max_version', pinned + ': the details of ' + pin + ' list the updates out of it withheld');
  const next = await page.locator('#details-next .withheld-note').textContent();
  check(next.startsWith('Without the group\'s rules: ') && next.includes('max_version'), pinned + ': the details say which update the rules withhold from ' + pin, next);
  await page.keyboard.press('Escape');

  // Denied: the updates into the denied release are withheld.
  // A group's own deny list rather than [groups.default]'s, when there is
  // one, and not the versions [fleet] denies to every group.
  const ownDeny = (n) => (policy.groups[n]?.deny || []).filter((v) => !fleetDeny.has(v));
  const denied = [...names.filter((n) => n !== 'default'), 'default'].find((n) => ownDeny(n).some((v) => raw.oci.nodes.some((node) => node.version === v)));
  const version = ownDeny(denied).find((v) => raw.oci.nodes.some((node) => node.version === v));
  await pickGroup(page, denied);
  const shown = await pageEdges(page, 'oci');
  const expected = visibleEdges(raw.oci, 0, now).filter(([, to]) => to === version);
  check(expected.length > 0, denied + ': there are updates into ' + version);
  sameEdges(shown.withheld, expected, denied + ': the updates into ' + version + ' are withheld');
  check(shown.withheld.every((e) => e[2] === 'deny'), denied + ': withheld by deny');
  await page.locator('#panel-oci .node[data-version="' + version + '"] .shape').click();
  const deniedNote = await page.locator('#details-withheld-from .withheld-note').textContent();
  check(deniedNote.includes('denied in [groups.' + denied + ']'), denied + ': the details of ' + version + ' say it is denied', deniedNote);
  check(await page.locator('#panel-oci .node.withheld[data-version="' + version + '"]').count() === 1, denied + ': ' + version + ' is marked');
  await page.keyboard.press('Escape');

  // A release [fleet] denies: withheld from a group with no deny of its
  // own, and said to be denied in [fleet].
  const pulled = [...fleetDeny].find((v) => visibleEdges(raw.checksum, 0, now).some(([, to]) => to === v));
  check(pulled !== undefined, 'the fleet denies a release with updates into it');
  {
    const open = names.find((n) => ownDeny(n).length === 0 && !policy.groups[n].closed && !policy.groups[n].max_version?.[stream] && policy.groups[n].wariness_max === 1);
    await pickGroup(page, open);
    const pulledShown = await pageEdges(page, 'checksum');
    const into = visibleEdges(raw.checksum, 0, now).filter(([, to]) => to === pulled);
    sameEdges(pulledShown.withheld.filter((e) => e[2] !== 'halted'), into, open + ': the updates into ' + pulled + ' are withheld');
    await page.locator('#panel-checksum .node[data-version="' + pulled + '"] .shape').click();
    const pulledNote = await page.locator('#details-withheld-from .withheld-note').textContent();
    check(pulledNote.includes('denied in [fleet]'), open + ': the details of ' + pulled + ' say the fleet denies it', pulledNote);
    const fleetRule = await page.locator('#policy-rules [data-rule="deny"]').allTextContents();
    equal(fleetRule, ['deny ' + pulled + ' (from [fleet])'], open + ': the rules list the release [fleet] denies as [fleet]\'s');
    await page.keyboard.press('Escape');
  }

  // The wariness clamp, both ways.
  const raised = names.find((n) => policy.groups[n].wariness_min > 0);
  await pickGroup(page, raised);
  await page.locator('#wariness').fill('0');
  const clamp = page.locator('#wariness-clamp');
  const least = policy.groups[raised].wariness_min;
  check(await clamp.isVisible(), raised + ': the clamped wariness is shown');
  equal(await clamp.textContent(), '→ ' + least.toFixed(2) + ' (wariness_min)', raised + ': the clamped wariness and why');
  const rule = await page.locator('#policy-rules [data-rule="wariness"]').textContent();
  check(rule.includes('a client sending 0.00 gets ' + least.toFixed(2)), raised + ': the rules say so', rule);
  for (const scheme of ['checksum', 'oci']) {
    equal((await pageCounts(page, scheme)).counts.hidden, expectedCounts(raw[scheme], least, now).hidden, raised + ': ' + scheme + ' rollouts hidden at ' + least);
  }
  const lowered = names.find((n) => policy.groups[n].wariness_max < 1);
  await pickGroup(page, lowered);
  await page.locator('#wariness').fill(String(wariness));
  equal(await clamp.textContent(), '→ ' + policy.groups[lowered].wariness_max.toFixed(2) + ' (wariness_max)', lowered + ': the clamped wariness and why');
  await pickGroup(page, null);
  check(await clamp.isHidden(), 'no group: no clamp');
  await page.locator('#wariness').fill('0');

  // Outside its windows at the time picked: when the next opens.
  if (args['window-group'] !== undefined) {
    const group = args['window-group'];
    await pickGroup(page, group);
    equal(await banner.getAttribute('data-reason'), 'window', group + ': closed at ' + utcText(now) + ', outside its windows');
    const text = await banner.textContent();
    const opens = utcText(Number(args['expect-next-window']));
    check(text.includes('the next opens ' + opens), group + ': the banner says when the next window opens (' + opens + ')', text);
  }

  // The address keeps the group; at the current time, whether a group is
  // closed is the server's answer.
  await pickGroup(page, pinned);
  check(page.url().includes('group=' + pinned), 'the address names the group', page.url());
  const link = new URL(page.url());
  link.searchParams.delete('at');
  await page.goto(link.href);
  await page.locator('#group-field[data-policy="ok"]').waitFor();
  await waitScope(page, stream, args.basearch);
  equal(await page.locator('#group').inputValue(), groupOption(pinned), 'a link opens with its group picked');
  const current = (await getJson('v1/policy')).policy;
  for (const group of names.filter((n) => !current.groups[n].windows)) {
    await pickGroup(page, group);
    const closed = current.groups[group].closed;
    equal(await banner.isVisible() ? await banner.getAttribute('data-reason') : null, closed, group + ': closed now as the server says');
    if (closed) {
      const text = await banner.textContent();
      check(text.includes(' now ('), group + ': the banner says it is now', text);
      if (closed === 'freeze') {
        check(text.includes(current.groups[group].freeze_reason), group + ': the banner gives the freeze\'s reason', text);
      }
    }
  }
  await pickGroup(page, null);
  const back = new URL(page.url());
  if (at !== null) back.searchParams.set('at', String(at));
  await page.goto(back.href);
  await waitScope(page, stream, args.basearch);
  await page.locator('#group-field[data-policy="ok"]').waitFor();
}

// The policy-engine's rollouts (the server's `v1/rollouts`): a release
// halted for every node is marked on the graph, in the overview and in
// its label, the updates into it withheld as halted, with why and its
// numbers in its details, and its outcomes there; a group's halt only in
// that group's view; a platform's halt marked, naming the platform, its
// updates drawn as offered (the page has no platform). Whether the
// updates drawn offered are the policy-engine's is checked for each group
// by checkGroups(), with these halts in force.
async function checkHalts(page, raw, now) {
  const stream = args.stream;
  const { rollouts } = await getJson('v1/rollouts');
  const { policy } = await getJson('v1/policy');
  check(rollouts !== null, 'the server shows the policy-engine\'s rollouts');
  const halts = rollouts.halts.filter((h) => h.stream === stream && h.basearch === args.basearch);
  const everyNode = halts.find((h) => h.group === null && h.platform === null);
  const ofGroup = halts.find((h) => h.group !== null && h.platform === null);
  const ofPlatform = halts.find((h) => h.platform !== null);
  check(everyNode && ofGroup && ofPlatform, stream + ': a halt for every node, one for a group and one for a platform', halts);
  await page.locator('#wariness').fill('0');
  await pickGroup(page, null);
  const marks = (scheme, version) => page.evaluate(([scheme, version]) => {
    const node = document.querySelector('#panel-' + scheme + ' .node[data-version="' + CSS.escape(version) + '"]');
    const overview = document.querySelector('#overview .ov-halt[data-scheme="' + scheme + '"][data-version="' + CSS.escape(version) + '"]');
    return {
      halted: node.classList.contains('halted'),
      platform: node.classList.contains('platform-halted'),
      outcomes: node.classList.contains('has-outcomes') && node.querySelector('.outcome-sign') !== null,
      sign: node.querySelector('.halt-sign') !== null,
      platformText: node.querySelector('.platform-halt')?.textContent ?? null,
      label: node.getAttribute('aria-label'),
      overview: overview ? overview.classList.contains('here') : null,
    };
  }, [scheme, version]);
  const into = (shown, version) => shown.withheld.filter((e) => e[1] === version);
  const intoRaw = (scheme, version) => visibleEdges(raw[scheme], 0, now).filter(([, to]) => to === version);

  // For every node: in the default view.
  {
    const { scheme, release } = everyNode;
    const shown = await marks(scheme, release);
    check(shown.halted && shown.sign && shown.overview === true, release + ' (' + scheme + '): marked halted on the graph and in the overview', shown);
    check(shown.label.includes('rollout halted (' + everyNode.key + ')'), release + ': its label says it is halted', shown.label);
    const withheld = into(await pageEdges(page, scheme), release);
    check(withheld.length === intoRaw(scheme, release).length && withheld.length > 0 && withheld.every((e) => e[2] === 'halted'),
      release + ': every update into it withheld as halted', withheld);
    await page.locator('#panel-' + scheme + ' .node[data-version="' + release + '"] .shape').click();
    const line = await page.locator('#details-halt .halt-line.here').textContent();
    equal(line, haltSentence(everyNode) + ' (this view: the updates into it are withheld)', release + ': the details say why, with the numbers');
    const note = page.locator('#details-withheld-from .withheld-note');
    equal(await note.getAttribute('data-reason'), 'halted', release + ': the updates into it are withheld as halted');
    check((await note.textContent()).includes(haltSentence(everyNode)), release + ': and why', await note.textContent());
    const outcomes = rollouts.releases.find((r) => r.stream === stream && r.basearch === args.basearch && r.scheme === scheme && r.release === release);
    check(shown.outcomes, release + ': a sign says it has outcomes');
    const keys = ['offered', 'arrived', 'stuck', 'rolled_back', 'lost'];
    const detailed = await page.evaluate((keys) => keys.map((k) => Number(document.querySelector('#details-outcomes [data-outcome="' + k + '"]').textContent)), keys);
    equal(detailed, keys.map((k) => outcomes[k]), release + ': the details show its outcomes');
    const platforms = await page.locator('#details-by-platform .outcomes-of').evaluateAll((items) => items.map((i) => i.dataset.name + ' ' + i.lastChild.textContent));
    equal(platforms, Object.keys(outcomes.by_platform).sort().map((p) => p + ' ' + keys.map((k) => outcomes.by_platform[p][k]).join('/')), release + ': and by platform');
    const arrival = await page.locator('#details-arrival').textContent();
    check(arrival.startsWith('p50 '), release + ': and the arrival times', arrival);
    await page.keyboard.press('Escape');
  }

  // For a group: in its view only.
  {
    const { scheme, release, group } = ofGroup;
    let shown = await marks(scheme, release);
    check(!shown.halted && shown.sign && shown.overview === false, release + ' (' + scheme + '): halted for ' + group + ' only: not in the default view', shown);
    check(into(await pageEdges(page, scheme), release).every((e) => e[2] !== 'halted'), release + ': its updates not withheld as halted in the default view');
    await pickGroup(page, group);
    shown = await marks(scheme, release);
    check(shown.halted && shown.overview === true, release + ': halted in the view of ' + group, shown);
    const withheld = into(await pageEdges(page, scheme), release);
    check(withheld.length === intoRaw(scheme, release).length && withheld.length > 0 && withheld.every((e) => e[2] === 'halted'),
      release + ': every update into it withheld as halted for ' + group, withheld);
    await page.locator('#panel-' + scheme + ' .node[data-version="' + release + '"] .shape').click();
    equal(await page.locator('#details-halt .halt-line.here').getAttribute('data-group'), group, release + ': the details name the group');
    await page.keyboard.press('Escape');
  }

  // For a platform: marked, naming it; its updates drawn as offered, in a
  // view whose rules withhold none of them.
  {
    const { scheme, release, platform } = ofPlatform;
    const open = [null, ...Object.keys(policy.groups).sort()].find((g) =>
      !haltedFor(rollouts, policy, stream, scheme, g).has(release) &&
      rulesOf(policy, g) && !rulesOf(policy, g).closed && !(rulesOf(policy, g).deny || []).includes(release) &&
      !(rulesOf(policy, g).max_version || {})[stream] && rulesOf(policy, g).wariness_min === 0);
    await pickGroup(page, open);
    const shown = await marks(scheme, release);
    check(shown.platform && !shown.halted && shown.platformText === platform, release + ' (' + scheme + '): marked halted on ' + platform + ', naming it', shown);
    check(shown.label.includes('rollout halted on platform ' + platform), release + ': its label names the platform', shown.label);
    const edges = await pageEdges(page, scheme);
    equal(into(edges, release), [], release + ': halted on ' + platform + ' only: no update into it withheld (group ' + open + ')');
    check(edges.offered.filter((e) => e[1] === release).length === intoRaw(scheme, release).length, release + ': its updates drawn as offered');
    await page.locator('#panel-' + scheme + ' .node[data-version="' + release + '"] .shape').click();
    const line = await page.locator('#details-halt .halt-line[data-platform="' + platform + '"]').textContent();
    equal(line, haltSentence(ofPlatform) + ' (updates drawn as offered: the page has no platform)', release + ': the details say where it is halted');
    await page.keyboard.press('Escape');
  }

  // Dark mode: the halt reads on the panel.
  await pickGroup(page, null);
  const colours = () => page.evaluate((release) => {
    const rgb = (text) => (text.match(/[\d.]+/g) || []).slice(0, 3).map(Number);
    const sign = document.querySelector('.node.halted[data-version="' + CSS.escape(release) + '"] .halt-sign');
    return { sign: rgb(getComputedStyle(sign).fill), panel: rgb(getComputedStyle(document.querySelector('.panel')).backgroundColor) };
  }, everyNode.release);
  const luminance = ([r, g, b]) => {
    const channel = (c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const contrast = (a, b) => (Math.max(luminance(a), luminance(b)) + 0.05) / (Math.min(luminance(a), luminance(b)) + 0.05);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    const c = await colours();
    check(contrast(c.sign, c.panel) >= 3, scheme + ' mode: the halt sign stands out from the panel', c);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

// A node UUID: the page shows the wariness the node gets from it and what
// the node is offered, which is what the policy-engine serves a node that
// sends that UUID and no wariness. The UUID is one whose wariness matters
// (the policy-engine hides a rollout from it that it shows at wariness 0),
// found by asking the policy-engine.
async function checkNodeUuid(page, policy, stream) {
  // A group whose nodes a rollout is hidden from above some wariness.
  let group = null;
  for (const name of Object.keys(policy.groups).sort()) {
    const [low, high] = await Promise.all([0, 1].map((w) => servedTo(stream, 'checksum', name, w)));
    if (versionEdges(high).length < versionEdges(low).length) {
      group = name;
      break;
    }
  }
  check(group !== null, 'a group whose wariness matters on ' + stream);
  await pickGroup(page, group);
  await page.locator('#wariness').fill('0');
  const byUuid = async (scheme, uuid) => {
    const query = new URLSearchParams({ basearch: args.basearch, stream, group, node_uuid: uuid });
    if (scheme === 'oci') query.set('oci', 'true');
    const response = await fetch(new URL('v1/graph?' + query, args['policy-engine']), { headers: { Accept: 'application/json' } });
    return versionEdges(await response.json());
  };
  const atZero = versionEdges(await servedTo(stream, 'checksum', group, 0));
  let uuid = null;
  for (let i = 1; i <= 64 && uuid === null; i += 1) {
    const candidate = (i * 2654435761).toString(16).padStart(32, '0').slice(-32);
    if ((await byUuid('checksum', candidate)).length < atZero.length) uuid = candidate;
  }
  check(uuid !== null, 'a node UUID whose wariness hides a rollout');
  // Pasted as a UUID is often written: with dashes, in capitals.
  const pasted = [uuid.slice(0, 8), uuid.slice(8, 12), uuid.slice(12, 16), uuid.slice(16, 20), uuid.slice(20)].join('-').toUpperCase();
  await page.locator('#uuid').fill(pasted);
  await page.locator('#uuid').evaluate((e) => e.dispatchEvent(new Event('change')));
  const shown = await page.locator('#uuid-wariness').textContent();
  check(/^→ wariness 0\.\d{6}$/.test(shown), 'the wariness the UUID gets is shown', shown);
  check(page.url().includes('uuid=' + uuid), 'the address keeps the UUID', page.url());
  for (const scheme of ['checksum', 'oci']) {
    const shownEdges = await pageEdges(page, scheme);
    sameEdges(shownEdges.offered, await byUuid(scheme, uuid), group + ', node UUID ' + uuid + ': the ' + scheme + ' updates offered are the policy-engine\'s for it');
  }
  await page.locator('#uuid').fill('not-a-uuid');
  await page.locator('#uuid').evaluate((e) => e.dispatchEvent(new Event('change')));
  const refused = await page.locator('#uuid').evaluate((e) => e.validationMessage);
  check(refused.startsWith('Not a node UUID'), 'anything but a UUID is refused, saying why', refused);
  check(page.url().includes('uuid=' + uuid), 'a refused UUID changes nothing', page.url());
  await page.locator('#wariness').fill('0');
  check(!page.url().includes('uuid='), 'moving the slider leaves the UUID', page.url());
  equal(await page.locator('#uuid').inputValue(), '', 'and empties its field');
}

// The policy file refused: the page keeps the last good policy in force,
// says the file was refused and why (its line), then reads it again.
async function checkPolicyRefused(page) {
  const file = args['policy-file'];
  const good = fs.readFileSync(file, 'utf8');
  const groups = await page.locator('#group option').count();
  fs.writeFileSync(file, '[groups.broken]\nwariness_max = 2.0\n');
  try {
    // The server checks the file every 2 s: Reload until it says so.
    await reloadUntil(page, '#group-field[data-refused="true"]');
  } finally {
    fs.writeFileSync(file, good);
  }
  const warning = await page.locator('#policy-error').textContent();
  check(await page.locator('#policy-error').isVisible() && warning.includes('line 2') && warning.includes('groups.broken.wariness_max'), 'a refused policy file: the page says why, naming the line', warning);
  check(warning.includes('last good policy is still in force'), 'a refused policy file: the page says the last good policy is in force', warning);
  equal(await page.locator('#group-field').getAttribute('data-policy'), 'ok', 'a refused policy file: the last good policy is shown');
  equal(await page.locator('#group option').count(), groups, 'a refused policy file: the groups of the last good policy are offered');
  check(!(await page.locator('#group').isDisabled()), 'a refused policy file: the picker stays usable');
  await reloadUntil(page, '#group-field[data-refused="false"]');
  check(await page.locator('#policy-error').isHidden(), 'the policy read again: no warning');
}

// Clicks Reload until `selector` is there (at most 15 s).
async function reloadUntil(page, selector) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    await page.locator('#reload').click();
    try {
      await page.locator(selector).waitFor({ timeout: 1_000 });
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
  }
}

// A server without a policy: no picker.
async function checkNoPolicy(page) {
  await page.goto(args['no-policy-url']);
  await page.locator('#group-field[data-policy="none"]').waitFor({ state: 'attached' });
  await page.locator('#panels[data-scope]').waitFor();
  check(await page.locator('#group-field').isHidden(), 'without a policy, no group picker');
  check(await page.locator('#policy').isHidden(), 'without a policy, no rules above the graphs');
  // Nor rollouts: nothing of them on the page.
  equal(await getJsonFrom(args['no-policy-url'], 'v1/rollouts'), { rollouts: null }, 'without [rollouts], no rollouts');
  check(await page.locator('#legend-halted').isHidden() && await page.locator('#rollouts-status').isHidden(), 'without rollouts, no legend of them nor warning');
  equal(await page.locator('#panels .halt-sign, #panels .platform-sign, #panels .outcome-sign, #overview .ov-halt').count(), 0, 'without rollouts, no mark of them');
}

// "Rollouts at (UTC)": YYYY-MM-DD HH:MM in 24 hours whatever the locale
// (the test's is en-US); a time typed moves the address, anything else is
// refused with a message and changes nothing.
async function checkTimeField(page) {
  const field = page.locator('#at');
  const shown = utcText(at).replace(' UTC', '');
  equal(await field.inputValue(), shown, 'the time field shows the pinned time in UTC, 24 hours');
  equal(await field.evaluate((e) => e.validationMessage), '', 'the pinned time is valid');
  await field.fill('01/15/2027 08:50 AM');
  await field.press('Enter');
  await field.evaluate((e) => e.dispatchEvent(new Event('change')));
  const refused = await field.evaluate((e) => e.validationMessage);
  check(refused.includes('YYYY-MM-DD HH:MM'), 'a time in another format is refused, saying how to write it', refused);
  check(page.url().includes('at=' + at), 'a refused time changes nothing', page.url());
  const later = utcText(at + 3600).replace(' UTC', '');
  await field.fill(later);
  await field.evaluate((e) => e.dispatchEvent(new Event('change')));
  check(page.url().includes('at=' + (at + 3600)), 'a time typed moves the address', page.url());
  await field.fill(shown);
  await field.evaluate((e) => e.dispatchEvent(new Event('change')));
  check(page.url().includes('at=' + at), 'and back', page.url());
}

// The time as the page writes it: 2027-01-15 08:50 UTC.
function utcText(epoch) {
  return new Date(epoch * 1000).toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
}


// Where a graph starts: its release with the lowest age index, and the
// releases of the other graph before it.
function graphStart(raw, scheme) {
  const other = scheme === 'oci' ? 'checksum' : 'oci';
  const first = raw[scheme].nodes.reduce((a, b) => (ageOf(b) < ageOf(a) ? b : a));
  return { first, before: raw[other].nodes.filter((n) => ageOf(n) < ageOf(first)).length };
}

async function waitScope(page, stream, basearch) {
  await page.locator('#panels[data-scope="' + stream + '/' + basearch + '"]').waitFor();
}

// Counts and drawing of both graphs against the served graphs.
async function checkGraphs(page, raw, now, label) {
  for (const scheme of ['checksum', 'oci']) {
    const shown = await pageCounts(page, scheme);
    const expected = expectedCounts(raw[scheme], 0, now);
    // The updates the default view's rules withhold are drawn, counted apart.
    equal({ ...shown.counts, edges: shown.counts.edges + shown.withheld }, expected, label + ' ' + scheme + ' counts');
    equal(shown.drawnNodes, expected.nodes, label + ' ' + scheme + ' nodes drawn');
    equal(shown.drawnEdges, expected.edges, label + ' ' + scheme + ' edges drawn');
    equal(shown.drawnWalls, expected.barriers, label + ' ' + scheme + ' barriers drawn');
    equal(shown.drawnDeadends, expected.deadends, label + ' ' + scheme + ' dead-ends drawn');
    const inProgress = raw[scheme].nodes.filter(
      (n) => n.metadata[PREFIX + 'updates.rollout'] === 'true' && rolloutProgress(n.metadata, now) < 1,
    ).length;
    equal(shown.drawnRings, inProgress, label + ' ' + scheme + ' rollouts in progress drawn');
    const order = await page
      .locator('#panel-' + scheme + ' .node')
      .evaluateAll((nodes) => nodes.map((n) => n.dataset.version));
    equal(order, raw[scheme].nodes.map((n) => n.version), label + ' ' + scheme + ' nodes in release order');
    const xs = await page
      .locator('#panel-' + scheme + ' .node')
      .evaluateAll((nodes) => nodes.map((n) => n.getBoundingClientRect().x));
    check(xs.every((x, i) => i === 0 || x > xs[i - 1]), label + ' ' + scheme + ' nodes drawn left to right', xs);
  }
}

// The graph's visible box and where its releases are drawn (centres).
async function geometryOf(page, scheme) {
  return page.evaluate((scheme) => {
    const scroller = document.querySelector('#panel-' + scheme + ' .scroll');
    const box = scroller.getBoundingClientRect();
    const graph = scroller.querySelector('svg.graph');
    const nodes = [...scroller.querySelectorAll('.node')].map((node) => {
      const r = node.querySelector('.shape').getBoundingClientRect();
      return { version: node.dataset.version, left: r.left, right: r.right, x: r.left + r.width / 2 };
    });
    return {
      left: box.left,
      right: box.left + scroller.clientWidth,
      clientWidth: scroller.clientWidth,
      scrollWidth: scroller.scrollWidth,
      scrollLeft: scroller.scrollLeft,
      graphWidth: graph.getBoundingClientRect().width,
      nodes,
    };
  }, scheme);
}

const visibleNodes = (g) => g.nodes.filter((n) => n.left >= g.left - 0.5 && n.right <= g.right + 0.5);

function spacing(g) {
  return g.nodes[1].x - g.nodes[0].x;
}

async function checkInView(page, scheme, version, what) {
  const g = await geometryOf(page, scheme);
  const node = g.nodes.find((n) => n.version === version);
  check(node !== undefined, what + ': ' + version + ' is drawn');
  check(node.left >= g.left && node.right <= g.right, what + ': ' + version + ' is in view', { node, left: g.left, right: g.right });
}

// In "Both", a graph that starts later than the other says why: in a band
// over the stretch where it has no release, or in its head when the band
// is too narrow for the text.
async function checkStart(page, raw, label) {
  for (const scheme of ['checksum', 'oci']) {
    const { first, before } = graphStart(raw, scheme);
    const note = page.locator('#panel-' + scheme + ' .coverage[data-edge="start"]');
    const inBand = page.locator('#panel-' + scheme + ' .gap[data-edge="start"] .gap-note text');
    if (before === 0) {
      equal((await note.count()) + (await inBand.count()), 0, label + ' ' + scheme + ' starts with the stream: no note');
      continue;
    }
    const title = scheme === 'oci' ? 'OCI' : 'OSTree';
    const since = versionDate(first.version) ?? first.version;
    const text = (await note.count())
      ? await note.textContent()
      : (await inBand.allTextContents()).join(' ').replace(since, since + ':');
    check(
      text.startsWith('No ' + title + ' payloads before ' + since + ':') &&
        text.includes(first.version) &&
        text.includes('the ' + before + ' release' + (before === 1 ? '' : 's') + ' before it'),
      label + ' ' + scheme + ' says why it starts later',
      text,
    );
    const other = scheme === 'oci' ? 'checksum' : 'oci';
    const spans = await page.evaluate(
      ([scheme, other, version, firstAge]) => {
        const band = document.querySelector('#panel-' + scheme + ' .gap[data-edge="start"] .gap-band');
        const own = document.querySelector('#panel-' + scheme + ' .node[data-version="' + CSS.escape(version) + '"] .shape');
        const earlier = [...document.querySelectorAll('#panel-' + other + ' .node')]
          .slice(0, firstAge)
          .map((n) => n.querySelector('.shape').getBoundingClientRect());
        const b = band ? band.getBoundingClientRect() : null;
        return {
          band: b && { left: b.left, right: b.right },
          first: own.getBoundingClientRect().left,
          earliest: Math.min(...earlier.map((r) => r.left)),
          latest: Math.max(...earlier.map((r) => r.right)),
        };
      },
      [scheme, other, first.version, before],
    );
    check(
      spans.band !== null &&
        spans.band.left <= spans.earliest &&
        spans.band.right >= spans.latest &&
        spans.band.right <= spans.first,
      label + ' ' + scheme + ': a band covers the ' + before + ' releases before its first',
      spans,
    );
  }
}

// A long history: the overview, the zoom, the wheel, a deep link to an
// old release, "go to version", and why the OCI graph starts later.
async function checkLongHistory(page, stream, now) {
  const basearch = args.basearch;
  const query = new URLSearchParams({ basearch, stream });
  const raw = { checksum: await getJson('v1/graph?' + query), oci: await getJson('v1/graph?' + query + '&oci=true') };
  const total = new Set([...raw.checksum.nodes, ...raw.oci.nodes].map(ageOf)).size;
  check(total >= 60, stream + ' has a long history', total);
  const ostree = raw.checksum.nodes.map((n) => n.version);
  const pick = (share) => ostree[Math.floor(ostree.length * share)];

  await page.selectOption('#stream', stream);
  await waitScope(page, stream, basearch);
  if (['stable', 'testing', 'next'].includes(stream)) {
    equal(await page.locator('#release-notes').getAttribute('href'), releaseNotes(stream, basearch), stream + ' release notes link');
  }
  await checkGraphs(page, raw, now, stream);
  await checkStart(page, raw, stream);

  // Full size: the newest releases in view, a part of the history.
  let g = await geometryOf(page, 'checksum');
  equal(Math.round(spacing(g)), 76, 'full size: a release every 76 px');
  await checkInView(page, 'checksum', ostree.at(-1), 'a stream opens at its newest release');
  const few = visibleNodes(g).length;
  check(few < total / 4, 'full size shows a part of the history: ' + few + ' of ' + total + ' releases', few);
  equal(Number(await page.locator('#in-view').getAttribute('data-shown')), few, 'the page counts the releases in view');

  // The overview: every release, in the width of the page, with barriers
  // and dead-ends.
  const overview = await page.evaluate(() => {
    const root = document.getElementById('overview');
    const box = root.getBoundingClientRect();
    const marks = (scheme, kind) =>
      [...root.querySelectorAll('.ov-row[data-scheme="' + scheme + '"] ' + kind)].map((m) => {
        const r = m.getBoundingClientRect();
        return { version: m.dataset.version, left: r.left, right: r.right, x: r.left + r.width / 2, y: r.top + r.height / 2 };
      });
    const frame = document.getElementById('overview-window').getBoundingClientRect();
    return {
      left: box.left,
      right: box.right,
      navigator: document.getElementById('navigator').getBoundingClientRect().width,
      pageWidth: document.documentElement.clientWidth,
      pageScrollWidth: document.documentElement.scrollWidth,
      releases: { checksum: marks('checksum', '.ov-release'), oci: marks('oci', '.ov-release') },
      barriers: { checksum: marks('checksum', '.ov-barrier').length, oci: marks('oci', '.ov-barrier').length },
      deadends: { checksum: marks('checksum', '.ov-deadend').length, oci: marks('oci', '.ov-deadend').length },
      frame: { left: frame.left, right: frame.right },
    };
  });
  check(
    overview.right - overview.left <= overview.navigator && overview.pageScrollWidth <= overview.pageWidth,
    'the overview fits the width of the page',
    overview,
  );
  for (const scheme of ['checksum', 'oci']) {
    const marks = overview.releases[scheme];
    const versions = raw[scheme].nodes.map((n) => n.version);
    check(
      JSON.stringify(marks.map((m) => m.version)) === JSON.stringify(versions),
      'the overview shows the ' + versions.length + ' ' + scheme + ' releases in order',
      marks.map((m) => m.version),
    );
    check(marks.every((m) => m.left >= overview.left && m.right <= overview.right), 'every ' + scheme + ' release inside the overview');
    const expected = expectedCounts(raw[scheme], 0, now);
    equal(overview.barriers[scheme], expected.barriers, 'the overview shows the ' + scheme + ' barriers');
    equal(overview.deadends[scheme], expected.deadends, 'the overview shows the ' + scheme + ' dead-ends');
  }
  const newestMark = overview.releases.checksum.at(-1);
  const oldestMark = overview.releases.checksum[0];
  check(
    overview.frame.left <= newestMark.x && overview.frame.right >= newestMark.x && overview.frame.left > oldestMark.x,
    'the overview frames the releases in view',
    { frame: overview.frame, newest: newestMark.x, oldest: oldestMark.x },
  );
  // A click in the overview moves the graphs there.
  const early = pick(0.15);
  const mark = overview.releases.checksum.find((m) => m.version === early);
  await page.mouse.click(mark.x, mark.y);
  await checkInView(page, 'checksum', early, 'a click in the overview');

  // The mouse wheel scrolls sideways, both graphs together.
  g = await geometryOf(page, 'checksum');
  const box = await page.locator('#panel-checksum .scroll').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, 400);
  await page.waitForFunction(
    (before) => document.querySelector('#panel-checksum .scroll').scrollLeft > before,
    g.scrollLeft,
  );
  const scrolled = await geometryOf(page, 'checksum');
  check(scrolled.scrollLeft > g.scrollLeft, 'the mouse wheel scrolls the graphs sideways', [g.scrollLeft, scrolled.scrollLeft]);
  await page.waitForFunction(
    () => document.querySelector('#panel-oci .scroll').scrollLeft === document.querySelector('#panel-checksum .scroll').scrollLeft,
  );
  check(true, 'the OCI graph scrolls along');

  // Zoom: out, fit to width (the whole history at once), in, with
  // Ctrl + wheel, back to full size.
  const full = spacing(await geometryOf(page, 'checksum'));
  await page.locator('#zoom-out').click();
  const out = spacing(await geometryOf(page, 'checksum'));
  check(Math.abs(out - full / 1.5) < 0.5, 'zoom out: releases closer together', [full, out]);
  await page.locator('#zoom-fit').click();
  for (const scheme of ['checksum', 'oci']) {
    g = await geometryOf(page, scheme);
    check(g.scrollWidth <= g.clientWidth, 'fit width: the ' + scheme + ' graph needs no scrolling', g.scrollWidth + ' <= ' + g.clientWidth);
    equal(visibleNodes(g).length, raw[scheme].nodes.length, 'fit width: every ' + scheme + ' release in view');
  }
  equal(await page.locator('#in-view').textContent(), 'All ' + total + ' releases in view', 'fit width: the page says all are in view');
  check(page.url().includes('zoom=fit'), 'the address keeps the zoom', page.url());
  // 100% from Fit opens on the newest releases, not the middle.
  await page.locator('#zoom-full').click();
  await checkInView(page, 'checksum', ostree.at(-1), '100% after Fit');
  await page.locator('#zoom-fit').click();
  const fit = spacing(await geometryOf(page, 'checksum'));
  await page.locator('#zoom-in').click();
  const zoomed = spacing(await geometryOf(page, 'checksum'));
  check(Math.abs(zoomed - fit * 1.5) < 0.5, 'zoom in: releases further apart', [fit, zoomed]);
  const zoomBefore = Number(await page.locator('#panels').getAttribute('data-zoom'));
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.keyboard.down('Control');
  await page.mouse.wheel(0, -200);
  await page.keyboard.up('Control');
  await page.waitForFunction((before) => Number(document.getElementById('panels').dataset.zoom) > before, zoomBefore);
  check(true, 'Ctrl + wheel zooms in');
  await page.locator('#zoom-full').click();
  equal(Math.round(spacing(await geometryOf(page, 'checksum'))), 76, 'back to full size');

  // A link to an old release opens with it in view.
  const old = pick(0.08);
  const link = new URL(base);
  for (const [key, value] of Object.entries({ stream, basearch, graph: 'checksum', release: old })) {
    link.searchParams.set(key, value);
  }
  if (at !== null) link.searchParams.set('at', String(at));
  await page.goto(link.href);
  await waitScope(page, stream, basearch);
  equal(await page.locator('#details-version').textContent(), old, 'a link selects an old release');
  await checkInView(page, 'checksum', old, 'a link to an old release');
  equal(await page.locator('#details-build-date').textContent(), versionDate(old), 'details show the build date of ' + old);
  // The OCI graph has no release there: its band says why, in view.
  const { first } = graphStart(raw, 'oci');
  const gapNote = await page.evaluate(() => {
    const note = document.querySelector('#panel-oci .gap[data-edge="start"] .gap-note');
    const scroller = document.querySelector('#panel-oci .scroll').getBoundingClientRect();
    if (!note) return null;
    const r = note.getBoundingClientRect();
    return { text: note.textContent, inside: r.left >= scroller.left && r.right <= scroller.right };
  });
  // Not a tall empty box: folded to the height of its note.
  const heights = await page.evaluate(() => {
    const box = (scheme) => document.querySelector('#panel-' + scheme + ' .scroll').getBoundingClientRect();
    const line = document.querySelector('#panel-oci .gap[data-edge="start"] .gap-note text').getBoundingClientRect();
    const oci = box('oci');
    return { oci: oci.height, checksum: box('checksum').height, noteInside: line.top >= oci.top && line.bottom <= oci.bottom };
  });
  console.log('# ' + stream + ', both graphs, at ' + old + ': the OCI graph ' + Math.round(heights.oci) + ' px high, the OSTree graph ' + Math.round(heights.checksum) + ' px');
  check(heights.oci <= 120 && heights.checksum > 2 * heights.oci && heights.noteInside, 'with no OCI release in view, the OCI graph is folded to its note', heights);
  check(
    gapNote !== null && gapNote.inside && gapNote.text.startsWith('No OCI payloads before ' + versionDate(first.version)),
    'where the OCI graph has no release yet, a note in view says why',
    gapNote,
  );

  // "Go to version": a version, the date part of one, an unknown one.
  const middle = pick(0.5);
  await page.locator('#goto-version').fill(middle);
  await page.locator('#goto-version').press('Enter');
  equal(await page.locator('#details-version').textContent(), middle, 'go to version selects ' + middle);
  await checkInView(page, 'checksum', middle, 'go to version');
  check(page.url().includes('release=' + encodeURIComponent(middle)), 'the address names the release gone to');
  const other = pick(0.3);
  await page.locator('#goto-version').fill(other.split('.')[1]);
  await page.locator('#goto-version').press('Enter');
  equal(await page.locator('#details-version').textContent(), other, 'go to version finds a release by its date');
  await checkInView(page, 'checksum', other, 'go to version by date');
  await page.locator('#goto-version').fill('0.0.0-none');
  await page.locator('#goto-version').press('Enter');
  const message = await page.locator('#goto-message').textContent();
  check(message.startsWith('No release 0.0.0-none'), 'go to version says when there is no such release', message);

  // A complete rollout: complete since when it ended.
  const complete = raw.checksum.nodes.find((n) => n.metadata[PREFIX + 'updates.rollout'] === 'true' &&
    n.metadata[PREFIX + 'updates.duration_minutes'] !== undefined && rolloutProgress(n.metadata, now) >= 1);
  await page.locator('#goto-version').fill(complete.version);
  await page.locator('#goto-version').press('Enter');
  const end = Number(complete.metadata[PREFIX + 'updates.start_epoch']) + Number(complete.metadata[PREFIX + 'updates.duration_minutes']) * 60;
  equal(await page.locator('#details-rollout-progress').textContent(), '100% complete since ' + utcText(end), 'a complete rollout says since when');

  // For the screenshot: the first OCI release, zoomed out twice.
  await page.locator('#goto-version').fill(first.version);
  await page.locator('#goto-version').press('Enter');
  equal(await page.locator('#goto-message').textContent(), '', 'going to a release clears the message');
  await page.locator('#zoom-out').click();
  await page.locator('#zoom-out').click();
  await checkInView(page, 'checksum', first.version, 'zooming out keeps the release in view');

  await checkKeyboard(page, stream, raw);
  if (args['policy-engine'] !== undefined) await checkLongGroups(page, raw, stream, now);
}

// Runs `count` steps of `kind` in the page ('wariness': the slider moved
// by 0.05 from 0; 'group': `group` picked and back to none; 'zoom': the
// zoom buttons, from fit width to the largest zoom and back; 'zoom-keys':
// the + and - keys, from 100% down to 30% and up to 200%; 'zoom-wheel':
// Ctrl + wheel, in and out, whose zoom runs in the next animation frame)
// and returns the script time of each (performance.now() around it, the
// page's work being synchronous; for the wheel, around the animation
// frame's callbacks), how many SVG elements were created, and whether
// the graphs' <svg> elements are still the ones drawn before.
async function timeSteps(page, count, kind, group) {
  return page.evaluate(async ([count, kind, group]) => {
    const keys = ['-', '-', '-', '+', '+', '+', '+', '+', '-', '-'];
    const scroller = document.querySelector('#panels .scroll');
    const step = (i) => {
      if (kind === 'wariness') {
        const slider = document.getElementById('wariness');
        slider.value = String(i / 20);
        slider.dispatchEvent(new Event('input'));
      } else if (kind === 'group') {
        const select = document.getElementById('group');
        select.value = i % 2 ? '' : group;
        select.dispatchEvent(new Event('change'));
      } else if (kind === 'zoom') {
        document.getElementById(i % (2 * 9) < 9 ? 'zoom-in' : 'zoom-out').click();
      } else if (kind === 'zoom-keys') {
        document.dispatchEvent(new KeyboardEvent('keydown', { key: keys[i % keys.length], bubbles: true }));
      } else {
        const box = scroller.getBoundingClientRect();
        scroller.dispatchEvent(new WheelEvent('wheel', {
          deltaY: i % 2 ? 120 : -120, ctrlKey: true, clientX: box.left + box.width / 2, clientY: box.top + 40, bubbles: true, cancelable: true,
        }));
      }
    };
    const settle = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    if (kind === 'zoom') {
      document.getElementById('zoom-fit').click();
    } else if (kind === 'zoom-keys') {
      document.getElementById('zoom-full').click();
    }
    await settle();
    const roots = [...document.querySelectorAll('svg.graph')];
    let created = 0;
    const original = document.createElementNS;
    document.createElementNS = function (...args) {
      created += 1;
      return original.apply(this, args);
    };
    const frame = window.requestAnimationFrame;
    let frames = 0;
    window.requestAnimationFrame = (callback) => frame.call(window, (t) => {
      const start = performance.now();
      callback(t);
      frames += performance.now() - start;
    });
    const times = [];
    try {
      for (let i = 0; i < count; i += 1) {
        frames = 0;
        const start = performance.now();
        step(i);
        const took = performance.now() - start;
        await settle();
        times.push(kind === 'zoom-wheel' ? frames : took);
      }
    } finally {
      document.createElementNS = original;
      window.requestAnimationFrame = frame;
    }
    const now = [...document.querySelectorAll('svg.graph')];
    return { times, created, same: roots.length > 0 && roots.every((r, i) => r === now[i]) };
  }, [count, kind, group ?? null]);
}

function figures(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return 'median ' + at(0.5).toFixed(1) + ' ms, max ' + sorted.at(-1).toFixed(1) + ' ms over ' + times.length;
}

// Zoom steps by the buttons (the whole range, twice), the keys and the
// wheel: printed ('# '), and the graphs placed again rather than drawn
// again (the same <svg>; the few elements created are the hatched bands'
// notes, laid out for the new width).
async function zoomSteps(page, stream) {
  const label = '# ' + stream + ', both graphs: zoom step';
  const buttons = await timeSteps(page, 36, 'zoom');
  console.log(label + ' (buttons, fit width to 200% and back): ' + figures(buttons.times));
  const keys = await timeSteps(page, 10, 'zoom-keys');
  console.log(label + ' (+ and - keys, 30% to 200%): ' + figures(keys.times));
  const wheel = await timeSteps(page, 10, 'zoom-wheel');
  console.log(label + ' (Ctrl + wheel): ' + figures(wheel.times));
  return [buttons, keys, wheel];
}

// Point by point, on a long history with both graphs: a step of the
// wariness slider and a change of group restyle what is drawn (no SVG
// element created, the same <svg>), and how long each takes, a drag of
// the slider's long tasks and zoom steps, measured and printed ('# ').
async function checkSteps(page, stream, group) {
  const steps = await timeSteps(page, 20, 'wariness');
  console.log('# ' + stream + ', both graphs, ' + (group === null ? 'no group' : group) + ': wariness step: ' + figures(steps.times));
  check(steps.same && steps.created === 0, stream + ': a wariness step restyles the graphs drawn (no SVG element created)', { created: steps.created, same: steps.same });
  if (group !== null) {
    const changes = await timeSteps(page, 6, 'group', groupOption(group));
    console.log('# ' + stream + ', both graphs: group change: ' + figures(changes.times));
    check(changes.same && changes.created === 0, stream + ': a group change restyles the graphs drawn (no SVG element created)', { created: changes.created, same: changes.same });
  }
  // Dragging the slider with the mouse: the long tasks (over 50 ms) seen.
  await page.evaluate(() => {
    window.longTasks = [];
    window.dragInputs = 0;
    document.getElementById('wariness').addEventListener('input', () => (window.dragInputs += 1));
    new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: 'longtask' });
  });
  await page.locator('#wariness').scrollIntoViewIfNeeded();
  const box = await page.locator('#wariness').boundingBox();
  await page.mouse.move(box.x + 2, box.y + box.height / 2);
  await page.mouse.down();
  for (let i = 1; i <= 30; i += 1) await page.mouse.move(box.x + 2 + ((box.width - 4) * i) / 30, box.y + box.height / 2);
  await page.mouse.up();
  await page.waitForTimeout(100);
  const { long, inputs } = await page.evaluate(() => ({ long: window.longTasks, inputs: window.dragInputs }));
  console.log('# ' + stream + ', both graphs: dragging the slider across (' + inputs + ' steps): ' + long.length + ' long tasks' + (long.length ? ' (max ' + Math.max(...long).toFixed(0) + ' ms)' : ''));
  check(inputs >= 10, stream + ': the slider was dragged', inputs);
  await page.locator('#wariness').fill('0');
  // Zoom: the graphs placed again at the new size, not drawn again.
  const zooms = await zoomSteps(page, stream);
  const kept = zooms.every((z) => z.same);
  check(kept, stream + ': a zoom places the graphs drawn again (the same <svg>)', zooms.map((z) => ({ created: z.created, same: z.same })));
  // Back to the zoom before (100%, zoomed out twice).
  await page.locator('#zoom-full').click();
  await page.locator('#zoom-out').click();
  await page.locator('#zoom-out').click();
}

// Figures only (--part measure): on --long-stream, zoom steps, a slider
// step and, when the server has a fleet policy, a change of group (to
// and from the first group pinned on the stream, else the first group),
// printed ('# '); every check left out. For figures on any graph-builder
// (the real history, say).
async function measure(page, stream) {
  const url = new URL(base);
  url.searchParams.set('stream', stream);
  url.searchParams.set('basearch', args.basearch);
  await page.goto(url.href);
  await waitScope(page, stream, args.basearch);
  await page.locator('#group-field[data-policy]:not([data-policy="loading"])').waitFor({ state: 'attached' });
  const { policy } = await getJson('v1/policy');
  const groups = policy ? Object.keys(policy.groups).sort() : [];
  const group = groups.find((g) => (policy.groups[g].max_version || {})[stream]) ?? groups[0] ?? null;
  if (group !== null) await pickGroup(page, group);
  const counts = await page.evaluate(() => ({ nodes: document.querySelectorAll('#panels .node').length, edges: document.querySelectorAll('#panels path.edge').length }));
  console.log('# ' + stream + ' ' + args.basearch + ': ' + counts.nodes + ' releases and ' + counts.edges + ' updates drawn' + (group !== null ? ', group ' + group : ''));
  await zoomSteps(page, stream);
  await page.locator('#zoom-full').click();
  const steps = await timeSteps(page, 20, 'wariness');
  console.log('# ' + stream + ', both graphs: wariness step: ' + figures(steps.times));
  if (group !== null) {
    const changes = await timeSteps(page, 6, 'group', groupOption(group));
    console.log('# ' + stream + ', both graphs: group change: ' + figures(changes.times));
  }
}

// The keyboard on a long history: the graphs are one tab stop, a skip
// link leads to it, the arrow keys move between releases (left and right
// along the history, up and down between the graphs), + and - zoom,
// Enter opens the details and Escape closes them.
async function checkKeyboard(page, stream, raw) {
  const stops = await page.evaluate(() => {
    const tabbable = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
      .filter((e) => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length > 0);
    return { all: tabbable.length, graphs: tabbable.filter((e) => e.closest('#panels')).length };
  });
  equal(stops.graphs, 1, stream + ': the graphs are one tab stop');
  // Tabs from the first stop of the page (the skip link) to a release.
  await page.locator('#skip').focus();
  let tabs = 1;
  const onRelease = () => page.evaluate(() => Boolean(document.activeElement && document.activeElement.closest('.node')));
  while (!(await onRelease()) && tabs < 60) {
    await page.keyboard.press('Tab');
    tabs += 1;
  }
  console.log('# ' + stream + ': ' + stops.all + ' tab stops on the page, ' + stops.graphs + ' in the graphs; ' + tabs + ' Tabs to the first release, or Tab and Enter on the skip link');
  check(await onRelease(), stream + ': Tab reaches a release', tabs);
  await page.locator('#skip').focus();
  await page.keyboard.press('Enter');
  check(await onRelease(), stream + ': the skip link leads to the graphs');
  const focused = () => page.evaluate(() => {
    const node = document.activeElement.closest('.node');
    return node ? [node.dataset.scheme, node.dataset.version] : null;
  });
  const versions = (scheme) => raw[scheme].nodes.map((n) => n.version);
  const ostree = versions('checksum');
  await page.keyboard.press('End');
  equal(await focused(), ['checksum', ostree.at(-1)], stream + ': End moves to the newest release');
  await page.keyboard.press('ArrowLeft');
  equal(await focused(), ['checksum', ostree.at(-2)], stream + ': ArrowLeft moves to the release before');
  await page.keyboard.press('ArrowRight');
  equal(await focused(), ['checksum', ostree.at(-1)], stream + ': ArrowRight moves to the release after');
  check(versions('oci').includes(ostree.at(-1)), stream + ': the newest release has an OCI image');
  await page.keyboard.press('ArrowDown');
  equal(await focused(), ['oci', ostree.at(-1)], stream + ': ArrowDown moves to the same release in the OCI graph');
  await page.keyboard.press('ArrowUp');
  equal(await focused(), ['checksum', ostree.at(-1)], stream + ': ArrowUp moves back to the OSTree graph');
  equal(await page.evaluate(() => document.querySelectorAll('#panels .node[tabindex="0"]').length), 1, stream + ': still one tab stop after moving');
  const zoom = () => page.locator('#panels').getAttribute('data-zoom').then(Number);
  const before = await zoom();
  await page.keyboard.press('-');
  const out = await zoom();
  check(out < before, stream + ': - zooms out', [before, out]);
  await page.keyboard.press('+');
  check((await zoom()) > out, stream + ': + zooms in', [out, await zoom()]);
  await page.keyboard.press('Enter');
  equal(await page.locator('#details-version').textContent(), ostree.at(-1), stream + ': Enter opens the details of the release focused');
  await page.keyboard.press('Escape');
  check(await page.locator('#details-list').isHidden(), stream + ': Escape closes the details');
}

// On a phone (390 × 844): the first graph starts in the first screen, the
// page does not scroll sideways, and a release's details open in view.
async function checkPhone(context, stream, problems) {
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push('page error: ' + error.message));
  await page.setViewportSize({ width: 390, height: 844 });
  const url = new URL(base);
  url.searchParams.set('stream', stream);
  url.searchParams.set('basearch', args.basearch);
  if (at !== null) url.searchParams.set('at', String(at));
  await page.goto(url.href);
  await waitScope(page, stream, args.basearch);
  const start = await page.evaluate(() => {
    const scroller = document.querySelector('#panels .scroll').getBoundingClientRect();
    const box = document.querySelector('#panels .scroll');
    const shapes = [...box.querySelectorAll('.node .shape')].map((s) => s.getBoundingClientRect())
      .filter((r) => r.left >= scroller.left && r.right <= scroller.right);
    return {
      graph: scroller.top,
      release: shapes.length ? Math.min(...shapes.map((r) => r.bottom)) : null,
      height: window.innerHeight,
      scrollWidth: document.documentElement.scrollWidth,
      width: window.innerWidth,
    };
  });
  console.log('# phone 390 × 844, ' + stream + ': the first graph starts at y = ' + Math.round(start.graph) + ', its releases at y = ' + Math.round(start.release));
  check(start.release !== null && start.release <= start.height, 'phone: the first graph\'s releases are in the first screen', start);
  check(start.scrollWidth <= start.width, 'phone: the page does not scroll sideways', start);
  const version = await page.evaluate(() => {
    const scroller = document.querySelector('#panels .scroll').getBoundingClientRect();
    const node = [...document.querySelectorAll('#panels .scroll .node')].reverse()
      .find((n) => { const r = n.getBoundingClientRect(); return r.left >= scroller.left && r.right <= scroller.right; });
    return node.dataset.version;
  });
  await page.locator('#panels .node[data-version="' + version + '"] .shape').first().click();
  const details = await page.evaluate((version) => {
    const r = document.getElementById('details-version').getBoundingClientRect();
    const sheet = document.getElementById('details').getBoundingClientRect();
    const node = document.querySelector('#panels .node[data-version="' + CSS.escape(version) + '"] .shape').getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, sheet: sheet.top, node: { top: node.top, bottom: node.bottom }, height: window.innerHeight };
  }, version);
  console.log('# phone 390 × 844: a release\'s details open at y = ' + Math.round(details.sheet) + ', the release at y = ' + Math.round(details.node.top) + ' above them');
  check(details.top >= 0 && details.bottom <= details.height, 'phone: a release\'s details open in view', details);
  check(details.node.top >= 0 && details.node.bottom <= details.sheet, 'phone: the release stays in view above its details', details);
  await page.close();
}

// Dark mode: with prefers-color-scheme dark, a dark page with light text
// and graphs drawn to match; light again without.
async function checkDarkMode(page) {
  const colours = () => page.evaluate(() => {
    const rgb = (text) => (text.match(/[\d.]+/g) || []).slice(0, 3).map(Number);
    const style = (selector, property) => {
      const element = document.querySelector(selector);
      return element ? rgb(getComputedStyle(element)[property]) : null;
    };
    return {
      page: style('body', 'backgroundColor'),
      text: style('body', 'color'),
      panel: style('.panel', 'backgroundColor'),
      label: style('.node .version', 'fill'),
      edge: style('path.edge', 'stroke'),
    };
  });
  // Relative luminance (WCAG).
  const luminance = ([r, g, b]) => {
    const channel = (c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const contrast = (a, b) => (Math.max(luminance(a), luminance(b)) + 0.05) / (Math.min(luminance(a), luminance(b)) + 0.05);
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await colours();
  check(luminance(dark.page) < 0.05 && luminance(dark.panel) < 0.05, 'dark mode: the page and the graphs\' panels are dark', dark);
  check(contrast(dark.text, dark.page) >= 7 && contrast(dark.label, dark.panel) >= 4.5, 'dark mode: text and version labels read on them', dark);
  check(contrast(dark.edge, dark.panel) >= 3, 'dark mode: updates stand out from the panel', dark);
  await page.emulateMedia({ colorScheme: 'light' });
  const light = await colours();
  check(luminance(light.page) > 0.8 && contrast(light.text, light.page) >= 7, 'light mode: a light page with dark text', light);
}

// The group picker on a long history: every group against the
// policy-engine, and how long picking a group takes to draw.
async function checkLongGroups(page, raw, stream, now) {
  const { policy } = await getJson('v1/policy');
  const names = Object.keys(policy.groups).sort();
  // A group pinned at a release of both graphs.
  const pinned = names.find((n) => {
    const pin = (policy.groups[n].max_version || {})[stream];
    return pin && ['checksum', 'oci'].every((s) => raw[s].nodes.some((node) => node.version === pin));
  });
  check(pinned !== undefined, 'a group is pinned on ' + stream);
  const redraw = (value) =>
    page.evaluate((value) => {
      const select = document.getElementById('group');
      const start = performance.now();
      select.value = value;
      select.dispatchEvent(new Event('change'));
      return performance.now() - start;
    }, value);
  const plain = await redraw('');
  const grouped = await redraw(groupOption(pinned));
  console.log('# ' + stream + ': drawn in ' + plain.toFixed(0) + ' ms without a group, ' + grouped.toFixed(0) + ' ms with ' + pinned + '\'s');
  await checkSteps(page, stream, pinned);
  // At wariness 0 (both wariness values are compared on the short
  // history: on the long one, every group at both would take long).
  for (const group of [null, ...names, 'other']) {
    await pickGroup(page, group);
    await checkAgainstPolicyEngine(page, raw, policy, stream, group, 0, now);
  }
  await checkSummary(page, raw, policy, stream, 0);
  // For the screenshot: the pinned release, the updates after it withheld.
  await page.locator('#wariness').fill('0');
  await pickGroup(page, pinned);
  await page.locator('#goto-version').fill(policy.groups[pinned].max_version[stream]);
  await page.locator('#goto-version').press('Enter');
}

async function run() {
  const streams = await getJson('v1/streams');
  check(Array.isArray(streams[args.stream]), 'the server serves stream ' + args.stream, streams);
  check(streams[args.stream].includes(args.basearch), 'the stream has basearch ' + args.basearch, streams);
  const query = new URLSearchParams({ basearch: args.basearch, stream: args.stream });
  const raw = { checksum: await getJson('v1/graph?' + query), oci: await getJson('v1/graph?' + query + '&oci=true') };
  const now = at ?? Math.floor(Date.now() / 1000);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcos-viewer-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  const problems = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('console', (message) => {
      if (message.type() === 'error') {
        problems.push('console ' + message.type() + ': ' + message.text());
      }
    });
    page.on('pageerror', (error) => problems.push('page error: ' + error.message));
    page.on('requestfailed', (request) => problems.push('request failed: ' + request.url()));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push('HTTP ' + response.status() + ': ' + response.url());
    });

    if (part === 'measure') {
      await measure(page, args['long-stream'] ?? args.stream);
      return;
    }
    const start = new URL(base);
    if (at !== null) start.searchParams.set('at', String(at));
    await page.goto(start.href);
    equal(await page.title(), 'Fedora CoreOS update graph', 'page title');
    // The short part: the pickers, the details, the groups on the short
    // history, the summary, a node UUID.
    if (part !== 'long') {
      if (at !== null) await checkTimeField(page);

      // Pickers: filled from /v1/streams.
      await page.locator('#stream:not([disabled])').waitFor();
      const streamOptions = await page.locator('#stream option').evaluateAll((os) => os.map((o) => o.value));
      equal(streamOptions, fedoraOrder(Object.keys(streams)), 'stream picker lists the configured streams in Fedora\'s order');
      await page.selectOption('#stream', args.stream);
      const archOptions = await page.locator('#basearch option').evaluateAll((os) => os.map((o) => o.value));
      equal(archOptions, streams[args.stream], 'architecture picker lists the basearches of ' + args.stream);
      // Pick another architecture first (when there is one), then the one
      // under test: the page must follow.
      const other = streams[args.stream].find((a) => a !== args.basearch);
      if (other) {
        await page.selectOption('#basearch', other);
        await page.locator('#panels[data-scope="' + args.stream + '/' + other + '"]').waitFor();
        check(true, 'switched to ' + other);
      }
      await page.selectOption('#basearch', args.basearch);
      await waitScope(page, args.stream, args.basearch);
      check(page.url().includes('basearch=' + args.basearch), 'the address follows the pickers', page.url());
      if (['stable', 'testing', 'next'].includes(args.stream)) {
        equal(
          await page.locator('#release-notes').getAttribute('href'),
          releaseNotes(args.stream, args.basearch),
          'the release notes link follows the stream and architecture',
        );
      }

      // Both schemes side by side, counts and drawing matching the graphs.
      await checkGraphs(page, raw, now, args.stream);
      await checkStart(page, raw, args.stream);

      // Click a release of the OSTree graph: details.
      const clickVersion = args.click ?? raw.checksum.nodes.at(-1).version;
      const clicked = raw.checksum.nodes.find((n) => n.version === clickVersion);
      check(clicked !== undefined, clickVersion + ' is in the OSTree graph');
      await page.locator('#panel-checksum .node[data-version="' + clickVersion + '"] .shape').click();
      equal(await page.locator('#details-version').textContent(), clickVersion, 'details show the version');
      equal(await page.locator('#details-payload').textContent(), clicked.payload, 'details show the payload');
      if (args['expect-payload'] !== undefined) {
        equal(clicked.payload, args['expect-payload'], 'the payload is the expected one');
      }
      equal(
        await page.locator('#details-age-index').textContent().then((t) => t.split(' ')[0]),
        clicked.metadata[PREFIX + 'releases.age_index'],
        'details show the age index',
      );
      if (clicked.metadata[PREFIX + 'updates.barrier'] === 'true') {
        await checkReason(page, 'barrier', clicked.metadata[PREFIX + 'updates.barrier_reason']);
      }
      if (clicked.metadata[PREFIX + 'updates.deadend'] === 'true') {
        await checkReason(page, 'deadend', clicked.metadata[PREFIX + 'updates.deadend_reason']);
      }
      check(
        (await page.locator('#panel-checksum .node.selected').count()) === 1,
        'the clicked release is marked selected',
      );
      check(page.url().includes('release=' + encodeURIComponent(clickVersion)), 'the address names the selection');
      const date = versionDate(clickVersion);
      equal(
        await page.locator('#details-build-date').textContent(),
        date ?? 'not in the version',
        'details show the build date (from the version)',
      );
      if (['stable', 'testing', 'next'].includes(args.stream)) {
        equal(
          await page.locator('#details-release-notes a').getAttribute('href'),
          releaseNotes(args.stream, args.basearch),
          'details link the release notes',
        );
      }

      // Keyboard: Escape closes, Enter on a focused release opens.
      await page.keyboard.press('Escape');
      check(await page.locator('#details-list').isHidden(), 'Escape closes the details');
      await page.locator('#panel-checksum .node[data-version="' + clickVersion + '"]').focus();
      await page.keyboard.press('Enter');
      equal(await page.locator('#details-version').textContent(), clickVersion, 'Enter opens the details');

      // One scheme at a time.
      await page.locator('label:has(input[value="checksum"])').click();
      equal(await page.locator('.panel').count(), 1, 'OSTree alone shows one graph');
      check((await page.locator('#panel-checksum').count()) === 1, 'the one graph is the OSTree graph');
      await page.locator('label:has(input[value="both"])').click();
      equal(await page.locator('.panel').count(), 2, 'both graphs side by side again');

      // Wariness: what a client of that wariness sees.
      await page.locator('#wariness').fill(String(wariness));
      for (const scheme of ['checksum', 'oci']) {
        const shown = await pageCounts(page, scheme);
        const expected = expectedCounts(raw[scheme], wariness, now);
        equal({ ...shown.counts, edges: shown.counts.edges + shown.withheld }, expected, scheme + ' counts at wariness ' + wariness);
        equal(shown.drawnEdges, expected.edges, scheme + ' edges drawn at wariness ' + wariness);
      }
      await page.locator('#wariness').fill('0');

      // A rollout of the OCI graph: its parameters and progress.
      if (args.rollout !== undefined) {
        const rollout = raw.oci.nodes.find((n) => n.version === args.rollout);
        check(rollout && rollout.metadata[PREFIX + 'updates.rollout'] === 'true', args.rollout + ' is an OCI rollout');
        await page.locator('#panel-oci .node[data-version="' + args.rollout + '"] .shape').click();
        equal(await page.locator('#details-version').textContent(), args.rollout, 'details show the rollout');
        equal(await page.locator('#details-payload').textContent(), rollout.payload, 'details show the OCI payload');
        const startEpoch = rollout.metadata[PREFIX + 'updates.start_epoch'];
        if (startEpoch !== undefined) {
          const text = await page.locator('#details-rollout-start').textContent();
          check(text.includes('(' + startEpoch + ')'), 'details show the rollout start', text);
        }
        const minutes = rollout.metadata[PREFIX + 'updates.duration_minutes'];
        if (minutes !== undefined) {
          const text = await page.locator('#details-rollout-duration').textContent();
          check(text.startsWith(minutes + ' minutes'), 'details show the rollout duration', text);
        }
        if (args['expect-progress'] !== undefined) {
          equal(
            await page.locator('#details-rollout-progress b').textContent(),
            args['expect-progress'],
            'details show the rollout progress',
          );
          equal(
            await page.locator('#details-rollout-progress').textContent(),
            args['expect-progress'] + ' in progress at ' + utcText(now) + (at === null ? ' (now)' : ''),
            'details say the rollout is in progress at the time of the view',
          );
        }
        // Above its progress, the updates into it are hidden: say how many
        // and why rather than "none".
        const into = raw.oci.edges.filter(([, to]) => raw.oci.nodes[to].version === args.rollout).length;
        const share = rolloutProgress(rollout.metadata, now);
        if (into > 0 && share < wariness) {
          await page.locator('#wariness').fill(String(wariness));
          const from = await page.locator('#details-from').textContent();
          check(from.startsWith('none at wariness ' + wariness.toFixed(2)), 'no update into the rollout at wariness ' + wariness, from);
          const note = await page.locator('#details-from .hidden-note').textContent();
          check(
            note.startsWith(into + ' update' + (into === 1 ? '' : 's') + ' into it hidden') &&
              note.includes('once it reaches ' + Math.round(wariness * 100) + '%'),
            'details say how many updates into the rollout are hidden and why',
            note,
          );
          await page.locator('#wariness').fill('0');
          // Offered, or withheld by the default view's rules.
          const all = await page.locator('#details-from button, #details-withheld-from button').count();
          equal(all, into, 'at wariness 0 the updates into the rollout are listed');
        }
      }

      if (args['policy-engine'] !== undefined) {
        await checkGroups(page, raw, now);
      }
      if (args['expect-halts']) await checkHalts(page, raw, now);
    }

    // The long part: the long history, the keyboard, the figures, the
    // screenshot, a phone's screen.
    if (part !== 'short' && args['long-stream'] !== undefined) {
      await checkLongHistory(page, args['long-stream'], now);
      fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
      await page.screenshot({ path: args.screenshot, fullPage: true });
      check(fs.statSync(args.screenshot).size > 10_000, 'screenshot saved to ' + args.screenshot);
      await checkPhone(context, args['long-stream'], problems);
    }

    if (part !== 'long') {
      await checkDarkMode(page);
      if (args['policy-file'] !== undefined) await checkPolicyRefused(page);
      if (args['no-policy-url'] !== undefined) await checkNoPolicy(page);
    }
    equal(problems, [], 'no console error, failed request or HTTP error');
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  console.error('viewer test: timed out after ' + TIMEOUT_MS / 1000 + ' s');
  process.exit(1);
}, TIMEOUT_MS);
try {
  await run();
  if (failed) throw new Error(failed + ' checks failed');
  console.log('viewer test: all ' + checks + ' checks passed');
  clearTimeout(timer);
} catch (error) {
  console.error('viewer test: ' + (error && error.stack ? error.stack : error));
  console.error('viewer test: ' + checks + ' checks passed before the failure');
  process.exit(1);
}
