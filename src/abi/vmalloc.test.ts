import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { codeOf } from '../../test/helpers/errors.ts';
import { preservedJson, SCENARIOS, VECTORS } from '../../test/helpers/vectors.ts';
import { decodeKhoTestFdt } from './kho-test.ts';
import { openMemoryDir } from './memory/dir.ts';
import { memoryFromBytes, type PhysMemory, SparseMemory, u64Bytes } from './memory/image.ts';
import {
  decodeKhoVmalloc,
  decodeVmalloc,
  encodeKhoVmalloc,
  encodeVmalloc,
  KHO_VMALLOC_ALLOC,
  KHO_VMALLOC_HUGE_VMAP,
  readVmallocData,
  validateVmalloc,
  vmallocChunkEntries,
} from './vmalloc.ts';

/** Chunk pages by hand: [pa, next, phys entries]. */
function chunks(
  spec: Array<[bigint, bigint, bigint[]]>,
  extra: Array<{ start: bigint; bytes: Uint8Array }> = [],
): PhysMemory {
  return memoryFromBytes([
    ...spec.map(([pa, next, phys]) => {
      const b = new Uint8Array(4096);
      b.set(u64Bytes(next), 0);
      phys.forEach((p, i) => b.set(u64Bytes(p), 8 + i * 8));
      return { start: pa, bytes: b };
    }),
    ...extra,
  ]);
}

test('struct kho_vmalloc: 16 bytes u64 first, u32 total_pages, u16 flags, u16 order (hand-derived)', () => {
  assert.equal(vmallocChunkEntries(), 511);
  const b = encodeKhoVmalloc({
    first: 0x1234000n,
    totalPages: 5,
    flags: KHO_VMALLOC_ALLOC | KHO_VMALLOC_HUGE_VMAP,
    order: 2,
  });
  assert.deepEqual([...b], [0, 0x40, 0x23, 1, 0, 0, 0, 0, 5, 0, 0, 0, 3, 0, 2, 0]);
  assert.deepEqual(decodeKhoVmalloc(b), { first: 0x1234000n, totalPages: 5, flags: 3, order: 2 });
  assert.equal(
    codeOf(() => decodeKhoVmalloc(new Uint8Array(15))),
    'KHO_VMALLOC_TOO_SMALL',
  );
});

test('decode a hand-built two-chunk list and read the data', () => {
  const data = new Uint8Array(8192).fill(0xab);
  const mem = chunks(
    [
      [0x1000n, 0x2000n, [0x10000n]],
      [0x2000n, 0n, [0x12000n]],
    ],
    [
      { start: 0x10000n, bytes: data },
      { start: 0x12000n, bytes: new Uint8Array(8192).fill(0xcd) },
    ],
  );
  const d = decodeVmalloc(mem, { first: 0x1000n, totalPages: 4, flags: 1, order: 1 });
  assert.deepEqual(d.chunks, [0x1000n, 0x2000n]);
  assert.deepEqual(d.blocks, [0x10000n, 0x12000n]);
  const bytes = readVmallocData(mem, d);
  assert.equal(bytes.length, 16384);
  assert.equal(bytes[8191], 0xab);
  assert.equal(bytes[8192], 0xcd);
  assert.equal(
    codeOf(() => readVmallocData(mem, d, { maxBytes: 100 })),
    'KHO_VMALLOC_TOO_LARGE',
  );
  assert.equal(
    codeOf(() => readVmallocData(mem, { ...d, blocks: [0x40000n] })),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
});

test('the kernel restore checks and our pointer checks', () => {
  const two = chunks([[0x1000n, 0n, [0x10000n, 0x11000n]]]);
  // More blocks than total_pages, fewer than total_pages.
  assert.equal(
    codeOf(() => decodeVmalloc(two, { first: 0x1000n, totalPages: 1, flags: 1, order: 0 })),
    'KHO_VMALLOC_TOO_MANY_PAGES',
  );
  assert.equal(
    codeOf(() => decodeVmalloc(two, { first: 0x1000n, totalPages: 3, flags: 1, order: 0 })),
    'KHO_VMALLOC_COUNT_MISMATCH',
  );
  assert.equal(
    codeOf(() => decodeVmalloc(two, { first: 0x1000n, totalPages: 2, flags: 1, order: 40 })),
    'KHO_VMALLOC_BAD_ORDER',
  );
  // Loops (self and two-chunk) would hang the kernel's while (chunk) loop.
  const self = chunks([[0x1000n, 0x1000n, []]]);
  assert.equal(
    codeOf(() => decodeVmalloc(self, { first: 0x1000n, totalPages: 0, flags: 1, order: 0 })),
    'KHO_VMALLOC_LOOP',
  );
  // Empty chunks beyond what total_pages needs (1 chunk, plus one spare).
  const empties = chunks([
    [0x1000n, 0x2000n, []],
    [0x2000n, 0x3000n, []],
    [0x3000n, 0n, []],
  ]);
  assert.equal(
    codeOf(() => decodeVmalloc(empties, { first: 0x1000n, totalPages: 0, flags: 1, order: 0 })),
    'KHO_VMALLOC_TOO_MANY_CHUNKS',
  );
  const loop = chunks([
    [0x1000n, 0x2000n, [0x10000n]],
    [0x2000n, 0x1000n, [0x11000n]],
  ]);
  assert.equal(
    codeOf(() => decodeVmalloc(loop, { first: 0x1000n, totalPages: 4000, flags: 1, order: 0 })),
    'KHO_VMALLOC_LOOP',
  );
  assert.equal(
    codeOf(() => decodeVmalloc(two, { first: 0x3000n, totalPages: 2, flags: 1, order: 0 })),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
  assert.equal(
    codeOf(() => decodeVmalloc(two, { first: 0x1010n, totalPages: 2, flags: 1, order: 0 })),
    'KHO_VMALLOC_UNALIGNED',
  );
  // first = 0: an empty area is valid only with total_pages 0.
  assert.deepEqual(decodeVmalloc(two, { first: 0n, totalPages: 0, flags: 1, order: 0 }).blocks, []);
  const f = validateVmalloc(chunks([[0x1000n, 0n, [0x10800n]]]), {
    first: 0x1000n,
    totalPages: 1,
    flags: 0x81,
    order: 0,
  });
  assert.deepEqual(
    f.map((x) => [x.code, x.severity]),
    [
      ['KHO_VMALLOC_UNKNOWN_FLAGS', 'warning'],
      ['KHO_VMALLOC_UNALIGNED', 'warning'],
    ],
  );
  assert.deepEqual(
    validateVmalloc(two, { first: 0x1000n, totalPages: 3, flags: 1, order: 0 }).map((x) => x.code),
    ['KHO_VMALLOC_COUNT_MISMATCH'],
  );
});

test('encode allocates the first chunk up front and a new one every 511 blocks', () => {
  const mem = new SparseMemory({ allocBase: 0x50000n });
  const blocks = Array.from({ length: 512 }, (_, i) => 0x1000_0000n + BigInt(i) * 0x1000n);
  const { desc, bytes, chunks: cs } = encodeVmalloc(mem, blocks);
  assert.deepEqual(cs, [0x50000n, 0x51000n]);
  assert.deepEqual(desc, { first: 0x50000n, totalPages: 512, flags: KHO_VMALLOC_ALLOC, order: 0 });
  assert.deepEqual(decodeKhoVmalloc(bytes), desc);
  assert.deepEqual(
    mem.read(0x50000n, 16),
    Uint8Array.of(0, 0x10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0),
  );
  assert.deepEqual(
    mem.read(0x51000n, 24),
    Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x1f, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
  );
  const empty = encodeVmalloc(new SparseMemory(), []);
  assert.equal(empty.chunks.length, 1);
  assert.equal(empty.desc.totalPages, 0);
});

test('property: encode/decode round trip', () => {
  fc.assert(
    fc.property(
      fc.array(fc.bigInt({ min: 1n, max: 1n << 30n }), { maxLength: 1200 }),
      fc.integer({ min: 0, max: 4 }),
      fc.constantFrom('little' as const, 'big' as const),
      (raw, order, endian) => {
        const blocks = raw.map((b) => b << BigInt(12 + order));
        const mem = new SparseMemory();
        const { bytes } = encodeVmalloc(mem, blocks, { order, endian });
        const d = decodeVmalloc(mem, decodeKhoVmalloc(bytes, endian), { endian });
        assert.deepEqual(d.blocks, blocks);
        assert.equal(d.totalPages, blocks.length << order);
      },
    ),
    { numRuns: 60 },
  );
});

test('vectors: the self-test folios_info vmalloc area decodes from captured memory to preserved folios', () => {
  for (const sc of SCENARIOS) {
    const dir = join(VECTORS, sc, 'stage1');
    const t = decodeKhoTestFdt(new Uint8Array(readFileSync(join(dir, 'out/blobs/kho_test'))));
    const preserved = new Set(preservedJson(`${sc}/stage1`).map(([pa, o]) => `${BigInt(pa)}:${o}`));
    const mem = openMemoryDir(join(dir, 'mem'));
    try {
      const d = decodeVmalloc(mem, t.foliosInfo!);
      assert.equal(d.totalPages, 1, sc);
      assert.equal(d.flags, KHO_VMALLOC_ALLOC);
      // Spec §2.5: the chunk page and each data block are themselves preserved (order 0 here).
      for (const pa of [...d.chunks, ...d.blocks]) assert.ok(preserved.has(`${pa}:0`), `${sc} ${pa}`);
      // lib/test_kho.c stores each folio as phys | order; all nr_folios of them are preserved blocks.
      const area = new DataView(readVmallocData(mem, d).buffer);
      for (let i = 0; i < t.nrFolios!; i++) {
        const w = area.getBigUint64(i * 8, true);
        assert.ok(preserved.has(`${w & ~0xfffn}:${Number(w & 0xfffn)}`), `${sc} folio ${i}`);
      }
      assert.equal(area.getBigUint64(t.nrFolios! * 8, true), 0n);
      assert.deepEqual(validateVmalloc(mem, t.foliosInfo!), []);
    } finally {
      mem.close();
    }
  }
});
