// Layout: the geometry of the graphs at a zoom, the scrolling boxes, the
// releases in view, the overview strip and the zoom.

import { coverage, modelOf } from './data.js';
import { placeGapNote, render } from './draw.js';
import { zoomView } from './place.js';
import { drawOverviewHalts } from './rollouts.js';
import { $, COLUMN, LABEL_GAP, OVERVIEW_LEFT, OVERVIEW_RIGHT, OVERVIEW_ROW, RADIUS, SCHEMES, ZOOM_MAX, clamp, number, plural, state, svg, ui } from './page.js';

// ---- geometry --------------------------------------------------------

// Estimated width of a version label (12px digits and dots).
export function labelWidth(text) {
  let width = 0;
  for (const c of text) width += c === '.' ? 4 : 7.8;
  return width;
}

// Estimated width of a line of 12px text.
export function textWidth(text) {
  return text.length * 6.6;
}

export function shownSchemes() {
  return SCHEMES.filter((s) => state.scheme === 'both' || state.scheme === s.id);
}

// Sizes of what is drawn at `zoom`: below full size, nodes shrink, labels
// thin out to one every few columns, and arcs flatten.
export function geometry(zoom) {
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

export function arcHeight(span, g) {
  return (14 + 26 * Math.sqrt(Math.max(span, 1))) * g.arcScale;
}

// The scrolling box of each graph drawn (they scroll together).
export function scrollers() {
  return [...ui.panels.querySelectorAll('.scroll')];
}

// The release column at `fraction` of the visible width of the graphs.
export function viewAnchor(fraction) {
  const scroller = scrollers()[0];
  const view = state.view;
  if (!scroller || !view) return null;
  const px = scroller.scrollLeft + scroller.clientWidth * fraction;
  return { column: (px - view.left) / view.column, fraction };
}

// Scrolls the graphs so that release column `column` is at `fraction`
// of their visible width (`width`, when the caller read it already), and
// updates what follows the view unless `quiet`.
export function scrollToColumn(column, fraction, width, quiet) {
  const view = state.view;
  for (const scroller of scrollers()) {
    const visible = width === undefined ? scroller.clientWidth : width;
    scroller.scrollLeft = view.left + column * view.column - visible * fraction;
  }
  if (!quiet) updateViewport();
}

// The scroll position and visible width of the graphs, read at once
// (reading them after a change of the page makes the browser lay it out).
function scrollBox(scroller) {
  return { left: scroller.scrollLeft, width: scroller.clientWidth };
}

// The columns fully in view, as {first, last} (last < first: none); `box`
// from scrollBox() when read already.
export function visibleColumns(box) {
  const scroller = scrollers()[0];
  const view = state.view;
  if (!scroller || !view) return null;
  const { left, width } = box || scrollBox(scroller);
  const margin = view.geometry.radius;
  const first = Math.ceil((left + margin - view.left) / view.column);
  const last = Math.floor((left + width - margin - view.left) / view.column);
  return { first: Math.max(first, 0), last: Math.min(last, view.ages.length - 1) };
}

// Scrolls the selected release into view: centred when `center` or when
// it is out of view, else left where it is.
export function revealSelected(center) {
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

// ---- overview and zoom ---------------------------------------------------

// The overview: every release of the graphs shown, fit to the width of
// the page, one row per graph, barriers, dead-ends and rollouts in
// progress marked, the years under them, and a window over what the
// graphs below show. Click or drag in it to move the graphs there.
let overviewKey = '';
export function renderNavigator(hasReleases) {
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
  // Drawn again only when what it shows changes (not on a zoom).
  const selected = state.selected ? state.selected.scheme + ' ' + state.selected.version : '';
  const key = [state.loaded, width, count, selected, state.rollouts.signature, ...rows.map((s) => s.id + ' ' + modelOf(s.id).nodes.filter((n) => n.inProgress).map((n) => n.version))].join('|');
  if (key === overviewKey && ui.overview.childElementCount) return;
  overviewKey = key;

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
    drawOverviewHalts(row, model, (node) => x(view.columns.get(node.ageIndex)), y);
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
// and the notes of the hatched bands kept in view. Reads the scroll
// position once, before changing anything.
export function updateViewport() {
  const view = state.view;
  const scroller = scrollers()[0];
  if (!view || !scroller) {
    ui.inView.textContent = '';
    return;
  }
  const box = scrollBox(scroller);
  const visible = visibleColumns(box);
  const count = view.ages.length;
  const shown = Math.max(visible.last - visible.first + 1, 0);
  fold(visible);
  const frame = $('overview-window');
  if (frame && view.overview) {
    const fromColumn = clamp((box.left - view.left) / view.column, 0, count - 1);
    const toColumn = clamp((box.left + box.width - view.left) / view.column, 0, count - 1);
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
  for (const note of ui.panels.querySelectorAll('.gap-note')) placeGapNote(note, box);
  showZoom();
}

// With both graphs, a graph that has no release in view (the OCI graph
// over the years before its first release) is folded to the height of
// its note, scrolled to it, instead of showing a tall empty band.
function fold(visible) {
  const both = shownSchemes().length > 1;
  for (const scroller of scrollers()) {
    const panel = scroller.closest('.panel');
    const span = coverage(panel.dataset.scheme);
    let out = false;
    if (both && span && visible) {
      const first = state.view.columns.get(span.first.ageIndex);
      const last = state.view.columns.get(span.last.ageIndex);
      out = last < visible.first || first > visible.last;
    }
    if (out === panel.classList.contains('folded')) continue;
    panel.classList.toggle('folded', out);
    const note = out ? scroller.querySelector('.gap-note') : null;
    const line = note ? note.querySelector('text') : null;
    scroller.scrollTop = line ? Math.max(0, number(line.getAttribute('y'), 0) - 24) : 0;
  }
}

let viewportFrame = 0;
export function scheduleViewport() {
  if (viewportFrame) return;
  viewportFrame = window.requestAnimationFrame(() => {
    viewportFrame = 0;
    updateViewport();
  });
}

export function showZoom() {
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
export function zoomBy(factor, fraction) {
  const view = state.view;
  if (!view) return;
  setZoom(view.zoom * factor, fraction);
}

export function setZoom(zoom, fraction, column) {
  const view = state.view;
  if (!view) return;
  state.zoom = zoom <= view.minZoom * 1.001 ? 'fit' : Math.min(zoom, ZOOM_MAX);
  // From a view of the whole history, zooming in opens on the selected
  // release, else on the newest ones, rather than on the middle.
  const visible = visibleColumns();
  if (column === undefined && visible && visible.first === 0 && visible.last === view.ages.length - 1) {
    zoomView(state.selected ? { reveal: true, center: true } : { end: true });
    return;
  }
  zoomView({ anchor: { fraction, column } });
}

// The wheel scrolls the graphs sideways (until an end is reached, then
// the page); with Ctrl, it zooms around the pointer.
let wheelZoom = { factor: 1, frame: 0, fraction: 0.5 };
export function onWheel(event, scroller) {
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
export function overviewColumn(event) {
  const view = state.view;
  if (!view || !view.overview || view.overview.count < 2) return 0;
  const bounds = ui.overview.getBoundingClientRect();
  const px = ((event.clientX - bounds.left) * view.overview.width) / bounds.width;
  return clamp((px - OVERVIEW_LEFT) / view.overview.step, 0, view.overview.count - 1);
}

export function startOverview() {
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
export function goTo(text) {
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
