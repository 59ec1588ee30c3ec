// Drawing: the graphs as SVG, the rules above them and the summary of
// where each group ends up under them.

import { saveState } from './controls.js';
import { renderDetails } from './details.js';
import { evaluate, modelOf, nextUpdate, showGroup } from './data.js';
import { onWheel, renderNavigator, revealSelected, scheduleViewport, scrollToColumn, scrollers, shownSchemes, textWidth, updateViewport, viewAnchor } from './layout.js';
import { RETRY_MS, SCHEMES, html, number, percent, plural, state, svg, ui, utc } from './page.js';
import { clientWariness, fromFleet, groupSummary, idleRules, policyView, reasonText, tableName, windowText } from './policy.js';
import { computeLayout, coverageNotes, placeGraph } from './place.js';
import { describeRollout, drawRolloutMarks, styleOverviewHalts } from './rollouts.js';

export function render(options) {
  const opts = options || {};
  const focused = document.activeElement;
  const refocus =
    focused && focused.dataset && focused.dataset.version && focused.dataset.scheme
      ? { scheme: focused.dataset.scheme, version: focused.dataset.version }
      : null;
  if (refocus) state.cursor = refocus;
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
  renderSummary(shown);
  const models = shown.map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length);
  const { layout, view } = computeLayout(models);
  state.view = view;
  const { zoom, ages: sortedAges } = view;

  const panels = shown.map((scheme) => renderPanel(scheme, layout));
  ui.panels.replaceChildren(...panels);
  placeTabStop(shown.map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length));
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
  styleOverviewHalts();
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

// Under the graphs, with a fleet policy: for no group and each group,
// where its nodes end up in each graph shown (groupSummary()), and the
// rules that change nothing. A group's name picks it.
function renderSummary(shown) {
  const models = shown.map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length);
  const groups = state.policy.status === 'ok' ? state.policy.groups : null;
  ui.summary.hidden = !groups || !models.length;
  if (ui.summary.hidden) return;
  ui.summaryTitle.textContent = 'Where each group ends up on ' + state.stream + ' · ' + state.basearch;
  ui.summaryWarnings.replaceChildren(...idleRules(models, state.stream).map((w) =>
    html('li', { 'data-table': w.table, 'data-rule': w.rule, 'data-version': w.version, text: w.text })));
  const head = html('tr', {}, [html('th', { text: 'Group' })]);
  for (const model of models) {
    const title = SCHEMES.find((s) => s.id === model.scheme).title;
    head.append(html('th', { text: title + ': converges to' }), html('th', { text: 'no way forward' }));
  }
  const rows = [head];
  for (const name of [null, ...[...groups.keys()].sort()]) {
    const pick = html('button', { type: 'button', className: 'link', text: name === null ? '(no group)' : name });
    pick.addEventListener('click', () => {
      state.group = name;
      showGroup();
      refresh();
      saveState();
    });
    const row = html('tr', { 'data-group': name === null ? '' : name }, [html('th', {}, [pick])]);
    if (name === state.group) row.className = 'current';
    for (const model of models) {
      const summary = groupSummary(model, name);
      const converges = summary.converges ? summary.converges.version : '';
      row.append(
        html('td', {
          'data-scheme': model.scheme,
          'data-converges': converges,
          text: summary.closed ? 'none now (' + summary.closed.reason + ')' : converges || 'none',
        }),
        html('td', {
          'data-scheme': model.scheme,
          'data-stuck': String(summary.stuck.length),
          title: summary.stuck.map((n) => n.version).join(', '),
          text: summary.closed ? 'all' : String(summary.stuck.length),
        }),
      );
    }
    rows.push(row);
  }
  ui.summaryTable.replaceChildren(...rows);
}

// Above the graphs: why the fleet policy cannot be read, or the rules of
// the group picked and a banner when they give it no update at all.
export function renderPolicy(policy, shown) {
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
  ui.policy.hidden = status !== 'error' && !(status === 'ok' && (state.group !== null || policy));
  if (status === 'ok') {
    ui.policy.title = 'Policy ' + state.policy.hash + (state.policy.source ? ' (' + state.policy.source + ')' : '') + ', read ' + utc(state.policy.now);
  }

  const closed = policy ? policy.closed : null;
  ui.policyClosed.hidden = !closed;
  if (closed) {
    const who = policy.group.own ? 'group ' + state.group : state.group === null ? 'nodes without a group' : 'other groups';
    const when = closed.current ? 'now (' + utc(closed.at) + ')' : 'at ' + utc(closed.at);
    ui.policyClosed.dataset.reason = closed.reason;
    ui.policyClosed.textContent = 'No updates for ' + who + ' ' + when + ': ' + reasonText(closed, policy) + '.' +
      (closed.stale ? ' This browser cannot evaluate its windows at the time picked: this is the server\'s answer for now.' : '');
  } else {
    ui.policyClosed.textContent = '';
    delete ui.policyClosed.dataset.reason;
  }

  if (status !== 'ok' || (state.group === null && !policy)) {
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
  let head;
  if (policy.group.own) head = 'Group ' + state.group + ', ' + tableName(policy.group) + ':';
  else if (state.group !== null) head = 'Other group (' + state.group + ', no table of its own): ' + tableName(policy.group) + ':';
  else if (policy.group.table === null) head = 'No group: the rules of [fleet] are in force for every node:';
  else head = 'No group: ' + tableName(policy.group) + ' is in force' + (state.policy.fleet ? ', with the rules of [fleet]' : '') + ':';
  ui.policyRules.replaceChildren(
    html('p', { className: 'policy-head', id: 'policy-head', 'data-table': policy.group.table === null ? 'fleet' : policy.group.table, text: head }),
    html('ul', { className: 'rules' }, items),
  );
}

export function renderPanel(scheme, layout) {
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
  panel.append(...coverageNotes(scheme, layout));
  const scroller = html('div', { className: 'scroll' });
  scroller.append(drawGraph(scheme, model, layout));
  panel.append(scroller);
  return panel;
}

export function dated(node) {
  return node.version + (node.date ? ' (built ' + node.date + ')' : '');
}

// Why a graph has no release where the other one has: before its first
// release (`edge` 'start') or after its last ('end'). A title and the
// lines of the explanation.
export function gapText(scheme, span, edge) {
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
export function gapSentence(lines) {
  const [title, ...rest] = lines;
  const body = rest.join(' ');
  return title + ': ' + body.charAt(0).toLowerCase() + body.slice(1);
}

// Whether a band of `columns` columns holds the whole explanation.
export function gapHolds(columns, g, lines) {
  return columns * g.column - 16 >= Math.max(...lines.map(textWidth)) + 24;
}

export function renderCounts(counts, policy) {
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
  if (policy || counts.halted) {
    const by = policy ? tableName(policy.group) + (policy.group.table !== null && state.policy.fleet ? ' and [fleet]' : '') : '';
    list.append(html('li', { className: 'extra' }, [
      html('b', { 'data-count': 'withheld', text: String(counts.withheld) }),
      ' withheld' + (by ? ' by ' + by : '') +
        (counts.halted ? (by ? ', ' : ': ') + (counts.halted === counts.withheld && by ? 'all' : counts.halted) + ' into a halted release' : ''),
    ]));
  }
  return list;
}

export function drawGraph(scheme, model, layout) {
  const root = svg('svg', { class: 'graph', role: 'group', 'aria-label': graphLabel(model) });

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

  // Where this graph has no release while the other one, drawn beside
  // it, has: hatched bands saying why (drawn by placeGraph(), at the
  // zoom's width).
  const gaps = svg('g', { class: 'gaps' }, root);
  // Barriers: a wall across the graph, which every update path crosses
  // through the barrier node.
  const walls = svg('g', { class: 'walls' }, root);
  for (const node of model.nodes) node.wall = node.barrier ? svg('rect', { class: 'wall' }, walls) : null;

  // Edges: arcs above the nodes, leaving a node right of its centre and
  // landing left of it; selected ones drawn last, on top.
  // Every update is drawn once; those the client is not offered at its
  // wariness are kept out of the document, so that a change of wariness
  // or group restyles what is drawn (see refresh()) instead of drawing
  // it again. Withheld updates under the others, the selected release's
  // on top.
  const edgeLayer = svg('g', { class: 'edges' }, root);
  const layers = {
    under: svg('g', { class: 'edges-withheld' }, edgeLayer),
    main: svg('g', { class: 'edges-offered' }, edgeLayer),
    top: svg('g', { class: 'edges-selected' }, edgeLayer),
  };
  for (const edge of model.edges) {
    edge.path = svg('path', { 'data-from': edge.from.version, 'data-to': edge.to.version });
    edge.drawnStyle = null;
    drawnEdges.set(edge.path, edge);
  }
  model.drawn = { root, layers, markers, geometry: layout.geometry, mine, next, peer, gaps, walls };

  const nodeLayer = svg('g', { class: 'nodes' }, root);
  for (const node of model.nodes) {
    drawNode(nodeLayer, scheme, node, { selected: node === mine, peer: node === peer });
  }
  // Where each goes at the zoom: again, in place, on a zoom.
  placeGraph(model, layout);
  styleEdges(model);
  return root;
}

// The update each path drawn stands for.
const drawnEdges = new WeakMap();

// The tooltip of a release or an update, made when the pointer first comes
// over it (a <title> for each of thousands would make drawing slower).
export function addTooltip(target) {
  if (!(target instanceof Element)) return;
  const element = target.closest('.node, path.edge');
  if (!element || (element.firstChild && element.firstChild.nodeName === 'title')) return;
  let text = null;
  if (element.classList.contains('node')) {
    const model = modelOf(element.dataset.scheme);
    const node = model && model.byVersion.get(element.dataset.version);
    text = node ? node.title : null;
  } else {
    const edge = drawnEdges.get(element);
    text = edge ? edge.title : null;
  }
  if (text === null) return;
  const title = svg('title');
  title.textContent = text;
  element.prepend(title);
}

function graphLabel(model) {
  const scheme = SCHEMES.find((s) => s.id === model.scheme);
  return scheme.title + ' update graph of ' + state.stream + ' ' + state.basearch + ': ' +
    model.counts.nodes + ' nodes, ' + model.counts.edges + ' edges';
}

// Styles the drawn updates of `model` as its last evaluate() left them:
// kind, arrow, why withheld, and in the document or out of it (not
// offered at the client's wariness).
export function styleEdges(model) {
  const { layers, markers, geometry: g, mine, next } = model.drawn;
  const policy = model.policy;
  for (const edge of model.edges) {
    const path = edge.path;
    if (edge.hidden) {
      if (path.parentNode) path.remove();
      continue;
    }
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
    // Written only when changed: a step of the slider changes few.
    const arrow = g.arrows || kind === 'in' || kind === 'out';
    const why = edge.withheld ? reasonText(edge.withheld, policy) : '';
    const style = classes.join(' ') + (arrow ? ' >' : '') + why;
    if (edge.drawnStyle !== style) {
      edge.drawnStyle = style;
      path.setAttribute('class', classes.join(' '));
      if (edge.withheld) path.setAttribute('data-withheld', edge.withheld.reason);
      else path.removeAttribute('data-withheld');
      if (arrow) path.setAttribute('marker-end', markers[kind]);
      else path.removeAttribute('marker-end');
      edge.title = edge.from.version + ' → ' + edge.to.version + (why ? '\nwithheld: ' + why : '');
      if (path.firstChild) path.firstChild.textContent = edge.title;
    }
    const layer = mine && (edge.from === mine || edge.to === mine) ? layers.top : edge.withheld ? layers.under : layers.main;
    if (path.parentNode !== layer) layer.append(path);
  }
}

// After a change of the client's wariness or group: the facts evaluated
// again and what is drawn restyled in place (the updates offered, the
// releases withheld, the counts, the rules, the details), without drawing
// the graphs again. Draws them when they are not drawn yet. The address
// is left to the caller (saveState(): the browser's history is slow to
// write at every step of the slider).
export function refresh() {
  const shown = shownSchemes();
  const models = shown.map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length);
  if (!state.view || models.some((m) => !m.drawn || !m.drawn.root.isConnected)) {
    render();
    return;
  }
  const policy = policyView();
  for (const scheme of SCHEMES) {
    const model = modelOf(scheme.id);
    if (model) model.counts = evaluate(model, policy);
  }
  showGroup();
  renderPolicy(policy, shown);
  renderSummary(shown);
  for (const model of models) {
    // The update a client on the selected release takes may have changed.
    if (model.drawn.mine) model.drawn.next = nextUpdate(model.drawn.mine);
    styleEdges(model);
    for (const node of model.nodes) styleNode(node);
    const panel = document.getElementById('panel-' + model.scheme);
    const counts = panel && panel.querySelector('.counts');
    if (counts) counts.replaceWith(renderCounts(model.counts, model.policy));
    model.drawn.root.setAttribute('aria-label', graphLabel(model));
  }
  styleOverviewHalts();
  renderDetails();
}

// A hatched band over columns `from` to `to` of a graph with no release
// there, and the explanation, kept in view while the band is (see
// updateViewport): all its lines when they fit, else the title when it
// fits (the panel's head then has the whole of it), else none.
export function drawGap(root, scheme, layout, height, from, to, lines, edge) {
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

// Keeps the note of a hatched band in the part of the band in view (`box`:
// the scroll position and visible width of the graphs): all of it when
// it fits there, else its title, else nothing.
export function placeGapNote(note, box) {
  const x1 = Math.max(number(note.dataset.x1, 0), box.left + 16);
  const x2 = Math.min(number(note.dataset.x2, 0), box.left + box.width - 16);
  const full = number(note.dataset.width, 0);
  const title = number(note.dataset.titleWidth, 0);
  const width = x2 - x1 >= full ? full : x2 - x1 >= title ? title : null;
  note.classList.toggle('off', width === null);
  note.classList.toggle('title-only', width !== null && width < full);
  if (width !== null) note.setAttribute('transform', 'translate(' + x1.toFixed(1) + ' 0)');
}

export function describe(node) {
  const kinds = [];
  if (node.barrier) kinds.push('barrier');
  if (node.deadend) kinds.push('dead-end');
  if (node.rollout) {
    kinds.push('rollout ' + (node.inProgress ? 'at ' + percent(node.progress) : 'complete'));
  }
  if (releaseWithheld(node)) kinds.push('updates into it withheld (' + node.withheld.reason + ')');
  return kinds.concat(describeRollout(node));
}

// Whether the group's rules or a halt withhold the updates into this
// release in particular (denied, newer than its max_version, halted),
// rather than all.
export function releaseWithheld(node) {
  return Boolean(node.withheld) && ['deny', 'max_version', 'halted'].includes(node.withheld.reason);
}

// Styles a drawn release as its last evaluate() left it: its kind, and
// whether the updates into it are withheld.
function styleNode(node) {
  const group = node.element;
  const classes = ['node'];
  if (node.barrier) classes.push('barrier');
  if (node.deadend) classes.push('deadend');
  if (node.rollout) classes.push('rollout');
  if (node.inProgress) classes.push('in-progress');
  if (releaseWithheld(node)) classes.push('withheld');
  if (node.halt) classes.push('halted');
  if (node.platformHalts.length) classes.push('platform-halted');
  if (node.outcomes) classes.push('has-outcomes');
  if (node.marks.selected) classes.push('selected');
  if (node.marks.peer) classes.push('peer');
  const kinds = describe(node);
  const style = classes.join(' ') + kinds.join(', ');
  if (node.drawnStyle === style) return;
  node.drawnStyle = style;
  group.setAttribute('class', classes.join(' '));
  group.setAttribute('aria-label', node.version + (kinds.length ? ', ' + kinds.join(', ') : ''));
  node.title =
    node.version + (kinds.length ? ' (' + kinds.join(', ') + ')' : '') +
    (node.date ? '\nbuilt ' + node.date : '') + '\nage index ' + node.ageIndex;
  if (group.firstChild && group.firstChild.nodeName === 'title') group.firstChild.textContent = node.title;
}

// Draws a release: its group (its kind in its classes, see styleNode())
// and every part it may show at some zoom, each placed and sized by
// placeNode() (place.js): a part the zoom leaves out (a version label
// between two labelled columns, a percentage or a dead-end's bar when
// small) is kept, out of the drawing, for the next zoom.
export function drawNode(layer, scheme, node, marks) {
  const group = svg('g', {
    tabindex: -1,
    role: 'button',
    'aria-pressed': marks.selected ? 'true' : 'false',
    'data-scheme': scheme.id,
    'data-version': node.version,
  }, layer);
  node.element = group;
  node.marks = marks;
  node.drawnStyle = null;
  node.placedSize = null;
  styleNode(node);
  const parts = { hit: svg('circle', { class: 'hit' }, group) };
  if (marks.selected || marks.peer) parts.halo = svg('circle', { class: 'halo' }, group);
  if (node.inProgress) {
    parts.ringBg = svg('circle', { class: 'ring-bg' }, group);
    if (node.progress > 0) parts.ring = svg('circle', { class: 'ring', transform: 'rotate(-90)' }, group);
  }
  parts.shape = svg(node.barrier ? 'rect' : 'circle', { class: 'shape' }, group);
  if (node.deadend) parts.glyph = svg('rect', { class: 'glyph', x: -5, y: -1.5, width: 10, height: 3 }, group);
  if (node.inProgress) {
    parts.pct = svg('text', { class: 'pct', 'text-anchor': 'middle' }, group);
    parts.pct.textContent = Math.floor(node.progress * 100) + '%';
  }
  parts.label = svg('text', { class: 'version', 'text-anchor': 'end' }, group);
  parts.label.textContent = node.version;
  node.parts = parts;
  drawRolloutMarks(group, node);
}

// The release that holds the graphs' one tab stop: the one last moved to
// with the keys, else the selected one, else the newest of the first
// graph shown.
function tabStop(models) {
  for (const key of [state.cursor, state.selected]) {
    const model = key && models.find((m) => m.scheme === key.scheme);
    const node = model && model.byVersion.get(key.version);
    if (node) return node;
  }
  return models.length ? models[0].nodes[models[0].nodes.length - 1] : null;
}

// The graphs are one tab stop: the release tabStop() names.
function placeTabStop(models) {
  const stop = tabStop(models);
  if (stop && stop.element) stop.element.setAttribute('tabindex', '0');
}

// Moves the graphs' tab stop, and the focus, to `node`.
export function focusRelease(node) {
  if (!node || !node.element) return;
  for (const other of ui.panels.querySelectorAll('.node[tabindex="0"]')) other.setAttribute('tabindex', '-1');
  node.element.setAttribute('tabindex', '0');
  state.cursor = { scheme: node.scheme, version: node.version };
  node.element.focus();
}

// The release a key moves to from `node`: the one before or after it in
// its graph (ArrowLeft, ArrowRight, Home, End), or the same release, else
// the nearest, in the other graph shown (ArrowUp, ArrowDown).
export function releaseFrom(node, key) {
  const model = modelOf(node.scheme);
  if (key === 'ArrowLeft') return model.nodes[node.index - 1] || null;
  if (key === 'ArrowRight') return model.nodes[node.index + 1] || null;
  if (key === 'Home') return model.nodes[0];
  if (key === 'End') return model.nodes[model.nodes.length - 1];
  const shown = shownSchemes().map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length);
  const at = shown.indexOf(model) + (key === 'ArrowDown' ? 1 : -1);
  const other = shown[at];
  if (!other) return null;
  const twin = other.byVersion.get(node.version);
  if (twin) return twin;
  let nearest = null;
  for (const candidate of other.nodes) {
    if (!nearest || Math.abs(candidate.ageIndex - node.ageIndex) < Math.abs(nearest.ageIndex - node.ageIndex)) nearest = candidate;
  }
  return nearest;
}
