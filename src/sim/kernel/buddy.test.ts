import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cpuMsSince, cpuStart } from '../../../test/helpers/cpu.ts';
import { isKhoError } from '../../errors.ts';
import { BuddyAllocator } from './buddy.ts';
import { Memblock } from './memblock.ts';

const X86 = { maxOrder: 10, pageblockOrder: 9 };

/** memblock with RAM [0x1000, 0x9f000) and [0x100000, 0x4000000), kernel reserved [0x1000000, 0x2000000). */
function small(): Memblock {
  const mb = new Memblock();
  mb.addNode(0x1000n, 0x9e000n, 0);
  mb.addNode(0x100000n, 0x3f00000n, 0);
  mb.reserve(0x1000000n, 0x1000000n);
  return mb;
}

test('memblock_free_all frees in the largest aligned blocks (hand-derived __free_pages_memory)', () => {
  const { buddy, freed } = BuddyAllocator.fromMemblock(small(), X86);
  // pfns [1, 0x9f) + [0x100, 0x1000) + [0x2000, 0x4000)
  assert.equal(freed, 0x9e + 0xf00 + 0x2000);
  assert.equal(buddy.freePages, freed);
  const low = buddy.freeBlockList().filter(([h]) => h < 0x100);
  assert.deepEqual(low, [
    [1, 0],
    [2, 1],
    [4, 2],
    [8, 3],
    [16, 4],
    [32, 5],
    [64, 6],
    [128, 4],
    [144, 3],
    [152, 2],
    [156, 1],
    [158, 0],
  ]);
  // [0x100, 0x1000): 0x100 o8, 0x200 o9, 0x400 o10, 0x800 o10, 0xc00 o10
  assert.deepEqual(
    buddy.freeBlockList().filter(([h]) => h >= 0x100 && h < 0x1000),
    [
      [0x100, 8],
      [0x200, 9],
      [0x400, 10],
      [0x800, 10],
      [0xc00, 10],
    ],
  );
  assert.equal(buddy.pageState(0), 'absent');
  assert.equal(buddy.pageState(0x1000), 'reserved');
  assert.equal(buddy.pageInfo(0x1000).tag, 'memblock');
  assert.equal(buddy.pageState(0x9f), 'absent');
  assert.equal(buddy.pageState(0x2000), 'free');
});

test('alloc returns the lowest page of a split block and gives the upper halves back', () => {
  const mb = new Memblock();
  mb.addNode(0x400000n, 0x400000n, 0); // pfns [0x400, 0x800): one order-10 block
  const { buddy } = BuddyAllocator.fromMemblock(mb, X86);
  assert.deepEqual(buddy.freeBlockList(), [[0x400, 10]]);
  assert.equal(buddy.alloc(0), 0x400);
  assert.deepEqual(buddy.freeBlockList(), [
    [0x401, 0],
    [0x402, 1],
    [0x404, 2],
    [0x408, 3],
    [0x410, 4],
    [0x420, 5],
    [0x440, 6],
    [0x480, 7],
    [0x500, 8],
    [0x600, 9],
  ]);
  assert.equal(buddy.pageInfo(0x400).state, 'allocated');
  buddy.free(0x400, 0);
  assert.deepEqual(buddy.freeBlockList(), [[0x400, 10]]); // fully merged again
  assert.equal(buddy.alloc(10), 0x400);
  assert.equal(buddy.alloc(0), null);
});

test('restored pages are separate order-0 pages; split_page splits an allocated block', () => {
  const { buddy } = BuddyAllocator.fromMemblock(small(), X86);
  buddy.markPreserved(0x2400, 3);
  buddy.claimReservedPages(0x2400, 3);
  assert.deepEqual(
    [0x2400, 0x2401, 0x2402].map((p) => [buddy.pageState(p), buddy.pageInfo(p).order]),
    [
      ['allocated', 0],
      ['allocated', 0],
      ['allocated', 0],
    ],
  );
  buddy.free(0x2401, 0);
  assert.equal(buddy.pageState(0x2401), 'free');
  const p = buddy.alloc(2)!;
  buddy.splitBlock(p);
  buddy.free(p + 3, 0);
  assert.equal(buddy.pageState(p + 3), 'free');
  assert.equal(buddy.pageState(p), 'allocated');
  assert.equal(buddy.allocatedPages, 2 + 3);
});

test('bad frees are refused with SIM_BAD_FREE', () => {
  const { buddy } = BuddyAllocator.fromMemblock(small(), X86);
  const p = buddy.alloc(2)!;
  assert.throws(
    () => buddy.free(p, 1),
    (e) => isKhoError(e, 'SIM_BAD_FREE'),
  );
  assert.throws(
    () => buddy.free(p + 1, 0),
    (e) => isKhoError(e, 'SIM_BAD_FREE'),
  );
  buddy.free(p, 2);
  assert.throws(
    () => buddy.free(p, 2),
    (e) => isKhoError(e, 'SIM_BAD_FREE'),
  );
  assert.throws(
    () => buddy.alloc(11),
    (e) => isKhoError(e, 'SIM_BAD_ARGUMENT'),
  );
});

test('MIGRATE_CMA pageblocks serve only movable allocations', () => {
  const mb = new Memblock();
  mb.addNode(0x400000n, 0x400000n, 0); // 2 pageblocks
  const { buddy } = BuddyAllocator.fromMemblock(mb, X86);
  buddy.setMigrateCma(0x400, 0x800);
  assert.equal(buddy.alloc(0, { migratetype: 'unmovable' }), null);
  assert.equal(buddy.alloc(0, { migratetype: 'reclaimable' }), null);
  const p = buddy.alloc(0, { migratetype: 'movable' });
  assert.equal(p, 0x400);
  assert.ok(buddy.pageInfo(0x400).cma);
});

test('CMA and normal pageblocks do not merge above pageblock order', () => {
  const mb = new Memblock();
  mb.addNode(0x400000n, 0x400000n, 0);
  const { buddy } = BuddyAllocator.fromMemblock(mb, X86);
  buddy.setMigrateCma(0x600, 0x800); // upper pageblock only
  assert.deepEqual(buddy.freeBlockList(), [
    [0x400, 9],
    [0x600, 9],
  ]);
  // an unmovable order-9 comes from the normal block only; the CMA one remains
  assert.equal(buddy.alloc(9, { migratetype: 'unmovable' }), 0x400);
  assert.equal(buddy.alloc(9, { migratetype: 'unmovable' }), null);
  buddy.free(0x400, 9);
  assert.deepEqual(buddy.freeBlockList(), [
    [0x400, 9],
    [0x600, 9],
  ]);
});

test('cold-boot scratch: reserved pageblocks handed to the buddy as CMA (init_cma_reserved_pageblock)', () => {
  const mb = small();
  mb.reserve(0x3000000n, 0x400000n); // a 4 MiB "scratch" area, memblock-reserved
  const { buddy } = BuddyAllocator.fromMemblock(mb, X86);
  assert.equal(buddy.pageState(0x3000), 'reserved');
  const before = buddy.freePages;
  buddy.initCmaReserved(0x3000, 0x3400);
  assert.equal(buddy.freePages, before + 0x400);
  assert.equal(buddy.pageState(0x3000), 'free');
  assert.ok(buddy.pageInfo(0x33ff).cma);
  // exhaust normal memory with unmovable allocations: none lands in scratch
  for (let p = buddy.alloc(0); p !== null; p = buddy.alloc(0)) assert.ok(p < 0x3000 || p >= 0x3400);
  assert.equal(buddy.freePages, 0x400);
  assert.ok(buddy.alloc(3, { migratetype: 'movable' })! >= 0x3000);
});

test('reserved and preserved pages: states, claiming (restore), and never being handed out', () => {
  const { buddy } = BuddyAllocator.fromMemblock(small(), X86);
  buddy.reservePages(0x2100, 0x10, 'test');
  assert.equal(buddy.pageInfo(0x2105).tag, 'test');
  buddy.markPreserved(0x2200, 4);
  assert.equal(buddy.pageState(0x2201), 'reserved');
  assert.ok(buddy.pageInfo(0x2201).preserved);
  buddy.claimReserved(0x2200, 2, 'movable');
  assert.equal(buddy.pageState(0x2203), 'allocated');
  assert.deepEqual([buddy.pageInfo(0x2203).head, buddy.pageInfo(0x2203).order], [0x2200, 2]);
  buddy.free(0x2200, 2);
  assert.equal(buddy.pageState(0x2200), 'free');
  // preserving an allocated page, then freeing it: it becomes reserved, not free
  const p = buddy.alloc(1)!;
  buddy.markPreserved(p, 1);
  buddy.free(p, 1);
  assert.equal(buddy.pageState(p), 'reserved');
  assert.equal(buddy.pageState(p + 1), 'free');
  assert.throws(
    () => buddy.reservePages(buddy.alloc(0)!, 1),
    (e) => isKhoError(e, 'SIM_PAGE_BUSY'),
  );
  assert.throws(
    () => buddy.claimReserved(0x3000, 0),
    (e) => isKhoError(e, 'SIM_PAGE_BUSY'),
  );
  assert.throws(
    () => buddy.reservePages(0x9f, 1),
    (e) => isKhoError(e, 'SIM_BAD_ADDRESS'),
  );
  buddy.unreservePages(0x2100, 0x10);
  assert.equal(buddy.pageState(0x2105), 'free');
});

test('property: no page is ever handed out twice or while reserved/preserved; freeing all restores the free lists', () => {
  const op = fc.oneof(
    fc.record({
      k: fc.constant('alloc' as const),
      order: fc.integer({ min: 0, max: 10 }),
      movable: fc.boolean(),
    }),
    fc.record({ k: fc.constant('free' as const), pick: fc.nat() }),
    fc.record({
      k: fc.constant('preserve' as const),
      pfn: fc.integer({ min: 0x2000, max: 0x3fff }),
      n: fc.integer({ min: 1, max: 64 }),
    }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 0, max: 0x1f }), (ops, cmaBlock) => {
      const { buddy } = BuddyAllocator.fromMemblock(small(), X86);
      const cmaStart = 0x2000 + (cmaBlock % 16) * 0x200;
      buddy.setMigrateCma(cmaStart, cmaStart + 0x200);
      const initial = buddy.freeBlockList();
      const owned = new Map<number, number>();
      const preserved: [number, number][] = [];
      const ownedHas = (p: number) => [...owned].some(([h, o]) => p >= h && p < h + 2 ** o);
      for (const o of ops) {
        if (o.k === 'alloc') {
          const p = buddy.alloc(o.order, { migratetype: o.movable ? 'movable' : 'unmovable' });
          if (p === null) continue;
          assert.equal(p % 2 ** o.order, 0);
          for (const [h, or] of owned)
            assert.ok(p + 2 ** o.order <= h || p >= h + 2 ** or, 'double hand-out');
          for (const [s, e] of preserved)
            assert.ok(p + 2 ** o.order <= s || p >= e, 'preserved page handed out');
          assert.ok(p + 2 ** o.order <= 0x1000 || p >= 0x2000, 'memblock-reserved page handed out');
          if (!o.movable)
            assert.ok(p + 2 ** o.order <= cmaStart || p >= cmaStart + 0x200, 'unmovable allocation from CMA');
          owned.set(p, o.order);
        } else if (o.k === 'free') {
          if (owned.size === 0) continue;
          const [h, or] = [...owned][o.pick % owned.size];
          owned.delete(h);
          buddy.free(h, or);
        } else {
          if (
            [...Array(o.n).keys()].some((i) => ownedHas(o.pfn + i) || buddy.pageState(o.pfn + i) === 'absent')
          )
            continue;
          buddy.markPreserved(o.pfn, o.n);
          preserved.push([o.pfn, o.pfn + o.n]);
        }
        // accounting: every managed page is in exactly one state
        const alloc = [...owned.values()].reduce((a, or) => a + 2 ** or, 0);
        assert.equal(buddy.allocatedPages, alloc);
      }
      for (const [h, or] of owned) buddy.free(h, or);
      for (const [s, e] of preserved) {
        buddy.unmarkPreserved(s, e - s);
        buddy.unreservePages(s, e - s);
      }
      assert.deepEqual(buddy.freeBlockList(), initial);
    }),
    { numRuns: 150 },
  );
});

test('1 TiB of free memory costs one entry per free block and sets up quickly', () => {
  const mb = new Memblock();
  mb.addNode(0x100000n, (1n << 40n) - 0x100000n, 0);
  mb.reserve(0x1000000n, 0x4000000n);
  const t0 = cpuStart();
  const { buddy, freed } = BuddyAllocator.fromMemblock(mb, X86);
  const ms = cpuMsSince(t0);
  assert.equal(freed, 2 ** 28 - 0x100 - 0x4000);
  assert.ok(buddy.freeBlockCount < 2 ** 18 + 16, `${buddy.freeBlockCount} free blocks`);
  const p = buddy.alloc(10, { nid: 0 })!;
  assert.equal(buddy.pageState(p), 'allocated');
  buddy.free(p, 10);
  assert.ok(ms < 10000, `setup took ${ms} ms`);
  console.log(`# 1 TiB buddy setup: ${ms.toFixed(0)} ms, ${buddy.freeBlockCount} free blocks`);
});
