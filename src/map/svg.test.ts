/**
 * `renderSvg` on synthetic machines of 1 GiB and 1 TiB with many scattered 4 KiB preserved pages and on
 * a real handover: the SVG is well-formed XML (parsed by Python's xml.etree, not by us), every region of
 * the model is a rect of the compressed panel with its exact range, every synthetic page (known from the
 * generator, not from the model) is there, nothing falls outside the plot, the size is bounded, output
 * is deterministic, and hostile names are escaped.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { syntheticInput } from '../../test/browser/synthetic.ts';
import { oracle, runPython } from '../../test/helpers/oracle.ts';
import { loadHandoverPath } from '../abi/handover.ts';
import { allRegions, buildMemoryMap, type MemoryMap } from './model.ts';
import { mapInputFromHandover } from './sources.ts';
import { MIN_WIDTH, PLOT_LEFT, PLOT_RIGHT, renderSvg } from './svg.ts';

interface Rect {
  panel: string;
  i: number;
  start: string;
  end: string;
  kind: string;
  x: number;
  width: number;
  title: string;
}

/** Parse SVG documents with xml.etree; every rect of class "r" with its panel and attributes. */
const PARSE = `
import json, sys, xml.etree.ElementTree as ET
docs = json.load(sys.stdin)
out = []
for text in docs:
    root = ET.fromstring(text)
    ns = '{http://www.w3.org/2000/svg}'
    rects = []
    for g in root.iter(ns + 'g'):
        panel = g.get('class') or ''
        for r in g.findall(ns + 'rect'):
            if r.get('class') != 'r':
                continue
            t = r.find(ns + 'title')
            rects.append({'panel': panel, 'i': int(r.get('data-i')), 'start': r.get('data-start'), 'end': r.get('data-end'),
                          'kind': r.get('data-kind'), 'x': float(r.get('x')), 'width': float(r.get('width')),
                          'title': t.text if t is not None else ''})
    out.append({'width': float(root.get('width')), 'rects': rects})
print(json.dumps(out))
`;

function parseSvgs(svgs: string[]): { width: number; rects: Rect[] }[] {
  return JSON.parse(runPython(PARSE, svgs).toString('utf8'));
}

const hx = (v: bigint) => `0x${v.toString(16)}`;
const GiB = 1n << 30n;
const TiB = 1n << 40n;

function checkEveryRegion(map: MemoryMap, parsed: { width: number; rects: Rect[] }): void {
  const regions = allRegions(map);
  const compressed = parsed.rects.filter((r) => r.panel === 'panel compressed');
  assert.equal(compressed.length, regions.length, 'one compressed-panel rect per region');
  compressed.forEach((r, idx) => {
    const m = regions[r.i]!;
    assert.equal(r.i, idx);
    assert.equal(r.start, hx(m.start));
    assert.equal(r.end, hx(m.end));
    assert.equal(r.kind, m.kind);
    assert.ok(r.width >= MIN_WIDTH - 1e-9);
  });
  for (const r of parsed.rects) {
    assert.ok(r.x >= PLOT_LEFT - 1e-9, `rect ${r.i} starts inside the plot`);
    assert.ok(
      r.x + r.width <= parsed.width - PLOT_RIGHT + MIN_WIDTH + 0.01,
      `rect ${r.i} ends inside the plot`,
    );
  }
}

test('1 GiB and 1 TiB synthetic machines: every region and every tiny page in the SVG, bounded size', (t) => {
  if (!oracle(t, 'pylibfdt')) return; // Debian's /usr/bin/python3 (xml.etree is in its standard library)
  const cases = [
    { bytes: GiB, nodes: 1, tiny: 400 },
    { bytes: TiB, nodes: 4, tiny: 2000 },
  ];
  const syn = cases.map((c) => syntheticInput(c.bytes, c.nodes, c.tiny, 7));
  const maps = syn.map((s) => buildMemoryMap(s.input));
  const svgs = maps.map((m) => renderSvg(m));
  const parsed = parseSvgs(svgs);
  cases.forEach((c, k) => {
    const map = maps[k]!;
    checkEveryRegion(map, parsed[k]!);
    const starts = new Set(
      parsed[k]!.rects.filter((r) => r.panel === 'panel compressed' && r.kind === 'preserved').map(
        (r) => r.start,
      ),
    );
    for (const pa of syn[k]!.tinyPages) assert.ok(starts.has(hx(pa)), `page ${hx(pa)} drawn`);
    assert.equal(starts.size, c.tiny);
    // Per-node linear overviews: every tiny page is also drawn in its node's overview.
    const linear = parsed[k]!.rects.filter(
      (r) => r.panel.startsWith('panel linear') && r.kind === 'preserved',
    );
    assert.equal(linear.length, c.tiny);
    // Bounded: under 1 KiB per drawn rect plus a fixed part (header, legend, ticks).
    const rects = parsed[k]!.rects.length;
    assert.ok(svgs[k]!.length < rects * 1024 + 64 * 1024, `${svgs[k]!.length} bytes for ${rects} rects`);
  });
});

test('1 TiB with 200 tiny pages: the compressed axis gives each page at least a pixel unclamped', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const s = syntheticInput(TiB, 2, 200, 3);
  const [p] = parseSvgs([renderSvg(buildMemoryMap(s.input))]);
  const pages = p!.rects.filter((r) => r.panel === 'panel compressed' && r.kind === 'preserved');
  assert.equal(pages.length, 200);
  for (const r of pages) assert.ok(r.width >= 1, `page ${r.start} is ${r.width} px wide`);
});

test('deterministic: the same input renders byte-identical SVG', () => {
  const a = renderSvg(buildMemoryMap(syntheticInput(GiB, 2, 50, 5).input));
  const b = renderSvg(buildMemoryMap(syntheticInput(GiB, 2, 50, 5).input));
  assert.equal(a, b);
});

test('hostile names are escaped: the SVG still parses and shows them as text', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const evil = '</title><script>alert(1)</script>&"\'\u0001\ud800';
  const map = buildMemoryMap({
    source: evil,
    preserved: [{ pa: 0x1000n, order: 0 }],
    subBlobs: [{ name: evil, phys: 0x1000n, size: 16n }],
  });
  const svg = renderSvg(map);
  assert.ok(!svg.includes('<script>'));
  const [p] = parseSvgs([svg]);
  const r = p!.rects.find((x) => x.panel === 'panel compressed')!;
  assert.ok(r.title.includes('</title><script>alert(1)</script>&"\'\ufffd\ufffd'));
});

test('real handover (flat-explicit stage 1, no memory image): every region in the SVG', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const h = loadHandoverPath(
    join(import.meta.dirname, '../../test/vectors/linux-7.3.4/flat-explicit/stage1/out'),
  );
  const map = buildMemoryMap(mapInputFromHandover(h));
  const [p] = parseSvgs([renderSvg(map, { width: 800 })]);
  assert.equal(p!.width, 800);
  checkEveryRegion(map, p!);
});
