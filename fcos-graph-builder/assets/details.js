// The details of the selected release: what it is, its rollout, the
// updates into and out of it (offered, hidden at the wariness, withheld by
// the group's rules, and why), and the update a node on it takes.

import { modelOf, nextUpdate } from './data.js';
import { render } from './draw.js';
import { PHONE, SCHEMES, html, minutesText, now, percent, plural, reason, releaseNotesUrl, state, ui, utc } from './page.js';
import { clientWariness, reasonText, tableName } from './policy.js';
import { rolloutRows } from './rollouts.js';

export function select(scheme, version, reveal) {
  const same = state.selected && state.selected.scheme === scheme && state.selected.version === version;
  state.selected = same ? null : { scheme, version };
  render(reveal ? { reveal: true } : undefined);
  // On a phone the details cover the bottom of the screen: the graph of
  // the release goes to the top, above them.
  if (state.selected && window.matchMedia(PHONE).matches) {
    const panel = document.getElementById('panel-' + scheme);
    if (panel) panel.scrollIntoView({ block: 'start' });
  }
}

export function renderDetails() {
  const selected = state.selected;
  const graph = selected && state.graphs[selected.scheme];
  const node = graph && graph.model ? graph.model.byVersion.get(selected.version) : null;
  ui.detailsEmpty.hidden = Boolean(node);
  // On a phone, the details open over the bottom of the screen.
  document.body.classList.toggle('has-details', Boolean(node));
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
    // Complete since its end; else where it is at the time of the view.
    const at = utc(now()) + (state.at === null ? ' (now)' : '');
    const phase = now() < r.startEpoch
      ? 'not started at ' + at
      : node.progress >= 1
        ? 'complete since ' + utc(r.startEpoch + (r.durationMinutes || 0) * 60)
        : 'in progress at ' + at;
    row('rollout-progress', 'Progress', html('b', { text: percent(node.progress) }), ' ' + phase);
    row('rollout-clients', 'Offered to', 'clients of wariness up to ' + node.progress.toFixed(3));
  } else {
    row('rollout', 'Rollout', 'no');
  }
  rolloutRows(node, row);

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
  const without = nextUpdate(node, true);
  row(
    'next',
    'Next update',
    next ? next.version : 'none',
    html('span', { className: 'muted', text: next ? ' (the highest age index: what a client at this wariness takes)' : '' }),
    ...(without && without !== next && without.withheld
      ? [html('span', {
        className: 'withheld-note',
        'data-reason': without.withheld.reason,
        text: (without.withheld.reason === 'halted' ? 'Without the halt: ' : 'Without the group\'s rules: ') + without.version +
          ', withheld: ' + reasonText(without.withheld, policy) + '.',
      })]
      : []),
  );
  ui.detailsList.replaceChildren(...rows);
}

export function versionList(nodes, scheme, highlight) {
  const sorted = [...nodes].sort((a, b) => a.ageIndex - b.ageIndex);
  const list = html('span', { className: 'versions' });
  for (const target of sorted) {
    const button = html('button', { type: 'button', className: 'link' + (target === highlight ? ' next' : ''), text: target.version });
    button.addEventListener('click', () => select(scheme, target.version, true));
    list.append(button);
  }
  return list;
}
