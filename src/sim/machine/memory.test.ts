import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { cpuMsSince, cpuStart } from '../../../test/helpers/cpu.ts';
import { isKhoError } from '../../errors.ts';
import { PhysicalMemory } from './memory.ts';

const TiB = 1n << 40n;

test('never-written memory reads as zeros and costs nothing', () => {
  const m = new PhysicalMemory(4096, TiB);
  assert.deepEqual(m.read(TiB - 16n, 16), new Uint8Array(16));
  assert.deepEqual(m.read(0x12345678n, 10000), new Uint8Array(10000));
  assert.equal(m.residentPages, 0);
});

test('a write across a page boundary reads back and costs exactly the two pages touched', () => {
  const m = new PhysicalMemory(4096, TiB);
  const data = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
  m.write(0x2000n - 50n, data);
  assert.deepEqual(m.read(0x2000n - 50n, 100), data);
  assert.equal(m.residentPages, 2);
  // bytes around it are still zero
  assert.deepEqual(m.read(0x2000n - 60n, 10), new Uint8Array(10));
});

test('a 1 TiB machine written at its last byte holds one page', () => {
  const m = new PhysicalMemory(4096, TiB);
  m.write(TiB - 1n, Uint8Array.of(0xab));
  assert.equal(m.residentPages, 1);
  assert.equal(m.read(TiB - 1n, 1)[0], 0xab);
  assert.equal(m.residentBytes, 4096);
});

test('accesses outside the address space fail with SIM_BAD_ADDRESS', () => {
  const m = new PhysicalMemory(4096, 1n << 20n);
  for (const f of [
    () => m.read((1n << 20n) - 1n, 2),
    () => m.write(1n << 20n, Uint8Array.of(1)),
    () => m.read(-1n, 1),
    () => m.fill(0n, (1n << 20n) + 1n, 1),
    () => m.read(0n, -1),
  ])
    assert.throws(f, (e) => isKhoError(e, 'SIM_BAD_ADDRESS'));
});

test('fill and zero: zeroing whole pages gives them back', () => {
  const m = new PhysicalMemory(4096, 1n << 30n);
  m.fill(0x1800n, 0x2000n, 0x5a); // pages 1, 2, 3 partially/fully
  assert.equal(m.residentPages, 3);
  assert.deepEqual(m.read(0x17ffn, 3), Uint8Array.of(0, 0x5a, 0x5a));
  assert.deepEqual(m.read(0x37ffn, 2), Uint8Array.of(0x5a, 0));
  m.zero(0x1000n, 0x3000n);
  assert.equal(m.residentPages, 0);
  assert.deepEqual(m.read(0x1800n, 0x2000), new Uint8Array(0x2000));
  // writing zeros into untouched memory allocates nothing
  m.write(0x10000n, new Uint8Array(9000));
  assert.equal(m.residentPages, 0);
});

test('zeroing a whole terabyte is cheap; huge non-zero fills are refused', () => {
  const m = new PhysicalMemory(4096, TiB);
  m.fill(0x1000n, 0x3000n, 7);
  m.write(TiB - 4096n, Uint8Array.of(1));
  const t0 = cpuStart();
  m.zero(0n, TiB);
  assert.ok(cpuMsSince(t0) < 5000, 'zeroing must not touch every page');
  assert.equal(m.residentPages, 0);
  assert.throws(
    () => m.fill(0n, 2n << 30n, 1),
    (e) => isKhoError(e, 'SIM_BAD_ARGUMENT'),
  );
});

test('u32/u64 helpers are little-endian', () => {
  const m = new PhysicalMemory(4096, 1n << 20n);
  m.writeU64(0xffcn, 0x0102030405060708n);
  assert.deepEqual(m.read(0xffcn, 8), Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1));
  assert.equal(m.readU64(0xffcn), 0x0102030405060708n);
  m.writeU32(0x100n, 0xd00dfeed);
  assert.deepEqual(m.read(0x100n, 4), Uint8Array.of(0xed, 0xfe, 0x0d, 0xd0));
  assert.equal(m.readU32(0x100n), 0xd00dfeed);
});

test('sha256 of a range equals the hash of the same bytes built independently', () => {
  const m = new PhysicalMemory(4096, 1n << 30n);
  m.write(0x3000n + 4000n, Buffer.from('hello kexec world'));
  const expect = Buffer.alloc(3 * 4096);
  Buffer.from('hello kexec world').copy(expect, 4000);
  assert.equal(m.sha256(0x3000n, BigInt(expect.length)), createHash('sha256').update(expect).digest('hex'));
  // sha256 of 8 KiB of never-written memory = sha256 of 8 KiB of zeros
  assert.equal(m.sha256(0x100000n, 8192n), createHash('sha256').update(Buffer.alloc(8192)).digest('hex'));
});

test('digest depends on contents only, not on how they were written, even for huge ranges', () => {
  const a = new PhysicalMemory(4096, TiB);
  const b = new PhysicalMemory(4096, TiB);
  a.fill(0x7000_0000n, 10n, 0x11);
  b.write(
    0x7000_0000n - 5n,
    Uint8Array.of(0, 0, 0, 0, 0, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11),
  );
  b.fill(0x9000_0000n, 4096n, 0); // a zero page: must not matter
  assert.equal(a.digest(0n, TiB), b.digest(0n, TiB));
  b.write(0x8000_0000n, Uint8Array.of(1));
  assert.notEqual(a.digest(0n, TiB), b.digest(0n, TiB));
  // same bytes at another offset in the range give another digest
  const c = new PhysicalMemory(4096, TiB);
  c.fill(0x7000_1000n, 10n, 0x11);
  assert.notEqual(a.digest(0n, TiB), c.digest(0n, TiB));
});

test('snapshot and restore', () => {
  const m = new PhysicalMemory(4096, 1n << 24n);
  m.write(0x5000n, Uint8Array.of(1, 2, 3));
  const snap = m.snapshot();
  m.write(0x5000n, Uint8Array.of(9));
  m.clear();
  assert.equal(m.residentPages, 0);
  m.restore(snap);
  assert.deepEqual(m.read(0x5000n, 3), Uint8Array.of(1, 2, 3));
});

test('property: sparse memory behaves like a flat byte array and costs only pages holding data', () => {
  const SIZE = 64 * 1024;
  const op = fc.record({
    addr: fc.integer({ min: 0, max: SIZE - 1 }),
    data: fc.uint8Array({ minLength: 0, maxLength: 9000 }),
    kind: fc.constantFrom('write', 'fill', 'zero'),
    byte: fc.integer({ min: 0, max: 255 }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
      const m = new PhysicalMemory(4096, BigInt(SIZE));
      const flat = new Uint8Array(SIZE);
      const touched = new Set<number>(); // pages that ever received a non-zero byte
      for (const o of ops) {
        const len = Math.min(o.data.length, SIZE - o.addr);
        if (o.kind === 'write') {
          m.write(BigInt(o.addr), o.data.subarray(0, len));
          flat.set(o.data.subarray(0, len), o.addr);
          o.data.subarray(0, len).forEach((x, i) => {
            if (x) touched.add(Math.floor((o.addr + i) / 4096));
          });
        } else {
          const b = o.kind === 'zero' ? 0 : o.byte;
          m.fill(BigInt(o.addr), BigInt(len), b);
          flat.fill(b, o.addr, o.addr + len);
          if (b && len) for (let p = Math.floor(o.addr / 4096); p * 4096 < o.addr + len; p++) touched.add(p);
        }
      }
      assert.deepEqual(m.read(0n, SIZE), flat);
      // cost bound: every resident page was written with data at some time; pages never touched by a
      // non-zero write are never resident
      let nonZeroPages = 0;
      for (let p = 0; p < SIZE / 4096; p++)
        if (flat.subarray(p * 4096, (p + 1) * 4096).some((x) => x)) nonZeroPages++;
      assert.ok(m.residentPages >= nonZeroPages);
      for (const p of m.residentPfnsIn(0n, BigInt(SIZE)))
        assert.ok(touched.has(p), `page ${p} resident but never written`);
    }),
    { numRuns: 150 },
  );
});

test('sharePages: the arrays handed out keep their bytes while memory changes (copy on write)', () => {
  const m = new PhysicalMemory(4096, 1n << 24n);
  m.write(0x1000n, new Uint8Array([1, 2, 3]));
  m.write(0x3000n, new Uint8Array([9]));
  const shared = m.sharePages(0n, 0x4000n);
  assert.deepEqual(
    shared.map(([pfn]) => pfn),
    [1, 3],
  );
  const [, p1] = shared[0];
  const [, p3] = shared[1];
  assert.equal(m.residentPage(1), p1); // untouched: the same array
  m.write(0x1001n, new Uint8Array([7])); // small write path
  m.fill(0x3002n, 2n, 5); // partial fill path
  m.pageBytes(3, true)![10] = 4; // direct page access path
  assert.deepEqual([...p1.subarray(0, 3)], [1, 2, 3]);
  assert.deepEqual([...p3.subarray(0, 11)], [9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.notEqual(m.residentPage(1), p1);
  assert.deepEqual([...m.read(0x1000n, 3)], [1, 7, 3]);
  assert.deepEqual([...m.read(0x3000n, 11)], [9, 0, 5, 5, 0, 0, 0, 0, 0, 0, 4]);
  m.zero(0x1000n, 0x1000n);
  assert.equal(m.residentPage(1), undefined);
  assert.deepEqual([...p1.subarray(0, 3)], [1, 2, 3]);
});

test('readU64/writeU64 and small reads: little-endian, across a page boundary, zeros where unwritten', () => {
  const m = new PhysicalMemory(4096, 1n << 24n);
  m.writeU64(0x1ffcn, 0x1122334455667788n); // straddles pages 1 and 2
  assert.equal(m.readU64(0x1ffcn), 0x1122334455667788n);
  assert.deepEqual([...m.read(0x1ffcn, 8)], [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
  assert.equal(m.readU64(0x5000n), 0n);
  assert.throws(() => m.readU64((1n << 24n) - 4n), { code: 'SIM_BAD_ADDRESS' });
  assert.throws(() => m.read(1n << 60n, 8), { code: 'SIM_BAD_ADDRESS' });
});

test('addresses beyond 2^53 keep their exact page and offset (a 2^64-byte address space)', () => {
  const m = new PhysicalMemory(4096, 1n << 64n);
  const pa = (1n << 60n) + 0x1234n; // not representable exactly as a double
  m.write(pa, new Uint8Array([0xaa, 0xbb]));
  assert.deepEqual([...m.read(pa - 1n, 4)], [0, 0xaa, 0xbb, 0]);
  assert.deepEqual(m.residentPfnsIn(pa & ~0xfffn, 4096n), [Number(pa >> 12n)]);
  m.writeU64((1n << 64n) - 8n, 0x0102030405060708n);
  assert.equal(m.readU64((1n << 64n) - 8n), 0x0102030405060708n);
  assert.equal(m.readU64((1n << 64n) - 16n), 0n);
});
