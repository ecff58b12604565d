import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError } from '../errors.ts';
import {
  chunkCapacity,
  decodeBitmapChunks,
  encodeBitmapChunks,
  preserveBits,
  validateBitmapChunks,
} from './bitmap-chunks.ts';
import { memoryFromBytes, type PhysMemory, SparseMemory, u64Bytes } from './memory/image.ts';
import type { PreservedBlock } from './radix-tree.ts';

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (e) {
    assert.ok(isKhoError(e));
    return e.code;
  }
}

type ChunkSpec = { pa: bigint; next: bigint; order: number; num?: number; entries: Array<[bigint, bigint]> };

/** Pages built byte by byte from spec §2.2: header {u64 next; u32 order; u32 num_elms}, then 16-byte entries. */
function chunkPage(c: ChunkSpec): Uint8Array {
  const b = new Uint8Array(4096);
  b.set(u64Bytes(c.next), 0);
  b.set([c.order & 0xff, (c.order >> 8) & 0xff, 0, 0], 8);
  const num = c.num ?? c.entries.length;
  b.set([num & 0xff, (num >> 8) & 0xff, 0, 0], 12);
  c.entries.forEach(([start, bm], i) => {
    b.set(u64Bytes(start), 16 + i * 16);
    b.set(u64Bytes(bm), 24 + i * 16);
  });
  return b;
}

function bitmapPage(bits: number[]): Uint8Array {
  const b = new Uint8Array(4096);
  for (const i of bits) b[i >> 3] |= 1 << (i & 7);
  return b;
}

function image(chunks: ChunkSpec[], bitmaps: Array<[bigint, number[]]>): PhysMemory {
  return memoryFromBytes([
    ...chunks.map((c) => ({ start: c.pa, bytes: chunkPage(c) })),
    ...bitmaps.map(([pa, bits]) => ({ start: pa, bytes: bitmapPage(bits) })),
  ]);
}

// Order-0 page at pfn 5 (bitmap 0, bit 5); order-0 page at pfn 32768 (bitmap 1, phys_start 32768 << 12);
// order-9 block at 0x4000_0000 (pfn_high 0x200: bitmap 0, bit 512).
const HAND_CHUNKS: ChunkSpec[] = [
  {
    pa: 0x13000n,
    next: 0x14000n,
    order: 0,
    entries: [
      [0n, 0x10000n],
      [0x8000000n, 0x11000n],
    ],
  },
  { pa: 0x14000n, next: 0n, order: 9, entries: [[0n, 0x12000n]] },
];
const HAND_BITMAPS: Array<[bigint, number[]]> = [
  [0x10000n, [5]],
  [0x11000n, [0]],
  [0x12000n, [512]],
];
const HAND_BLOCKS: PreservedBlock[] = [
  { pa: 0x5000n, order: 0 },
  { pa: 0x8000000n, order: 0 },
  { pa: 0x4000_0000n, order: 9 },
];

test('constants: 255 entries per chunk, 32768 bits per bitmap at 4 KiB', () => {
  assert.equal(chunkCapacity(), 255);
  assert.equal(preserveBits(), 32768);
  assert.equal(chunkCapacity(16384), 1023);
});

test('decode a hand-built chunk list', () => {
  const mem = image(HAND_CHUNKS, HAND_BITMAPS);
  const r = decodeBitmapChunks(mem, 0x13000n);
  assert.deepEqual(r.blocks, HAND_BLOCKS);
  assert.deepEqual(
    r.chunks.map((c) => [c.pa, c.order, c.entries.length]),
    [
      [0x13000n, 0, 2],
      [0x14000n, 9, 1],
    ],
  );
  assert.deepEqual(validateBitmapChunks(mem, 0x13000n), []);
  assert.deepEqual(decodeBitmapChunks(mem, 0n).blocks, []); // preserved-memory-map 0: nothing
});

test('encode reproduces the hand-built pages byte for byte (kernel allocation order)', () => {
  const mem = new SparseMemory({ allocBase: 0x10000n });
  const r = encodeBitmapChunks(HAND_BLOCKS, mem);
  assert.deepEqual(r, {
    head: 0x13000n,
    chunks: [0x13000n, 0x14000n],
    bitmaps: [0x10000n, 0x11000n, 0x12000n],
  });
  for (const c of HAND_CHUNKS) assert.deepEqual(mem.read(c.pa, 4096), chunkPage(c));
  for (const [pa, bits] of HAND_BITMAPS) assert.deepEqual(mem.read(pa, 4096), bitmapPage(bits));
  assert.deepEqual(encodeBitmapChunks([], new SparseMemory()), { head: 0n, chunks: [], bitmaps: [] });
});

test('a 256th bitmap of one order starts a second chunk of that order', () => {
  const mem = new SparseMemory();
  const blocks = Array.from({ length: 256 }, (_, n) => ({ pa: BigInt(n) * (32768n << 12n), order: 0 }));
  const r = encodeBitmapChunks(blocks, mem);
  assert.equal(r.chunks.length, 2);
  const d = decodeBitmapChunks(mem, r.head);
  assert.deepEqual(
    d.chunks.map((c) => [c.order, c.entries.length]),
    [
      [0, 255],
      [0, 1],
    ],
  );
  assert.deepEqual(d.blocks, blocks);
});

test('hostile lists: loops, num_elms > 255, bad orders, wild pointers, shared bitmaps', () => {
  const loop = image(
    [
      { pa: 0x1000n, next: 0x2000n, order: 0, entries: [] },
      { pa: 0x2000n, next: 0x1000n, order: 0, entries: [] },
    ],
    [],
  );
  assert.equal(
    codeOf(() => decodeBitmapChunks(loop, 0x1000n)),
    'KHO_CHUNK_LOOP',
  );
  const many = image([{ pa: 0x1000n, next: 0n, order: 0, num: 256, entries: [] }], []);
  assert.equal(
    codeOf(() => decodeBitmapChunks(many, 0x1000n)),
    'KHO_CHUNK_BAD_COUNT',
  );
  const badOrder = image(
    [{ pa: 0x1000n, next: 0n, order: 52, entries: [[0n, 0x10000n]] }],
    [[0x10000n, [0]]],
  );
  assert.equal(
    codeOf(() => decodeBitmapChunks(badOrder, 0x1000n)),
    'KHO_CHUNK_BAD_ORDER',
  );
  const wild = image([{ pa: 0x1000n, next: 0n, order: 0, entries: [[0n, 0x90000n]] }], []);
  assert.equal(
    codeOf(() => decodeBitmapChunks(wild, 0x1000n)),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
  assert.equal(
    codeOf(() => decodeBitmapChunks(wild, 0x1004n)),
    'KHO_CHUNK_UNALIGNED',
  );
  const shared = image(
    [
      {
        pa: 0x1000n,
        next: 0n,
        order: 0,
        entries: [
          [0n, 0x10000n],
          [0x8000000n, 0x10000n],
        ],
      },
    ],
    [[0x10000n, [1]]],
  );
  assert.equal(
    codeOf(() => decodeBitmapChunks(shared, 0x1000n)),
    'KHO_CHUNK_SHARED_BITMAP',
  );
  const overflow = image(
    [{ pa: 0x1000n, next: 0n, order: 0, entries: [[0xffff_ffff_ffff_f000n, 0x10000n]] }],
    [[0x10000n, [1]]],
  );
  assert.equal(
    codeOf(() => decodeBitmapChunks(overflow, 0x1000n)),
    'KHO_CHUNK_BAD_ENTRY',
  );
  const full = image(
    [{ pa: 0x1000n, next: 0n, order: 0, entries: [[0n, 0x10000n]] }],
    [[0x10000n, [1, 2, 3]]],
  );
  assert.equal(
    codeOf(() => decodeBitmapChunks(full, 0x1000n, { maxBlocks: 2 })),
    'KHO_CHUNK_TOO_MANY_BLOCKS',
  );
  // validate: all of them at once, and spec departures as warnings.
  const mixed = image(
    [
      {
        pa: 0x1000n,
        next: 0x2000n,
        order: 3,
        entries: [
          [0x1000n, 0x10000n],
          [0n, 0x90000n],
        ],
      },
      { pa: 0x2000n, next: 0x3000n, order: 1, num: 300, entries: [] },
      { pa: 0x3000n, next: 0n, order: 0, entries: [[0n, 0x10000n]] },
    ],
    [[0x10000n, [0]]],
  );
  assert.deepEqual(
    validateBitmapChunks(mixed, 0x1000n).map((f) => [f.code, f.severity]),
    [
      ['KHO_PTR_OUTSIDE_MEMORY', 'error'],
      ['KHO_CHUNK_BAD_COUNT', 'error'],
      ['KHO_CHUNK_SHARED_BITMAP', 'error'],
      ['KHO_CHUNK_BAD_PHYS_START', 'warning'],
      ['KHO_CHUNK_ORDER_SEQUENCE', 'warning'],
      ['KHO_CHUNK_ORDER_SEQUENCE', 'warning'],
    ],
  );
});

test('property: encode/decode round trip, LE and BE', () => {
  const block = fc
    .tuple(fc.integer({ min: 0, max: 10 }), fc.bigInt({ min: 0n, max: (1n << 36n) - 1n }))
    .map(([order, n]) => ({ order, pa: (n >> BigInt(order)) << BigInt(12 + order) }));
  fc.assert(
    fc.property(
      fc.array(block, { maxLength: 60 }),
      fc.constantFrom('little' as const, 'big' as const),
      (blocks, endian) => {
        const mem = new SparseMemory();
        const r = encodeBitmapChunks(blocks, mem, { endian });
        const d = decodeBitmapChunks(mem, r.head, { endian });
        const uniq = new Map(blocks.map((b) => [`${b.pa}:${b.order}`, b]));
        assert.deepEqual(
          d.blocks,
          [...uniq.values()].sort((a, b) => (a.pa < b.pa ? -1 : a.pa > b.pa ? 1 : a.order - b.order)),
        );
      },
    ),
    { numRuns: 100 },
  );
});
