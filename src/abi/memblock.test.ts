/**
 * memblock sub-FDT: the real 7.3.4 blobs decode to what libfdt reads and re-encode through the kernel's
 * sequential-write calls to the same bytes; the next kernel's revive checks give its log texts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { oracle } from '../../test/helpers/oracle.ts';
import { pyWalk } from '../../test/helpers/pywalk.ts';
import { VECTORS } from '../../test/helpers/vectors.ts';
import { isKhoError } from '../errors.ts';
import { decodeMemblockFdt, encodeMemblockFdt, reviveReserveMem, validateMemblockFdt } from './memblock.ts';

const BLOBS = [
  'flat-explicit/stage1/out/blobs/memblock',
  'flat-explicit/stage2/in/blobs/memblock',
  'numa-explicit/stage1/out/blobs/memblock',
  'default-scale/stage1/out/blobs/memblock',
  'default-scale/stage2/in/blobs/memblock',
];

test('real memblock blobs decode to the regions libfdt reads (native-endian start/size)', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const bytes = BLOBS.map((p) => readFileSync(join(VECTORS, p)));
  const walks = pyWalk(bytes);
  bytes.forEach((b, i) => {
    const dec = decodeMemblockFdt(b);
    assert.deepEqual(dec.findings, []);
    assert.equal(dec.compatible, 'memblock-v1');
    const kids = walks[i]!.nodes.filter((n) => n.depth === 2);
    assert.deepEqual(
      dec.regions,
      kids.map((k) => ({
        name: k.name,
        start: Buffer.from(k.props.find((p) => p.name === 'start')!.value, 'hex').readBigUInt64LE(0),
        size: Buffer.from(k.props.find((p) => p.name === 'size')!.value, 'hex').readBigUInt64LE(0),
      })),
    );
  });
});

test('the regions match the command lines (reserve_mem=4M:4096:khovec_region, 8M:2M:trace_buf)', () => {
  const flat = decodeMemblockFdt(readFileSync(join(VECTORS, BLOBS[0]!)));
  assert.deepEqual(
    flat.regions.map((r) => [r.name, r.size, r.start % 4096n]),
    [['khovec_region', 4n << 20n, 0n]],
  );
  const def = decodeMemblockFdt(readFileSync(join(VECTORS, BLOBS[3]!)));
  assert.deepEqual(
    def.regions.map((r) => [r.name, r.size, r.start % (2n << 20n)]),
    [['trace_buf', 8n << 20n, 0n]],
  );
});

test('re-encoding in the kernel call order reproduces every real memblock blob byte for byte', () => {
  for (const p of BLOBS) {
    const b = readFileSync(join(VECTORS, p));
    assert.ok(Buffer.from(encodeMemblockFdt(decodeMemblockFdt(b).regions)).equals(b), p);
  }
});

test('sequential write: strings in reverse first use ("size", "start", "compatible"), reservation map at 48', () => {
  const enc = encodeMemblockFdt([{ name: 'r', start: 0x1000n, size: 0x2000n }]);
  const b = Buffer.from(enc);
  assert.equal(b.readUInt32BE(16), 48);
  const off = b.readUInt32BE(12);
  assert.equal(b.subarray(off).toString('latin1'), 'size\0start\0compatible\0');
});

test('more regions than a page holds: FDT_ERR_NOSPACE', () => {
  const many = Array.from({ length: 200 }, (_, i) => ({
    name: `region${i}`,
    start: BigInt(i) << 20n,
    size: 4096n,
  }));
  assert.throws(
    () => encodeMemblockFdt(many),
    (e) => isKhoError(e, 'FDT_ERR_NOSPACE'),
  );
});

test("revive: the next kernel's checks and log texts", () => {
  const dec = decodeMemblockFdt(readFileSync(join(VECTORS, BLOBS[0]!)));
  assert.equal(
    reviveReserveMem(dec, 'khovec_region', 4n << 20n, 4096n).log,
    "Revived memory reservation 'khovec_region' from KHO",
  );
  assert.equal(
    reviveReserveMem(dec, 'khovec_region', 8n << 20n, 4096n).log,
    "KHO reserve-mem 'khovec_region' has wrong size (0x400000 != 0x800000)",
  );
  assert.equal(
    reviveReserveMem(dec, 'khovec_region', 4n << 20n, 1n << 40n).log,
    "KHO reserve-mem 'khovec_region' has wrong alignment (0x10000000000, 0x7d400000)",
  );
  assert.equal(reviveReserveMem(dec, 'other', 1n, 1n).revived, false);
});

test('hostile memblock FDTs give findings, not crashes', () => {
  const good = encodeMemblockFdt([{ name: 'r', start: 0x1000n, size: 0x2000n }]);
  // wrong root compatible: flip one byte of "memblock-v1"
  const b = Buffer.from(good);
  const i = b.indexOf('memblock-v1');
  b[i] = 0x4e;
  assert.deepEqual(
    validateMemblockFdt(b).map((f) => f.code),
    ['KHO_MEMBLOCK_BAD_COMPATIBLE'],
  );
  assert.deepEqual(
    validateMemblockFdt(new Uint8Array(10)).map((f) => f.code),
    ['FDT_ERR_TRUNCATED'],
  );
});
