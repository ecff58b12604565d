import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FdtNode, FdtTree } from './model.ts';
import { dtcRunsNameCheck, encodeDtc } from './write-dtc.ts';

const be32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off);
const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const str = (s: string) => new Uint8Array(Buffer.from(`${s}\0`, 'latin1'));
const node = (name: string, props: [string, Uint8Array][], children: FdtNode[] = []): FdtNode => ({
  name,
  props: props.map(([n, value]) => ({ name: n, value })),
  children,
});

test('dtc layout: header, reservations at 40, struct, strings in first-use order with tail sharing', () => {
  const tree: FdtTree = {
    reserves: [{ address: 0x1000n, size: 0x2000n }],
    bootCpuidPhys: 5,
    root: node('', [['blob-size', new Uint8Array([1, 2, 3, 4])]], [node('a', [['size', new Uint8Array()]])]),
  };
  const b = encodeDtc(tree);
  // struct: root BEGIN(8) + blob-size(12+4) + a BEGIN(8) + size(12) + END_NODE*2 + END = 56.
  // strings: 'blob-size\0' only; 'size' is its tail at offset 5.
  const offStruct = 40 + 32;
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => be32(b, i * 4)),
    [0xd00dfeed, offStruct + 56 + 10, offStruct, offStruct + 56, 40, 17, 16, 5, 10, 56],
  );
  assert.equal(latin1(b.subarray(offStruct + 56)), 'blob-size\0');
  assert.equal(be32(b, offStruct + 8 + 8), 0);
  assert.equal(be32(b, offStruct + 24 + 8 + 8), 5);
});

test("dtc's name-property rewrite: a redundant name is dropped only when the earlier checks pass", () => {
  const clean = node(
    '',
    [],
    [node('serial@1000', [['name', str('serial')]]), node('x', [['name', str('y')]])],
  );
  assert.equal(dtcRunsNameCheck(clean), true);
  const withNames = encodeDtc({ reserves: [], bootCpuidPhys: 0, root: clean });
  const kept = encodeDtc({ reserves: [], bootCpuidPhys: 0, root: clean }, { dropNameProps: false });
  // serial's name (12 + 8 bytes) goes; x's wrong name stays.
  assert.equal(kept.length - withNames.length, 20);
  const dup = node('', [], [node('a', [['name', str('a')]]), node('a', [])]);
  assert.equal(dtcRunsNameCheck(dup), false);
  assert.equal(dtcRunsNameCheck(node('', [['name', new Uint8Array([1, 2])]], [])), false);
  assert.equal(dtcRunsNameCheck(node('', [], [node('a@1@2', [])])), false);
  assert.equal(dtcRunsNameCheck(node('', [['bad name', new Uint8Array()]], [])), false);
});

test('dtc padding options: -p adds bytes, -S pads to a minimum, -a aligns totalsize', () => {
  const tree: FdtTree = { reserves: [], bootCpuidPhys: 0, root: node('', []) };
  const base = encodeDtc(tree).length; // 40 + 16 + 8 + 4 + 4 = 72
  assert.equal(base, 72);
  assert.equal(encodeDtc(tree, { padSize: 3 }).length, 75);
  assert.equal(encodeDtc(tree, { minSize: 100 }).length, 100);
  assert.equal(encodeDtc(tree, { minSize: 10 }).length, 72);
  assert.equal(encodeDtc(tree, { align: 64 }).length, 128);
  assert.equal(be32(encodeDtc(tree, { align: 64 }), 4), 128);
  assert.equal(be32(encodeDtc(tree, { reserveSlots: 2 }), 8), 40 + 48);
});

test('names that no FDT can hold are refused with FDT_ERR_BADVALUE', () => {
  const tree: FdtTree = { reserves: [], bootCpuidPhys: 0, root: node('', [['a\0b', new Uint8Array()]]) };
  assert.throws(() => encodeDtc(tree), { code: 'FDT_ERR_BADVALUE' });
});

test('deep trees are written without recursion (20000 levels)', () => {
  let n: FdtNode = node('n', []);
  for (let i = 0; i < 20000; i++) n = node('n', [], [n]);
  const b = encodeDtc({ reserves: [], bootCpuidPhys: 0, root: node('', [], [n]) });
  // header 40 + terminator 16 + (20001 'n' nodes + root) * (BEGIN 8 + END_NODE 4) + END 4
  assert.equal(b.length, 40 + 16 + (20001 + 1) * 12 + 4);
});
