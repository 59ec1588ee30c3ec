// Controls: the page state kept in the address, and the pickers, slider,
// buttons and keys that change it.

import { fillArches, loadGraphs, loadPolicy, loadStreams, modelOf, nodeUuid, showReleaseNotes, showWariness, warinessFromUuid } from './data.js';
import { select } from './details.js';
import { addTooltip, focusRelease, refresh, releaseFrom, render } from './draw.js';
import { goTo, setZoom, startOverview, zoomBy } from './layout.js';
import { PHONE, POLICY_STALE_MS, ZOOM_MAX, ZOOM_STEP, clamp, integer, number, state, ui } from './page.js';
import { otherGroupName } from './policy.js';
import { loadRollouts } from './rollouts.js';

export function readState() {
  const query = new URLSearchParams(window.location.search);
  state.stream = query.get('stream') || '';
  state.basearch = query.get('basearch') || '';
  const scheme = query.get('scheme');
  if (scheme === 'checksum' || scheme === 'oci') state.scheme = scheme;
  const wariness = number(query.get('wariness'), 0);
  state.wariness = clamp(wariness, 0, 1);
  // A node UUID: the wariness derived from it.
  state.uuid = nodeUuid(query.get('uuid') || '');
  if (state.uuid !== null) state.wariness = warinessFromUuid(state.uuid);
  state.group = query.get('group') || null;
  const zoom = query.get('zoom');
  state.zoom = zoom === 'fit' ? 'fit' : clamp(number(zoom, 1), 0.01, ZOOM_MAX);
  const at = integer(query.get('at'), null);
  state.at = at;
  const release = query.get('release');
  const graph = query.get('graph');
  if (release && (graph === 'checksum' || graph === 'oci')) state.selected = { scheme: graph, version: release };
}

// Seconds since the epoch of `YYYY-MM-DD HH:MM` in UTC (a T between
// date and time is taken too), or undefined when it is no such time.
export function utcMinute(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})$/.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute] = match.slice(1).map(Number);
  const epoch = Date.UTC(year, month - 1, day, hour, minute);
  const date = new Date(epoch);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59) return undefined;
  return epoch / 1000;
}

export function saveState() {
  const query = new URLSearchParams();
  if (state.stream) query.set('stream', state.stream);
  if (state.basearch) query.set('basearch', state.basearch);
  if (state.scheme !== 'both') query.set('scheme', state.scheme);
  if (state.group !== null) query.set('group', state.group);
  if (state.uuid !== null) query.set('uuid', state.uuid);
  else if (state.wariness) query.set('wariness', state.wariness.toFixed(2));
  if (state.zoom !== 1) query.set('zoom', state.zoom === 'fit' ? 'fit' : state.zoom.toFixed(2));
  if (state.at !== null) query.set('at', String(state.at));
  if (state.selected) {
    query.set('graph', state.selected.scheme);
    query.set('release', state.selected.version);
  }
  const search = '?' + query;
  if (search !== window.location.search) window.history.replaceState(null, '', search);
}

// Writes the address after the current task: the browser's history is
// slow to write (a few milliseconds), and a burst of zoom steps writes it
// once.
let saveTimer = 0;
export function saveStateSoon() {
  window.clearTimeout(saveTimer);
  saveTimer = window.setTimeout(saveState, 0);
}

export function showControls() {
  ui.wariness.value = String(state.wariness);
  ui.uuid.value = state.uuid || '';
  showWariness();
  ui.at.value = state.at === null ? '' : new Date(state.at * 1000).toISOString().slice(0, 16).replace('T', ' ');
  ui.at.setCustomValidity('');
  for (const radio of document.querySelectorAll('input[name="scheme"]')) {
    radio.checked = radio.value === state.scheme;
  }
}

export function start() {
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
    // The slider moved: no longer the wariness of the UUID.
    if (state.uuid !== null) {
      state.uuid = null;
      ui.uuid.value = '';
    }
    showWariness();
    refresh();
  });
  ui.wariness.addEventListener('change', saveState);
  // A node UUID: the wariness Zincati's node gets from it when none is
  // configured, and what that node is offered. Anything but a UUID is
  // refused, saying so, and changes nothing.
  ui.uuid.addEventListener('change', () => {
    const text = ui.uuid.value.trim();
    const uuid = nodeUuid(text);
    if (text !== '' && uuid === null) {
      ui.uuid.setCustomValidity('Not a node UUID: paste the 32 hex digits of the node\'s UUID (dashes allowed), as Zincati sends it.');
      ui.uuid.reportValidity();
      return;
    }
    ui.uuid.setCustomValidity('');
    if (uuid === state.uuid) return;
    state.uuid = uuid;
    if (uuid !== null) state.wariness = warinessFromUuid(uuid);
    ui.wariness.value = String(state.wariness);
    showWariness();
    refresh();
    saveState();
  });
  ui.group.addEventListener('change', () => {
    const value = ui.group.value;
    state.group = value === '' ? null : value === 'other' ? otherGroupName() : value.slice('group:'.length);
    showWariness();
    refresh();
    saveState();
    // Whether a group is closed now is the server's answer of when the
    // policy was read: read it again when that is a while ago.
    if (state.at === null && Date.now() - state.policy.fetched > POLICY_STALE_MS) loadPolicy();
  });
  // The time, in UTC, as YYYY-MM-DD HH:MM (24 hours), whatever the
  // browser's locale; empty is now. Anything else is refused, saying so,
  // and the time shown stays.
  ui.at.addEventListener('change', () => {
    const text = ui.at.value.trim();
    const at = text === '' ? null : utcMinute(text);
    if (at === undefined) {
      ui.at.setCustomValidity('Not a time: write it as YYYY-MM-DD HH:MM, in UTC (for example 2027-01-15 08:50), or leave it empty for now.');
      ui.at.reportValidity();
      return;
    }
    ui.at.setCustomValidity('');
    if (at === state.at) return;
    state.at = at;
    render();
    saveState();
  });
  ui.now.addEventListener('click', () => {
    state.at = null;
    showControls();
    render();
  });
  ui.reload.addEventListener('click', () => {
    loadPolicy();
    loadRollouts();
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
  // On a phone the legend starts closed: the graphs start in the first
  // screen.
  if (window.matchMedia(PHONE).matches) {
    ui.legendBox.open = false;
    ui.more.open = false;
  }
  // A new width: the overview and fit-to-width follow.
  let width = ui.panels.clientWidth;
  new ResizeObserver(() => {
    if (ui.panels.clientWidth === width) return;
    width = ui.panels.clientWidth;
    if (state.view) render({ anchor: { fraction: 0.5 } });
  }).observe(ui.panels);
  // The releases: a click or Enter selects one; the graphs are one tab
  // stop, the arrow keys move between releases (left and right along the
  // history, up and down between the graphs), Home and End to either end.
  const releaseOf = (target) => {
    const element = target instanceof Element ? target.closest('.node') : null;
    const model = element && modelOf(element.dataset.scheme);
    return model ? model.byVersion.get(element.dataset.version) : null;
  };
  ui.panels.addEventListener('click', (event) => {
    const node = releaseOf(event.target);
    if (node) select(node.scheme, node.version);
  });
  ui.panels.addEventListener('pointerover', (event) => addTooltip(event.target));
  ui.panels.addEventListener('keydown', (event) => {
    const node = releaseOf(event.target);
    if (!node || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      state.cursor = { scheme: node.scheme, version: node.version };
      select(node.scheme, node.version);
    } else if (['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End'].includes(event.key)) {
      event.preventDefault();
      focusRelease(releaseFrom(node, event.key));
    }
  });
  ui.skip.addEventListener('click', (event) => {
    const stop = ui.panels.querySelector('.node[tabindex="0"]');
    if (!stop) return;
    event.preventDefault();
    stop.focus();
  });
  // Escape closes the details; + and - zoom (but in a text field).
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.selected) {
      state.selected = null;
      render();
      return;
    }
    const target = event.target;
    const typing = target instanceof HTMLInputElement && target.type !== 'range' && target.type !== 'radio' ||
      target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === '+' || event.key === '=') {
      event.preventDefault();
      zoomBy(ZOOM_STEP, 0.5);
    } else if (event.key === '-') {
      event.preventDefault();
      zoomBy(1 / ZOOM_STEP, 0.5);
    }
  });
  document.getElementById('controls').addEventListener('submit', (event) => event.preventDefault());
  loadPolicy();
  loadRollouts();
  loadStreams();
}
