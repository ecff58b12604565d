/**
 * Sparse physical memory with real contents.
 *
 * Contract: a `PhysicalMemory` of any size (a 1 TiB machine included) costs only the pages that hold
 * written data: one page-sized `Uint8Array` per such page, found by page frame number through a table of
 * 256-frame chunks (a chunk exists only while one of its pages does). Reading a page that was
 * never written gives zeros without allocating. Reads and writes take any physical address (`bigint`) and
 * any length, crossing page boundaries freely; every access is checked against the address-space size
 * given at construction and fails with `SIM_BAD_ADDRESS` (never a RangeError). `zero()` and `clear()` give
 * pages back, so zeroed memory costs nothing again.
 *
 * `sha256(addr, len)` is the exact SHA-256 of the bytes in a range (limited to `MAX_HASH_BYTES`, since
 * hashing a terabyte of zeros byte by byte is pointless); `digest(addr, len)` is a fast content
 * fingerprint of any range, however large: two ranges of the same length have the same digest exactly
 * when their contents are equal (up to SHA-256 collisions), because it hashes only the non-zero pages
 * with their offsets. Invariant checkers use it to assert that preserved memory survived a kexec.
 *
 * `sharePages(addr, len)` hands out the stored page arrays of a range without copying them; memory then
 * copies such a page before any change (copy on write), so the arrays keep the contents they had and
 * `residentPage(pfn) === array` proves a page unchanged. Accesses whose addresses are exact doubles
 * (below 2^53) take a number fast path; `readU64`/`writeU64` allocate nothing but the result.
 */
import { createHash } from 'node:crypto';
import { KhoError } from '../../errors.ts';

/** Largest range `sha256()` hashes byte by byte (1 GiB). Use `digest()` beyond. */
export const MAX_HASH_BYTES = 1n << 30n;
/** Largest non-zero `fill()` (1 GiB): it materialises every page it touches. */
export const MAX_FILL_BYTES = 1n << 30n;
/** Largest single `read()` (256 MiB): a read materialises its result. */
export const MAX_READ_BYTES = 1 << 28;

export class PhysicalMemory {
  readonly pageSize: number;
  readonly pageShift: bigint;
  /** Size of the physical address space: valid addresses are `[0, limit)`. */
  readonly limit: bigint;
  private pages = new PageTable();
  /** `limit` as a double when it is below 2^53 (so addresses below it are exact doubles), else 0. */
  private readonly limitNum: number;
  /** 8 bytes with a view, for `readU64`/`writeU64` without allocating. */
  private readonly word = new DataView(new ArrayBuffer(8));
  private readonly wordBytes = new Uint8Array(this.word.buffer);
  /** Pages handed out by `sharePages`: changing one replaces it with a copy first (copy on write). */
  private readonly shared = new WeakSet<Uint8Array>();
  private anyShared = false;

  constructor(pageSize: number, limit: bigint) {
    if (!Number.isInteger(pageSize) || pageSize < 512 || (pageSize & (pageSize - 1)) !== 0)
      throw new KhoError('SIM_BAD_SPEC', `page size ${pageSize} is not a power of two >= 512`);
    if (limit <= 0n || limit > 1n << 64n)
      throw new KhoError('SIM_BAD_SPEC', `address space limit ${limit} out of range`);
    this.pageSize = pageSize;
    this.pageShift = BigInt(Math.log2(pageSize));
    this.limit = limit;
    this.limitNum = limit < 1n << 53n ? Number(limit) : 0;
  }

  /**
   * The address as a double when `[addr, addr+len)` is inside memory and below 2^53 (the fast path:
   * exact double arithmetic), -1 otherwise (the caller then checks and splits it in bigint).
   */
  private fastAddr(addr: bigint, len: number): number {
    const a = Number(addr);
    return a >= 0 && a < 2 ** 53 && a + len <= this.limitNum ? a : -1;
  }

  /** Number of pages currently holding data (the memory cost is this times `pageSize`). */
  get residentPages(): number {
    return this.pages.size;
  }

  /** Bytes of host memory used for contents. */
  get residentBytes(): number {
    return this.pages.size * this.pageSize;
  }

  private check(addr: bigint, len: bigint, what: string): void {
    if (addr < 0n || len < 0n || addr + len > this.limit)
      throw new KhoError(
        'SIM_BAD_ADDRESS',
        `${what} of ${len} bytes at 0x${addr.toString(16)} is outside physical memory`,
        {
          path: `phys:0x${addr.toString(16)}`,
          expected: `a range inside [0, 0x${this.limit.toString(16)})`,
        },
      );
  }

  /** Walk `[addr, addr+len)` page by page: `fn(pfn, offsetInPage, count, offsetInRange)`. */
  private walk(
    addr: bigint,
    len: number,
    fn: (pfn: number, off: number, count: number, done: number) => void,
  ): void {
    let pfn = Number(addr >> this.pageShift);
    let off = Number(addr & BigInt(this.pageSize - 1));
    let done = 0;
    while (done < len) {
      const count = Math.min(this.pageSize - off, len - done);
      fn(pfn, off, count, done);
      done += count;
      pfn++;
      off = 0;
    }
  }

  /** Read `len` bytes at `addr` (zeros where nothing was written). */
  read(addr: bigint, len: number): Uint8Array {
    if (!Number.isSafeInteger(len) || len < 0 || len > MAX_READ_BYTES)
      throw new KhoError('SIM_BAD_ADDRESS', `read length ${len} is not in [0, ${MAX_READ_BYTES}]`);
    const a = this.fastAddr(addr, len);
    if (a < 0) this.check(addr, BigInt(len), 'read');
    const out = new Uint8Array(len);
    const ps = this.pageSize;
    // the page and offset exactly: in doubles below 2^53, else in bigint (pfn < 2^52 then)
    let pfn = a >= 0 ? Math.floor(a / ps) : Number(addr >> this.pageShift);
    let off = a >= 0 ? a - pfn * ps : Number(addr & BigInt(ps - 1));
    for (let done = 0; done < len; pfn++, off = 0) {
      const count = Math.min(ps - off, len - done);
      const page = this.pages.get(pfn);
      if (page) {
        if (count <= 16) for (let i = 0; i < count; i++) out[done + i] = page[off + i];
        else out.set(count === ps ? page : page.subarray(off, off + count), done);
      }
      done += count;
    }
    return out;
  }

  /** Write `data` at `addr`. */
  write(addr: bigint, data: Uint8Array): void {
    const len = data.length;
    const a = this.fastAddr(addr, len);
    if (a < 0) this.check(addr, BigInt(len), 'write');
    const ps = this.pageSize;
    // the page and offset exactly: in doubles below 2^53, else in bigint (pfn < 2^52 then)
    let pfn = a >= 0 ? Math.floor(a / ps) : Number(addr >> this.pageShift);
    let off = a >= 0 ? a - pfn * ps : Number(addr & BigInt(ps - 1));
    for (let done = 0; done < len; pfn++, off = 0) {
      const count = Math.min(ps - off, len - done);
      let page = this.pages.get(pfn);
      if (page && this.anyShared && this.shared.has(page)) page = this.unshare(pfn, page);
      if (page && count <= 16) {
        for (let i = 0; i < count; i++) page[off + i] = data[done + i];
        done += count;
        continue;
      }
      const src = count === len ? data : data.subarray(done, done + count);
      done += count;
      if (!page) {
        if (allZero(src)) continue; // writing zeros to a zero page costs nothing
        page = new Uint8Array(ps);
        this.pages.set(pfn, page);
      }
      page.set(src, off);
    }
  }

  /**
   * The bytes of page `pfn` as stored (no copy), created zeroed when `create` and absent; undefined
   * for an absent page otherwise. For hot paths that read or patch a few bytes of one page: the caller
   * must keep `pfn` inside the address space, must not keep the array (`zero()`, `clear()` and
   * `restore()` replace pages) and must not make a page that should cost nothing hold only zeros.
   */
  pageBytes(pfn: number, create: boolean): Uint8Array | undefined {
    let page = this.pages.get(pfn);
    if (page && this.anyShared && this.shared.has(page)) page = this.unshare(pfn, page);
    if (!page && create) {
      if (!(pfn >= 0 && BigInt(pfn + 1) << this.pageShift <= this.limit))
        throw new KhoError('SIM_BAD_ADDRESS', `page frame 0x${pfn.toString(16)} is outside physical memory`, {
          path: `pfn:0x${pfn.toString(16)}`,
        });
      page = new Uint8Array(this.pageSize);
      this.pages.set(pfn, page);
    }
    return page;
  }

  /** Replace a shared page with a private copy (before changing it). */
  private unshare(pfn: number, page: Uint8Array): Uint8Array {
    const copy = page.slice();
    this.pages.set(pfn, copy);
    return copy;
  }

  /**
   * The pages holding data in `[addr, addr+len)` as `[pfn, bytes]`, ascending, without copying: each
   * page is marked shared, so any later change to memory there replaces the page with a changed copy
   * and the arrays returned keep their contents. A snapshot for before/after checks that costs no copy:
   * a page whose `residentPage(pfn)` is still the same array is unchanged.
   */
  sharePages(addr: bigint, len: bigint): [number, Uint8Array][] {
    const out: [number, Uint8Array][] = [];
    for (const pfn of this.residentPfnsIn(addr, len)) {
      const page = this.pages.get(pfn)!;
      this.shared.add(page);
      out.push([pfn, page]);
    }
    if (out.length > 0) this.anyShared = true;
    return out;
  }

  /** The stored array of page `pfn` (undefined when it holds nothing); read only, do not keep it. */
  residentPage(pfn: number): Uint8Array | undefined {
    return this.pages.get(pfn);
  }

  /**
   * Set `len` bytes at `addr` to `byte`. Filling with 0 gives whole pages back and costs time only for
   * pages that hold data (zeroing a terabyte is cheap); a non-zero fill materialises its pages and is
   * limited to `MAX_FILL_BYTES`.
   */
  fill(addr: bigint, len: bigint, byte: number): void {
    if (!Number.isInteger(byte) || byte < 0 || byte > 255)
      throw new KhoError('SIM_BAD_ARGUMENT', `fill byte ${byte} is not in [0, 255]`);
    this.check(addr, len, 'fill');
    if (len === 0n) return;
    if (byte !== 0 && len > MAX_FILL_BYTES)
      throw new KhoError('SIM_BAD_ARGUMENT', `non-zero fill of ${len} bytes exceeds ${MAX_FILL_BYTES}`);
    const ps = BigInt(this.pageSize);
    const end = addr + len;
    const fillPage = (p: bigint): void => {
      const pageStart = p << this.pageShift;
      const from = addr > pageStart ? Number(addr - pageStart) : 0;
      const to = end < pageStart + ps ? Number(end - pageStart) : this.pageSize;
      const pfn = Number(p);
      if (from === 0 && to === this.pageSize) {
        if (byte === 0) this.pages.delete(pfn);
        else this.pages.set(pfn, new Uint8Array(this.pageSize).fill(byte));
        return;
      }
      let page = this.pages.get(pfn);
      if (page && this.anyShared && this.shared.has(page)) page = this.unshare(pfn, page);
      if (!page) {
        if (byte === 0) return;
        page = new Uint8Array(this.pageSize);
        this.pages.set(pfn, page);
      }
      page.fill(byte, from, to);
    };
    if (byte === 0) {
      for (const pfn of this.residentPfnsIn(addr, len)) fillPage(BigInt(pfn));
      return;
    }
    for (let p = addr >> this.pageShift; p << this.pageShift < end; p++) fillPage(p);
  }

  /** Zero `len` bytes at `addr`. */
  zero(addr: bigint, len: bigint): void {
    this.fill(addr, len, 0);
  }

  /** Forget every page: what a power cycle does to DRAM. */
  clear(): void {
    this.pages.clear();
  }

  readU32(addr: bigint): number {
    const b = this.read(addr, 4);
    return new DataView(b.buffer).getUint32(0, true);
  }

  readU64(addr: bigint): bigint {
    const a = this.fastAddr(addr, 8);
    const ps = this.pageSize;
    const pfn = Math.floor(a / ps);
    const off = a - pfn * ps;
    if (a < 0 || off + 8 > ps) return new DataView(this.read(addr, 8).buffer).getBigUint64(0, true);
    const page = this.pages.get(pfn);
    if (!page) return 0n;
    const w = this.wordBytes;
    for (let i = 0; i < 8; i++) w[i] = page[off + i];
    return this.word.getBigUint64(0, true);
  }

  writeU32(addr: bigint, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.write(addr, b);
  }

  writeU64(addr: bigint, value: bigint): void {
    this.word.setBigUint64(0, BigInt.asUintN(64, value), true);
    this.write(addr, this.wordBytes);
  }

  /** Page frame numbers holding data inside `[addr, addr+len)`, ascending. */
  residentPfnsIn(addr: bigint, len: bigint): number[] {
    this.check(addr, len, 'scan');
    if (len === 0n) return [];
    const first = Number(addr >> this.pageShift);
    const last = Number((addr + len - 1n) >> this.pageShift);
    const out: number[] = [];
    if (last - first + 1 <= this.pages.size) {
      for (let p = first; p <= last; p++) if (this.pages.has(p)) out.push(p);
    } else {
      for (const p of this.pages.keys()) if (p >= first && p <= last) out.push(p);
      out.sort((a, b) => a - b);
    }
    return out;
  }

  /** Exact SHA-256 (hex) of the bytes in `[addr, addr+len)`; `len` at most `MAX_HASH_BYTES`. */
  sha256(addr: bigint, len: bigint): string {
    if (len > MAX_HASH_BYTES)
      throw new KhoError(
        'SIM_BAD_ARGUMENT',
        `sha256 of ${len} bytes exceeds ${MAX_HASH_BYTES}; use digest()`,
      );
    this.check(addr, len, 'hash');
    const h = createHash('sha256');
    const zero = new Uint8Array(this.pageSize);
    this.walk(addr, Number(len), (pfn, off, count) => {
      const page = this.pages.get(pfn);
      h.update((page ?? zero).subarray(off, off + count));
    });
    return h.digest('hex');
  }

  /**
   * Content fingerprint of `[addr, addr+len)` of any size: SHA-256 over the length and, for every
   * page in the range holding a non-zero byte, its offset in the range and its bytes in the range.
   */
  digest(addr: bigint, len: bigint): string {
    this.check(addr, len, 'digest');
    const h = createHash('sha256');
    h.update(`len:${len.toString(16)};`);
    const end = addr + len;
    for (const pfn of this.residentPfnsIn(addr, len)) {
      const page = this.pages.get(pfn)!;
      const pageStart = BigInt(pfn) << this.pageShift;
      const from = addr > pageStart ? Number(addr - pageStart) : 0;
      const to = end < pageStart + BigInt(this.pageSize) ? Number(end - pageStart) : this.pageSize;
      const slice = page.subarray(from, to);
      if (allZero(slice)) continue;
      h.update(`@${(pageStart + BigInt(from) - addr).toString(16)}:${slice.length};`);
      h.update(slice);
    }
    return h.digest('hex');
  }

  /** A deep copy of the contents (for before/after comparisons in tests and checkers). */
  snapshot(): MemorySnapshot {
    const copy = new Map<number, Uint8Array>();
    for (const [pfn, page] of this.pages) copy.set(pfn, page.slice());
    return { pageSize: this.pageSize, pages: copy };
  }

  /** Replace the contents with a snapshot's. */
  restore(snap: MemorySnapshot): void {
    if (snap.pageSize !== this.pageSize)
      throw new KhoError('SIM_BAD_ARGUMENT', `snapshot page size ${snap.pageSize} != ${this.pageSize}`);
    this.pages = new PageTable();
    for (const [pfn, page] of snap.pages) this.pages.set(pfn, page.slice());
  }
}

/** Page frames per `PageTable` chunk. */
const CHUNK = 256;

/**
 * pfn → page, as a map of chunks of `CHUNK` slots (the Map subset memory needs): a lookup is a probe
 * of a small map (the last chunk cached) and an array index, instead of a probe of a map with an entry
 * per resident page. Iteration goes chunk by chunk, ascending within a chunk.
 */
class PageTable {
  private readonly chunks = new Map<number, (Uint8Array | undefined)[]>();
  private lastId = -1;
  private last: (Uint8Array | undefined)[] | undefined;
  size = 0;

  private chunk(id: number): (Uint8Array | undefined)[] | undefined {
    if (id === this.lastId) return this.last;
    const c = this.chunks.get(id);
    if (c !== undefined) {
      this.lastId = id;
      this.last = c;
    }
    return c;
  }

  get(pfn: number): Uint8Array | undefined {
    const id = Math.floor(pfn / CHUNK);
    return this.chunk(id)?.[pfn - id * CHUNK];
  }

  has(pfn: number): boolean {
    return this.get(pfn) !== undefined;
  }

  set(pfn: number, page: Uint8Array): void {
    const id = Math.floor(pfn / CHUNK);
    let c = this.chunk(id);
    if (c === undefined) {
      c = new Array<Uint8Array | undefined>(CHUNK).fill(undefined);
      this.chunks.set(id, c);
      this.lastId = id;
      this.last = c;
    }
    const i = pfn - id * CHUNK;
    if (c[i] === undefined) this.size++;
    c[i] = page;
  }

  delete(pfn: number): boolean {
    const id = Math.floor(pfn / CHUNK);
    const c = this.chunk(id);
    const i = pfn - id * CHUNK;
    if (c === undefined || c[i] === undefined) return false;
    c[i] = undefined;
    this.size--;
    if (c.every((p) => p === undefined)) {
      // an empty chunk costs nothing either
      this.chunks.delete(id);
      if (this.lastId === id) {
        this.lastId = -1;
        this.last = undefined;
      }
    }
    return true;
  }

  clear(): void {
    this.chunks.clear();
    this.lastId = -1;
    this.last = undefined;
    this.size = 0;
  }

  *keys(): IterableIterator<number> {
    for (const [id, c] of this.chunks)
      for (let i = 0; i < CHUNK; i++) if (c[i] !== undefined) yield id * CHUNK + i;
  }

  *[Symbol.iterator](): IterableIterator<[number, Uint8Array]> {
    for (const [id, c] of this.chunks)
      for (let i = 0; i < CHUNK; i++) {
        const page = c[i];
        if (page !== undefined) yield [id * CHUNK + i, page];
      }
  }
}

/** Whether every byte is zero (word at a time where aligned). */
function allZero(b: Uint8Array): boolean {
  const n = b.length;
  let i = 0;
  if ((b.byteOffset & 3) === 0 && n >= 16) {
    const w = new Uint32Array(b.buffer, b.byteOffset, n >>> 2);
    for (let j = 0; j < w.length; j++) if (w[j] !== 0) return false;
    i = w.length << 2;
  }
  for (; i < n; i++) if (b[i] !== 0) return false;
  return true;
}

export interface MemorySnapshot {
  readonly pageSize: number;
  readonly pages: ReadonlyMap<number, Uint8Array>;
}
