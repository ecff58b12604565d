/**
 * Unit tests of the DTS printer. Expected texts are written out by hand from dtc 1.6.1's rules
 * (treesource.c: value guess, escapes, `0x%02x` cells, `%02x` bytes, `/memreserve/\t0x%016llx
 * 0x%016llx;`, layout), or recorded from `dtc -I dtb -O dts` (the KHO vector below). The oracle suite
 * (test/oracle/dts.oracle.test.ts) compares with dtc itself on many more trees.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { KhoError } from '../errors.ts';
import { dtsValueKind, formatDtsValue, toDts, toDtsBytes } from './dts.ts';
import type { FdtNode, FdtTree } from './model.ts';
import { parseFdt } from './reader.ts';

const b = (...xs: number[]) => Uint8Array.from(xs);
const s = (text: string) => new Uint8Array(Buffer.from(text, 'latin1'));
const node = (name: string, props: [string, Uint8Array][] = [], children: FdtNode[] = []): FdtNode => ({
  name,
  props: props.map(([n, value]) => ({ name: n, value })),
  children,
});
const tree = (root: FdtNode, reserves: [bigint, bigint][] = []): FdtTree => ({
  root,
  reserves: reserves.map(([address, size]) => ({ address, size })),
  bootCpuidPhys: 0,
});

test('value guess: strings need a final NUL, string bytes only, and no more NULs than other bytes', () => {
  const cases: [Uint8Array, string][] = [
    [b(), 'empty'],
    [s('a\0'), 'string'], // 1 NUL <= 1 other
    [s(' \0'), 'string'],
    [s('\0'), 'bytes'], // 1 NUL > 0 others, length 1
    [s('\0\0\0\0'), 'cells'], // only NULs, length 4
    [s('a\0\0'), 'bytes'], // 2 NULs > 1 other
    [s('ab\0\0'), 'string'], // 2 NULs <= 2 others
    [s('a\0b\0\0\0'), 'bytes'], // 4 NULs > 2 others, length 6
    [s('\0ab'), 'bytes'], // no final NUL
    [s('abc'), 'bytes'],
    [s('abcd'), 'cells'], // no final NUL, length 4
    [s('\0ab\0'), 'string'], // a leading NUL is fine
    [s('\x07\x08\t\n\x0b\x0c\r\0'), 'string'], // \a..\r are string bytes
    [s('\x06\0'), 'bytes'],
    [s('\x0e\0'), 'bytes'],
    [s('\x7f\0'), 'bytes'], // DEL is not printable
    [s('\x80\0'), 'bytes'], // nor is anything above 0x7e
    [s('caf\xe9\0\0\0\0'), 'cells'],
  ];
  for (const [v, kind] of cases) assert.equal(dtsValueKind(v), kind, Buffer.from(v).toString('hex'));
});

test('value text: dtc escapes, cells with at least two hex digits, two-digit bytes', () => {
  assert.equal(formatDtsValue(b()), ';');
  assert.equal(formatDtsValue(s('hello\0')), ' = "hello";');
  assert.equal(
    formatDtsValue(s('a\x07b\x08c\td\ne\x0bf\x0cg\rh\\i"j\0')),
    ' = "a\\ab\\bc\\td\\ne\\vf\\fg\\rh\\\\i\\"j";',
  );
  // A string list has no type markers in a blob: dtc prints the inner NULs as \0.
  assert.equal(formatDtsValue(s('first\0second\0')), ' = "first\\0second";');
  assert.equal(formatDtsValue(s("it's {};\0")), ' = "it\'s {};";');
  assert.equal(formatDtsValue(b(0, 0, 0, 0)), ' = <0x00>;');
  assert.equal(
    formatDtsValue(b(0, 0, 0, 1, 0, 0, 0, 0x0f, 0, 0, 0, 0x10, 0xde, 0xad, 0xbe, 0xef)),
    ' = <0x01 0x0f 0x10 0xdeadbeef>;',
  );
  assert.equal(formatDtsValue(b(0xff, 0xff, 0xff, 0xff)), ' = <0xffffffff>;');
  assert.equal(formatDtsValue(b(0x00, 0x0a, 0xff)), ' = [00 0a ff];');
  assert.equal(formatDtsValue(s('\0')), ' = [00];');
});

test('layout: header, memreserve lines, tabs, props before children, blank line before each child', () => {
  const t = tree(
    node(
      '',
      [
        ['compatible', s('vendor,board\0')],
        ['#address-cells', b(0, 0, 0, 2)],
      ],
      [
        node('cpus', [['empty', b()]], [node('cpu@0', [['reg', b(0, 0, 0, 0)]])]),
        node('memory@80000000', [['data', b(1, 2, 3)]]),
        node('leaf'),
      ],
    ),
    [
      [0x1000n, 0x2000n],
      [0xffffffffffffffffn, 1n],
    ],
  );
  const expected = [
    '/dts-v1/;',
    '',
    '/memreserve/\t0x0000000000001000 0x0000000000002000;',
    '/memreserve/\t0xffffffffffffffff 0x0000000000000001;',
    '/ {',
    '\tcompatible = "vendor,board";',
    '\t#address-cells = <0x02>;',
    '',
    '\tcpus {',
    '\t\tempty;',
    '',
    '\t\tcpu@0 {',
    '\t\t\treg = <0x00>;',
    '\t\t};',
    '\t};',
    '',
    '\tmemory@80000000 {',
    '\t\tdata = [01 02 03];',
    '\t};',
    '',
    '\tleaf {',
    '\t};',
    '};',
    '',
  ].join('\n');
  assert.equal(toDts(t), expected);
});

test('an empty tree is the header and an empty root', () => {
  assert.equal(toDts(tree(node(''))), '/dts-v1/;\n\n/ {\n};\n');
});

test('memreserve: dtc stops at the first entry of size 0; address 0 with a size is an entry', () => {
  const t = tree(node(''), [
    [0n, 0x10n],
    [0x5000n, 0n],
    [0x9000n, 0x1000n],
  ]);
  assert.equal(toDts(t), '/dts-v1/;\n\n/memreserve/\t0x0000000000000000 0x0000000000000010;\n/ {\n};\n');
});

test("redundant name properties are dropped as dtc's name check does, unless dtcChecks is false", () => {
  const t = tree(
    node(
      '',
      [['name', s('\0')]],
      [
        node('cpu@0', [
          ['name', s('cpu\0')],
          ['label', s('cpu\0')],
        ]),
        node('other', [['name', s('another\0')]]),
        node('full@1', [['name', s('full@1\0')]]),
      ],
    ),
  );
  const kept = [
    '/dts-v1/;\n\n/ {\n\tname = [00];\n',
    '\n\tcpu@0 {\n\t\tname = "cpu";\n\t\tlabel = "cpu";\n\t};\n',
    '\n\tother {\n\t\tname = "another";\n\t};\n',
    '\n\tfull@1 {\n\t\tname = "full@1";\n\t};\n};\n',
  ].join('');
  const dropped = [
    '/dts-v1/;\n\n/ {\n',
    '\n\tcpu@0 {\n\t\tlabel = "cpu";\n\t};\n',
    '\n\tother {\n\t\tname = "another";\n\t};\n',
    '\n\tfull@1 {\n\t\tname = "full@1";\n\t};\n};\n',
  ].join('');
  assert.equal(toDts(t), dropped);
  assert.equal(toDts(t, { dtcChecks: false }), kept);

  // One `name` that is not a single string fails dtc's name_is_string, and then nothing is dropped.
  const t2 = tree(node('', [], [node('a', [['name', s('a\0')]]), node('b', [['name', s('b\0c\0')]])]));
  assert.match(toDts(t2), /\ta \{\n\t\tname = "a";/);
  // So does a duplicate sibling name, or a property name dtc rejects.
  const t3 = tree(node('', [], [node('a', [['name', s('a\0')]]), node('x'), node('x')]));
  assert.match(toDts(t3), /\ta \{\n\t\tname = "a";/);
  const t4 = tree(node('', [['bad name', b()]], [node('a', [['name', s('a\0')]])]));
  assert.match(toDts(t4), /\ta \{\n\t\tname = "a";/);
});

test('names are copied byte for byte; toDtsBytes gives latin1 bytes; an empty child name prints as /', () => {
  const t = tree(node('', [['caf\xe9', b()]], [node('n\xf6de'), node('')]));
  const text = '/dts-v1/;\n\n/ {\n\tcaf\xe9;\n\n\tn\xf6de {\n\t};\n\n\t/ {\n\t};\n};\n';
  assert.equal(toDts(t), text);
  const bytes = toDtsBytes(t);
  assert.equal(bytes.length, text.length);
  assert.equal(bytes[text.indexOf('\xe9')], 0xe9);
  assert.equal(bytes[text.indexOf('\xf6')], 0xf6);
});

/** A chain of `depth` nodes below the root, each with one property. */
function chain(depth: number): FdtTree {
  const root = node('');
  let cur = root;
  for (let i = 0; i < depth; i++) {
    const child = node('n', [['v', b(0, 0, 0, i & 0xff)]]);
    cur.children.push(child);
    cur = child;
  }
  return tree(root);
}

test("deep trees print without recursion (4096 levels, the reader's limit)", () => {
  const depth = 4096;
  const text = toDts(chain(depth));
  const lines = text.split('\n');
  // header (2) + root open/close (2) + per level: blank, open, prop, close (4) + trailing ''.
  assert.equal(lines.length, 2 + 2 + 4 * depth + 1);
  // Lines 3.. hold, per level i = 1..depth, a blank line, `n {` and the property; then the closes.
  const open = 4 + 3 * (depth - 1);
  assert.ok(lines[open] === `${'\t'.repeat(depth)}n {`, 'deepest node line');
  const value = ((depth - 1) & 0xff).toString(16).padStart(2, '0');
  assert.ok(lines[open + 1] === `${'\t'.repeat(depth + 1)}v = <0x${value}>;`, 'deepest property line');
  assert.ok(lines[open + 2] === `${'\t'.repeat(depth)}};`, 'deepest close line');
  assert.ok(text.endsWith('\t};\n};\n'));
});

test('a tree whose text would not fit in a string, or in maxLength, is refused with KHO_DTS_TOO_LARGE', () => {
  const tooLarge = (e: unknown) => e instanceof KhoError && e.code === 'KHO_DTS_TOO_LARGE';
  // 20000 levels of indentation add up to ~600 million tabs.
  assert.throws(() => toDts(chain(20000)), tooLarge);
  // The 4-level chain prints as 132 characters, counted by hand: header 11, `/ {` 4, `};` 3, and per
  // level d a blank line 1, `n {` d + 4, `v = <0x0i>;` d + 1 + 12, `};` d + 3: 11 + 4 + 3 + sum(3d + 21).
  const small = chain(4);
  assert.equal(toDts(small).length, 132);
  assert.throws(() => toDts(small, { maxLength: 100 }), tooLarge);
  assert.equal(toDts(small, { maxLength: 1000 }).length, 132);
});

test('a cyclic or shared node is refused with KHO_DTS_NOT_A_TREE instead of printing forever', () => {
  const loop = node('loop');
  loop.children.push(loop);
  assert.throws(
    () => toDts(tree(node('', [], [loop]))),
    (e: unknown) => e instanceof KhoError && e.code === 'KHO_DTS_NOT_A_TREE',
  );
  const shared = node('shared');
  assert.throws(
    () => toDts(tree(node('', [], [node('a', [], [shared]), node('b', [], [shared])]))),
    (e: unknown) => e instanceof KhoError && e.code === 'KHO_DTS_NOT_A_TREE',
  );
});

test('a real KHO blob (Linux 7.3.4 root FDT) prints as dtc 1.6.1 printed it', () => {
  const path = new URL('../../test/vectors/linux-7.3.4/flat-explicit/stage1/out/fdt.whole', import.meta.url);
  const blob = parseFdt(new Uint8Array(readFileSync(path)));
  // Recorded from `dtc -I dtb -O dts fdt.whole` (Debian dtc 1.6.1).
  const expected = [
    '/dts-v1/;',
    '',
    '/ {',
    '\tcompatible = "kho-v4";',
    '\tpreserved-memory-map = <0xe0c103 0x00>;',
    '',
    '\tmemblock {',
    '\t\tblob-size = <0xda000000 0x00>;',
    '\t\tpreserved-data = <0xb0e604 0x00>;',
    '\t};',
    '',
    '\tkho_test {',
    '\t\tblob-size = <0xf0000000 0x00>;',
    '\t\tpreserved-data = <0xc0db03 0x00>;',
    '\t};',
    '',
    '\tkexec-metadata {',
    '\t\tblob-size = <0x49000000 0x00>;',
    '\t\tpreserved-data = <0x50c203 0x00>;',
    '\t};',
    '};',
    '',
  ].join('\n');
  assert.equal(toDts(blob), expected);
  assert.equal(toDts(blob.toTree()), expected);
});
