/**
 * Sequential-write mode: libfdt's fdt_sw.c (1.6.1) behaviour on a fixed byte buffer.
 *
 * Contract: `FdtSw.create(bufsize, flags)` is `fdt_create_with_flags`; the methods are libfdt's
 * sequential calls and leave the buffer byte for byte as libfdt leaves it, including its in-progress
 * state kept in the header (magic 0x2ff20112 until `finish`, flags in last_comp_version, strings
 * growing down from the end of the buffer so first-seen names end up last, the reservation map at
 * offset 48 = ALIGN(40, 16)). `finish()` relocates the strings after the structure block, rebases
 * every nameoff and sets totalsize; stale bytes stay where libfdt leaves them.
 * Errors are thrown as `KhoError` with libfdt's codes: FDT_ERR_NOSPACE when the buffer is too small
 * (the buffer is left as libfdt leaves it, e.g. a new name rolled back), FDT_ERR_BADSTATE for a call
 * out of order, FDT_ERR_BADMAGIC, FDT_ERR_BADFLAGS. One deliberate difference: a name longer than the
 * free space is FDT_ERR_NOSPACE here, where libfdt 1.6.1's unsigned arithmetic writes before the
 * buffer. libfdt does not check node nesting: neither does this.
 * `encodeSw(tree, bufsize)` emits a whole tree through these calls (nodes and properties in tree
 * order) and returns the finished blob (`totalsize` bytes).
 */
import { KhoError } from '../errors.ts';
import { HDR } from './header.ts';
import type { FdtNode, FdtTree } from './model.ts';
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP, walkTree } from './model.ts';
import { findString, nameToBytes, nulTerminated } from './strings.ts';

/** `~FDT_MAGIC`: the magic of an unfinished sequential-write blob. */
export const FDT_SW_MAGIC = 0x2ff20112;
/** fdt_create_with_flags flag: do not share names in the strings block. */
export const FDT_CREATE_FLAG_NO_NAME_DEDUP = 1;
const FDT_CREATE_FLAGS_ALL = FDT_CREATE_FLAG_NO_NAME_DEDUP;
/** Where fdt_create puts the reservation map: ALIGN(sizeof header, sizeof reserve entry). */
export const FDT_SW_HEADER_SIZE = 48;

export const tagAlign = (n: number): number => (n + 3) & ~3;

export function getU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

export function setU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

export function setU64(buf: Uint8Array, off: number, v: bigint): void {
  const x = BigInt.asUintN(64, v);
  setU32(buf, off, Number(x >> 32n));
  setU32(buf, off + 4, Number(x & 0xffffffffn));
}

export function fail(
  code: 'FDT_ERR_NOSPACE' | 'FDT_ERR_BADSTATE' | 'FDT_ERR_BADMAGIC',
  message: string,
): never {
  throw new KhoError(code, message);
}

/** Where `nextTag` leaves the offset after the tag it read (or a negative errno-style value). */
export const tagCursor = { next: 0 };

/**
 * libfdt's fdt_next_tag over `buf` (header fields read from it): returns the tag at structure offset
 * `startoffset` and sets `tagCursor.next` to the offset after it. On a premature end it returns
 * FDT_END with a negative next (-8 truncated, -11 bad structure), as libfdt does. Reads only inside
 * the structure block (size_dt_struct from version 17 on), totalsize and `buf`; allocates nothing.
 */
export function nextTag(buf: Uint8Array, startoffset: number): number {
  const offStruct = getU32(buf, HDR.offDtStruct);
  let limit = Math.min(getU32(buf, HDR.totalsize), buf.length) - offStruct;
  const version = getU32(buf, HDR.version);
  if (version >= 0x11) limit = Math.min(limit, getU32(buf, HDR.sizeDtStruct));
  tagCursor.next = -8;
  if (startoffset < 0 || startoffset + 4 > limit) return FDT_END;
  const tag = getU32(buf, offStruct + startoffset);
  let offset = startoffset + 4;
  tagCursor.next = -11;
  switch (tag) {
    case FDT_BEGIN_NODE: {
      const nul = buf.indexOf(0, offStruct + offset);
      if (nul < 0 || nul - offStruct >= limit) return FDT_END;
      offset = nul - offStruct + 1;
      break;
    }
    case FDT_PROP: {
      if (offset + 4 > limit) return FDT_END;
      const len = getU32(buf, offStruct + offset);
      const sum = (len + offset) >>> 0;
      if (0x7fffffff <= sum || sum < offset) return FDT_END;
      offset += 8 + len;
      if (version < 0x10 && len >= 8 && (offset - len) % 8 !== 0) offset += 4;
      break;
    }
    case FDT_END:
    case FDT_END_NODE:
    case FDT_NOP:
      break;
    default:
      return FDT_END;
  }
  if (offset > limit) return FDT_END;
  tagCursor.next = tagAlign(offset);
  return tag;
}

export class FdtSw {
  /** The whole buffer libfdt works in (live: later calls change it). */
  buffer: Uint8Array;

  private constructor(buffer: Uint8Array) {
    this.buffer = buffer;
  }

  /** fdt_create(buf, bufsize) / fdt_create_with_flags: a fresh zeroed buffer of `bufsize` bytes. */
  static create(bufsize: number, flags = 0): FdtSw {
    if (!Number.isInteger(bufsize) || bufsize < FDT_SW_HEADER_SIZE) {
      fail('FDT_ERR_NOSPACE', `buffer of ${bufsize} bytes cannot hold the ${FDT_SW_HEADER_SIZE}-byte header`);
    }
    if ((flags & ~FDT_CREATE_FLAGS_ALL) !== 0 || !Number.isInteger(flags) || flags < 0) {
      throw new KhoError('FDT_ERR_BADFLAGS', `unknown fdt_create flags 0x${flags.toString(16)}`, {
        expected: 'FDT_CREATE_FLAG_NO_NAME_DEDUP (1) or 0',
      });
    }
    const sw = new FdtSw(new Uint8Array(bufsize));
    const b = sw.buffer;
    setU32(b, HDR.magic, FDT_SW_MAGIC);
    setU32(b, HDR.version, 17);
    setU32(b, HDR.lastCompVersion, flags);
    setU32(b, HDR.totalsize, bufsize);
    setU32(b, HDR.offMemRsvmap, FDT_SW_HEADER_SIZE);
    setU32(b, HDR.offDtStruct, FDT_SW_HEADER_SIZE);
    setU32(b, HDR.offDtStrings, 0);
    return sw;
  }

  private h(off: number): number {
    return getU32(this.buffer, off);
  }

  private probe(): void {
    const m = this.h(HDR.magic);
    if (m === FDT_MAGIC) fail('FDT_ERR_BADSTATE', 'the blob is already finished');
    if (m !== FDT_SW_MAGIC) fail('FDT_ERR_BADMAGIC', 'not a sequential-write blob');
  }

  private probeMemrsv(): void {
    this.probe();
    if (this.h(HDR.offDtStrings) !== 0) fail('FDT_ERR_BADSTATE', 'the reservation map is already finished');
  }

  private probeStruct(): void {
    this.probe();
    if (this.h(HDR.offDtStrings) !== this.h(HDR.totalsize)) {
      fail('FDT_ERR_BADSTATE', 'call finishReservemap() before adding nodes');
    }
  }

  /** fdt_grab_space_: the buffer offset of `len` new structure bytes, or -1 when they do not fit. */
  private grab(len: number): number {
    const offset = this.h(HDR.sizeDtStruct);
    const spaceleft = this.h(HDR.totalsize) - this.h(HDR.offDtStruct) - this.h(HDR.sizeDtStrings);
    if (offset + len > spaceleft) return -1;
    setU32(this.buffer, HDR.sizeDtStruct, offset + len);
    return this.h(HDR.offDtStruct) + offset;
  }

  /** fdt_resize: move the work into a new zeroed buffer of `bufsize` bytes. */
  resize(bufsize: number): void {
    this.probe();
    const headsize = this.h(HDR.offDtStruct) + this.h(HDR.sizeDtStruct);
    const tailsize = this.h(HDR.sizeDtStrings);
    if (!Number.isInteger(bufsize) || bufsize < 0 || headsize + tailsize > bufsize) {
      fail('FDT_ERR_NOSPACE', `${headsize + tailsize} bytes in use do not fit in ${bufsize}`);
    }
    const old = this.buffer;
    const oldtail = this.h(HDR.totalsize) - tailsize;
    const nb = new Uint8Array(bufsize);
    nb.set(old.subarray(0, headsize), 0);
    nb.set(old.subarray(oldtail, oldtail + tailsize), bufsize - tailsize);
    setU32(nb, HDR.totalsize, bufsize);
    if (getU32(nb, HDR.offDtStrings) !== 0) setU32(nb, HDR.offDtStrings, bufsize);
    this.buffer = nb;
  }

  addReservemapEntry(address: bigint, size: bigint): void {
    this.probeMemrsv();
    const offset = this.h(HDR.offDtStruct);
    if (offset + 16 > this.h(HDR.totalsize)) fail('FDT_ERR_NOSPACE', 'no room for a reservation entry');
    setU64(this.buffer, offset, address);
    setU64(this.buffer, offset + 8, size);
    setU32(this.buffer, HDR.offDtStruct, offset + 16);
  }

  finishReservemap(): void {
    this.addReservemapEntry(0n, 0n);
    setU32(this.buffer, HDR.offDtStrings, this.h(HDR.totalsize));
  }

  beginNode(name: string): void {
    this.probeStruct();
    const nb = nameToBytes(name, 'node name');
    const off = this.grab(4 + tagAlign(nb.length + 1));
    if (off < 0) fail('FDT_ERR_NOSPACE', `no room for node ${JSON.stringify(name)}`);
    setU32(this.buffer, off, FDT_BEGIN_NODE);
    this.buffer.set(nb, off + 4);
    this.buffer[off + 4 + nb.length] = 0;
  }

  endNode(): void {
    this.probeStruct();
    const off = this.grab(4);
    if (off < 0) fail('FDT_ERR_NOSPACE', 'no room for END_NODE');
    setU32(this.buffer, off, FDT_END_NODE);
  }

  /** fdt_add_string_: prepend below the strings; returns the negative offset from the end, or 0. */
  private addString(s: Uint8Array): number {
    const totalsize = this.h(HDR.totalsize);
    const strtabsize = this.h(HDR.sizeDtStrings);
    const offset = strtabsize + s.length + 1;
    const structTop = this.h(HDR.offDtStruct) + this.h(HDR.sizeDtStruct);
    if (offset > totalsize || totalsize - offset < structTop) return 0;
    this.buffer.set(s, totalsize - offset);
    this.buffer[totalsize - offset + s.length] = 0;
    setU32(this.buffer, HDR.sizeDtStrings, strtabsize + s.length + 1);
    return -offset;
  }

  property(name: string, value: Uint8Array): void {
    this.probeStruct();
    const nb = nameToBytes(name, 'property name');
    const totalsize = this.h(HDR.totalsize);
    const strtabsize = this.h(HDR.sizeDtStrings);
    let nameoff: number;
    let allocated = true;
    if (this.h(HDR.lastCompVersion) & FDT_CREATE_FLAG_NO_NAME_DEDUP) {
      nameoff = this.addString(nb);
    } else {
      const found = findString(this.buffer, totalsize - strtabsize, strtabsize, nb);
      if (found >= 0) {
        nameoff = found - strtabsize;
        allocated = false;
      } else {
        nameoff = this.addString(nb);
      }
    }
    if (nameoff === 0) fail('FDT_ERR_NOSPACE', `no room for the name ${JSON.stringify(name)}`);
    const off = this.grab(12 + tagAlign(value.length));
    if (off < 0) {
      if (allocated) setU32(this.buffer, HDR.sizeDtStrings, this.h(HDR.sizeDtStrings) - (nb.length + 1));
      fail('FDT_ERR_NOSPACE', `no room for property ${JSON.stringify(name)}`);
    }
    setU32(this.buffer, off, FDT_PROP);
    setU32(this.buffer, off + 4, value.length);
    setU32(this.buffer, off + 8, nameoff >>> 0);
    this.buffer.set(value, off + 12);
  }

  /** fdt_property_string: the string's bytes (latin1) and a NUL. */
  propertyString(name: string, s: string): void {
    this.property(name, nulTerminated(s));
  }

  /** fdt_property_u32: one big-endian cell. */
  propertyU32(name: string, v: number): void {
    const b = new Uint8Array(4);
    setU32(b, 0, v >>> 0);
    this.property(name, b);
  }

  /** fdt_property_u64: a big-endian u64. */
  propertyU64(name: string, v: bigint): void {
    const b = new Uint8Array(8);
    setU64(b, 0, v);
    this.property(name, b);
  }

  /** fdt_finish: add FDT_END, move the strings after the structure, rebase nameoffs, set magic. */
  finish(): Uint8Array {
    this.probeStruct();
    const end = this.grab(4);
    if (end < 0) fail('FDT_ERR_NOSPACE', 'no room for the END tag');
    const b = this.buffer;
    setU32(b, end, FDT_END);
    const sizeStrings = this.h(HDR.sizeDtStrings);
    const oldstr = this.h(HDR.totalsize) - sizeStrings;
    const newstr = this.h(HDR.offDtStruct) + this.h(HDR.sizeDtStruct);
    b.copyWithin(newstr, oldstr, oldstr + sizeStrings);
    setU32(b, HDR.offDtStrings, newstr);
    const offStruct = this.h(HDR.offDtStruct);
    let offset = 0;
    for (;;) {
      const tag = nextTag(b, offset);
      const next = tagCursor.next;
      if (tag === FDT_END) break;
      if (tag === FDT_PROP) {
        const p = offStruct + offset + 8;
        setU32(b, p, (getU32(b, p) + sizeStrings) >>> 0);
      }
      offset = next;
    }
    setU32(b, HDR.totalsize, newstr + sizeStrings);
    setU32(b, HDR.lastCompVersion, 16);
    setU32(b, HDR.magic, FDT_MAGIC);
    return b.slice();
  }

  /** A copy of the whole buffer. */
  bytes(): Uint8Array {
    return this.buffer.slice();
  }

  /** A copy of the first `totalsize` bytes (the blob, once finished). */
  blob(): Uint8Array {
    return this.buffer.slice(0, Math.min(this.h(HDR.totalsize), this.buffer.length));
  }
}

/** Bytes an `encodeSw` buffer needs at most for `tree` (no name sharing assumed). */
function upperBound(tree: FdtTree): number {
  let n = FDT_SW_HEADER_SIZE + 16 * (tree.reserves.length + 1) + 4;
  const stack: FdtNode[] = [tree.root];
  while (stack.length > 0) {
    const node = stack.pop() as FdtNode;
    n += 8 + tagAlign(node.name.length + 1);
    for (const p of node.props) n += 12 + tagAlign(p.value.length) + p.name.length + 1;
    for (const c of node.children) stack.push(c);
  }
  return n;
}

/**
 * Emit `tree` through FdtSw calls in tree order (fdt_create, reservations, finish_reservemap, nodes,
 * finish) into a buffer of `bufsize` bytes (default: large enough), then set boot_cpuid_phys from
 * the tree. Returns the finished blob (`totalsize` bytes).
 */
export function encodeSw(tree: FdtTree, bufsize?: number, flags = 0): Uint8Array {
  const sw = FdtSw.create(bufsize ?? upperBound(tree), flags);
  for (const r of tree.reserves) sw.addReservemapEntry(r.address, r.size);
  sw.finishReservemap();
  walkTree(
    tree.root,
    (node) => {
      sw.beginNode(node.name);
      for (const p of node.props) sw.property(p.name, p.value);
    },
    () => sw.endNode(),
  );
  sw.finish();
  setU32(sw.buffer, HDR.bootCpuidPhys, tree.bootCpuidPhys >>> 0);
  return sw.blob();
}
