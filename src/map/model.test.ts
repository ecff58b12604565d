/**
 * The map model's rules, by hand-derived cases and properties: lanes never overlap and lose nothing,
 * attribution order (root FDT, sub-blob, reserve_mem, recorded folios, producer ranges, unknown),
 * /proc/iomem parsing (end inclusive, indent = depth, bad lines skipped), the compressed axis
 * (monotonic, exact at break points, a 4 KiB page wide enough in 1 TiB), and the simulated-kernel source.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Kernel } from '../sim/kernel/kernel.ts';
import { Machine } from '../sim/machine/machine.ts';
import { compressedAxis, linearAxis, ticksLinear } from './axis.ts';
import { renderHtml } from './html.ts';
import {
  allRegions,
  buildMemoryMap,
  COALESCE_ABOVE,
  MAX_LANES,
  type MapRegion,
  packLanes,
  parseIomem,
} from './model.ts';
import { mapInputFromKernel, parseDmesgNodes } from './sources.ts';
import { renderSvg } from './svg.ts';

const reg = (start: bigint, end: bigint, label = ''): MapRegion => ({ start, end, kind: 'preserved', label });

test('packLanes: overlapping regions go to overflow lanes; every lane sorted and non-overlapping', () => {
  const lanes = packLanes('kho', [
    reg(0x3000n, 0x4000n),
    reg(0x0n, 0x2000n),
    reg(0x1000n, 0x3000n),
    reg(0x2000n, 0x2000n),
  ]);
  // [0,2000) and [2000,2000) (empty marker) and [3000,4000) fit in lane 1; [1000,3000) overlaps.
  assert.deepEqual(
    lanes.map((l) => [l.name, l.regions.map((r) => [r.start, r.end])]),
    [
      [
        'kho',
        [
          [0x0n, 0x2000n],
          [0x2000n, 0x2000n],
          [0x3000n, 0x4000n],
        ],
      ],
      ['kho #2', [[0x1000n, 0x3000n]]],
    ],
  );
});

test('packLanes property: nothing lost (up to MAX_LANES deep), no overlap inside a lane', () => {
  const region = fc
    .tuple(fc.bigInt({ min: 0n, max: 1n << 20n }), fc.bigInt({ min: 0n, max: 1n << 16n }))
    .map(([s, len]) => reg(s, s + len));
  fc.assert(
    fc.property(fc.array(region, { maxLength: MAX_LANES }), (regions) => {
      const lanes = packLanes('x', regions);
      assert.equal(
        lanes.reduce((a, l) => a + l.regions.length, 0),
        regions.length,
      );
      for (const l of lanes)
        for (let i = 1; i < l.regions.length; i++) assert.ok(l.regions[i - 1]!.end <= l.regions[i]!.start);
    }),
    { numRuns: 200 },
  );
});

test('packLanes on hostile input: bounded lanes, the rest counted in a note', () => {
  const notes: string[] = [];
  const same = Array.from({ length: 1000 }, () => reg(0n, 0x1000n));
  const lanes = packLanes('kho', same, notes);
  assert.equal(lanes.length, MAX_LANES);
  assert.deepEqual(notes, [
    `${1000 - MAX_LANES} kho region(s) overlap ${MAX_LANES} others at once and are not drawn`,
  ]);
});

test('parseIomem: end inclusive, two spaces per level, malformed lines skipped and counted', () => {
  const { entries, skipped } = parseIomem(
    '00000000-00000fff : Reserved\n00100000-7ffdcfff : System RAM\n  01000000-01e34e47 : Kernel code\n' +
      'garbage\n00002000-00001000 : backwards\nfd00000000-ffffffffff : Reserved\n',
  );
  assert.equal(skipped, 2);
  assert.deepEqual(entries, [
    { start: 0n, end: 0x1000n, name: 'Reserved', depth: 0 },
    { start: 0x100000n, end: 0x7ffdd000n, name: 'System RAM', depth: 0 },
    { start: 0x1000000n, end: 0x1e34e48n, name: 'Kernel code', depth: 1 },
    { start: 0xfd00000000n, end: 0x10000000000n, name: 'Reserved', depth: 0 },
  ]);
});

test('parseDmesgNodes: Initmem setup lines, end inclusive', () => {
  assert.deepEqual(
    parseDmesgNodes(
      '[    0.056846] Initmem setup node 1 [mem 0x0000000040000000-0x000000007ffdcfff]\n' +
        '[    0.056528] Initmem setup node 0 [mem 0x0000000000001000-0x000000003fffffff]\n',
    ),
    [
      { nid: 0, start: 0x1000n, end: 0x40000000n },
      { nid: 1, start: 0x40000000n, end: 0x7ffdd000n },
    ],
  );
});

test('attribution: root FDT, then sub-blob, reserve_mem, recorded folios, producer ranges, else unknown', () => {
  const P = 0x1000n;
  const map = buildMemoryMap({
    source: 'hand-made',
    rootFdt: 0x10000n,
    preserved: [
      { pa: 0x10000n, order: 0 }, // root FDT page
      { pa: 0x20000n, order: 1 }, // holds sub-blob "memblock" at 0x21000
      { pa: 0x40000n, order: 2 }, // inside reserve_mem
      { pa: 0x50000n, order: 0 }, // a recorded folio
      { pa: 0x60000n, order: 0 }, // a vmalloc page of kho_test
      { pa: 0x70000n, order: 0 }, // nobody's
    ],
    subBlobs: [{ name: 'memblock', phys: 0x21000n, size: 0xdan }, { name: 'gone' }],
    reserveMem: [{ name: 'r', start: 0x40000n, size: 0x10000n }],
    producerBlocks: [{ producer: 'kho_test', label: 'kho_test folio', blocks: [{ pa: 0x50000n, order: 0 }] }],
    producerRanges: [{ producer: 'kho_test', label: 'kho_test folios_info', start: 0x60000n, size: P }],
    trackerPages: [0x80000n],
  });
  const kho = map.lanes.find((l) => l.name === 'kho')!.regions;
  assert.deepEqual(
    kho.map((r) => [r.start, r.end, r.kind, r.producer]),
    [
      [0x10000n, 0x11000n, 'kho-fdt', 'kho'],
      [0x20000n, 0x22000n, 'preserved', 'memblock'],
      [0x40000n, 0x44000n, 'preserved', 'memblock'],
      [0x50000n, 0x51000n, 'preserved', 'kho_test'],
      [0x60000n, 0x61000n, 'preserved', 'kho_test'],
      [0x70000n, 0x71000n, 'preserved', undefined],
      [0x80000n, 0x81000n, 'radix', undefined],
    ],
  );
  assert.equal(map.summary.unattributedBlocks, 1);
  assert.deepEqual(map.summary.byProducer, {
    kho: { blocks: 1, bytes: 0x1000n },
    memblock: { blocks: 2, bytes: 0x6000n },
    kho_test: { blocks: 2, bytes: 0x2000n },
  });
  assert.equal(map.start, 0x10000n);
  assert.equal(map.end, 0x81000n);
});

test('compressedAxis: monotonic, exact at break points; a 4 KiB page keeps a visible share of 1 TiB', () => {
  const T = 1n << 40n;
  const ax = compressedAxis([0n, 0x7000_0000n, 0x7000_1000n, T]);
  assert.deepEqual(ax.points, [0n, 0x7000_0000n, 0x7000_1000n, T]);
  assert.equal(ax.pos(0n), 0);
  assert.equal(ax.pos(T), 1);
  // Weights sqrt(log2(2 + len/4096)): [0, 0x70000000) sqrt(log2(458754)), the page sqrt(log2(3)), the rest.
  const wt = (len: number) => Math.sqrt(Math.log2(2 + len / 4096));
  const w = [wt(0x7000_0000), wt(4096), wt(2 ** 40 - 0x7000_1000)];
  const total = w[0]! + w[1]! + w[2]!;
  assert.ok(Math.abs(ax.pos(0x7000_1000n) - ax.pos(0x7000_0000n) - w[1]! / total) < 1e-12);
  // At 1000 px the page is about 120 px wide; on a linear axis it would be 4e-6 px.
  assert.ok((ax.pos(0x7000_1000n) - ax.pos(0x7000_0000n)) * 1000 > 100);
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: T }), fc.bigInt({ min: 0n, max: T }), (a, b) => {
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      assert.ok(ax.pos(lo) <= ax.pos(hi));
    }),
    { numRuns: 200 },
  );
  assert.equal(linearAxis(0n, 0x1000n).pos(0x800n), 0.5);
  assert.deepEqual(ticksLinear(0x1000n, 0x40000000n, 4), [
    0x10000000n,
    0x20000000n,
    0x30000000n,
    0x40000000n,
  ]);
});

test('simulated kernel source: nodes, scratch per node, preserved blocks by producer, kexec segments', () => {
  const m = Machine.create({ memory: '2G', numa: 2 });
  const cmdline = 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:khovec_region';
  const k = Kernel.boot(m, { cmdline });
  k.kexecLoad({ image: k.image, cmdline, fileLoad: true });
  const map = buildMemoryMap(mapInputFromKernel(k));
  const regions = allRegions(map);
  assert.deepEqual(
    map.nodes.map((n) => n.nid),
    [0, 1],
  );
  // kho_scratch=16M,64M,32M: lowmem 16 MiB, global 64 MiB, 32 MiB on each node, in its node.
  const scratch = regions.filter((r) => r.kind.startsWith('scratch-'));
  assert.deepEqual(
    scratch.map((r) => [r.kind, r.end - r.start]).sort(),
    [
      ['scratch-global', 64n << 20n],
      ['scratch-lowmem', 16n << 20n],
      ['scratch-node', 32n << 20n],
      ['scratch-node', 32n << 20n],
    ].sort(),
  );
  for (const s of scratch.filter((r) => r.kind === 'scratch-node')) {
    const n = map.nodes.find((x) => x.nid === s.node)!;
    assert.ok(s.start >= n.start && s.end <= n.end);
  }
  // The simulator's own outgoing blocks, each in the map and each attributed.
  const blocks = k.kho.preservedBlocks();
  assert.equal(map.summary.preservedBlocks, blocks.length);
  assert.equal(map.summary.unattributedBlocks, 0);
  const rm = regions.find((r) => r.kind === 'reserve_mem')!;
  assert.equal(rm.end - rm.start, 4n << 20n);
  assert.ok(regions.some((r) => r.kind === 'kho-fdt' && r.start === k.kho.rootFdtPhys));
  // kexec -s: the loaded segments, all inside scratch.
  const segs = regions.filter((r) => r.kind === 'kexec-segment');
  assert.equal(segs.length, k.loaded!.plan.segments.length);
  for (const s of segs)
    assert.ok(
      scratch.some((a) => s.start >= a.start && s.end <= a.end),
      s.label,
    );
  // Free memory: as many bytes as the allocator counts free pages, none of it preserved.
  const free = regions.filter((r) => r.kind === 'free');
  assert.equal(
    free.reduce((a, r) => a + (r.end - r.start), 0n),
    BigInt(k.buddy.freePages) * 4096n,
  );
  for (const b of blocks)
    assert.ok(!free.some((f) => b.pa < f.end && f.start < b.pa + (4096n << BigInt(b.order))));
});

test('huge handovers: beyond COALESCE_ABOVE blocks, adjacent same-owner blocks become runs', () => {
  // 10 000 adjacent order-0 pages from 1 MiB; kho_test recorded all but pages 500, 1500, ..., 9500.
  const base = 0x100000n;
  const blocks = Array.from({ length: 10_000 }, (_, i) => ({ pa: base + BigInt(i) * 0x1000n, order: 0 }));
  const recorded = blocks.filter((_, i) => i % 1000 !== 500);
  const map = buildMemoryMap({
    source: 'many pages',
    preserved: blocks,
    producerBlocks: [{ producer: 'kho_test', label: 'kho_test folio', blocks: recorded }],
  });
  assert.ok(blocks.length > COALESCE_ABOVE);
  const kho = allRegions(map).filter((r) => r.lane === 'kho');
  // Runs: pages 0-499, then for each k: page k*1000+500 alone, pages k*1000+501 .. (k+1)*1000+499.
  const expected: [bigint, bigint, string | undefined][] = [[base, base + 500n * 0x1000n, 'kho_test']];
  for (let k = 0; k < 10; k++) {
    const lone = base + BigInt(k * 1000 + 500) * 0x1000n;
    expected.push([lone, lone + 0x1000n, undefined]);
    const next = Math.min((k + 1) * 1000 + 500, 10_000);
    expected.push([lone + 0x1000n, base + BigInt(next) * 0x1000n, 'kho_test']);
  }
  assert.deepEqual(
    kho.map((r) => [r.start, r.end, r.producer]),
    expected,
  );
  assert.equal(kho[0]!.label, 'kho_test folio ×500');
  assert.equal(map.summary.preservedBlocks, 10_000);
  assert.equal(map.summary.unattributedBlocks, 10);
  assert.ok(map.notes.some((n) => /10000 preserved blocks and map pages are drawn as 21 runs/.test(n)));
});

test('hostile inputs: building and rendering never throws; lanes never overlap', () => {
  const big = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  const name = fc.string({ maxLength: 12, unit: 'binary' });
  const input = fc.record({
    iomem: fc.array(
      fc.record({ start: big, len: big, name, depth: fc.integer({ min: 0, max: 3 }) }).map((e) => ({
        start: e.start,
        end: e.start + e.len,
        name: e.name,
        depth: e.depth,
      })),
      { maxLength: 8 },
    ),
    scratch: fc.array(fc.record({ addr: big, size: big, role: name }), { maxLength: 6 }),
    preserved: fc.array(fc.record({ pa: big, order: fc.integer({ min: -5, max: 80 }) }), { maxLength: 30 }),
    trackerPages: fc.array(big, { maxLength: 5 }),
    rootFdt: fc.option(big, { nil: undefined }),
    subBlobs: fc.array(
      fc.record({ name, phys: fc.option(big, { nil: undefined }), size: fc.option(big, { nil: undefined }) }),
      {
        maxLength: 4,
      },
    ),
    reserveMem: fc.array(fc.record({ name, start: big, size: big }), { maxLength: 3 }),
    nodes: fc.array(fc.record({ nid: fc.integer({ min: 0, max: 70 }), start: big, end: big }), {
      maxLength: 3,
    }),
  });
  fc.assert(
    fc.property(input, fc.integer({ min: 2, max: 50 }), (inp, coalesceAbove) => {
      const clean = Object.fromEntries(Object.entries(inp).filter(([, v]) => v !== undefined));
      const map = buildMemoryMap({ source: 'fuzz', ...clean } as Parameters<typeof buildMemoryMap>[0], {
        coalesceAbove,
      });
      for (const l of map.lanes)
        for (let i = 1; i < l.regions.length; i++) assert.ok(l.regions[i - 1]!.end <= l.regions[i]!.start);
      const svg = renderSvg(map);
      assert.ok(!/NaN|Infinity/.test(svg));
      const html = renderHtml(map);
      assert.ok(!/NaN|Infinity/.test(html));
    }),
    { numRuns: 100 },
  );
});

test('huge handovers: runs beyond COALESCE_ABOVE are grouped across the smallest gaps, same owner first', () => {
  const base = 0x100000n;
  // 10 000 order-0 pages at every other page: 10 000 runs, 9 999 equal gaps of one page.
  const spaced = Array.from({ length: 10_000 }, (_, i) => ({ pa: base + BigInt(2 * i) * 0x1000n, order: 0 }));
  const one = buildMemoryMap({
    source: 'spaced',
    preserved: spaced,
    producerBlocks: [{ producer: 'kho_test', label: 'kho_test folio', blocks: spaced }],
  });
  const a = allRegions(one).filter((r) => r.lane === 'kho');
  // 10 000 - 4096 = 5904 joins, equal gaps, lowest index first: runs 0..5904 form the first group.
  assert.equal(a.length, COALESCE_ABOVE);
  assert.equal(a[0]!.start, base);
  assert.equal(a[0]!.end, base + BigInt(2 * 5904 + 1) * 0x1000n);
  assert.equal(a[0]!.label, 'kho_test folio: 5905 blocks, 23.1 MiB, with gaps');
  assert.equal(a[0]!.producer, 'kho_test');
  assert.equal(a[1]!.start, base + BigInt(2 * 5905) * 0x1000n);
  assert.equal(a[1]!.label, 'kho_test folio');
  // Two owners alternating page by page: no same-owner neighbours, so mixed groups, without a producer.
  const adjacent = Array.from({ length: 10_000 }, (_, i) => ({ pa: base + BigInt(i) * 0x1000n, order: 0 }));
  const two = buildMemoryMap({
    source: 'alternating',
    preserved: adjacent,
    producerBlocks: [
      { producer: 'a', label: 'a page', blocks: adjacent.filter((_, i) => i % 2 === 0) },
      { producer: 'b', label: 'b page', blocks: adjacent.filter((_, i) => i % 2 === 1) },
    ],
  });
  const b = allRegions(two).filter((r) => r.lane === 'kho');
  assert.equal(b.length, COALESCE_ABOVE);
  assert.equal(b[0]!.end, base + 5905n * 0x1000n);
  assert.equal(b[0]!.label, '5905 blocks of 2 kinds/owners (a, b), 23.1 MiB, with gaps');
  assert.equal(b[0]!.producer, undefined);
  assert.deepEqual(two.summary.byProducer, {
    a: { blocks: 5000, bytes: 5000n * 0x1000n },
    b: { blocks: 5000, bytes: 5000n * 0x1000n },
  });
});

test('a producer named __proto__ is counted like any other', () => {
  const map = buildMemoryMap({
    source: 'proto',
    preserved: [{ pa: 0n, order: 0 }],
    subBlobs: [{ name: '__proto__', phys: 0n }],
  });
  assert.equal(Object.getPrototypeOf(map.summary.byProducer), Object.prototype);
  assert.deepEqual(Object.entries(map.summary.byProducer), [['__proto__', { blocks: 1, bytes: 4096n }]]);
  assert.equal(map.summary.unattributedBlocks, 0);
});
