/**
 * Physical memory as the KHO decoders see it: a read-only, sparse map from physical addresses to bytes.
 *
 * Contract:
 * - `PhysMemory.read(pa, len)` returns exactly `len` bytes starting at physical address `pa`, or throws
 *   `KhoError('KHO_PTR_OUTSIDE_MEMORY')` naming the address when any byte of `[pa, pa+len)` is not
 *   covered. Nothing is allocated before the range is known to be covered, so a hostile pointer or
 *   length never causes a large allocation. `len` must be a non-negative safe integer.
 * - `has(pa, len)` says whether the whole range is covered; `ranges()` lists the covered ranges, sorted,
 *   non-overlapping, adjacent pieces merged.
 * - A read may span several backing pieces as long as they are physically contiguous.
 *
 * `PhysMemoryWriter` is the minimal writable model the encoders need (`pageSize`, `allocPage()`,
 * `write(pa, bytes)`), so a simulator can plug in its own page allocator. `SparseMemory` implements
 * both interfaces over in-memory pages; `SegmentedMemory` is the building block for file-backed images
 * (`raw.ts`, `elfcore.ts`, `dir.ts`): each segment reads lazily through a callback.
 *
 * Physical addresses and sizes are `bigint` (u64); byte lengths of single reads are `number`.
 */
import { KhoError } from '../../errors.ts';
import type { Endianness } from '../profile.ts';

export const U64_MAX = (1n << 64n) - 1n;

export interface PhysRange {
  start: bigint;
  size: bigint;
}

export interface PhysMemory {
  /** Exactly `len` bytes at `pa`; throws `KHO_PTR_OUTSIDE_MEMORY` when not fully covered. */
  read(pa: bigint, len: number): Uint8Array;
  /** Whether `[pa, pa+len)` is fully covered. */
  has(pa: bigint, len: number | bigint): boolean;
  /** Covered ranges, sorted, merged where adjacent. */
  ranges(): PhysRange[];
}

/** The writable memory model encoders build pages into. */
export interface PhysMemoryWriter {
  readonly pageSize: number;
  /** A fresh page (its content is all zero, or the encoder writes every byte it relies on). */
  allocPage(): bigint;
  write(pa: bigint, bytes: Uint8Array): void;
}

/** `0x...` lowercase hex of a physical address. */
export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** Locator used in `KhoError.path` for a physical address. */
export function physPath(pa: bigint): string {
  return `phys:${hex(pa)}`;
}

export function outsideMemory(pa: bigint, len: number | bigint, what = 'read'): KhoError {
  return new KhoError(
    'KHO_PTR_OUTSIDE_MEMORY',
    `${what} of ${len} bytes at ${hex(pa)} is outside the memory image`,
    { path: physPath(pa), expected: 'an address covered by the memory image' },
  );
}

function checkLen(len: number): void {
  if (!Number.isSafeInteger(len) || len < 0) {
    throw new KhoError('KHO_BAD_LENGTH', `read length ${len} is not a non-negative integer`);
  }
}

/** One contiguous piece of an image; `read(off, len)` returns bytes at `start + off`. */
export interface Segment {
  start: bigint;
  size: bigint;
  read(off: number, len: number): Uint8Array;
}

/**
 * A `PhysMemory` over segments. Overlapping segments are clipped: bytes come from the segment that
 * starts lowest (input order breaks ties); an ELF core may map the same physical bytes twice.
 */
export class SegmentedMemory implements PhysMemory {
  private readonly segs: Segment[];

  constructor(segments: readonly Segment[]) {
    // Sort by start (stable: input order breaks ties), then sweep: each segment keeps only the part
    // beyond what earlier-starting segments already cover. O(n log n) for any number of segments.
    const sorted = segments
      .map((s, i) => ({ s, i }))
      .filter(({ s }) => s.size > 0n)
      .sort((a, b) => cmpBig(a.s.start, b.s.start) || a.i - b.i);
    const pieces: Segment[] = [];
    let covered = -1n;
    for (const { s } of sorted) {
      if (s.start < 0n || s.start + s.size - 1n > U64_MAX) {
        throw new KhoError('KHO_BAD_SEGMENT', `segment ${hex(s.start)}+${hex(s.size)} wraps past 2^64`, {
          path: physPath(s.start),
        });
      }
      const end = s.start + s.size;
      const from = s.start > covered ? s.start : covered;
      if (from >= end) continue;
      const base = Number(from - s.start);
      pieces.push({ start: from, size: end - from, read: (off, len) => s.read(base + off, len) });
      covered = end;
    }
    this.segs = pieces;
  }

  /** Index of the segment containing `pa`, or -1. */
  private find(pa: bigint): number {
    let lo = 0;
    let hi = this.segs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.segs[mid];
      if (pa < s.start) hi = mid - 1;
      else if (pa >= s.start + s.size) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  has(pa: bigint, len: number | bigint): boolean {
    const n = BigInt(len);
    if (pa < 0n || n < 0n || pa + n > U64_MAX + 1n) return false;
    if (n === 0n) return true;
    let i = this.find(pa);
    if (i < 0) return false;
    const end = pa + n;
    let cursor = pa;
    while (i < this.segs.length) {
      const s = this.segs[i];
      if (s.start > cursor) return false;
      cursor = s.start + s.size;
      if (cursor >= end) return true;
      i++;
    }
    return false;
  }

  read(pa: bigint, len: number): Uint8Array {
    checkLen(len);
    if (!this.has(pa, len)) throw outsideMemory(pa, len);
    const out = new Uint8Array(len);
    let done = 0;
    let i = this.find(pa);
    while (done < len) {
      const s = this.segs[i];
      const cur = pa + BigInt(done);
      const off = Number(cur - s.start);
      const n = Math.min(len - done, Number(s.size - (cur - s.start)));
      const chunk = s.read(off, n);
      if (chunk.length !== n) {
        throw new KhoError('IO_SHORT_READ', `short read at ${hex(cur)}: ${chunk.length} of ${n} bytes`, {
          path: physPath(cur),
        });
      }
      out.set(chunk, done);
      done += n;
      i++;
    }
    return out;
  }

  ranges(): PhysRange[] {
    const out: PhysRange[] = [];
    for (const s of this.segs) {
      const last = out[out.length - 1];
      if (last && last.start + last.size === s.start) last.size += s.size;
      else out.push({ start: s.start, size: s.size });
    }
    return out;
  }
}

/** Memory from in-memory pieces: `[{ start, bytes }]`. */
export function memoryFromBytes(pieces: ReadonlyArray<{ start: bigint; bytes: Uint8Array }>): PhysMemory {
  return new SegmentedMemory(
    pieces.map((p) => ({
      start: p.start,
      size: BigInt(p.bytes.length),
      read: (off: number, len: number) => p.bytes.subarray(off, off + len),
    })),
  );
}

/**
 * In-memory, page-granular memory that is both readable and writable. Pages come from a bump
 * allocator starting at `allocBase` (default 1 MiB) unless `allocPage` is given; writes to pages that
 * were never allocated create them (zero-filled). Addresses are u64: a write outside `[0, 2^64)`
 * throws `KHO_PTR_OUTSIDE_MEMORY`. Pages are kept by page number (a number: below 2^52), and reads
 * and writes within one page take a short path, so walking tens of thousands of pages is cheap.
 */
export class SparseMemory implements PhysMemory, PhysMemoryWriter {
  readonly pageSize: number;
  private readonly pages = new Map<number, Uint8Array>();
  private readonly ps: bigint;
  private nextAlloc: bigint;
  private readonly allocFn?: () => bigint;

  constructor(opts: { pageSize?: number; allocBase?: bigint; allocPage?: () => bigint } = {}) {
    this.pageSize = opts.pageSize ?? 4096;
    this.ps = BigInt(this.pageSize);
    this.nextAlloc = opts.allocBase ?? 0x100000n;
    this.allocFn = opts.allocPage;
  }

  allocPage(): bigint {
    let pa: bigint;
    if (this.allocFn) pa = this.allocFn();
    else {
      pa = this.nextAlloc;
      this.nextAlloc += this.ps;
    }
    if (pa < 0n || pa + this.ps > U64_MAX + 1n) throw outsideMemory(pa, this.pageSize, 'page allocation');
    this.pages.set(Number(pa / this.ps), new Uint8Array(this.pageSize));
    return pa;
  }

  /** Pages present, sorted. */
  pageAddresses(): bigint[] {
    return [...this.pages.keys()].sort((a, b) => a - b).map((n) => BigInt(n) * this.ps);
  }

  write(pa: bigint, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (pa < 0n || pa + BigInt(bytes.length) > U64_MAX + 1n) throw outsideMemory(pa, bytes.length, 'write');
    const size = this.pageSize;
    let pageNo = Number(pa / this.ps);
    let off = Number(pa % this.ps);
    let done = 0;
    while (done < bytes.length) {
      let buf = this.pages.get(pageNo);
      if (!buf) {
        buf = new Uint8Array(size);
        this.pages.set(pageNo, buf);
      }
      const n = Math.min(bytes.length - done, size - off);
      buf.set(n === bytes.length ? bytes : bytes.subarray(done, done + n), off);
      done += n;
      pageNo++;
      off = 0;
    }
  }

  has(pa: bigint, len: number | bigint): boolean {
    const n = BigInt(len);
    if (pa < 0n || n < 0n || pa + n > U64_MAX + 1n) return false;
    if (n === 0n) return true;
    const first = Number(pa / this.ps);
    const last = Number((pa + n - 1n) / this.ps);
    for (let p = first; p <= last; p++) if (!this.pages.has(p)) return false;
    return true;
  }

  read(pa: bigint, len: number): Uint8Array {
    checkLen(len);
    if (!this.has(pa, len)) throw outsideMemory(pa, len);
    if (len === 0) return new Uint8Array(0);
    const size = this.pageSize;
    let pageNo = Number(pa / this.ps);
    let off = Number(pa % this.ps);
    if (off + len <= size) return this.pages.get(pageNo)!.slice(off, off + len);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const n = Math.min(len - done, size - off);
      out.set(this.pages.get(pageNo)!.subarray(off, off + n), done);
      done += n;
      pageNo++;
      off = 0;
    }
    return out;
  }

  ranges(): PhysRange[] {
    const out: PhysRange[] = [];
    for (const p of this.pageAddresses()) {
      const last = out[out.length - 1];
      if (last && last.start + last.size === p) last.size += this.ps;
      else out.push({ start: p, size: this.ps });
    }
    return out;
  }
}

/** Read a u64 at `pa` in the given byte order. */
export function readU64(mem: PhysMemory, pa: bigint, endian: Endianness = 'little'): bigint {
  const b = mem.read(pa, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, endian === 'little');
}

/** Read a u32 at `pa` in the given byte order. */
export function readU32(mem: PhysMemory, pa: bigint, endian: Endianness = 'little'): number {
  const b = mem.read(pa, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, endian === 'little');
}

/** A DataView over `bytes` (no copy). */
export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** u64 to 8 bytes in the given order. */
export function u64Bytes(v: bigint, endian: Endianness = 'little'): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), endian === 'little');
  return b;
}

/** Sort bigints ascending. */
export function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
