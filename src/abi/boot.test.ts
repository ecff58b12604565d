/**
 * Handover descriptors: SETUP_KEXEC_KHO bytes written out by hand from the layout (spec §4.2), and the
 * `/chosen` properties checked against dtc compiling the same values.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { oracle } from '../../test/helpers/oracle.ts';
import { isKhoError } from '../errors.ts';
import {
  decodeChosenKho,
  decodeKhoSetupData,
  encodeChosenKho,
  encodeKhoSetupData,
  findKhoSetupData,
} from './boot.ts';
import { memoryFromBytes } from './memory/image.ts';

const desc = { fdtAddr: 0x3c1f000n, fdtSize: 0x1000n, scratchAddr: 0x7bff0000n, scratchSize: 0x30n };

// next=0x1122334455667788, type=10, len=32, then fdt_addr, fdt_size, scratch_addr, scratch_size, all LE.
const HAND = Buffer.from(
  '8877665544332211' +
    '0a000000' +
    '20000000' +
    '00f0c10300000000' +
    '0010000000000000' +
    '0000ff7b00000000' +
    '3000000000000000',
  'hex',
);

test('SETUP_KEXEC_KHO setup_data: the 48 bytes of the layout', () => {
  assert.ok(Buffer.from(encodeKhoSetupData(desc, 0x1122334455667788n)).equals(HAND));
  assert.deepEqual(decodeKhoSetupData(HAND), { next: 0x1122334455667788n, ...desc });
});

test('setup_data of another type, a short payload or a cut node: typed errors', () => {
  const other = Buffer.from(HAND);
  other[8] = 1;
  assert.throws(
    () => decodeKhoSetupData(other),
    (e) => isKhoError(e, 'KHO_SETUP_DATA_BAD_TYPE'),
  );
  const short = Buffer.from(HAND);
  short[12] = 16;
  assert.throws(
    () => decodeKhoSetupData(short),
    (e) => isKhoError(e, 'KHO_SETUP_DATA_BAD_LENGTH'),
  );
  assert.throws(
    () => decodeKhoSetupData(HAND.subarray(0, 20)),
    (e) => isKhoError(e, 'KHO_SETUP_DATA_TRUNCATED'),
  );
});

test('walking a setup_data list finds the KHO node; a loop is KHO_SETUP_DATA_LOOP', () => {
  // node at 0x1000 (type 1, next 0x2000) -> KHO node at 0x2000
  const first = Buffer.alloc(16);
  first.writeBigUInt64LE(0x2000n, 0);
  first.writeUInt32LE(1, 8);
  const mem = memoryFromBytes([
    { start: 0x1000n, bytes: first },
    { start: 0x2000n, bytes: encodeKhoSetupData(desc) },
  ]);
  assert.deepEqual(findKhoSetupData(mem, 0x1000n), { next: 0n, ...desc });
  const loop = Buffer.alloc(16);
  loop.writeBigUInt64LE(0x1000n, 0);
  loop.writeUInt32LE(1, 8);
  assert.throws(
    () => findKhoSetupData(memoryFromBytes([{ start: 0x1000n, bytes: loop }]), 0x1000n),
    (e) => isKhoError(e, 'KHO_SETUP_DATA_LOOP'),
  );
});

test('/chosen linux,kho-fdt and linux,kho-scratch: same cells as dtc, decoded back', (t) => {
  if (!oracle(t, 'dtc')) return;
  const dts = `/dts-v1/;
/ { #address-cells = <2>; #size-cells = <1>;
  chosen { linux,kho-fdt = <0x0 0x3c1f000 0x1000>; linux,kho-scratch = <0x0 0x7bff0000 0x30>; };
};`;
  const dtb = execFileSync('dtc', ['-I', 'dts', '-O', 'dtb', '-q'], { input: dts });
  const props = encodeChosenKho(desc, 2, 1);
  const fdtStart = dtb.indexOf(Buffer.from([0, 0, 0, 0, 0x03, 0xc1, 0xf0, 0x00, 0, 0, 0x10, 0]));
  assert.ok(fdtStart > 0);
  assert.ok(Buffer.from(props['linux,kho-fdt']).equals(dtb.subarray(fdtStart, fdtStart + 12)));
  assert.deepEqual(decodeChosenKho(dtb), desc);
});

test('/chosen with one property only, or cells that do not match the root: typed errors', (t) => {
  if (!oracle(t, 'dtc')) return;
  const one = execFileSync('dtc', ['-I', 'dts', '-O', 'dtb', '-q'], {
    input: '/dts-v1/; / { #address-cells = <2>; #size-cells = <2>; chosen { linux,kho-fdt = <0 1 0 2>; }; };',
  });
  assert.throws(
    () => decodeChosenKho(one),
    (e) => isKhoError(e, 'KHO_CHOSEN_INCOMPLETE'),
  );
  const bad = execFileSync('dtc', ['-I', 'dts', '-O', 'dtb', '-q'], {
    input:
      '/dts-v1/; / { #address-cells = <2>; #size-cells = <2>; chosen { linux,kho-fdt = <0 1 2>; linux,kho-scratch = <0 1 2>; }; };',
  });
  assert.throws(
    () => decodeChosenKho(bad),
    (e) => isKhoError(e, 'KHO_CHOSEN_BAD_LENGTH'),
  );
  const cold = execFileSync('dtc', ['-I', 'dts', '-O', 'dtb', '-q'], {
    input: '/dts-v1/; / { chosen { }; };',
  });
  assert.equal(decodeChosenKho(cold), undefined);
});

test('round trips: setup_data and /chosen values for random descriptors (fast-check)', () => {
  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  fc.assert(
    fc.property(u64, u64, u64, u64, u64, (fdtAddr, fdtSize, scratchAddr, scratchSize, next) => {
      const d = { fdtAddr, fdtSize, scratchAddr, scratchSize };
      assert.deepEqual(decodeKhoSetupData(encodeKhoSetupData(d, next)), { next, ...d });
      const p = encodeChosenKho(d, 2, 2);
      assert.equal(p['linux,kho-fdt'].length, 16);
      assert.equal(Buffer.from(p['linux,kho-fdt']).readBigUInt64BE(0), fdtAddr);
      assert.equal(Buffer.from(p['linux,kho-scratch']).readBigUInt64BE(8), scratchSize);
    }),
    { numRuns: 200 },
  );
  // One cell cannot hold an address above 4 GiB.
  assert.throws(
    () => encodeChosenKho({ ...desc, fdtAddr: 1n << 32n }, 1, 1),
    (e) => isKhoError(e, 'KHO_CHOSEN_BAD_VALUE'),
  );
});
