/**
 * dtc mode: the bytes `dtc -I dtb -O dtb` (dtc 1.6.1) writes for a tree.
 *
 * Contract: `encodeDtc(tree, opts)` returns a version-17 blob laid out as dtc lays it out: the 40-byte
 * header (last_comp_version 16, boot_cpuid_phys from the tree unless `opts.bootCpuidPhys`), the
 * memory-reservation block at offset 40 (the tree's entries, `opts.reserveSlots` extra zero entries
 * as `-R`, then the terminator), the structure block (nodes and properties in tree order), the
 * strings block in first-use order with dtc's suffix sharing, then any padding (`-p`/`-S`/`-a`, zero
 * bytes counted in totalsize).
 *
 * dtc rewrites one thing on the way: its checks delete a node's first `name` property when it equals
 * the node's base name (the name before `@`) plus NUL, but only when no error-level check that runs
 * before that one failed (dtc stops running checks after the first failing one): duplicate sibling
 * node names, duplicate property names in a node, node-name characters outside `[A-Za-z0-9,._+@-]`,
 * a second `@` in a node name, property-name characters outside `[A-Za-z0-9,._+*#?-]`, or a first
 * `name` property that is not exactly one NUL-terminated string. `opts.dropNameProps: false` turns
 * the rewrite off. `phandle`/`linux,phandle` properties are kept as they are (verified with dtc).
 * Trees dtc would refuse without `-f` are still encoded (as `dtc -f` writes them).
 */
import { dtcRunsNameCheck, redundantNameProp } from './dtc-checks.ts';
import type { FdtNode, FdtTree } from './model.ts';
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_PROP, walkTree } from './model.ts';
import { DtcStringTable, nameToBytes } from './strings.ts';

export interface DtcOptions {
  /** `-p PAD`: add this many zero bytes after the blob. */
  padSize?: number;
  /** `-S SIZE`: pad the blob to at least this many bytes (ignored when `padSize` is set, as in dtc). */
  minSize?: number;
  /** `-a ALIGN`: pad totalsize (after -p/-S) up to a multiple of this power of two. */
  align?: number;
  /** `-R N`: extra empty reservation entries before the terminator. */
  reserveSlots?: number;
  /** `-b CPU`: header boot_cpuid_phys instead of the tree's. */
  bootCpuidPhys?: number;
  /** Apply dtc's `name`-property deletion (default true). */
  dropNameProps?: boolean;
}

export { dtcRunsNameCheck };

class Out {
  buf = new Uint8Array(256);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.len + n, this.buf.length * 2));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }
  u32(v: number): void {
    this.ensure(4);
    new DataView(this.buf.buffer).setUint32(this.len, v >>> 0);
    this.len += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** Zero bytes up to the next multiple of 4. */
  pad4(): void {
    const n = (4 - (this.len % 4)) % 4;
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
}

function writeStruct(root: FdtNode, strings: DtcStringTable, dropNames: boolean): Uint8Array {
  const out = new Out();
  const enter = (node: FdtNode) => {
    out.u32(FDT_BEGIN_NODE);
    out.bytes(nameToBytes(node.name, 'node name'));
    out.bytes(new Uint8Array(1));
    out.pad4();
    const skip = dropNames ? redundantNameProp(node) : -1;
    node.props.forEach((p, i) => {
      if (i === skip) return;
      const nameoff = strings.insert(nameToBytes(p.name, 'property name'));
      out.u32(FDT_PROP);
      out.u32(p.value.length);
      out.u32(nameoff);
      out.bytes(p.value);
      out.pad4();
    });
  };
  walkTree(root, enter, () => out.u32(FDT_END_NODE));
  out.u32(FDT_END);
  return out.buf.slice(0, out.len);
}

/** Encode `tree` exactly as `dtc -I dtb -O dtb [opts]` would write it. */
export function encodeDtc(tree: FdtTree, opts: DtcOptions = {}): Uint8Array {
  const strings = new DtcStringTable();
  const dropNames = opts.dropNameProps !== false && dtcRunsNameCheck(tree.root);
  const struct = writeStruct(tree.root, strings, dropNames);
  const strtab = strings.bytes();
  const nReserve = tree.reserves.length + (opts.reserveSlots ?? 0) + 1;
  const offRsv = 40;
  const offStruct = offRsv + nReserve * 16;
  const offStrings = offStruct + struct.length;
  const size = offStrings + strtab.length;
  let padlen = 0;
  if (opts.minSize !== undefined && opts.minSize > 0) padlen = Math.max(0, opts.minSize - size);
  if (opts.padSize !== undefined && opts.padSize > 0) padlen = opts.padSize;
  if (opts.align !== undefined && opts.align > 0) {
    const a = opts.align;
    padlen = Math.ceil((size + padlen) / a) * a - size;
  }
  const total = size + padlen;
  const blob = new Uint8Array(total);
  const dv = new DataView(blob.buffer);
  const header = [
    FDT_MAGIC,
    total,
    offStruct,
    offStrings,
    offRsv,
    17,
    16,
    opts.bootCpuidPhys ?? tree.bootCpuidPhys,
    strtab.length,
    struct.length,
  ];
  header.forEach((v, i) => dv.setUint32(i * 4, v >>> 0));
  tree.reserves.forEach((r, i) => {
    dv.setBigUint64(offRsv + i * 16, BigInt.asUintN(64, r.address));
    dv.setBigUint64(offRsv + i * 16 + 8, BigInt.asUintN(64, r.size));
  });
  blob.set(struct, offStruct);
  blob.set(strtab, offStrings);
  return blob;
}
