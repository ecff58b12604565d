/**
 * fast-check generators of devicetrees, shared by the oracle suites: random trees as our model and as
 * DTS source text that dtc compiles (so dtc, not kho, produces the blob under test).
 */
import fc from 'fast-check';
import type { FdtNode, FdtTree } from '../../src/fdt/model.ts';

const nameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789,._+-'.split(''));
const ident = fc
  .tuple(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'.split('')), fc.array(nameChar, { maxLength: 12 }))
  .map(([a, b]) => a + b.join(''));

export const arbNodeName = fc.oneof(
  ident,
  fc.tuple(ident, fc.nat({ max: 0xffffff })).map(([n, a]) => `${n}@${a.toString(16)}`),
);

/** A small pool so that names repeat and share suffixes (`size` in `blob-size`). */
export const arbPropName = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'size',
      'blob-size',
      '#size-cells',
      'reg',
      'compatible',
      'status',
      'a',
      'ta',
      'data',
      'preserved-data',
      'blob',
      'ob',
    ),
  },
  { weight: 1, arbitrary: ident },
);

const printable = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:/@'.split(''),
);
export type ArbValue =
  | { kind: 'empty' }
  | { kind: 'strings'; strings: string[] }
  | { kind: 'cells'; cells: number[] }
  | { kind: 'bytes'; bytes: number[] };

export const arbValue: fc.Arbitrary<ArbValue> = fc.oneof(
  fc.constant<ArbValue>({ kind: 'empty' }),
  fc
    .array(
      fc.array(printable, { minLength: 1, maxLength: 20 }).map((a) => a.join('')),
      { minLength: 1, maxLength: 3 },
    )
    .map((strings): ArbValue => ({ kind: 'strings', strings })),
  fc
    .array(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 6 })
    .map((cells): ArbValue => ({ kind: 'cells', cells })),
  fc
    .array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 13 })
    .map((bytes): ArbValue => ({ kind: 'bytes', bytes })),
);

export function valueBytes(v: ArbValue): Uint8Array {
  switch (v.kind) {
    case 'empty':
      return new Uint8Array(0);
    case 'strings':
      return Buffer.from(v.strings.map((s) => `${s}\0`).join(''), 'latin1');
    case 'cells': {
      const b = Buffer.alloc(v.cells.length * 4);
      v.cells.forEach((c, i) => b.writeUInt32BE(c, i * 4));
      return new Uint8Array(b);
    }
    case 'bytes':
      return Uint8Array.from(v.bytes);
  }
}

function valueDts(v: ArbValue): string {
  switch (v.kind) {
    case 'empty':
      return '';
    case 'strings':
      return ` = ${v.strings.map((s) => JSON.stringify(s)).join(', ')}`;
    case 'cells':
      return ` = <${v.cells.map((c) => `0x${c.toString(16)}`).join(' ')}>`;
    case 'bytes':
      return ` = [${v.bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ')}]`;
  }
}

export interface ArbNode {
  name: string;
  props: [string, ArbValue][];
  children: ArbNode[];
}

function arbNodeAt(depth: number, maxDepth: number): fc.Arbitrary<ArbNode> {
  return fc.record({
    name: arbNodeName,
    props: fc.uniqueArray(fc.tuple(arbPropName, arbValue), { maxLength: 5, selector: (p) => p[0] }),
    children:
      depth >= maxDepth
        ? fc.constant<ArbNode[]>([])
        : fc.uniqueArray(arbNodeAt(depth + 1, maxDepth), {
            maxLength: depth < 2 ? 4 : 2,
            selector: (n) => n.name,
          }),
  });
}

/** A node with up to 6 levels of descendants. */
export const arbTreeNode: fc.Arbitrary<ArbNode> = arbNodeAt(1, 6);

export const arbTree = fc.record({
  root: arbTreeNode.map((n) => ({ ...n, name: '' })),
  reserves: fc.array(
    fc.tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 1n, max: 1n << 40n })),
    {
      maxLength: 3,
    },
  ),
});
export type ArbTree = { root: ArbNode; reserves: [bigint, bigint][] };

export function toModel(t: ArbTree): FdtTree {
  const conv = (n: ArbNode): FdtNode => ({
    name: n.name,
    props: n.props.map(([name, v]) => ({ name, value: valueBytes(v) })),
    children: n.children.map(conv),
  });
  return {
    root: conv(t.root),
    reserves: t.reserves.map(([address, size]) => ({ address, size })),
    bootCpuidPhys: 0,
  };
}

/** DTS source dtc compiles into the same tree. */
export function toDtsSource(t: ArbTree): string {
  const lines = ['/dts-v1/;'];
  for (const [a, s] of t.reserves) lines.push(`/memreserve/ 0x${a.toString(16)} 0x${s.toString(16)};`);
  const emit = (n: ArbNode, indent: string) => {
    lines.push(`${indent}${n.name === '' ? '/' : n.name} {`);
    for (const [name, v] of n.props) lines.push(`${indent}\t${name}${valueDts(v)};`);
    for (const c of n.children) emit(c, `${indent}\t`);
    lines.push(`${indent}};`);
  };
  emit(t.root, '');
  return `${lines.join('\n')}\n`;
}
