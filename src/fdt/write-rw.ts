/**
 * Read-write mode: libfdt's fdt_rw.c / fdt_wip.c (1.6.1) behaviour on a real byte buffer.
 *
 * Contract: an `FdtRw` owns one `Uint8Array` (`buffer`) holding a blob whose totalsize is at most the
 * buffer's length, and edits it with libfdt's memmove semantics, so after any sequence of calls the
 * whole buffer (stale bytes included) equals what libfdt leaves in the same memory:
 * - `setprop` resizes an existing property in place (padding keeps whatever bytes were there) or
 *   inserts a new one right after the node's BEGIN_NODE and name, before its other properties;
 * - `addSubnode` inserts after the parent's properties, before its existing children;
 * - names go to the end of the strings block unless already present at any byte offset (suffix
 *   sharing), and a name added for a property that then did not fit is rolled back;
 * - `pack` moves the blocks down to 40/56.. and sets totalsize to the end of the strings.
 * Node offsets are structure-block offsets as in libfdt; they change as the tree is edited.
 * Failures throw `KhoError` with libfdt's code (FDT_ERR_NOSPACE leaves the buffer as libfdt does,
 * FDT_ERR_EXISTS, FDT_ERR_NOTFOUND, FDT_ERR_BADOFFSET, FDT_ERR_BADPATH, FDT_ERR_BADLAYOUT,
 * FDT_ERR_BADVERSION, FDT_ERR_TRUNCATED, ...). Every read is bounds-checked against the header and
 * the buffer, so a hostile blob given to `openInto` yields an error, never a crash or a hang.
 * Differences from libfdt: `openInto` first runs the header check of `header.ts` (libfdt reads
 * whatever memory the header points at) and refuses unfinished sequential-write blobs; `pathOffset`
 * does not resolve aliases (a path not starting with `/` is FDT_ERR_BADPATH); `delMemRsv(n)` with a
 * negative `n` is FDT_ERR_NOTFOUND (libfdt 1.6.1 splices bytes out of the header); `reopen(n)` refuses
 * an `n` larger than the buffer (libfdt would write past it).
 */
import { FDT_ERROR_CODES, KhoError } from '../errors.ts';
import { checkHeader, HDR, readHeader } from './header.ts';
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP } from './model.ts';
import { findString, nameToBytes, nulTerminated } from './strings.ts';
import { FdtSw, getU32, nextTag, setU32, setU64, tagAlign, tagCursor } from './write-sw.ts';

const NOTFOUND = -1;
const EXISTS = -2;
const NOSPACE = -3;
const BADOFFSET = -4;
const BADPATH = -5;
const TRUNCATED = -8;
const BADMAGIC = -9;
const BADVERSION = -10;
const BADLAYOUT = -12;
const INTERNAL = -13;

function raise(err: number, what: string, extra: { offset?: number; path?: string } = {}): never {
  const code = FDT_ERROR_CODES[-err - 1] ?? 'FDT_ERR_INTERNAL';
  throw new KhoError(code, `${what}: ${code}`, extra);
}

/** memmove inside one array or between two. */
function move(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len <= 0) return;
  if (dst === src) dst.copyWithin(dstOff, srcOff, srcOff + len);
  else dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}

const hdr = (b: Uint8Array, f: number) => getU32(b, f);

function blocksMisordered(b: Uint8Array, memRsvSize: number, structSize: number): boolean {
  const rsv = hdr(b, HDR.offMemRsvmap);
  const st = hdr(b, HDR.offDtStruct);
  const str = hdr(b, HDR.offDtStrings);
  return (
    rsv < 40 ||
    st < rsv + memRsvSize ||
    str < st + structSize ||
    hdr(b, HDR.totalsize) < str + hdr(b, HDR.sizeDtStrings)
  );
}

/** fdt_num_mem_rsv: entries before the first with size 0, or TRUNCATED. */
function numMemRsv(b: Uint8Array): number {
  const base = hdr(b, HDR.offMemRsvmap);
  const total = Math.min(hdr(b, HDR.totalsize), b.length);
  for (let i = 0; ; i++) {
    const abs = base + i * 16;
    if (abs + 16 > total) return TRUNCATED;
    if (getU32(b, abs + 8) === 0 && getU32(b, abs + 12) === 0) return i;
  }
}

/** fdt_packblocks_: blocks of `old` into `nw` at `at` (offsets 40, 40+rsv, ...), header offsets set. */
function packBlocks(
  old: Uint8Array,
  nw: Uint8Array,
  at: number,
  memRsvSize: number,
  structSize: number,
): void {
  const memRsvOff = 40;
  const structOff = memRsvOff + memRsvSize;
  const stringsOff = structOff + structSize;
  const sizeStrings = hdr(old, HDR.sizeDtStrings);
  move(nw, at + memRsvOff, old, hdr(old, HDR.offMemRsvmap), memRsvSize);
  setU32(nw, at + HDR.offMemRsvmap, memRsvOff);
  move(nw, at + structOff, old, hdr(old, HDR.offDtStruct), structSize);
  setU32(nw, at + HDR.offDtStruct, structOff);
  setU32(nw, at + HDR.sizeDtStruct, structSize);
  const oldStrings = hdr(old, HDR.offDtStrings);
  move(nw, at + stringsOff, old, oldStrings, sizeStrings);
  setU32(nw, at + HDR.offDtStrings, stringsOff);
  setU32(nw, at + HDR.sizeDtStrings, sizeStrings);
}

/** Header checks before trusting `src` (stricter than libfdt: see the module comment). */
function probeInput(src: Uint8Array): void {
  const h = readHeader(src);
  if (h.magic !== FDT_MAGIC) raise(BADMAGIC, 'open_into');
  checkHeader(h);
  if (h.totalsize > src.length) {
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `totalsize ${h.totalsize} is larger than the ${src.length} bytes given`,
      {
        offset: HDR.totalsize,
        expected: `totalsize <= ${src.length}`,
      },
    );
  }
}

/** fdt_open_into(src, dst, bufsize); `src === dst` is the in-place case. Returns 0 or an errno. */
function openInto(src: Uint8Array, dst: Uint8Array, bufsize: number): number {
  const nrsv = numMemRsv(src);
  if (nrsv < 0) return nrsv;
  const memRsvSize = (nrsv + 1) * 16;
  const version = hdr(src, HDR.version);
  let structSize: number;
  if (version >= 17) {
    structSize = hdr(src, HDR.sizeDtStruct);
  } else if (version === 16) {
    let off = 0;
    for (;;) {
      const tag = nextTag(src, off);
      off = tagCursor.next;
      if (tag === FDT_END) break;
    }
    if (off < 0) return off;
    structSize = off;
  } else {
    return BADVERSION;
  }
  const fdtEnd = hdr(src, HDR.totalsize);
  if (!blocksMisordered(src, memRsvSize, structSize)) {
    if (fdtEnd > bufsize) return NOSPACE;
    move(dst, 0, src, 0, fdtEnd);
    setU32(dst, HDR.version, 17);
    setU32(dst, HDR.sizeDtStruct, structSize);
    setU32(dst, HDR.totalsize, bufsize);
    return 0;
  }
  const newsize = 40 + memRsvSize + structSize + hdr(src, HDR.sizeDtStrings);
  if (bufsize < newsize) return NOSPACE;
  let tmp = 0;
  if (src === dst && tmp + newsize > 0 && tmp < fdtEnd) {
    tmp = fdtEnd;
    if (tmp + newsize > bufsize) return NOSPACE;
  }
  packBlocks(src, dst, tmp, memRsvSize, structSize);
  move(dst, 0, dst, tmp, newsize);
  setU32(dst, HDR.magic, FDT_MAGIC);
  setU32(dst, HDR.totalsize, bufsize);
  setU32(dst, HDR.version, 17);
  setU32(dst, HDR.lastCompVersion, 16);
  setU32(dst, HDR.bootCpuidPhys, hdr(src, HDR.bootCpuidPhys));
  return 0;
}

export interface FdtRwProperty {
  /** Structure-block offset of the FDT_PROP tag. */
  offset: number;
  name: string;
  value: Uint8Array;
}

export class FdtRw {
  /** The whole buffer (live). */
  buffer: Uint8Array;

  private constructor(buffer: Uint8Array) {
    this.buffer = buffer;
  }

  /** fdt_create_empty_tree(buf, bufsize): an empty root in a fresh zeroed buffer. */
  static createEmptyTree(bufsize: number): FdtRw {
    const sw = FdtSw.create(bufsize);
    sw.finishReservemap();
    sw.beginNode('');
    sw.endNode();
    sw.finish();
    return FdtRw.openInPlace(sw.buffer, bufsize);
  }

  /** fdt_open_into(blob, new zeroed buffer of bufsize, bufsize); `blob` is not modified. */
  static openInto(blob: Uint8Array, bufsize: number): FdtRw {
    FdtRw.checkSize(bufsize);
    probeInput(blob);
    const dst = new Uint8Array(bufsize);
    const err = openInto(blob, dst, bufsize);
    if (err) raise(err, 'open_into');
    return new FdtRw(dst);
  }

  /** fdt_open_into(buf, buf, bufsize): reopen the blob in `buffer` itself (kept, not copied). */
  static openInPlace(buffer: Uint8Array, bufsize = buffer.length): FdtRw {
    FdtRw.checkSize(bufsize);
    if (bufsize > buffer.length) raise(NOSPACE, `open_into: bufsize ${bufsize} exceeds the buffer`);
    probeInput(buffer);
    const err = openInto(buffer, buffer, bufsize);
    if (err) raise(err, 'open_into');
    return new FdtRw(buffer);
  }

  private static checkSize(bufsize: number): void {
    if (!Number.isInteger(bufsize) || bufsize < 0 || bufsize > 0x7fffffff) {
      raise(NOSPACE, `open_into: bad bufsize ${bufsize}`);
    }
  }

  /** fdt_open_into(fdt, fdt, bufsize) on this buffer (the kernel's way to regain room after pack). */
  reopen(bufsize: number): void {
    FdtRw.checkSize(bufsize);
    if (bufsize > this.buffer.length) raise(NOSPACE, `open_into: bufsize ${bufsize} exceeds the buffer`);
    const err = openInto(this.buffer, this.buffer, bufsize);
    if (err) raise(err, 'open_into');
  }

  /** pylibfdt's Fdt.resize: fdt_open_into this blob into a new zeroed buffer of `bufsize` bytes. */
  resize(bufsize: number): void {
    FdtRw.checkSize(bufsize);
    const dst = new Uint8Array(bufsize);
    const err = openInto(this.buffer, dst, bufsize);
    if (err) raise(err, 'open_into');
    this.buffer = dst;
  }

  /** A copy of the whole buffer. */
  bytes(): Uint8Array {
    return this.buffer.slice();
  }

  /** A copy of the first totalsize bytes. */
  blob(): Uint8Array {
    return this.buffer.slice(0, Math.min(this.h(HDR.totalsize), this.buffer.length));
  }

  get totalsize(): number {
    return this.h(HDR.totalsize);
  }

  private h(f: number): number {
    return getU32(this.buffer, f);
  }

  private set(f: number, v: number): void {
    setU32(this.buffer, f, v >>> 0);
  }

  // ---- probes and walkers (fdt.c / fdt_ro.c) ----

  private roProbe(): number {
    const m = this.h(HDR.magic);
    if (m !== FDT_MAGIC) return BADMAGIC;
    if (this.h(HDR.version) < 2 || this.h(HDR.lastCompVersion) > 17) return BADVERSION;
    if (this.h(HDR.totalsize) >= 0x7fffffff) return TRUNCATED;
    return 0;
  }

  private rwProbe(): number {
    const e = this.roProbe();
    if (e) return e;
    if (this.h(HDR.version) < 17) return BADVERSION;
    if (blocksMisordered(this.buffer, 16, this.h(HDR.sizeDtStruct))) return BADLAYOUT;
    if (this.h(HDR.version) > 17) this.set(HDR.version, 17);
    return 0;
  }

  private structPtr(offset: number, len: number): number {
    if (offset < 0) return -1;
    const abs = offset + this.h(HDR.offDtStruct);
    if (abs + len > Math.min(this.h(HDR.totalsize), this.buffer.length)) return -1;
    if (offset + len > this.h(HDR.sizeDtStruct)) return -1;
    return abs;
  }

  private checkNodeOffset(offset: number): number {
    if (offset < 0 || offset % 4 !== 0) return BADOFFSET;
    if (nextTag(this.buffer, offset) !== FDT_BEGIN_NODE) return BADOFFSET;
    return tagCursor.next;
  }

  private checkPropOffset(offset: number): number {
    if (offset < 0 || offset % 4 !== 0) return BADOFFSET;
    if (nextTag(this.buffer, offset) !== FDT_PROP) return BADOFFSET;
    return tagCursor.next;
  }

  private nextProp(offset: number): number {
    let off = offset;
    for (;;) {
      const tag = nextTag(this.buffer, off);
      const next = tagCursor.next;
      if (tag === FDT_END) return next >= 0 ? -11 : next;
      if (tag === FDT_PROP) return off;
      if (tag !== FDT_NOP) return NOTFOUND;
      off = next;
    }
  }

  private firstPropertyOffset(node: number): number {
    const n = this.checkNodeOffset(node);
    return n < 0 ? n : this.nextProp(n);
  }

  private nextPropertyOffset(prop: number): number {
    const n = this.checkPropOffset(prop);
    return n < 0 ? n : this.nextProp(n);
  }

  /** fdt_get_string: [absolute start, length] or null. */
  private getString(stroffset: number): [number, number] | null {
    const total = Math.min(this.h(HDR.totalsize), this.buffer.length);
    const abs = stroffset + this.h(HDR.offDtStrings);
    if (abs >= total) return null;
    let len = total - abs;
    const size = this.h(HDR.sizeDtStrings);
    if (stroffset >= size) return null;
    if (size - stroffset < len) len = size - stroffset;
    const nul = this.buffer.subarray(abs, abs + len).indexOf(0);
    if (nul < 0) return null;
    return [abs, nul];
  }

  private stringEq(stroffset: number, s: Uint8Array): boolean {
    const r = this.getString(stroffset);
    if (!r || r[1] !== s.length) return false;
    for (let i = 0; i < s.length; i++) if (this.buffer[r[0] + i] !== s[i]) return false;
    return true;
  }

  /** fdt_get_property_namelen_: [prop offset, len] or [errno, errno]. */
  private getProperty(node: number, name: Uint8Array): [number, number] {
    let off = this.firstPropertyOffset(node);
    while (off >= 0) {
      const abs = this.h(HDR.offDtStruct) + off;
      if (this.stringEq(getU32(this.buffer, abs + 8), name)) return [off, getU32(this.buffer, abs + 4)];
      off = this.nextPropertyOffset(off);
    }
    return [off, off];
  }

  /** fdt_next_node. `depth` is updated in place when given. */
  private nextNode(offset: number, depth: { d: number } | null): number {
    let next = 0;
    if (offset >= 0) {
      next = this.checkNodeOffset(offset);
      if (next < 0) return next;
    }
    let off: number;
    let tag: number;
    do {
      off = next;
      tag = nextTag(this.buffer, off);
      next = tagCursor.next;
      if (tag === FDT_BEGIN_NODE) {
        if (depth) depth.d++;
      } else if (tag === FDT_END_NODE) {
        if (depth && --depth.d < 0) return next;
      } else if (tag === FDT_END) {
        if (next >= 0 || (next === TRUNCATED && !depth)) return NOTFOUND;
        return next;
      }
    } while (tag !== FDT_BEGIN_NODE);
    return off;
  }

  private nodeEndOffset(offset: number): number {
    const depth = { d: 0 };
    let off = offset;
    while (off >= 0 && depth.d >= 0) off = this.nextNode(off, depth);
    return off;
  }

  private nodenameEq(offset: number, s: Uint8Array): boolean {
    const p = this.structPtr(offset, s.length + 1);
    if (p < 0) return false;
    for (let i = 0; i < s.length; i++) if (this.buffer[p + i] !== s[i]) return false;
    const c = this.buffer[p + s.length];
    if (c === 0) return true;
    return s.indexOf(0x40) < 0 && c === 0x40;
  }

  private subnodeOffsetRaw(parent: number, name: Uint8Array): number {
    const e = this.roProbe();
    if (e) return e;
    const depth = { d: 0 };
    let off = parent;
    for (; off >= 0 && depth.d >= 0; off = this.nextNode(off, depth)) {
      if (depth.d === 1 && this.nodenameEq(off + 4, name)) return off;
    }
    if (depth.d < 0) return NOTFOUND;
    return off;
  }

  /** fdt_subnode_offset: the child of `parent` called `name` (`foo` also matches `foo@1`). */
  subnodeOffset(parent: number, name: string): number {
    const r = this.subnodeOffsetRaw(parent, nameToBytes(name, 'node name'));
    if (r < 0) raise(r, `subnode ${JSON.stringify(name)}`, { offset: parent });
    return r;
  }

  /** fdt_path_offset for absolute paths (`/`, `/a/b@1`). */
  pathOffset(path: string): number {
    const e = this.roProbe();
    if (e) raise(e, 'path_offset');
    if (!path.startsWith('/'))
      raise(BADPATH, `path ${JSON.stringify(path)} (aliases are not supported)`, { path });
    let offset = 0;
    for (const part of path.split('/')) {
      if (part === '') continue;
      offset = this.subnodeOffsetRaw(offset, nameToBytes(part, 'path component'));
      if (offset < 0) raise(offset, `path ${JSON.stringify(path)}`, { path });
    }
    return offset;
  }

  /** Properties of the node at `node`, in blob order (fdt_first/next_property_offset walk). */
  properties(node: number): FdtRwProperty[] {
    const out: FdtRwProperty[] = [];
    let off = this.firstPropertyOffset(node);
    while (off >= 0) {
      const abs = this.h(HDR.offDtStruct) + off;
      const len = getU32(this.buffer, abs + 4);
      const s = this.getString(getU32(this.buffer, abs + 8));
      const name = s ? Buffer.from(this.buffer.subarray(s[0], s[0] + s[1])).toString('latin1') : '';
      out.push({ offset: off, name, value: this.buffer.slice(abs + 12, abs + 12 + len) });
      off = this.nextPropertyOffset(off);
    }
    if (off !== NOTFOUND) raise(off, 'property walk', { offset: node });
    return out;
  }

  /** fdt_getprop: a copy of the value. */
  getprop(node: number, name: string): Uint8Array {
    const [off, len] = this.getProperty(node, nameToBytes(name, 'property name'));
    if (off < 0) raise(off, `getprop ${JSON.stringify(name)}`, { offset: node });
    const abs = this.h(HDR.offDtStruct) + off + 12;
    return this.buffer.slice(abs, abs + len);
  }

  // ---- splicing (fdt_rw.c) ----

  private dataSize(): number {
    return this.h(HDR.offDtStrings) + this.h(HDR.sizeDtStrings);
  }

  /** fdt_splice_ at absolute offset `p`. */
  private splice(p: number, oldlen: number, newlen: number): number {
    const dsize = this.dataSize();
    if (oldlen < 0 || p + oldlen > dsize) return BADOFFSET;
    if (p < 0 || dsize + newlen < oldlen) return BADOFFSET;
    if (dsize - oldlen + newlen > this.h(HDR.totalsize)) return NOSPACE;
    this.buffer.copyWithin(p + newlen, p + oldlen, dsize);
    return 0;
  }

  private spliceStruct(p: number, oldlen: number, newlen: number): number {
    const err = this.splice(p, oldlen, newlen);
    if (err) return err;
    const delta = newlen - oldlen;
    this.set(HDR.sizeDtStruct, this.h(HDR.sizeDtStruct) + delta);
    this.set(HDR.offDtStrings, this.h(HDR.offDtStrings) + delta);
    return 0;
  }

  private spliceMemRsv(p: number, oldn: number, newn: number): number {
    const err = this.splice(p, oldn * 16, newn * 16);
    if (err) return err;
    const delta = (newn - oldn) * 16;
    this.set(HDR.offDtStruct, this.h(HDR.offDtStruct) + delta);
    this.set(HDR.offDtStrings, this.h(HDR.offDtStrings) + delta);
    return 0;
  }

  /** fdt_find_add_string_: [string offset or errno, allocated]. */
  private findAddString(s: Uint8Array): [number, boolean] {
    const strtab = this.h(HDR.offDtStrings);
    const size = this.h(HDR.sizeDtStrings);
    const found = findString(this.buffer, strtab, size, s);
    if (found >= 0) return [found, false];
    const at = strtab + size;
    const err = this.splice(at, 0, s.length + 1);
    if (err) return [err, false];
    this.set(HDR.sizeDtStrings, size + s.length + 1);
    this.buffer.set(s, at);
    this.buffer[at + s.length] = 0;
    return [at - strtab, true];
  }

  /** fdt_add_property_: returns the structure offset of the new property or an errno. */
  private addProperty(node: number, name: Uint8Array, len: number): number {
    const next = this.checkNodeOffset(node);
    if (next < 0) return next;
    const [nameoff, allocated] = this.findAddString(name);
    if (nameoff < 0) return nameoff;
    const abs = this.h(HDR.offDtStruct) + next;
    const err = this.spliceStruct(abs, 0, 12 + tagAlign(len));
    if (err) {
      if (allocated) this.set(HDR.sizeDtStrings, this.h(HDR.sizeDtStrings) - (name.length + 1));
      return err;
    }
    setU32(this.buffer, abs, FDT_PROP);
    setU32(this.buffer, abs + 4, len);
    setU32(this.buffer, abs + 8, nameoff);
    return next;
  }

  /** fdt_setprop: create or resize the property and copy `value` in. */
  setprop(node: number, name: string, value: Uint8Array): void {
    const nb = nameToBytes(name, 'property name');
    const what = `setprop ${JSON.stringify(name)}`;
    const e = this.rwProbe();
    if (e) raise(e, what);
    let [off, oldlen] = this.getProperty(node, nb);
    if (off >= 0) {
      const data = this.h(HDR.offDtStruct) + off + 12;
      const err = this.spliceStruct(data, tagAlign(oldlen), tagAlign(value.length));
      if (err) raise(err, what, { offset: node });
      setU32(this.buffer, data - 8, value.length);
    } else if (off === NOTFOUND) {
      off = this.addProperty(node, nb, value.length);
      if (off < 0) raise(off, what, { offset: node });
    } else {
      raise(off, what, { offset: node });
    }
    if (value.length) this.buffer.set(value, this.h(HDR.offDtStruct) + off + 12);
  }

  setpropString(node: number, name: string, s: string): void {
    this.setprop(node, name, nulTerminated(s));
  }

  /** fdt_setprop_u32: one big-endian cell. */
  setpropU32(node: number, name: string, v: number): void {
    const b = new Uint8Array(4);
    setU32(b, 0, v >>> 0);
    this.setprop(node, name, b);
  }

  /** fdt_setprop_u64: big-endian u64 (KHO's native-endian values: pass bytes to `setprop`). */
  setpropU64(node: number, name: string, v: bigint): void {
    const b = new Uint8Array(8);
    setU64(b, 0, v);
    this.setprop(node, name, b);
  }

  /** fdt_appendprop: grow the property (or create it) by `value`. */
  appendprop(node: number, name: string, value: Uint8Array): void {
    const nb = nameToBytes(name, 'property name');
    const what = `appendprop ${JSON.stringify(name)}`;
    const e = this.rwProbe();
    if (e) raise(e, what);
    let [off, oldlen] = this.getProperty(node, nb);
    if (off >= 0) {
      const data = this.h(HDR.offDtStruct) + off + 12;
      const newlen = oldlen + value.length;
      const err = this.spliceStruct(data, tagAlign(oldlen), tagAlign(newlen));
      if (err) raise(err, what, { offset: node });
      setU32(this.buffer, data - 8, newlen);
    } else if (off === NOTFOUND) {
      off = this.addProperty(node, nb, value.length);
      if (off < 0) raise(off, what, { offset: node });
      oldlen = 0;
    } else {
      raise(off, what, { offset: node });
    }
    this.buffer.set(value, this.h(HDR.offDtStruct) + off + 12 + oldlen);
  }

  /** fdt_setprop_inplace: overwrite a property of exactly the same length. */
  setpropInplace(node: number, name: string, value: Uint8Array): void {
    const [off, len] = this.getProperty(node, nameToBytes(name, 'property name'));
    if (off < 0) raise(off, `setprop_inplace ${JSON.stringify(name)}`, { offset: node });
    if (len !== value.length) raise(NOSPACE, `setprop_inplace ${JSON.stringify(name)}: length ${len}`);
    this.buffer.set(value, this.h(HDR.offDtStruct) + off + 12);
  }

  /** fdt_delprop. */
  delprop(node: number, name: string): void {
    const what = `delprop ${JSON.stringify(name)}`;
    const e = this.rwProbe();
    if (e) raise(e, what);
    const [off, len] = this.getProperty(node, nameToBytes(name, 'property name'));
    if (off < 0) raise(off, what, { offset: node });
    const err = this.spliceStruct(this.h(HDR.offDtStruct) + off, 12 + tagAlign(len), 0);
    if (err) raise(err, what, { offset: node });
  }

  /** fdt_nop_property: overwrite the property with FDT_NOP tags. */
  nopProperty(node: number, name: string): void {
    const [off, len] = this.getProperty(node, nameToBytes(name, 'property name'));
    if (off < 0) raise(off, `nop_property ${JSON.stringify(name)}`, { offset: node });
    this.nopRegion(this.h(HDR.offDtStruct) + off, len + 12);
  }

  private nopRegion(abs: number, len: number): void {
    for (let p = abs; p < abs + len; p += 4) setU32(this.buffer, p, FDT_NOP);
  }

  /** fdt_add_subnode: returns the new node's offset. */
  addSubnode(parent: number, name: string): number {
    const nb = nameToBytes(name, 'node name');
    const what = `add_subnode ${JSON.stringify(name)}`;
    const e = this.rwProbe();
    if (e) raise(e, what);
    const existing = this.subnodeOffsetRaw(parent, nb);
    if (existing >= 0) raise(EXISTS, what, { offset: existing });
    if (existing !== NOTFOUND) raise(existing, what, { offset: parent });
    let tag = nextTag(this.buffer, parent);
    let next = tagCursor.next;
    if (tag !== FDT_BEGIN_NODE) raise(INTERNAL, what);
    let offset: number;
    do {
      offset = next;
      tag = nextTag(this.buffer, offset);
      next = tagCursor.next;
    } while (tag === FDT_PROP || tag === FDT_NOP);
    const abs = this.h(HDR.offDtStruct) + offset;
    const nameSpace = tagAlign(nb.length + 1);
    const nodelen = 4 + nameSpace + 4;
    const err = this.spliceStruct(abs, 0, nodelen);
    if (err) raise(err, what, { offset: parent });
    setU32(this.buffer, abs, FDT_BEGIN_NODE);
    this.buffer.fill(0, abs + 4, abs + 4 + nameSpace);
    this.buffer.set(nb, abs + 4);
    setU32(this.buffer, abs + nodelen - 4, FDT_END_NODE);
    return offset;
  }

  /** fdt_del_node: splice out the node and its subtree. */
  delNode(node: number): void {
    const e = this.rwProbe();
    if (e) raise(e, 'del_node');
    const end = this.nodeEndOffset(node);
    if (end < 0) raise(end, 'del_node', { offset: node });
    const err = this.spliceStruct(this.h(HDR.offDtStruct) + node, end - node, 0);
    if (err) raise(err, 'del_node', { offset: node });
  }

  /** fdt_nop_node: overwrite the node and its subtree with FDT_NOP tags. */
  nopNode(node: number): void {
    const end = this.nodeEndOffset(node);
    if (end < 0) raise(end, 'nop_node', { offset: node });
    this.nopRegion(this.h(HDR.offDtStruct) + node, end - node);
  }

  /** fdt_add_mem_rsv: append a reservation entry. */
  addMemRsv(address: bigint, size: bigint): void {
    const e = this.rwProbe();
    if (e) raise(e, 'add_mem_rsv');
    const n = numMemRsv(this.buffer);
    if (n < 0) raise(n, 'add_mem_rsv');
    const p = this.h(HDR.offMemRsvmap) + n * 16;
    const err = this.spliceMemRsv(p, 0, 1);
    if (err) raise(err, 'add_mem_rsv');
    setU64(this.buffer, p, address);
    setU64(this.buffer, p + 8, size);
  }

  /** fdt_del_mem_rsv: remove entry `n`. */
  delMemRsv(n: number): void {
    const e = this.rwProbe();
    if (e) raise(e, 'del_mem_rsv');
    const count = numMemRsv(this.buffer);
    if (count < 0) raise(count, 'del_mem_rsv');
    if (!Number.isInteger(n) || n < 0 || n >= count) raise(NOTFOUND, `del_mem_rsv ${n}`);
    const err = this.spliceMemRsv(this.h(HDR.offMemRsvmap) + n * 16, 1, 0);
    if (err) raise(err, 'del_mem_rsv');
  }

  /** fdt_pack: blocks to 40/.., totalsize = end of the strings. */
  pack(): void {
    const e = this.rwProbe();
    if (e) raise(e, 'pack');
    const n = numMemRsv(this.buffer);
    if (n < 0) raise(n, 'pack');
    packBlocks(this.buffer, this.buffer, 0, (n + 1) * 16, this.h(HDR.sizeDtStruct));
    this.set(HDR.totalsize, this.dataSize());
  }
}
