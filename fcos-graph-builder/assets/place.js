// Placing what is drawn at a zoom: the columns and sizes of the graphs,
// each release and its parts, each update's arc, the barriers' walls and
// the hatched bands. Done when the graphs are drawn, and again, in place,
// on a zoom: a zoom moves and resizes the elements drawn (the same
// elements, placed by the same code) instead of drawing the graphs again,
// and leaves the rest of the page (the rules, the summary, the details)
// as it is.

import { saveStateSoon } from './controls.js';
import { coverage, modelOf } from './data.js';
import { drawGap, gapHolds, gapSentence, gapText, render, styleEdges } from './draw.js';
import { arcHeight, geometry, labelWidth, revealSelected, scrollToColumn, scrollers, shownSchemes, updateViewport, viewAnchor } from './layout.js';
import { COLUMN, LABEL_ANGLE, RIGHT, SCHEMES, ZOOM_MAX, clamp, html, state, ui } from './page.js';
import { placeRolloutMarks } from './rollouts.js';

// The columns and geometry of the graphs of `models` at the zoom picked,
// in the width of the panels: `layout` for drawing, `view` for state.view.
export function computeLayout(models) {
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
  const columns = new Map(sortedAges.map((age, i) => [age, i]));
  const layout = {
    geometry: g,
    columns,
    ages: sortedAges,
    left,
    below: Math.ceil(g.labelTop + longest * Math.sin(radians) + 18),
  };
  const view = { geometry: g, zoom, fitZoom, minZoom, left, column: g.column, columns, ages: sortedAges };
  return { layout, view };
}

// Shows or leaves out a part of what is drawn.
function show(element, shown) {
  if (shown) element.removeAttribute('display');
  else element.setAttribute('display', 'none');
}

// Places everything drawGraph() drew for `model` at `layout`'s zoom.
export function placeGraph(model, layout) {
  const drawn = model.drawn;
  const g = layout.geometry;
  const columns = layout.columns;
  const x = (node) => layout.left + columns.get(node.ageIndex) * g.column;
  let maxSpan = 1;
  for (const edge of model.edges) {
    maxSpan = Math.max(maxSpan, Math.abs(columns.get(edge.to.ageIndex) - columns.get(edge.from.ageIndex)));
  }
  const base = Math.ceil(arcHeight(maxSpan, g)) + 28;
  const width = Math.ceil(layout.left + (columns.size - 1) * g.column + RIGHT);
  const height = base + layout.below;
  drawn.root.setAttribute('width', width);
  drawn.root.setAttribute('height', height);
  drawn.root.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  drawn.geometry = g;

  // The hatched bands: their notes depend on the room they have.
  const scheme = SCHEMES.find((s) => s.id === model.scheme);
  drawn.gaps.replaceChildren();
  const span = coverage(scheme.id);
  if (span) {
    const firstColumn = columns.get(span.first.ageIndex);
    const lastColumn = columns.get(span.last.ageIndex);
    if (firstColumn > 0) {
      drawGap(drawn.gaps, scheme, layout, height, 0, firstColumn - 1, gapText(scheme, span, 'start'), 'start');
    }
    if (lastColumn < columns.size - 1) {
      drawGap(drawn.gaps, scheme, layout, height, lastColumn + 1, columns.size - 1, gapText(scheme, span, 'end'), 'end');
    }
  }

  drawn.walls.setAttribute('class', 'walls' + (g.wall < 12 ? ' narrow' : ''));
  for (const node of model.nodes) {
    if (!node.wall) continue;
    node.wall.setAttribute('x', x(node) - g.wall / 2);
    node.wall.setAttribute('y', 6);
    node.wall.setAttribute('width', g.wall);
    node.wall.setAttribute('height', base + g.radius);
    node.wall.setAttribute('rx', Math.min(5, g.wall / 2));
  }

  const offset = Math.min(3, g.radius / 3);
  for (const edge of model.edges) {
    const x1 = x(edge.from) + offset;
    const x2 = x(edge.to) - offset;
    const span = Math.abs(columns.get(edge.to.ageIndex) - columns.get(edge.from.ageIndex));
    const lift = arcHeight(span, g) * 4 / 3; // a cubic's peak is 3/4 of its control height
    const y1 = base - g.radius;
    const y2 = base - (edge.to.inProgress ? g.ring : g.radius) - 1;
    edge.path.setAttribute('d', 'M' + x1 + ' ' + y1 + ' C' + x1 + ' ' + (y1 - lift) + ' ' + x2 + ' ' + (y2 - lift) + ' ' + x2 + ' ' + y2);
  }

  for (const node of model.nodes) {
    const column = columns.get(node.ageIndex);
    const label = column % g.labelEvery === 0 || node.marks.selected || node.marks.peer;
    placeNode(node, x(node), base, g, label);
  }
}

// Places a release drawn by drawNode() at (`cx`, `cy`), sized for `g`,
// its version label shown when `label`. Its parts are written only when
// their size changed (from full size down to 40%, a zoom moves releases
// without resizing them): each element written is styled again by the
// browser, which is most of what a zoom costs.
function placeNode(node, cx, cy, g, label) {
  const parts = node.parts;
  node.element.setAttribute('transform', 'translate(' + cx + ' ' + cy + ')');
  const hit = Math.max(g.radius + 2, Math.min(g.radius + 10, g.column / 2));
  // Barriers, dead-ends and rollouts in progress stay visible when small.
  const r = node.barrier || node.deadend || node.inProgress ? Math.max(g.radius, 3.5) : g.radius;
  const ring = Math.max(g.ring, r + 1.5);
  const size = [hit, r, ring, g.percents, g.labelTop, label].join(' ');
  if (node.placedSize === size) return;
  node.placedSize = size;
  parts.hit.setAttribute('r', hit);
  if (parts.halo) parts.halo.setAttribute('r', ring + 4);
  if (parts.ringBg) parts.ringBg.setAttribute('r', ring);
  if (parts.ring) {
    const circumference = 2 * Math.PI * ring;
    parts.ring.setAttribute('r', ring);
    parts.ring.setAttribute('stroke-dasharray', (node.progress * circumference).toFixed(2) + ' ' + circumference.toFixed(2));
  }
  if (node.barrier) {
    parts.shape.setAttribute('x', -r);
    parts.shape.setAttribute('y', -r);
    parts.shape.setAttribute('width', 2 * r);
    parts.shape.setAttribute('height', 2 * r);
    parts.shape.setAttribute('rx', Math.min(2, r / 3));
  } else {
    parts.shape.setAttribute('r', r);
  }
  if (parts.glyph) show(parts.glyph, r >= 6);
  if (parts.pct) {
    show(parts.pct, g.percents);
    parts.pct.setAttribute('y', ring + 13);
  }
  show(parts.label, label);
  if (label) parts.label.setAttribute('transform', 'translate(4 ' + g.labelTop + ') rotate(-' + LABEL_ANGLE + ')');
  placeRolloutMarks(node, r, g);
}

// Why a graph starts later (or ends earlier) than the other: in a band
// over the stretch when both are drawn and it holds the text (see
// drawGap()), else in a note in its panel, under the counts: those notes.
export function coverageNotes(scheme, layout) {
  const notes = [];
  const span = coverage(scheme.id);
  const both = shownSchemes().length > 1;
  for (const [edge, columns] of span ? [['start', span.before.length], ['end', span.after.length]] : []) {
    const lines = columns ? gapText(scheme, span, edge) : null;
    if (lines && !(both && gapHolds(columns, layout.geometry, lines))) {
      notes.push(html('p', { className: 'coverage', 'data-edge': edge, text: gapSentence(lines) }));
    }
  }
  return notes;
}

// A zoom (state.zoom changed): the graphs drawn placed again at it, and
// scrolled as render() scrolls them with `options` (`anchor`, `end`,
// `reveal`, `center`). Draws them when they are not drawn yet.
export function zoomView(options) {
  const opts = options || {};
  const models = shownSchemes().map((s) => modelOf(s.id)).filter((m) => m && m.nodes.length);
  if (!state.view || !models.length || models.some((m) => !m.drawn || !m.drawn.root.isConnected)) {
    render(opts);
    return;
  }
  // What is read of the page is read before anything changes: the
  // browser lays the page out once, when the graphs are scrolled.
  const anchor = opts.anchor ? viewAnchor(opts.anchor.fraction) : null;
  if (anchor && opts.anchor.column !== undefined) anchor.column = opts.anchor.column;
  const width = scrollers()[0].clientWidth;
  const { layout, view } = computeLayout(models);
  // The overview does not change with the zoom.
  view.overview = state.view.overview;
  state.view = view;
  for (const model of models) {
    placeGraph(model, layout);
    // Arrows come and go with the zoom.
    styleEdges(model);
    const panel = document.getElementById('panel-' + model.scheme);
    const notes = coverageNotes(SCHEMES.find((s) => s.id === model.scheme), layout);
    const shown = panel.querySelectorAll(':scope > .coverage');
    const text = (list) => [...list].map((note) => note.dataset.edge + note.textContent).join('|');
    if (text(shown) !== text(notes)) {
      for (const note of shown) note.remove();
      panel.querySelector('.scroll').before(...notes);
    }
  }
  ui.panels.dataset.zoom = view.zoom.toFixed(4);
  if (opts.end) {
    for (const scroller of scrollers()) scroller.scrollLeft = scroller.scrollWidth;
  }
  if (anchor) scrollToColumn(anchor.column, anchor.fraction, width, true);
  if (opts.reveal) revealSelected(Boolean(opts.center));
  updateViewport();
  saveStateSoon();
}
