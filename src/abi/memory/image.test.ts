import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError } from '../../errors.ts';
import { memoryFromBytes, readU32, readU64, SegmentedMemory, SparseMemory, u64Bytes } from './image.ts';

const bytes = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i));

test('reads span adjacent pieces; gaps and the ends are outside memory with the address', () => {
  const mem = memoryFromBytes([
    { start: 0x2000n, bytes: bytes(0x1000, (i) => i & 0xff) },
    { start: 0x1000n, bytes: bytes(0x1000, () => 0xaa) },
    { start: 0x5000n, bytes: bytes(0x10, () => 0xbb) },
  ]);
  assert.deepEqual(mem.ranges(), [
    { start: 0x1000n, size: 0x2000n },
    { start: 0x5000n, size: 0x10n },
  ]);
  assert.deepEqual(mem.read(0x1ffen, 4), Uint8Array.of(0xaa, 0xaa, 0, 1));
  assert.ok(mem.has(0x1000n, 0x2000));
  assert.ok(!mem.has(0x1000n, 0x2001));
  assert.ok(!mem.has(0xfffn, 1));
  assert.ok(mem.has(0x9999n, 0)); // empty reads are always covered
  for (const [pa, len] of [
    [0x2fffn, 2],
    [0xfffn, 1],
    [0x5010n, 1],
    [0xffff_ffff_ffff_fff0n, 0x20],
  ] as const) {
    assert.throws(
      () => mem.read(pa, len),
      (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY') && e.path === `phys:0x${pa.toString(16)}`,
    );
  }
  assert.throws(
    () => mem.read(0x1000n, -1),
    (e) => isKhoError(e, 'KHO_BAD_LENGTH'),
  );
  assert.throws(
    () => mem.read(0x1000n, 1.5),
    (e) => isKhoError(e, 'KHO_BAD_LENGTH'),
  );
  // A huge length is refused before anything is allocated.
  assert.throws(
    () => mem.read(0x1000n, 2 ** 52),
    (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'),
  );
  assert.equal(readU64(mem, 0x2008n), 0x0f0e0d0c0b0a0908n);
  assert.equal(readU64(mem, 0x2008n, 'big'), 0x08090a0b0c0d0e0fn);
  assert.equal(readU32(mem, 0x2004n), 0x07060504);
});

test('overlapping segments: the lower-starting one wins, the rest of the other stays', () => {
  const mem = new SegmentedMemory([
    { start: 0x1000n, size: 0x2000n, read: (o, n) => bytes(n, (i) => 0x10 + ((o + i) >> 12)) },
    { start: 0x800n, size: 0x1000n, read: (_o, n) => new Uint8Array(n).fill(2) },
    { start: 0x800n, size: 0x100n, read: (_o, n) => new Uint8Array(n).fill(4) },
  ]);
  assert.deepEqual(mem.ranges(), [{ start: 0x800n, size: 0x2800n }]);
  // The 0x800 segment (first of the two starting there) covers 0x800..0x17ff; the 0x1000 one keeps
  // 0x1800.. (its offset 0x800 on).
  assert.deepEqual(mem.read(0x800n, 1), Uint8Array.of(2));
  assert.deepEqual(mem.read(0x17ffn, 2), Uint8Array.of(2, 0x10));
  assert.deepEqual(mem.read(0x1fffn, 2), Uint8Array.of(0x10, 0x11));
  assert.throws(
    () =>
      new SegmentedMemory([
        { start: 0xffff_ffff_ffff_f000n, size: 0x2000n, read: (_o, n) => new Uint8Array(n) },
      ]),
    (e) => isKhoError(e, 'KHO_BAD_SEGMENT'),
  );
});

test('SparseMemory: bump allocation, zeroed pages, writes across pages', () => {
  const m = new SparseMemory({ allocBase: 0x10000n });
  assert.equal(m.allocPage(), 0x10000n);
  assert.equal(m.allocPage(), 0x11000n);
  m.write(0x10ffcn, u64Bytes(0x1122334455667788n));
  assert.equal(readU64(m, 0x10ffcn), 0x1122334455667788n);
  assert.deepEqual(m.read(0x11004n, 4), new Uint8Array(4));
  m.write(0x50000n, Uint8Array.of(9)); // a page never allocated appears
  assert.deepEqual(m.ranges(), [
    { start: 0x10000n, size: 0x2000n },
    { start: 0x50000n, size: 0x1000n },
  ]);
  assert.throws(
    () => m.read(0x12000n, 1),
    (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'),
  );
  let next = 0x700000n;
  const custom = new SparseMemory({ allocPage: () => (next -= 0x1000n) });
  assert.equal(custom.allocPage(), 0x6ff000n);
  assert.equal(custom.allocPage(), 0x6fe000n);
});

test('property: SegmentedMemory reads equal slicing a flat model', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 20 })), { maxLength: 6 }),
      fc.integer({ min: 0, max: 90 }),
      fc.integer({ min: 0, max: 30 }),
      (segs, at, len) => {
        const flat = new Int16Array(100).fill(-1);
        const pieces = segs.map(([s, n], k) => ({
          start: BigInt(s),
          bytes: bytes(n, (i) => (k * 31 + i) & 0xff),
        }));
        // Model: bytes come from the lowest-starting piece (ties: first in input).
        const order = pieces
          .map((p, k) => ({ p, k }))
          .sort((a, b) => Number(a.p.start - b.p.start) || a.k - b.k);
        for (const { p } of order)
          for (let i = 0; i < p.bytes.length; i++)
            if (flat[Number(p.start) + i] < 0) flat[Number(p.start) + i] = p.bytes[i];
        const mem = memoryFromBytes(pieces);
        const want = Array.from(flat.subarray(at, at + len));
        const covered = want.length === len && want.every((v) => v >= 0);
        assert.equal(mem.has(BigInt(at), len), covered);
        if (covered) assert.deepEqual([...mem.read(BigInt(at), len)], want);
        else
          assert.throws(
            () => mem.read(BigInt(at), len),
            (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'),
          );
      },
    ),
    { numRuns: 300 },
  );
});
