import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError } from '../../errors.ts';
import {
  MEMBLOCK_ALLOC_ACCESSIBLE,
  MEMBLOCK_KHO_SCRATCH,
  MEMBLOCK_NONE,
  MEMBLOCK_RSRV_KERN,
  MEMBLOCK_RSRV_NOINIT,
  Memblock,
  NUMA_NO_NODE,
  PHYS_ADDR_MAX,
  ReserveMemTable,
} from './memblock.ts';

const M = 1n << 20n;

/** The 2 GiB QEMU pc memory as memblock holds it (see the vectors' "Early memory node ranges"). */
function pc2g(): Memblock {
  const mb = new Memblock();
  mb.addNode(0x1000n, 0x9e000n, 0);
  mb.addNode(0x100000n, 0x7ffdd000n - 0x100000n, 0);
  return mb;
}

test('add merges neighbours with equal node and flags, and never changes covered parts', () => {
  const mb = new Memblock();
  mb.addNode(0x1000n, 0x1000n, 0);
  mb.addNode(0x3000n, 0x1000n, 0);
  mb.addNode(0x2000n, 0x1000n, 0); // fills the hole: one region
  assert.deepEqual(mb.memory, [{ base: 0x1000n, size: 0x3000n, flags: 0, nid: 0 }]);
  mb.addNode(0x3800n, 0x1000n, 1); // only [0x4000, 0x4800) is new, on node 1
  assert.deepEqual(mb.memory, [
    { base: 0x1000n, size: 0x3000n, flags: 0, nid: 0 },
    { base: 0x4000n, size: 0x800n, flags: 0, nid: 1 },
  ]);
  // size is capped so that base + size does not pass 2^64
  mb.reserve(PHYS_ADDR_MAX - 0x10n, 0x100n);
  assert.deepEqual(mb.reserved, [{ base: PHYS_ADDR_MAX - 0x10n, size: 0x10n, flags: 0, nid: NUMA_NO_NODE }]);
  assert.throws(
    () => mb.reserve(-1n, 1n),
    (e) => isKhoError(e, 'SIM_BAD_ARGUMENT'),
  );
});

test('free and flag changes split regions at the range boundaries', () => {
  const mb = pc2g();
  mb.reserve(0x1000000n, 0x2000000n);
  mb.free(0x1800000n, 0x100000n);
  assert.deepEqual(
    mb.reserved.map((r) => [r.base, r.size]),
    [
      [0x1000000n, 0x800000n],
      [0x1900000n, 0x1700000n],
    ],
  );
  mb.markKhoScratch(0x10000000n, 0x1000000n);
  assert.deepEqual(
    mb.memory.map((r) => [r.base, r.size, r.flags]),
    [
      [0x1000n, 0x9e000n, 0],
      [0x100000n, 0x10000000n - 0x100000n, 0],
      [0x10000000n, 0x1000000n, MEMBLOCK_KHO_SCRATCH],
      [0x11000000n, 0x7ffdd000n - 0x11000000n, 0],
    ],
  );
  mb.clearKhoScratch(0x10000000n, 0x1000000n);
  assert.equal(mb.memory.length, 2); // merged back
  mb.reservedMarkNoinit(0x1000000n, 0x1000n);
  assert.equal(mb.reserved[0].flags, MEMBLOCK_RSRV_NOINIT);
});

test('allocation is top-down and aligned, inside [max(start, PAGE_SIZE), end) (hand-derived)', () => {
  const mb = pc2g();
  // highest fit: round_down(0x7ffdd000 - 16M, 2M) = 0x7ee00000
  assert.equal(mb.physAlloc(16n * M, 2n * M), 0x7ee00000n);
  assert.deepEqual(mb.reserved, [
    { base: 0x7ee00000n, size: 16n * M, flags: MEMBLOCK_RSRV_KERN, nid: NUMA_NO_NODE },
  ]);
  // below 4 GiB - 1 with the limit: same region is now taken, next fit is just below it
  assert.equal(mb.physAllocRange(16n * M, 2n * M, 0n, 0xffffffffn), 0x7de00000n);
  // a window [0, 1 MiB) holds only the low range: the top page below 0x9f000
  assert.equal(mb.physAllocRange(0x1000n, 0x1000n, 0n, 0x100000n), 0x9e000n);
  // start is raised to PAGE_SIZE: asking the whole low range cannot succeed
  assert.equal(mb.physAllocRange(0x9f000n, 0x1000n, 0n, 0x100000n), 0n);
  // alignment 0 means SMP_CACHE_BYTES (64)
  const a = mb.physAllocRange(100n, 0n, 0x2000n, 0x3000n);
  assert.equal(a, 0x3000n - 128n);
  // size 0 "succeeds" at the aligned top of the highest free range and reserves nothing: that range is
  // the sliver [0x7fe00000, 0x7ffdd000) above the first allocation, round_down(0x7ffdd000, 2M) = 0x7fe00000
  const before = mb.reserved.length;
  assert.equal(mb.physAlloc(0n, 2n * M), 0x7fe00000n);
  assert.equal(mb.reserved.length, before);
});

test('bottom-up mode takes the lowest fit', () => {
  const mb = pc2g();
  mb.bottomUp = true;
  assert.equal(mb.physAlloc(0x2000n, 0x1000n), 0x1000n);
  assert.equal(mb.physAlloc(0x100000n, 0x100000n), 0x100000n);
});

test('node-exact allocation fails where a fallback allocation succeeds', () => {
  const mb = new Memblock();
  mb.addNode(0x100000n, 0x3ff00000n, 0);
  mb.addNode(0x40000000n, 0x40000000n, 1);
  mb.reserve(0x40000000n, 0x40000000n); // node 1 entirely taken
  assert.equal(mb.allocRangeNid(M, M, 0n, MEMBLOCK_ALLOC_ACCESSIBLE, 1, true), 0n);
  const a = mb.allocRangeNid(M, M, 0n, MEMBLOCK_ALLOC_ACCESSIBLE, 1, false);
  assert.equal(a, 0x3ff00000n);
  // the fallback reservation carries no node; a node-local one carries its node
  assert.equal(mb.reserved.find((r) => r.base === a)?.nid, NUMA_NO_NODE);
  const b = mb.allocRangeNid(M, M, 0n, MEMBLOCK_ALLOC_ACCESSIBLE, 0, true);
  assert.equal(mb.reserved.find((r) => r.base === b)?.nid, 0);
});

test('scratch-only mode allocates only inside KHO_SCRATCH memory until cleared', () => {
  const mb = pc2g();
  mb.markKhoScratch(0x10000000n, 0x1000000n);
  mb.setKhoScratchOnly();
  assert.equal(mb.physAlloc(0x800000n, 0x200000n), 0x10800000n);
  assert.equal(mb.physAlloc(0x800000n, 0x200000n), 0x10000000n);
  assert.equal(mb.physAlloc(0x1000n, 0x1000n), 0n); // scratch is full, the rest of RAM is not used
  mb.clearKhoScratchOnly();
  assert.equal(mb.physAlloc(0x1000n, 0x1000n), 0x7ffdc000n);
});

test('reservedKernSize counts RSRV_KERN bytes below a limit (cut at it) and on a node', () => {
  const mb = pc2g();
  mb.reserve(0x1000000n, 0x2000000n, 0, MEMBLOCK_RSRV_KERN); // 32 MiB node 0
  mb.reserve(0x3000000n, 0x100000n); // plain reservation: not counted
  mb.reserveKern(0x7ff00000n, 0x200000n); // 2 MiB, no node, crosses the limit below
  assert.equal(mb.reservedKernSize(PHYS_ADDR_MAX, NUMA_NO_NODE), 34n * M);
  assert.equal(mb.reservedKernSize(PHYS_ADDR_MAX, 0), 32n * M);
  assert.equal(mb.reservedKernSize(0x80000000n, NUMA_NO_NODE), 33n * M);
  assert.equal(mb.reservedKernSize(0x2000000n, NUMA_NO_NODE), 16n * M);
  assert.equal(mb.reservedKernSize(0x800000n, NUMA_NO_NODE), 0n);
});

test('dump matches the debugfs memblock listing format', () => {
  const mb = pc2g();
  mb.reserveKern(0x1000000n, 0x1000n);
  assert.equal(
    mb.dump('memory'),
    '   0: 0x0000000000001000..0x000000000009efff    0 NONE\n   1: 0x0000000000100000..0x000000007ffdcfff    0 NONE\n',
  );
  assert.equal(mb.dump('reserved'), '   0: 0x0000000001000000..0x0000000001000fff    x RSV_KERN\n');
});

test('property: allocations never overlap each other, pre-reserved ranges, or leave memory', () => {
  const op = fc.oneof(
    fc.record({
      k: fc.constant('alloc' as const),
      size: fc.bigInt({ min: 1n, max: 64n * M }),
      alignShift: fc.integer({ min: 6, max: 24 }),
      start: fc.bigInt({ min: 0n, max: 0x80000000n }),
      span: fc.bigInt({ min: 0n, max: 0x80000000n }),
      nid: fc.constantFrom(NUMA_NO_NODE, 0, 1),
      exact: fc.boolean(),
    }),
    fc.record({ k: fc.constant('free' as const), pick: fc.nat() }),
  );
  const pre = fc.array(
    fc.tuple(fc.bigInt({ min: 0n, max: 0x7fffffffn }), fc.bigInt({ min: 1n, max: 256n * M })),
    {
      maxLength: 6,
    },
  );
  fc.assert(
    fc.property(pre, fc.array(op, { maxLength: 30 }), fc.boolean(), (preRes, ops, bottomUp) => {
      const mb = new Memblock();
      mb.addNode(0x1000n, 0x9e000n, 0);
      mb.addNode(0x100000n, 0x40000000n - 0x100000n, 0);
      mb.addNode(0x40000000n, 0x3ffdd000n, 1);
      mb.bottomUp = bottomUp;
      for (const [b, s] of preRes) mb.reserve(b, s);
      const fixed = preRes.map(([b, s]) => [b, b + s] as const);
      const live: [bigint, bigint][] = [];
      for (const o of ops) {
        if (o.k === 'free') {
          if (live.length === 0) continue;
          const [b, e] = live.splice(o.pick % live.length, 1)[0];
          mb.free(b, e - b);
          continue;
        }
        const align = 1n << BigInt(o.alignShift);
        const end = o.start + o.span;
        const a = mb.allocRangeNid(o.size, align, o.start, end, o.nid, o.exact);
        if (a === 0n) continue;
        const e = a + o.size;
        assert.equal(a % align, 0n);
        assert.ok(a >= o.start && a >= 0x1000n, 'below start');
        // end 0 (MEMBLOCK_ALLOC_ACCESSIBLE) and 1 (MEMBLOCK_ALLOC_NOLEAKTRACE) both mean the current limit
        if (end > 1n) assert.ok(e <= end, 'past end');
        // free ranges are taken per memory region, so a block never spans two regions
        const region = mb.memory.find((r) => a >= r.base && e <= r.base + r.size);
        assert.ok(region, 'outside memory');
        if (o.exact && o.nid !== NUMA_NO_NODE) assert.equal(region.nid, o.nid, 'wrong node');
        for (const [b, f] of [...fixed, ...live]) assert.ok(e <= b || a >= f, 'overlap');
        live.push([a, e]);
      }
    }),
    { numRuns: 200 },
  );
});

test('reserve_mem table: messages and order of checks (mm/memblock.c reserve_mem)', () => {
  const mb = pc2g();
  const t = new ReserveMemTable();
  const r1 = t.handle('4M:4096:khovec_region', mb);
  assert.equal(r1.result, 'allocated');
  assert.ok(r1.result === 'allocated' && r1.entry.start === 0x7fbdd000n); // round_down(0x7ffdd000 - 4M, 4K)
  assert.deepEqual(t.handle('4M:4096:khovec_region', mb).log, [
    { level: 'err', text: 'reserve_mem: name "khovec_region" was already used' },
  ]);
  assert.deepEqual(t.handle('4G:4096:huge', mb).log, [
    { level: 'err', text: 'reserve_mem: memblock allocation failed' },
  ]);
  assert.deepEqual(t.handle(null, mb).log, [
    { level: 'err', text: 'reserve_mem: empty or malformed parameter' },
  ]);
  // revival: the hook's address is recorded, nothing is allocated
  const before = mb.reserved.length;
  const rv = t.handle('8M:2M:trace_buf', mb, (name, size, align) => {
    assert.deepEqual([name, size, align], ['trace_buf', 8n * M, 2n * M]);
    return 0x40000000n;
  });
  assert.equal(rv.result, 'revived');
  assert.equal(mb.reserved.length, before);
  for (let i = 2; i < 8; i++) assert.equal(t.handle(`4K:0:r${i}`, mb).result, 'allocated');
  // table full (8 entries): checked before the syntax
  assert.deepEqual(t.handle('garbage', mb), {
    result: 'EBUSY',
    log: [{ level: 'err', text: 'reserve_mem: no more room for reserved memory' }],
  });
  assert.equal(t.entries.length, 8);
});

test('alloc and memblock_alloc use the current limit; OrThrow raises SIM_NOMEM', () => {
  const mb = pc2g();
  mb.currentLimit = 0x1000000n;
  assert.equal(mb.alloc(0x1000n, 0x1000n), 0xfff000n);
  assert.throws(
    () => mb.physAllocOrThrow(0x2000000n, 0x1000n),
    (e) => isKhoError(e, 'SIM_NOMEM'),
  );
  assert.equal(MEMBLOCK_NONE, 0);
});

test('property: region lists match a per-page model (add keeps existing, free/mark split, lists stay merged)', () => {
  const P = 0x1000n;
  const op = fc.record({
    k: fc.constantFrom('add', 'reserve', 'free', 'remove', 'mark', 'clear', 'setnode'),
    start: fc.integer({ min: 0, max: 63 }),
    len: fc.integer({ min: 0, max: 24 }),
    nid: fc.integer({ min: 0, max: 2 }),
    flag: fc.constantFrom(0, MEMBLOCK_RSRV_KERN),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const mb = new Memblock();
      type Cell = { nid: number; flags: number } | null;
      const mem: Cell[] = Array(96).fill(null);
      const res: Cell[] = Array(96).fill(null);
      for (const o of ops) {
        const b = BigInt(o.start) * P;
        const s = BigInt(o.len) * P;
        const idx = [...Array(o.len).keys()].map((i) => o.start + i);
        if (o.k === 'add') {
          mb.addNode(b, s, o.nid);
          for (const i of idx) mem[i] ??= { nid: o.nid, flags: 0 };
        } else if (o.k === 'reserve') {
          mb.reserve(b, s, o.nid, o.flag);
          for (const i of idx) res[i] ??= { nid: o.nid, flags: o.flag };
        } else if (o.k === 'free') {
          mb.free(b, s);
          for (const i of idx) res[i] = null;
        } else if (o.k === 'remove') {
          mb.remove(b, s);
          for (const i of idx) mem[i] = null;
        } else if (o.k === 'mark' || o.k === 'clear') {
          if (o.k === 'mark') mb.markKhoScratch(b, s);
          else mb.clearKhoScratch(b, s);
          for (const i of idx) {
            const c = mem[i];
            if (c)
              mem[i] = {
                ...c,
                flags: o.k === 'mark' ? c.flags | MEMBLOCK_KHO_SCRATCH : c.flags & ~MEMBLOCK_KHO_SCRATCH,
              };
          }
        } else {
          mb.setNode(b, s, 'memory', o.nid);
          for (const i of idx) if (mem[i]) mem[i] = { ...mem[i]!, nid: o.nid };
        }
      }
      for (const [list, model] of [
        [mb.memory, mem],
        [mb.reserved, res],
      ] as const) {
        // expand the regions to pages and compare
        const got: Cell[] = Array(96).fill(null);
        for (const r of list)
          for (let a = r.base; a < r.base + r.size; a += P)
            got[Number(a / P)] = { nid: r.nid, flags: r.flags };
        assert.deepEqual(got, model);
        // sorted, disjoint, and merged: neighbours that touch differ in node or flags
        for (let i = 1; i < list.length; i++) {
          const p = list[i - 1];
          const c = list[i];
          assert.ok(p.base + p.size <= c.base);
          if (p.base + p.size === c.base) assert.ok(p.nid !== c.nid || p.flags !== c.flags);
        }
        for (const r of list) assert.ok(r.size > 0n);
      }
    }),
    { numRuns: 300 },
  );
});
