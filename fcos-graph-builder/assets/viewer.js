// Graph viewer of the Fedora CoreOS update service.
//
// Reads the configured streams from `v1/streams` and the graphs of one
// stream and architecture from `v1/graph` (both payload schemes), and draws
// them left to right as SVG: one column per release in release order (the
// columns of the two schemes line up by age index), updates as arcs whose
// height grows with the distance they jump. Barriers, dead-ends and rollouts
// are marked, and a client wariness slider shows what such a client is
// offered. An overview strip shows the whole history at once; the graphs
// zoom from fit-to-width to full size. When the server has a fleet policy
// (`v1/policy`), a group picker shows what a client of a Zincati group is
// offered under its rules: its wariness clamped, and the updates the rules
// withhold drawn dashed, with why. The page state lives in the query
// string, so a view can be linked to.
//
// ES modules, served as they are (no build step), by concern: `page.js`
// (state, elements, DOM helpers), `data.js` (models and loading),
// `policy.js` (the fleet policy's rules), `layout.js` (geometry, overview,
// zoom), `draw.js` (the SVG, the rules and the summary), `details.js`
// (the selected release) and `controls.js` (the address, the controls
// and the keys). Served under a Content-Security-Policy
// without 'unsafe-inline': the page is built with DOM calls only (no HTML
// strings, no inline styles).

import { start } from './controls.js';

start();
