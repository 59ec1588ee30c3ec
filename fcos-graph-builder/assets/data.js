// The data: the graphs read from the server as models (releases, updates,
// rollouts), what a client of a wariness is offered, and the loading of
// the streams, graphs and fleet policy.

import { refresh, render } from './draw.js';
import { scrollers } from './layout.js';
import { KEYS, RETRY_MS, SCHEMES, buildDate, clamp, html, integer, now, number, releaseNotesUrl, state, streamOrder, ui } from './page.js';
import { clientWariness, groupRules, modelPolicy, tableName, withheldInto } from './policy.js';
import { evaluateRollouts, haltReason } from './rollouts.js';

// Rollout parameters of a node's metadata, or null when it has none.
export function rolloutOf(metadata) {
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

// The rollout wariness Zincati's node gets from the service when it sends
// none: derived from its UUID as the policy-engine derives it
// (wariness_from_uuid): SipHash-1-3 with both keys zero over the UUID's
// bytes and one 0xff byte, divided by 2^64 - 1, clamped into
// [0.000001, 1]. `uuid` as Zincati sends it: 32 lowercase hex digits.
export function warinessFromUuid(uuid) {
  const bytes = [...new TextEncoder().encode(uuid), 0xff];
  const digest = sipHash13(bytes);
  return clamp(Number(digest) / Number(U64_MAX), 0.000001, 1);
}

const U64_MAX = (1n << 64n) - 1n;

// SipHash-1-3 of `bytes` with both keys zero, as a BigInt.
function sipHash13(bytes) {
  const rotl = (x, b) => ((x << b) | (x >> (64n - b))) & U64_MAX;
  let v0 = 0x736f6d6570736575n;
  let v1 = 0x646f72616e646f6dn;
  let v2 = 0x6c7967656e657261n;
  let v3 = 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & U64_MAX;
    v1 = rotl(v1, 13n) ^ v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & U64_MAX;
    v3 = rotl(v3, 16n) ^ v2;
    v0 = (v0 + v3) & U64_MAX;
    v3 = rotl(v3, 21n) ^ v0;
    v2 = (v2 + v1) & U64_MAX;
    v1 = rotl(v1, 17n) ^ v2;
    v2 = rotl(v2, 32n);
  };
  const whole = bytes.length - (bytes.length % 8);
  for (let i = 0; i < whole; i += 8) {
    let m = 0n;
    for (let j = 7; j >= 0; j -= 1) m = (m << 8n) | BigInt(bytes[i + j]);
    v3 ^= m;
    round();
    v0 ^= m;
  }
  let last = BigInt(bytes.length & 0xff) << 56n;
  for (let j = whole; j < bytes.length; j += 1) last |= BigInt(bytes[j]) << BigInt(8 * (j - whole));
  v3 ^= last;
  round();
  v0 ^= last;
  v2 ^= 0xffn;
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// A node UUID as Zincati sends it (32 lowercase hex digits, dashes
// taken out), or null when `text` is none.
export function nodeUuid(text) {
  const simple = text.trim().replace(/-/g, '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(simple) ? simple : null;
}

// Share of the fleet offered a rollout at `at` (seconds since the epoch).
export function progress(rollout, at) {
  if (at < rollout.startEpoch) return 0;
  if (rollout.durationMinutes === null) return rollout.startValue;
  const seconds = rollout.durationMinutes * 60;
  if (at > rollout.startEpoch + seconds) return 1;
  return rollout.startValue + ((1 - rollout.startValue) * (at - rollout.startEpoch)) / seconds;
}

export function buildModel(scheme, stream, graph) {
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
// those its group's rules withhold (`view`: see policyView()) or a halt
// withholds (the rules' reason first, as the policy-engine gives it).
export function evaluate(model, view) {
  const at = now();
  const wariness = clientWariness();
  const policy = modelPolicy(model, view);
  model.policy = policy;
  evaluateRollouts(model);
  for (const node of model.nodes) {
    node.progress = node.rollout ? progress(node.rollout, at) : null;
    node.inProgress = node.rollout !== null && node.progress < 1;
    node.withheld = withheldInto(policy, node) || haltReason(node.halt);
  }
  let hidden = 0;
  let withheld = 0;
  let halted = 0;
  for (const edge of model.edges) {
    edge.hidden = edge.to.rollout !== null && wariness > edge.to.progress;
    edge.withheld = edge.hidden ? null : edge.to.withheld;
    if (edge.hidden) hidden += 1;
    else if (edge.withheld) withheld += 1;
    if (edge.withheld && edge.withheld.reason === 'halted') halted += 1;
  }
  return {
    nodes: model.nodes.length,
    edges: model.edges.length - hidden - withheld,
    hidden,
    withheld,
    halted,
    barriers: model.nodes.filter((n) => n.barrier).length,
    deadends: model.nodes.filter((n) => n.deadend).length,
    rollouts: model.nodes.filter((n) => n.rollout).length,
    inProgress: model.nodes.filter((n) => n.inProgress).length,
  };
}

// The update a client on `node` takes: the target with the highest age
// index of the out-edges it is offered (or, with `withheld`, of those it
// would be offered without its group's rules).
export function nextUpdate(node, withheld) {
  let best = null;
  for (const edge of node.outEdges) {
    if (!edge.hidden && (withheld || !edge.withheld) && (!best || edge.to.ageIndex > best.ageIndex)) best = edge.to;
  }
  return best;
}

export function modelOf(schemeId) {
  const graph = state.graphs[schemeId];
  return graph && graph.model ? graph.model : null;
}

// Where the graph of `schemeId` has no release while the other graph has
// some: the releases of the other graph before its first release and
// after its last one. Null when it has no release at all.
export function coverage(schemeId) {
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

// ---- loading -----------------------------------------------------------

export async function fetchJson(url) {
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

export async function loadStreams() {
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

export function fillArches() {
  const arches = state.streams[state.stream] || [];
  if (!arches.includes(state.basearch)) {
    state.basearch = arches.includes('x86_64') ? 'x86_64' : arches[0] || '';
  }
  ui.basearch.replaceChildren(...arches.map((name) => html('option', { value: name, text: name })));
  ui.basearch.value = state.basearch;
  ui.basearch.disabled = arches.length === 0;
  showReleaseNotes();
}

export function showReleaseNotes() {
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

export async function loadGraphs(keepSelection) {
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
export async function loadPolicy() {
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
  if (state.view) refresh();
}

// The group picker: "(no group)" (a node that sends none), the groups of the file, and
// "other group" (any group without a table) when the file has
// [groups.default] or [fleet]. Hidden without a policy; disabled when it
// cannot be read.
export function fillGroups() {
  const policy = state.policy;
  ui.groupField.hidden = policy.status === 'none' || policy.status === 'loading';
  ui.groupField.dataset.policy = policy.status;
  ui.groupField.dataset.refused = String(Boolean(policy.refused));
  const options = [html('option', {
    value: '',
    text: '(no group)',
    title: 'A node that sends no group: it gets [groups.default], else the rules of [fleet], as the policy-engine serves it',
  })];
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
export function showGroup() {
  const group = groupRules();
  ui.group.value = state.group === null || !group ? '' : group.own ? 'group:' + group.table : 'other';
  showWariness();
}

// The slider's value and, when the group's rules clamp it, the wariness
// its clients get and why.
export function showWariness() {
  ui.warinessValue.textContent = state.wariness.toFixed(2);
  ui.uuidWariness.textContent = state.uuid === null ? '' : '→ wariness ' + state.wariness.toFixed(6);
  ui.uuidWariness.dataset.wariness = state.uuid === null ? '' : String(state.wariness);
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

export function setStatus(text, isError) {
  ui.status.textContent = text;
  ui.status.hidden = !text;
  ui.status.classList.toggle('error', Boolean(isError));
}

// The versions "go to version" offers: every release of the stream and
// architecture, newest first.
export function fillVersions() {
  const byAge = new Map();
  for (const scheme of SCHEMES) {
    const model = modelOf(scheme.id);
    if (model) model.nodes.forEach((n) => byAge.set(n.ageIndex, n.version));
  }
  const versions = [...byAge.entries()].sort((a, b) => b[0] - a[0]).map((entry) => entry[1]);
  ui.gotoVersions.replaceChildren(...versions.map((v) => html('option', { value: v })));
}
