import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError } from '../errors.ts';
import { encodeBitmapChunks } from './bitmap-chunks.ts';
import { openMemoryDir } from './memory/dir.ts';
import { memoryFromBytes, type PhysMemory, SparseMemory, u64Bytes } from './memory/image.ts';
import { getProfile } from './profile.ts';
import {
  blocksBytes,
  countBlocksByOrder,
  decodePreservedMemoryMap,
  decodeRadixKey,
  decodeRadixTree,
  encodeRadixTree,
  mergeBlockRanges,
  type PreservedBlock,
  RadixTreeWriter,
  radixGeometry,
  radixIndex,
  radixKey,
  validateRadixTree,
} from './radix-tree.ts';

const VEC = join(import.meta.dirname, '../../test/vectors/linux-7.3.4');
const SCENARIOS = [
  'flat-explicit',
  'numa-explicit',
  'default-scale',
  'bad-scratch',
  'three-hops',
  'luo-memfd',
];

interface Meta {
  out_root: number;
  in_root: number;
  radix_pages: number;
  preserved: { by_order: Record<string, number>; bytes: number; ranges: number };
}

function loadJson<T = Meta>(p: string): T {
  return JSON.parse(readFileSync(p, 'utf8')) as T;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isKhoError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

test('geometry follows the header formulas: 6 levels at 4 KiB, 4 at 64 KiB; 16 KiB is refused', () => {
  const g4 = radixGeometry(4096);
  assert.deepEqual(
    [g4.order0Log2, g4.tableLog2, g4.bitmapLog2, g4.depth],
    [52, 9, 15, 6], // spec §2.1 table
  );
  const g64 = radixGeometry(65536);
  // 64-16 = 48; 13 table bits; 19 bitmap bits; ceil((48-19)/13)+1 = 4
  assert.deepEqual([g64.order0Log2, g64.tableLog2, g64.bitmapLog2, g64.depth], [48, 13, 19, 4]);
  // 64 KiB: order-0 page at 0x1_0000_0000 is pfn 0x10000, key 2^48 | 0x10000: leaf bit 0x10000 (19 bits),
  // L1 = bits 19..31 = 0, L2 = bits 32..44 = 0, L3 = bits 45..57 = 8.
  const k64 = radixKey(0x1_0000_0000n, 0, g64);
  assert.equal(k64, (1n << 48n) | 0x10000n);
  assert.deepEqual(
    [3, 2, 1, 0].map((l) => radixIndex(k64, l, g64)),
    [8, 0, 0, 0x10000],
  );
  assert.deepEqual(decodeRadixKey(k64, g64), { pa: 0x1_0000_0000n, order: 0 });
  assert.equal(
    codeOf(() => radixGeometry(16384)),
    'KHO_UNSUPPORTED_PAGE_SIZE',
  );
  assert.equal(
    codeOf(() => radixGeometry(8192)),
    'KHO_UNSUPPORTED_PAGE_SIZE',
  );
});

test('keys and indices match the spec examples', () => {
  // Order-0 page at 0x1_0000_0000: key = 2^52 | 0x100000; L5 idx 2, L4..L2 idx 0, L1 idx 32, bit 0.
  const k1 = radixKey(0x1_0000_0000n, 0);
  assert.equal(k1, (1n << 52n) | 0x100000n);
  assert.deepEqual(
    [5, 4, 3, 2, 1, 0].map((l) => radixIndex(k1, l)),
    [2, 0, 0, 0, 32, 0],
  );
  // Order-9 page at 0x4000_0000: key = 2^43 | 0x200; L5 idx 0, L4 idx 2, others 0, bit 0x200.
  const k2 = radixKey(0x4000_0000n, 9);
  assert.equal(k2, (1n << 43n) | 0x200n);
  assert.deepEqual(
    [5, 4, 3, 2, 1, 0].map((l) => radixIndex(k2, l)),
    [0, 2, 0, 0, 0, 0x200],
  );
  assert.deepEqual(decodeRadixKey(k1), { pa: 0x1_0000_0000n, order: 0 });
  assert.deepEqual(decodeRadixKey(k2), { pa: 0x4000_0000n, order: 9 });
  assert.equal(decodeRadixKey(0n), undefined);
  assert.equal(decodeRadixKey(1n << 53n), undefined);
  assert.equal(
    codeOf(() => radixKey(0x1000n, 1)),
    'KHO_RADIX_BAD_BLOCK',
  ); // not 8 KiB aligned
  assert.equal(
    codeOf(() => radixKey(0n, 53)),
    'KHO_RADIX_BAD_BLOCK',
  );
});

for (const sc of SCENARIOS) {
  test(`${sc} stage 1: the radix tree in the captured memory decodes to preserved.json`, () => {
    const dir = join(VEC, sc, 'stage1');
    const meta = loadJson(join(dir, 'meta.json'));
    const expected = loadJson<Array<[string, number]>>(join(dir, 'preserved.json'));
    const mem = openMemoryDir(join(dir, 'mem'));
    try {
      const res = decodeRadixTree(mem, BigInt(meta.out_root));
      assert.deepEqual(
        res.blocks.map((b) => [`0x${b.pa.toString(16)}`, b.order]),
        expected,
      );
      const byOrder = Object.fromEntries(
        Object.entries(meta.preserved.by_order).map(([k, v]) => [Number(k), v]),
      );
      assert.deepEqual(countBlocksByOrder(res.blocks), byOrder);
      assert.equal(blocksBytes(res.blocks), BigInt(meta.preserved.bytes));
      assert.equal(mergeBlockRanges(res.blocks).length, meta.preserved.ranges);
      // The capture holds every tree page and otherwise only preserved ranges: so every captured page
      // that is not inside a preserved block must be one of our tree pages, and vice versa.
      const inBlock = (p: bigint) =>
        res.blocks.some((b) => p >= b.pa && p < b.pa + (4096n << BigInt(b.order)));
      const other: bigint[] = [];
      for (const r of mem.ranges())
        for (let p = r.start; p < r.start + r.size; p += 4096n) if (!inBlock(p)) other.push(p);
      assert.deepEqual(new Set(res.nodes.map((n) => n.pa)), new Set(other));
      // meta.radix_pages counts the tree pages; luo-memfd's count (37) is one more than the 36 pages the
      // capture holds outside preserved blocks (noted in the report).
      if (sc !== 'luo-memfd') assert.equal(res.nodes.length, meta.radix_pages);
      assert.equal(res.nodes[0].pa, BigInt(meta.out_root));
      assert.deepEqual(validateRadixTree(mem, BigInt(meta.out_root)), []);
    } finally {
      mem.close();
    }
  });

  test(`${sc} stage 1: re-encoding preserved.json gives the kernel's tree structure and leaf bitmaps`, () => {
    const dir = join(VEC, sc, 'stage1');
    const meta = loadJson(join(dir, 'meta.json'));
    const expected = loadJson<Array<[string, number]>>(join(dir, 'preserved.json'));
    const kmem = openMemoryDir(join(dir, 'mem'));
    try {
      const kernel = decodeRadixTree(kmem, BigInt(meta.out_root));
      const ours = new SparseMemory({ allocBase: 0x10_0000_0000n });
      // Insertion order must not matter: insert in reverse.
      const blocks = expected.map(([pa, order]) => ({ pa: BigInt(pa), order })).reverse();
      const { root, pages } = encodeRadixTree(blocks, ours);
      const mine = decodeRadixTree(ours, root);
      assert.equal(pages.length, kernel.nodes.length);
      const shape = (m: PhysMemory, nodes: typeof kernel.nodes) =>
        new Map(
          nodes.map((n) => {
            const bytes = m.read(n.pa, 4096);
            // Leaves compare byte for byte; tables compare by which entries are non-zero.
            const sig =
              n.level === 0
                ? Buffer.from(bytes).toString('hex')
                : [...Array(512).keys()]
                    .filter(
                      (i) => new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(i * 8, true) !== 0n,
                    )
                    .join(',');
            return [`${n.level}:${n.path.join('/')}`, sig];
          }),
        );
      assert.deepEqual(shape(ours, mine.nodes), shape(kmem, kernel.nodes));
    } finally {
      kmem.close();
    }
  });
}

test('stage 2 roots point at reused pages: decoding fails with a typed error, never a crash', () => {
  for (const sc of ['flat-explicit', 'numa-explicit', 'default-scale', 'luo-memfd', 'three-hops']) {
    for (const st of [2, 3]) {
      const dir = join(VEC, sc, `stage${st}`);
      if (!existsSync(join(dir, 'meta.json'))) continue;
      const meta = loadJson(join(dir, 'meta.json'));
      const mem = openMemoryDir(join(dir, 'mem'));
      try {
        const code = codeOf(() => decodeRadixTree(mem, BigInt(meta.in_root)));
        assert.match(code, /^KHO_/, `${sc} stage ${st}`);
        assert.ok(validateRadixTree(mem, BigInt(meta.in_root)).length > 0);
      } finally {
        mem.close();
      }
    }
  }
});

test('the encoder allocates like the kernel insert path: root first, then levels 4..0 per new path', () => {
  const mem = new SparseMemory({ allocBase: 0x10000n });
  const w = new RadixTreeWriter(mem);
  assert.equal(w.root, 0x10000n);
  w.add(0x1_0000_0000n, 0); // new path: L4, L3, L2, L1, leaf
  assert.deepEqual(w.pages, [0x10000n, 0x11000n, 0x12000n, 0x13000n, 0x14000n, 0x15000n]);
  w.add(0x1_0000_1000n, 0); // same leaf (bit 1): nothing allocated
  assert.equal(w.pages.length, 6);
  w.add(0x4000_0000n, 9); // L5[0] is new: 5 more pages
  assert.deepEqual(w.pages.slice(6), [0x16000n, 0x17000n, 0x18000n, 0x19000n, 0x1a000n]);
  // Hand-check the bytes: root entry 2 -> L4 page, leaf byte 0 = bits 0 and 1.
  assert.deepEqual(mem.read(0x10000n + 16n, 8), u64Bytes(0x11000n));
  assert.deepEqual(mem.read(0x10000n, 8), u64Bytes(0x16000n));
  assert.equal(mem.read(0x15000n, 1)[0], 0b11);
  // Order-9 block: bit 0x200 = byte 0x40, bit 0.
  assert.equal(mem.read(0x1a000n + 0x40n, 1)[0], 1);
  assert.equal(w.remove(0x1_0000_0000n, 0), true);
  assert.equal(w.remove(0x1_0000_0000n, 0), false);
  assert.equal(mem.read(0x15000n, 1)[0], 0b10);
  assert.equal(w.pages.length, 11); // nothing freed
  assert.deepEqual(decodeRadixTree(mem, w.root).blocks, [
    { pa: 0x4000_0000n, order: 9 },
    { pa: 0x1_0000_1000n, order: 0 },
  ]);
});

test('an empty tree is just the root', () => {
  const mem = new SparseMemory();
  const { root, pages } = encodeRadixTree([], mem);
  assert.deepEqual(pages, [root]);
  assert.deepEqual(decodeRadixTree(mem, root), {
    root,
    blocks: [],
    nodes: [{ pa: root, level: 5, path: [] }],
  });
});

/** A hand-built tree in a page map: pages[pa] = table entries {idx: value} or leaf bits. */
function handTree(
  tables: Record<string, Record<number, bigint>>,
  leaves: Record<string, number[]>,
): PhysMemory {
  const pieces: Array<{ start: bigint; bytes: Uint8Array }> = [];
  for (const [pa, ents] of Object.entries(tables)) {
    const b = new Uint8Array(4096);
    for (const [i, v] of Object.entries(ents)) b.set(u64Bytes(v), Number(i) * 8);
    pieces.push({ start: BigInt(pa), bytes: b });
  }
  for (const [pa, bits] of Object.entries(leaves)) {
    const b = new Uint8Array(4096);
    for (const i of bits) b[i >> 3] |= 1 << (i & 7);
    pieces.push({ start: BigInt(pa), bytes: b });
  }
  return memoryFromBytes(pieces);
}

// One valid path for keys with L5..L1 indices (2,0,0,0,32): order-0 pages at 0x1_0000_0000 + bit*4K.
const PATH = {
  '0x1000': { 2: 0x2000n },
  '0x2000': { 0: 0x3000n },
  '0x3000': { 0: 0x4000n },
  '0x4000': { 0: 0x5000n },
  '0x5000': { 32: 0x6000n },
};

test('hostile trees: loops, shared nodes, wild and unaligned pointers, bad keys give typed errors', () => {
  assert.deepEqual(decodeRadixTree(handTree(PATH, { '0x6000': [0, 3] }), 0x1000n).blocks, [
    { pa: 0x1_0000_0000n, order: 0 },
    { pa: 0x1_0000_3000n, order: 0 },
  ]);
  // A level-1 entry pointing back at the root.
  const loop = handTree({ ...PATH, '0x5000': { 32: 0x1000n } }, {});
  assert.equal(
    codeOf(() => decodeRadixTree(loop, 0x1000n)),
    'KHO_RADIX_LOOP',
  );
  // Two entries sharing one subtree (would multiply work without detection).
  const shared = handTree({ ...PATH, '0x1000': { 2: 0x2000n, 3: 0x2000n } }, { '0x6000': [1] });
  assert.equal(
    codeOf(() => decodeRadixTree(shared, 0x1000n)),
    'KHO_RADIX_LOOP',
  );
  const wild = handTree({ ...PATH, '0x5000': { 32: 0xdead_0000n } }, {});
  const e = (() => {
    try {
      decodeRadixTree(wild, 0x1000n);
    } catch (err) {
      return err;
    }
  })();
  assert.ok(isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'));
  assert.match(e.path!, /L5\[2\]\/L4\[0\]\/L3\[0\]\/L2\[0\]\/L1\[32\].*0xdead0000/);
  const unaligned = handTree({ ...PATH, '0x4000': { 0: 0x5008n } }, {});
  assert.equal(
    codeOf(() => decodeRadixTree(unaligned, 0x1000n)),
    'KHO_RADIX_UNALIGNED',
  );
  assert.equal(
    codeOf(() => decodeRadixTree(unaligned, 0x1008n)),
    'KHO_RADIX_UNALIGNED',
  );
  assert.equal(
    codeOf(() => decodeRadixTree(unaligned, 0n)),
    'KHO_RADIX_NO_ROOT',
  );
  assert.equal(
    codeOf(() => decodeRadixTree(unaligned, 0x9000n)),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
  // L5 index 4 sets key bit 53: above the order-0 bit (52), no block can live there.
  const badTop = handTree({ '0x1000': { 4: 0x2000n }, '0x2000': {} }, {});
  assert.equal(
    codeOf(() => decodeRadixTree(badTop, 0x1000n)),
    'KHO_RADIX_BAD_KEY',
  );
  // All-zero indices and bit 0: key 0.
  const zeroKey = handTree(
    {
      '0x1000': { 0: 0x2000n },
      '0x2000': { 0: 0x3000n },
      '0x3000': { 0: 0x4000n },
      '0x4000': { 0: 0x5000n },
      '0x5000': { 0: 0x6000n },
    },
    { '0x6000': [0, 1] },
  );
  assert.equal(
    codeOf(() => decodeRadixTree(zeroKey, 0x1000n)),
    'KHO_RADIX_BAD_KEY',
  );
  // validate reports every problem and keeps the good blocks' walk going.
  const many = handTree(
    {
      ...PATH,
      '0x1000': { 1: 0xdead_0000n, 2: 0x2000n, 4: 0x2000n },
      '0x5000': { 31: 0x7008n, 32: 0x6000n },
    },
    { '0x6000': [5] },
  );
  const f = validateRadixTree(many, 0x1000n);
  assert.deepEqual(f.map((x) => x.code).sort(), [
    'KHO_PTR_OUTSIDE_MEMORY',
    'KHO_RADIX_BAD_KEY',
    'KHO_RADIX_UNALIGNED',
  ]);
  // Caps.
  assert.equal(
    codeOf(() => decodeRadixTree(handTree(PATH, { '0x6000': [0] }), 0x1000n, { maxNodes: 3 })),
    'KHO_RADIX_TOO_MANY_NODES',
  );
  assert.equal(
    codeOf(() => decodeRadixTree(handTree(PATH, { '0x6000': [0, 1, 2] }), 0x1000n, { maxBlocks: 2 })),
    'KHO_RADIX_TOO_MANY_BLOCKS',
  );
});

test('validate warns about overlapping blocks', () => {
  const mem = new SparseMemory();
  const { root } = encodeRadixTree(
    [
      { pa: 0x200000n, order: 9 },
      { pa: 0x201000n, order: 0 },
    ],
    mem,
  );
  const f = validateRadixTree(mem, root);
  assert.deepEqual(
    f.map((x) => [x.code, x.severity]),
    [['KHO_RADIX_OVERLAP', 'warning']],
  );
});

test('mergeBlockRanges joins adjacent and overlapping blocks', () => {
  const r = mergeBlockRanges([
    { pa: 0x3000n, order: 0 },
    { pa: 0x1000n, order: 0 },
    { pa: 0x2000n, order: 0 },
    { pa: 0x8000n, order: 3 },
    { pa: 0x9000n, order: 0 },
  ]);
  assert.deepEqual(r, [
    { start: 0x1000n, size: 0x3000n },
    { start: 0x8000n, size: 0x8000n },
  ]);
});

const blockArb = (maxOrder: number, shift: number) =>
  fc
    .tuple(fc.integer({ min: 0, max: maxOrder }), fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }))
    .map(([order, n]) => ({ order, pa: (n >> BigInt(order)) << BigInt(shift + order) }));

function canon(blocks: PreservedBlock[]): PreservedBlock[] {
  const m = new Map(blocks.map((b) => [`${b.pa}:${b.order}`, b]));
  return [...m.values()].sort((a, b) => (a.pa < b.pa ? -1 : a.pa > b.pa ? 1 : a.order - b.order));
}

test('property: encode then decode gives the set of blocks, whatever the insertion order, LE and BE, 4K and 64K', () => {
  for (const [pageSize, shift] of [
    [4096, 12],
    [65536, 16],
  ]) {
    fc.assert(
      fc.property(
        fc.array(blockArb(12, shift), { maxLength: 40 }),
        fc.constantFrom('little' as const, 'big' as const),
        (blocks, endian) => {
          const m1 = new SparseMemory({ pageSize });
          const m2 = new SparseMemory({ pageSize });
          const t1 = encodeRadixTree(blocks, m1, { endian });
          const t2 = encodeRadixTree([...blocks].reverse(), m2, { endian });
          const d1 = decodeRadixTree(m1, t1.root, { pageSize, endian });
          const d2 = decodeRadixTree(m2, t2.root, { pageSize, endian });
          assert.deepEqual(d1.blocks, canon(blocks));
          assert.deepEqual(d2.blocks, d1.blocks);
          assert.equal(t1.pages.length, t2.pages.length);
        },
      ),
      { numRuns: 100 },
    );
  }
});

test('big-endian trees store table entries and bitmap words big-endian (hand-derived)', () => {
  const mem = new SparseMemory({ allocBase: 0x10000n });
  const w = new RadixTreeWriter(mem, { endian: 'big' });
  w.add(0x1_0000_0000n, 0); // bit 0 of the leaf: word 0, least significant bit -> byte 7, bit 0
  w.add(0x1_0000_9000n, 0); // bit 9: word 0 bit 9 -> byte 6, bit 1
  assert.deepEqual(mem.read(0x10000n + 16n, 8), Uint8Array.of(0, 0, 0, 0, 0, 1, 0x10, 0));
  assert.deepEqual(mem.read(0x15000n, 8), Uint8Array.of(0, 0, 0, 0, 0, 0, 2, 1));
  assert.equal(
    codeOf(() => decodeRadixTree(mem, 0x10000n)),
    'KHO_PTR_OUTSIDE_MEMORY',
  ); // read as LE: wild
  assert.deepEqual(decodeRadixTree(mem, 0x10000n, { endian: 'big' }).blocks, [
    { pa: 0x1_0000_0000n, order: 0 },
    { pa: 0x1_0000_9000n, order: 0 },
  ]);
});

test('decodePreservedMemoryMap picks the format from the profile', () => {
  const blocks = [
    { pa: 0x200000n, order: 9 },
    { pa: 0x5000n, order: 0 },
  ];
  const m1 = new SparseMemory();
  const t = encodeRadixTree(blocks, m1);
  const r = decodePreservedMemoryMap(m1, t.root, getProfile('kho-v4'));
  assert.equal(r.format, 'radix-tree');
  assert.deepEqual(r.blocks, [...blocks].reverse());
  assert.deepEqual(r.trackerPages, t.pages);
  const m2 = new SparseMemory();
  const c = encodeBitmapChunks(blocks, m2);
  const v1 = decodePreservedMemoryMap(m2, c.head, getProfile('kho-v1'));
  assert.equal(v1.format, 'bitmap-chunks');
  assert.deepEqual(v1.blocks, [...blocks].reverse());
  assert.deepEqual(new Set(v1.trackerPages), new Set([...c.chunks, ...c.bitmaps]));
  assert.deepEqual(decodePreservedMemoryMap(m2, 0n, getProfile('kho-v1')).blocks, []);
  assert.equal(
    codeOf(() => decodePreservedMemoryMap(m2, 0n, getProfile('kho-v2'))),
    'KHO_RADIX_NO_ROOT',
  );
  assert.equal(
    codeOf(() => decodePreservedMemoryMap(m2, 0x1000n, getProfile('kho-v4', { pageSize: 16384 }))),
    'KHO_UNSUPPORTED_PAGE_SIZE',
  );
});
