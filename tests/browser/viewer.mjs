// End-to-end test of the graph viewer in a real Chromium: opens the page of
// a running graph-builder, picks a stream and an architecture, checks the
// counts and the drawing of both graphs against the graphs the server
// serves, clicks releases and checks the details panel, moves the wariness
// slider, and saves a screenshot.
//
//   node viewer.mjs --url http://127.0.0.1:8080/ --screenshot viewer.png \
//       [--stream stable] [--basearch x86_64] [--at EPOCH] [--wariness 0.7] \
//       [--click VERSION [--expect-payload PAYLOAD]] \
//       [--rollout VERSION [--expect-progress 60%]]
//
// --click: a release of the OSTree graph to click (default: its last);
// --rollout: a rollout of the OCI graph to click last (its progress is
// checked when --expect-progress is given); --at pins the time rollout
// progress is computed at. Exits 0 when every check passed.

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
  },
});
if (!args.url || !args.screenshot) {
  console.error('usage: node viewer.mjs --url BASE_URL --screenshot FILE.png [options]');
  process.exit(2);
}
const base = new URL(args.url);
const at = args.at === undefined ? null : Number.parseInt(args.at, 10);
const wariness = Number.parseFloat(args.wariness);

let checks = 0;
function check(condition, what, detail) {
  if (!condition) {
    throw new Error('check failed: ' + what + (detail === undefined ? '' : ': ' + JSON.stringify(detail)));
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
  const response = await fetch(new URL(relative, base), { headers: { Accept: 'application/json' } });
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

    const start = new URL(base);
    if (at !== null) start.searchParams.set('at', String(at));
    await page.goto(start.href);
    equal(await page.title(), 'Fedora CoreOS update graph', 'page title');

    // Pickers: filled from /v1/streams.
    await page.locator('#stream:not([disabled])').waitFor();
    const streamOptions = await page.locator('#stream option').evaluateAll((os) => os.map((o) => o.value));
    equal(streamOptions, Object.keys(streams), 'stream picker lists the configured streams');
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
    await page.locator('#panels[data-scope="' + args.stream + '/' + args.basearch + '"]').waitFor();
    check(page.url().includes('basearch=' + args.basearch), 'the address follows the pickers', page.url());

    // Both schemes side by side, counts and drawing matching the graphs.
    for (const scheme of ['checksum', 'oci']) {
      const shown = await pageCounts(page, scheme);
      const expected = expectedCounts(raw[scheme], 0, now);
      equal(shown.counts, expected, scheme + ' counts');
      equal(shown.drawnNodes, expected.nodes, scheme + ' nodes drawn');
      equal(shown.drawnEdges, expected.edges, scheme + ' edges drawn');
      equal(shown.drawnWalls, expected.barriers, scheme + ' barriers drawn');
      equal(shown.drawnDeadends, expected.deadends, scheme + ' dead-ends drawn');
      const inProgress = raw[scheme].nodes.filter(
        (n) => n.metadata[PREFIX + 'updates.rollout'] === 'true' && rolloutProgress(n.metadata, now) < 1,
      ).length;
      equal(shown.drawnRings, inProgress, scheme + ' rollouts in progress drawn');
      const order = await page
        .locator('#panel-' + scheme + ' .node')
        .evaluateAll((nodes) => nodes.map((n) => n.dataset.version));
      equal(order, raw[scheme].nodes.map((n) => n.version), scheme + ' nodes in release order');
      const xs = await page
        .locator('#panel-' + scheme + ' .node')
        .evaluateAll((nodes) => nodes.map((n) => n.getBoundingClientRect().x));
      check(xs.every((x, i) => i === 0 || x > xs[i - 1]), scheme + ' nodes drawn left to right', xs);
    }

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
      equal(shown.counts, expected, scheme + ' counts at wariness ' + wariness);
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
      }
    }

    equal(problems, [], 'no console error, failed request or HTTP error');
    fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
    check(fs.statSync(args.screenshot).size > 10_000, 'screenshot saved to ' + args.screenshot);
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
  console.log('viewer test: all ' + checks + ' checks passed');
  clearTimeout(timer);
} catch (error) {
  console.error('viewer test: ' + (error && error.stack ? error.stack : error));
  console.error('viewer test: ' + checks + ' checks passed before the failure');
  process.exit(1);
}
