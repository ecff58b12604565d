/**
 * DTS printer: renders a devicetree exactly as Debian's dtc 1.6.1 prints it with
 * `dtc -I dtb -O dts` (with `-f` when dtc's checks find errors and would otherwise refuse).
 *
 * Contract:
 * - `toDts(tree)` returns the text dtc writes for the blob this tree encodes, byte for byte, as a
 *   *binary string* (one character per byte, like the model's names). It is plain ASCII unless node or
 *   property names hold bytes >= 0x80 (dtc copies names verbatim); `toDtsBytes` gives the exact bytes.
 * - Layout as dtc's: `/dts-v1/;`, a blank line, one `/memreserve/\t0x%016x 0x%016x;` line per
 *   reservation, then the tree: one tab per level, properties before sub-nodes in blob order, a blank
 *   line before every sub-node, `/ {` for the root (and for any node whose name is empty), `};` to close.
 * - Values are guessed as dtc 1.6.1 guesses them, with no other information (a blob has no labels and
 *   no type markers, so no `&refs`, labels, `/bits/` or string lists are ever printed):
 *   * empty: `name;`
 *   * a string when the last byte is NUL, every byte is printable ASCII, NUL or one of \a\b\t\n\v\f\r,
 *     and NULs are no more than half the bytes: `"..."` with the final NUL dropped and \a \b \t \n \v
 *     \f \r \\ \" and inner NULs (`\0`) escaped, so a string list prints as `"a\0b"`;
 *   * otherwise, when the length is a multiple of 4: big-endian cells `<0x01 0xabcdef12>` (lowercase,
 *     at least two hex digits);
 *   * otherwise bytes `[00 1f]`.
 * - dtc's `name_properties` check removes redundant `name` properties, and this printer does too: a
 *   node's first `name` property is omitted when it equals the node's name up to the first `@` plus a
 *   NUL. dtc runs its checks in order and stops at the first that fails with an error, so this happens
 *   only when the checks before it pass for the whole tree: no duplicate sibling node names, no
 *   duplicate property names within a node, node names of [A-Za-z0-9,._+@-] with at most one `@`,
 *   property names of [A-Za-z0-9,._+*#?-], and every first `name` property one NUL-terminated string.
 *   (`dtcChecks: false` turns this off.)
 * - dtc stops reading the reservation map at the first entry whose size is 0, so entries from there on
 *   are not printed (libfdt and dtc agree on that terminator).
 * - Iterative (an explicit stack, never recursion). The text is linear in the tree's size except for
 *   indentation, which grows with depth (as dtc's does): a 4096-deep chain, the reader's limit, prints
 *   as ~17 MB, and a hostile blob of a few MB with many properties that deep could print as gigabytes.
 *   So the length is bounded before any text is built: past `maxLength` (default and ceiling: the
 *   longest string JavaScript holds, ~512 MiB) it throws `KHO_DTS_TOO_LARGE`. A node object reached
 *   twice (a cycle or a shared sub-tree, which no blob can encode) throws `KHO_DTS_NOT_A_TREE`.
 *   Otherwise it never throws.
 */
import { constants } from 'node:buffer';
import { KhoError } from '../errors.ts';
import { dtcRunsNameCheck, redundantNameProp } from './dtc-checks.ts';
import type { FdtNode, FdtProperty, FdtReserveEntry, FdtTree } from './model.ts';

export interface ToDtsOptions {
  /** Apply the tree edits dtc's checks make before printing (dropping redundant `name` properties). Default true. */
  dtcChecks?: boolean;
  /**
   * Refuse (KHO_DTS_TOO_LARGE) a tree whose text could be longer than this many characters; the
   * check uses an upper bound (values counted at 4 characters a byte). Default and ceiling: the
   * longest string JavaScript holds.
   */
  maxLength?: number;
}

/** How dtc 1.6.1 would print a property value from a blob. */
export type DtsValueKind = 'empty' | 'string' | 'cells' | 'bytes';

const HEX2: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** C's isprint() in the C locale: 0x20..0x7e. */
function isPrint(b: number): boolean {
  return b >= 0x20 && b <= 0x7e;
}

/** dtc's isstring(): printable, NUL, or one of \a \b \t \n \v \f \r (0x07..0x0d). */
function isStringByte(b: number): boolean {
  return isPrint(b) || b === 0 || (b >= 0x07 && b <= 0x0d);
}

/** The form dtc 1.6.1 chooses for a property value that carries no type information. */
export function dtsValueKind(value: Uint8Array): DtsValueKind {
  const len = value.length;
  if (len === 0) return 'empty';
  let nul = 0;
  let notString = false;
  for (let i = 0; i < len; i++) {
    const b = value[i]!;
    if (b === 0) nul++;
    else if (!isStringByte(b)) notString = true;
  }
  if (value[len - 1] === 0 && !notString && nul <= len - nul) return 'string';
  return len % 4 === 0 ? 'cells' : 'bytes';
}

const STRING_ESCAPES: Record<number, string> = {
  7: '\\a',
  8: '\\b',
  9: '\\t',
  10: '\\n',
  11: '\\v',
  12: '\\f',
  13: '\\r',
  92: '\\\\',
  34: '\\"',
  0: '\\0',
};

function formatString(value: Uint8Array): string {
  const parts: string[] = ['"'];
  // The final byte is the terminating NUL, which dtc does not print.
  for (let i = 0; i < value.length - 1; i++) {
    const b = value[i]!;
    const esc = STRING_ESCAPES[b];
    if (esc !== undefined) parts.push(esc);
    else if (isPrint(b)) parts.push(String.fromCharCode(b));
    else parts.push(`\\x${HEX2[b]}`);
  }
  parts.push('"');
  return parts.join('');
}

function formatCells(value: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i + 4 <= value.length; i += 4) {
    const v = ((value[i]! << 24) | (value[i + 1]! << 16) | (value[i + 2]! << 8) | value[i + 3]!) >>> 0;
    parts.push(v < 0x10 ? `0x0${v.toString(16)}` : `0x${v.toString(16)}`);
  }
  return `<${parts.join(' ')}>`;
}

function formatBytes(value: Uint8Array): string {
  const parts: string[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) parts[i] = HEX2[value[i]!]!;
  return `[${parts.join(' ')}]`;
}

/**
 * The text after a property's name up to and including its `;` (no newline), as dtc prints it:
 * `;` for an empty value, else ` = ` and the value in the form `dtsValueKind` picks.
 */
export function formatDtsValue(value: Uint8Array): string {
  switch (dtsValueKind(value)) {
    case 'empty':
      return ';';
    case 'string':
      return ` = ${formatString(value)};`;
    case 'cells':
      return ` = ${formatCells(value)};`;
    case 'bytes':
      return ` = ${formatBytes(value)};`;
  }
}

function hex16(v: bigint): string {
  return (v & 0xffffffffffffffffn).toString(16).padStart(16, '0');
}

/** The `/memreserve/` lines dtc prints: entries up to (not including) the first of size 0. */
function reserveLines(reserves: readonly FdtReserveEntry[]): string[] {
  const out: string[] = [];
  for (const r of reserves) {
    if (r.size === 0n) break;
    out.push(`/memreserve/\t0x${hex16(r.address)} 0x${hex16(r.size)};\n`);
  }
  return out;
}

/** The `name` properties dtc's `name_properties` check deletes (none if dtc never runs it). */
function redundantNameProps(root: FdtNode): Set<FdtProperty> {
  const drop = new Set<FdtProperty>();
  if (!dtcRunsNameCheck(root)) return drop;
  const stack: FdtNode[] = [root];
  while (stack.length) {
    const node = stack.pop()!;
    const i = redundantNameProp(node);
    if (i >= 0) drop.add(node.props[i]!);
    for (const c of node.children) stack.push(c);
  }
  return drop;
}

/**
 * Refuses what cannot be printed, before building any text: a node object met twice (a cycle, or a
 * sub-tree shared between parents: `KHO_DTS_NOT_A_TREE`), and a text whose length could exceed the
 * longest string (`KHO_DTS_TOO_LARGE`). The length bound counts every line's indentation, names and
 * punctuation, and at most 4 characters per value byte (plus delimiters).
 */
function checkPrintable(tree: FdtTree, maxLength: number): void {
  const limit = Math.min(maxLength, constants.MAX_STRING_LENGTH);
  const seen = new Set<FdtNode>();
  let total = 16 + tree.reserves.length * 56;
  const stack: [FdtNode, number][] = [[tree.root, 0]];
  while (stack.length) {
    const [n, depth] = stack.pop()!;
    if (seen.has(n)) {
      throw new KhoError('KHO_DTS_NOT_A_TREE', `node '${n.name}' appears twice in the tree`, {
        expected: 'every node object to have exactly one parent and no cycles',
      });
    }
    seen.add(n);
    total += 2 * depth + n.name.length + 8;
    for (const p of n.props) total += depth + 1 + p.name.length + 4 * p.value.length + 8;
    if (total > limit) {
      throw new KhoError('KHO_DTS_TOO_LARGE', `the DTS text could take more than ${limit} characters`, {
        expected: `at most ${limit} characters (a shallower or smaller tree, or a larger maxLength)`,
      });
    }
    for (const c of n.children) stack.push([c, depth + 1]);
  }
}

interface Frame {
  node: FdtNode;
  indent: string;
  next: number;
}

/** The tree as `dtc -I dtb -O dts` prints it, as a binary (latin1) string. */
export function toDts(tree: FdtTree, opts: ToDtsOptions = {}): string {
  checkPrintable(tree, opts.maxLength ?? constants.MAX_STRING_LENGTH);
  const out: string[] = ['/dts-v1/;\n\n', ...reserveLines(tree.reserves)];
  const drop = opts.dtcChecks === false ? new Set<FdtProperty>() : redundantNameProps(tree.root);

  const open = (node: FdtNode, indent: string): Frame => {
    out.push(`${indent}${node.name === '' ? '/' : node.name} {\n`);
    const inner = `${indent}\t`;
    for (const p of node.props) {
      if (drop.has(p)) continue;
      out.push(inner, p.name, formatDtsValue(p.value), '\n');
    }
    return { node, indent, next: 0 };
  };

  const stack: Frame[] = [open(tree.root, '')];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    if (top.next < top.node.children.length) {
      const child = top.node.children[top.next++]!;
      out.push('\n');
      stack.push(open(child, `${top.indent}\t`));
    } else {
      out.push(`${top.indent}};\n`);
      stack.pop();
    }
  }
  return out.join('');
}

/** `toDts` as the exact bytes dtc writes. */
export function toDtsBytes(tree: FdtTree, opts: ToDtsOptions = {}): Uint8Array {
  return new Uint8Array(Buffer.from(toDts(tree, opts), 'latin1'));
}
