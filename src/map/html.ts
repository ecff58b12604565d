/**
 * `renderHtml(map, opts)`: the memory map as one self-contained, zoomable HTML page.
 *
 * Contract:
 * - One file: inline CSS and JS, no network access, no external fonts or scripts. The model is embedded
 *   as JSON (`<script type="application/json" id="kho-map-data">`, u64 as hex strings, `<` escaped so no
 *   input text can close the script element); all input text reaches the page through `textContent`.
 * - The page shows one bar (lane) per map lane over an address axis, gap-compressed and log-scaled by
 *   default (the break points and their positions come from `compressedAxis`), linear on request.
 *   Zoom: mouse wheel (around the cursor), drag to pan, buttons (zoom in / out / reset / axis), and a
 *   click on a region or on its table row zooms to it. Address ticks follow the view.
 *   A tooltip shows a region's label, range, size, kind, producer and node; the side table lists every
 *   region (start, end, size, kind, producer, lane, label); kind check boxes and a search box filter both.
 * - For tests and scripting the page exposes `window.khoMap`: `regions` (the embedded list),
 *   `view()` → `{ u0, u1, start, end }` (axis positions and the hex address range shown), `setView(u0,
 *   u1)`, `zoomTo(i)`, `zoomBy(factor, centerU)`, `setAxis('compressed' | 'linear')`, `element(i)` (the
 *   region's bar element), `row(i)` (its table row).
 * - Deterministic: the same map gives byte-identical HTML.
 */
import { compressedAxis } from './axis.ts';
import { allRegions, formatBytes, type MemoryMap, REGION_KINDS } from './model.ts';
import { escapeXml, KIND_COLORS, producerColors, regionColor } from './svg.ts';

export interface HtmlOptions {
  title?: string;
}

const hx = (v: bigint) => `0x${v.toString(16)}`;

/** JSON safe inside a `<script>` element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const CSS = `
*{box-sizing:border-box}
body{font:13px sans-serif;margin:0;color:#222;display:flex;flex-direction:column;height:100vh}
header{padding:8px 12px;border-bottom:1px solid #ccc}
header h1{font-size:16px;margin:0 0 4px}
#sub{color:#555;font-size:12px}
#controls{padding:6px 12px;display:flex;gap:6px;align-items:center;flex-wrap:wrap;border-bottom:1px solid #eee}
#controls label{font-size:12px;white-space:nowrap}
.sw{display:inline-block;width:10px;height:10px;border:1px solid #555;margin-right:3px;vertical-align:middle}
main{display:flex;flex:1;min-height:0}
#left{flex:3;display:flex;flex-direction:column;min-width:0}
#range{padding:4px 12px;font-family:monospace;font-size:12px;color:#333}
#chart{position:relative;margin:0 12px;user-select:none;cursor:grab;overflow:hidden}
#chart.drag{cursor:grabbing}
.lanename{position:absolute;left:0;width:140px;text-align:right;font-size:11px;padding-right:6px;overflow:hidden;white-space:nowrap}
.lanebg{position:absolute;background:#fafafa;border:1px solid #ddd}
.r{position:absolute;height:16px;cursor:pointer;outline:none}
.r.empty{border-left:2px solid #000}
.r:hover{filter:brightness(0.8);z-index:2}
.r.sel{box-shadow:0 0 0 2px #000;z-index:3}
#ticks{position:relative;height:26px;margin:0 12px}
.tick{position:absolute;top:0;font:10px monospace;white-space:nowrap;border-left:1px solid #444;padding:6px 0 0 2px}
.tick.last{transform:translateX(-100%);border-left:none;border-right:1px solid #444;padding:6px 2px 0 0}
#notes{padding:4px 12px;color:#555;font-size:12px}
#right{flex:2;border-left:1px solid #ccc;overflow:auto;min-width:0}
table{border-collapse:collapse;width:100%;font-size:11px}
th,td{padding:2px 4px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{position:sticky;top:0;background:#f4f4f4}
td.mono{font-family:monospace}
tr.row{cursor:pointer}
tr.row:hover{background:#eef}
tr.row.sel{background:#dde}
#tip{position:fixed;pointer-events:none;background:#ffe;border:1px solid #999;padding:4px 6px;font-size:11px;display:none;z-index:10;max-width:420px;white-space:pre}
`;

const JS = String.raw`
(function(){
'use strict';
var data = JSON.parse(document.getElementById('kho-map-data').textContent);
var regions = data.regions;
var LEFT = 146, LANE_H = 16, GAP = 4, MIN_PX = 2;
var chart = document.getElementById('chart');
var ticks = document.getElementById('ticks');
var rangeEl = document.getElementById('range');
var tip = document.getElementById('tip');
var tbody = document.getElementById('rows');
var search = document.getElementById('search');
var mode = 'compressed';
var u0 = 0, u1 = 1;
var MIN_SPAN = 1e-12;
var pts = data.axis.points.map(function(p){ return BigInt(p); });
var cum = data.axis.cum;
var start = BigInt(data.start), end = BigInt(data.end);
var span = Number(end - start);
var hidden = {};
var els = [], rows = [];
var selected = -1;

function big(h){ return BigInt(h); }
function posC(a){
  var n = pts.length;
  if (n < 2 || a <= pts[0]) return 0;
  if (a >= pts[n-1]) return 1;
  var lo = 0, hi = n - 1;
  while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (pts[mid] <= a) lo = mid; else hi = mid; }
  var f = Number(a - pts[lo]) / Number(pts[hi] - pts[lo]);
  return cum[lo] + f * (cum[hi] - cum[lo]);
}
function posL(a){ if (span <= 0) return 0; if (a <= start) return 0; if (a >= end) return 1; return Number(a - start) / span; }
function pos(a){ return mode === 'compressed' ? posC(a) : posL(a); }
function addrC(u){
  if (u <= 0 || pts.length < 2) return pts.length ? pts[0] : 0n;
  if (u >= 1) return pts[pts.length-1];
  var lo = 0, hi = cum.length - 1;
  while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (cum[mid] <= u) lo = mid; else hi = mid; }
  var w = cum[hi] - cum[lo];
  var f = w > 0 ? (u - cum[lo]) / w : 0;
  return pts[lo] + BigInt(Math.floor(f * Number(pts[hi] - pts[lo])));
}
function addrL(u){ if (u <= 0) return start; if (u >= 1) return end; return start + BigInt(Math.floor(u * span)); }
function addr(u){ return mode === 'compressed' ? addrC(u) : addrL(u); }
function hex(v){ return '0x' + v.toString(16); }
function size(n){
  var units = ['B','KiB','MiB','GiB','TiB','PiB','EiB'], u = 0, x = Number(n);
  while (x >= 1024 && u < units.length - 1) { x /= 1024; u++; }
  return (u === 0 ? String(x) : (Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1))) + ' ' + units[u];
}
function plotW(){ return Math.max(100, chart.clientWidth - LEFT - 4); }

function build(){
  var lanes = data.lanes;
  chart.style.height = (lanes.length * (LANE_H + GAP) + 4) + 'px';
  lanes.forEach(function(name, i){
    var n = document.createElement('div');
    n.className = 'lanename'; n.style.top = (i * (LANE_H + GAP)) + 'px'; n.textContent = name;
    chart.appendChild(n);
    var bg = document.createElement('div');
    bg.className = 'lanebg'; bg.style.top = (i * (LANE_H + GAP)) + 'px'; bg.style.left = LEFT + 'px';
    bg.style.height = LANE_H + 'px'; bg.style.right = '4px';
    chart.appendChild(bg);
  });
  regions.forEach(function(r, i){
    r._s = big(r.start); r._e = big(r.end);
    var e = document.createElement('div');
    e.className = 'r' + (r._s === r._e ? ' empty' : '');
    e.dataset.i = String(i); e.dataset.kind = r.kind;
    e.style.background = r.color;
    e.style.top = (r.laneIndex * (LANE_H + GAP)) + 'px';
    e.addEventListener('click', function(ev){ ev.stopPropagation(); if (!moved) zoomTo(i); });
    e.addEventListener('mousemove', function(ev){ showTip(ev, r); });
    e.addEventListener('mouseleave', function(){ tip.style.display = 'none'; });
    chart.appendChild(e);
    els.push(e);
    var tr = document.createElement('tr');
    tr.className = 'row'; tr.dataset.i = String(i);
    [String(i), r.start, r.end, size(r._e - r._s), r.kind, r.producer || '', r.node === undefined ? '' : String(r.node), r.lane, r.label].forEach(function(t, j){
      var td = document.createElement('td'); td.textContent = t; if (j === 1 || j === 2) td.className = 'mono'; tr.appendChild(td);
    });
    tr.addEventListener('click', function(){ zoomTo(i); });
    tbody.appendChild(tr);
    rows.push(tr);
  });
}
function tipText(r){
  return r.label + '\n[' + r.start + ', ' + r.end + ')  ' + size(r._e - r._s) + '\nkind ' + r.kind +
    (r.producer ? '\nproducer ' + r.producer : '') + (r.node === undefined ? '' : '\nnode ' + r.node) + '\nlane ' + r.lane;
}
function showTip(ev, r){
  tip.textContent = tipText(r); tip.style.display = 'block';
  tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 300) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
}
function matches(r){
  if (hidden[r.kind]) return false;
  var q = search.value.trim().toLowerCase();
  if (!q) return true;
  return (r.label + ' ' + r.kind + ' ' + (r.producer || '') + ' ' + r.lane + ' ' + r.start + ' ' + r.end).toLowerCase().indexOf(q) >= 0;
}
function render(){
  var W = plotW(), s = u1 - u0;
  for (var i = 0; i < regions.length; i++){
    var r = regions[i], e = els[i];
    var ok = matches(r);
    rows[i].style.display = ok ? '' : 'none';
    var x0 = (pos(r._s) - u0) / s * W, x1 = (pos(r._e) - u0) / s * W;
    if (!ok || x1 < 0 || x0 > W){ e.style.display = 'none'; continue; }
    var w = Math.max(MIN_PX, x1 - x0);
    var left = Math.max(x0, -1); var right = Math.min(x0 + w, W + 1);
    e.style.display = ''; e.style.left = (LEFT + left) + 'px'; e.style.width = Math.max(MIN_PX, right - left) + 'px';
  }
  ticks.textContent = '';
  var n = Math.max(2, Math.floor(W / 170));
  for (var k = 0; k <= n; k++){
    var u = u0 + s * k / n;
    var t = document.createElement('div'); t.className = 'tick';
    t.style.left = (LEFT + W * k / n) + 'px'; t.textContent = hex(addr(u));
    if (k === n) t.className = 'tick last';
    ticks.appendChild(t);
  }
  var v = view();
  rangeEl.textContent = 'view: [' + v.start + ', ' + v.end + ')  ' + size(big(v.end) - big(v.start)) + '  axis: ' + mode;
}
function clampView(a, b){
  var s = Math.max(MIN_SPAN, Math.min(1, b - a));
  var c = (a + b) / 2;
  a = c - s / 2; b = c + s / 2;
  if (a < 0){ b -= a; a = 0; }
  if (b > 1){ a -= b - 1; b = 1; }
  u0 = Math.max(0, a); u1 = Math.min(1, b);
}
function setView(a, b){ clampView(a, b); render(); return view(); }
function view(){ return { u0: u0, u1: u1, start: hex(addr(u0)), end: hex(addr(u1)) }; }
function zoomBy(f, c){
  if (c === undefined) c = (u0 + u1) / 2;
  return setView(c - (c - u0) / f, c + (u1 - c) / f);
}
function zoomTo(i){
  var r = regions[i]; if (!r) return view();
  var a = pos(r._s), b = pos(r._e);
  var w = b - a > MIN_SPAN ? b - a : Math.max((u1 - u0) * 1e-3, MIN_SPAN * 10);
  if (selected >= 0){ els[selected].classList.remove('sel'); rows[selected].classList.remove('sel'); }
  selected = i; els[i].classList.add('sel'); rows[i].classList.add('sel');
  return setView(a - w * 0.25, a + w * 1.25);
}
function setAxis(m){
  var a = addr(u0), b = addr(u1);
  mode = m === 'linear' ? 'linear' : 'compressed';
  document.getElementById('axis').textContent = mode === 'compressed' ? 'linear axis' : 'compressed axis';
  return setView(pos(a), pos(b));
}
var dragX = null, dragU = 0, moved = false;
chart.addEventListener('wheel', function(ev){
  ev.preventDefault();
  var rect = chart.getBoundingClientRect();
  var fx = (ev.clientX - rect.left - LEFT) / plotW();
  var c = u0 + Math.min(1, Math.max(0, fx)) * (u1 - u0);
  zoomBy(ev.deltaY < 0 ? 1.25 : 0.8, c);
}, { passive: false });
chart.addEventListener('mousedown', function(ev){ dragX = ev.clientX; dragU = u0; moved = false; chart.classList.add('drag'); });
window.addEventListener('mousemove', function(ev){
  if (dragX === null) return;
  var dx = ev.clientX - dragX;
  if (Math.abs(dx) > 3) moved = true;
  if (!moved) return;
  var s = u1 - u0;
  setView(dragU - dx / plotW() * s, dragU - dx / plotW() * s + s);
});
window.addEventListener('mouseup', function(){ dragX = null; chart.classList.remove('drag'); setTimeout(function(){ moved = false; }, 0); });
document.getElementById('zin').addEventListener('click', function(){ zoomBy(2); });
document.getElementById('zout').addEventListener('click', function(){ zoomBy(0.5); });
document.getElementById('reset').addEventListener('click', function(){ setView(0, 1); });
document.getElementById('axis').addEventListener('click', function(){ setAxis(mode === 'compressed' ? 'linear' : 'compressed'); });
search.addEventListener('input', render);
Array.prototype.forEach.call(document.querySelectorAll('input.kind'), function(cb){
  cb.addEventListener('change', function(){ hidden[cb.value] = !cb.checked; render(); });
});
window.addEventListener('resize', render);
build();
render();
window.khoMap = { regions: regions, view: view, setView: setView, zoomTo: zoomTo, zoomBy: zoomBy, setAxis: setAxis,
  element: function(i){ return els[i]; }, row: function(i){ return rows[i]; } };
})();
`;

/** Render the map as a self-contained HTML page (see the module contract). */
export function renderHtml(map: MemoryMap, opts: HtmlOptions = {}): string {
  const regions = allRegions(map);
  const producers = producerColors(map);
  const laneIndex = new Map(map.lanes.map((l, i) => [l.name, i]));
  const points: bigint[] = [map.start, map.end];
  for (const r of regions) points.push(r.start, r.end);
  const ax = compressedAxis(points, map.pageSize);
  const data = {
    source: map.source,
    start: hx(map.start),
    end: hx(map.end),
    lanes: map.lanes.map((l) => l.name),
    axis: { points: ax.points.map(hx), cum: ax.cum.map((c) => Number(c.toFixed(12))) },
    regions: regions.map((r) => ({
      start: hx(r.start),
      end: hx(r.end),
      kind: r.kind,
      label: r.label,
      ...(r.producer !== undefined ? { producer: r.producer } : {}),
      ...(r.node !== undefined ? { node: r.node } : {}),
      lane: r.lane,
      laneIndex: laneIndex.get(r.lane)!,
      color: regionColor(r, producers),
    })),
  };
  const title = opts.title ?? 'KHO physical memory map';
  const present = new Set(regions.map((r) => r.kind));
  const kindBoxes = REGION_KINDS.filter((k) => present.has(k))
    .map(
      (k) =>
        `<label><input type="checkbox" class="kind" value="${k}" checked><span class="sw" style="background:${KIND_COLORS[k]}"></span>${k}</label>`,
    )
    .join('\n');
  const producerKey = [...producers]
    .map(
      ([p, c]) => `<label><span class="sw" style="background:${c}"></span>preserved: ${escapeXml(p)}</label>`,
    )
    .join('\n');
  const s = map.summary;
  const sub = `${map.source} · ${hx(map.start)}–${hx(map.end)} (${formatBytes(map.end - map.start)}) · ${s.regions} regions · ${s.preservedBlocks} preserved blocks (${formatBytes(s.preservedBytes)})`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>${escapeXml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${escapeXml(title)}</h1><div id="sub">${escapeXml(sub)}</div></header>
<div id="controls">
<button id="zin" type="button">zoom in</button><button id="zout" type="button">zoom out</button><button id="reset" type="button">reset</button><button id="axis" type="button">linear axis</button>
<input id="search" type="search" placeholder="filter: label, producer, address">
${kindBoxes}
${producerKey}
</div>
<main>
<section id="left">
<div id="range"></div>
<div id="chart"></div>
<div id="ticks"></div>
<div id="notes">${map.notes.map((n) => `<div>${escapeXml(n)}</div>`).join('')}</div>
</section>
<section id="right">
<table><thead><tr><th>#</th><th>start</th><th>end</th><th>size</th><th>kind</th><th>producer</th><th>node</th><th>lane</th><th>label</th></tr></thead><tbody id="rows"></tbody></table>
</section>
</main>
<div id="tip"></div>
<script type="application/json" id="kho-map-data">${scriptJson(data)}</script>
<script>${JS}</script>
</body>
</html>
`;
}
