/**
 * The page allocator: a binary buddy system over the memory memblock frees (`memblock_free_all`),
 * with the migrate-type rule KHO relies on (scratch pageblocks are MIGRATE_CMA: only movable allocations
 * may come from them) and a way to keep pages out of circulation (reserved / preserved).
 *
 * Contract:
 * - Pages are identified by page frame number (`number`). Orders run 0..maxOrder (MAX_PAGE_ORDER, 10 on
 *   x86_64 4K). Free memory is kept only as free blocks (no per-page objects), so a 1 TiB machine costs
 *   one map entry per free block.
 * - Every managed page is in exactly one state: `free` (inside a free block), `allocated` (inside an
 *   allocated block, which records its order and migrate type), or `reserved` (never freed to the buddy
 *   by memblock, or taken out with `reservePages`, tagged). Pages outside managed memory are `absent`.
 * - `alloc(order, { migratetype, nid })` returns the lowest page of a free block of that order (splitting
 *   a larger one, upper halves go back), or `null` when nothing fits. MOVABLE may use CMA pageblocks
 *   (after normal ones); UNMOVABLE and RECLAIMABLE never do. Node preference falls back to other nodes
 *   in nid order.
 * - `free(pfn, order)` must name exactly an allocated block (`SIM_BAD_FREE` otherwise: double free,
 *   wrong order, not a head). Freed blocks merge with free buddies of the same order, never across
 *   managed-range boundaries, and at or above pageblock order only between pageblocks of the same CMA-ness
 *   (CMA does not merge with other types). Pages marked preserved (`markPreserved`) are never handed
 *   out: if they are free they become reserved at once, and freeing them later makes them reserved, not
 *   free.
 * - `pageState(pfn)` / `pageInfo(pfn)` answer what an invariant checker needs.
 */
import { KhoError } from '../../errors.ts';
import { MEMBLOCK_NONE, type Memblock, NUMA_NO_NODE } from './memblock.ts';

export type MigrateType = 'unmovable' | 'movable' | 'reclaimable';
export type PageState = 'free' | 'allocated' | 'reserved' | 'absent';

export interface PageInfo {
  pfn: number;
  state: PageState;
  nid?: number;
  /** Head pfn and order of the free or allocated block holding the page. */
  head?: number;
  order?: number;
  /** Migrate type the allocation asked for (allocated pages). */
  migratetype?: MigrateType;
  /** Whether the page's pageblock is MIGRATE_CMA. */
  cma: boolean;
  /** Tag of the reservation (reserved pages): `memblock`, `preserved`, or a caller's tag. */
  tag?: string;
  preserved: boolean;
}

interface Interval {
  start: number;
  end: number;
  tag: string;
}

interface ManagedRange {
  start: number;
  end: number;
  nid: number;
}

export interface BuddyOptions {
  maxOrder: number;
  pageblockOrder: number;
}

/** A sorted, non-overlapping interval set of pfns with tags. */
class IntervalSet {
  list: Interval[] = [];

  private lowerBound(pfn: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid].end <= pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  find(pfn: number): Interval | undefined {
    const i = this.lowerBound(pfn);
    const it = this.list[i];
    return it && it.start <= pfn ? it : undefined;
  }

  /** Intervals intersecting [start, end). */
  overlapping(start: number, end: number): Interval[] {
    const out: Interval[] = [];
    for (let i = this.lowerBound(start); i < this.list.length && this.list[i].start < end; i++)
      out.push(this.list[i]);
    return out;
  }

  add(start: number, end: number, tag: string): void {
    if (start >= end) return;
    this.remove(start, end);
    let i = this.lowerBound(start);
    this.list.splice(i, 0, { start, end, tag });
    // merge equal-tag neighbours (the list is kept merged, so only the new entry's neighbours can join)
    const prev = this.list[i - 1];
    if (prev && prev.end === start && prev.tag === tag) {
      prev.end = end;
      this.list.splice(i, 1);
      i--;
    }
    const cur = this.list[i];
    const next = this.list[i + 1];
    if (next && cur.end === next.start && next.tag === cur.tag) {
      cur.end = next.end;
      this.list.splice(i + 1, 1);
    }
  }

  remove(start: number, end: number): void {
    if (start >= end) return;
    const list = this.list;
    const i = this.lowerBound(start);
    const first = list[i];
    if (first === undefined || first.start >= end) return;
    if (i + 1 === list.length || list[i + 1].start >= end) {
      // one interval affected (the common case): trim, split or drop it without rebuilding the list
      const left = first.start < start;
      const right = first.end > end;
      if (left) list[i] = { start: first.start, end: start, tag: first.tag };
      if (right) {
        const rest = { start: end, end: first.end, tag: first.tag };
        if (left) list.splice(i + 1, 0, rest);
        else list[i] = rest;
      }
      if (!left && !right) list.splice(i, 1);
      return;
    }
    let j = i;
    const keep: Interval[] = [];
    for (; j < this.list.length && this.list[j].start < end; j++) {
      const it = this.list[j];
      if (it.start < start) keep.push({ start: it.start, end: start, tag: it.tag });
      if (it.end > end) keep.push({ start: end, end: it.end, tag: it.tag });
    }
    if (j > i) this.list.splice(i, j - i, ...keep);
  }
}

interface Block {
  readonly order: number;
  readonly migratetype: MigrateType;
}

/** Shared, immutable block records (one per order and migrate type): no allocation per block. */
const BLOCKS: Record<MigrateType, Block[]> = { unmovable: [], movable: [], reclaimable: [] };
function blockOf(order: number, migratetype: MigrateType): Block {
  const list = BLOCKS[migratetype];
  let b = list[order];
  if (b === undefined) {
    b = Object.freeze({ order, migratetype });
    list[order] = b;
  }
  return b;
}

const MIGRATE_TYPES: readonly MigrateType[] = ['unmovable', 'movable', 'reclaimable'];
/** Page frames per `BlockTable` chunk. */
const BLOCK_CHUNK = 1024;

/**
 * Allocated block heads: pfn → block (a `Map` subset), one byte per page frame in chunks of
 * `BLOCK_CHUNK` (`1 + order + 64 × migrate type index`, 0 = none), so claiming 10 000 restored folios
 * is byte stores, not map entries. Iteration goes chunk by chunk, ascending within a chunk.
 */
class BlockTable {
  /** Chunks; slot `BLOCK_CHUNK` holds the chunk's number of entries. */
  private readonly chunks = new Map<number, Uint16Array>();
  private lastId = -1;
  private last: Uint16Array | undefined;
  size = 0;

  private chunk(id: number, create: boolean): Uint16Array | undefined {
    if (id === this.lastId) return this.last;
    let c = this.chunks.get(id);
    if (c === undefined) {
      if (!create) return undefined;
      c = new Uint16Array(BLOCK_CHUNK + 1);
      this.chunks.set(id, c);
    }
    this.lastId = id;
    this.last = c;
    return c;
  }

  get(pfn: number): Block | undefined {
    const id = Math.floor(pfn / BLOCK_CHUNK);
    const v = this.chunk(id, false)?.[pfn - id * BLOCK_CHUNK];
    return v ? blockOf((v - 1) & 63, MIGRATE_TYPES[(v - 1) >> 6]) : undefined;
  }

  set(pfn: number, b: Block): void {
    const id = Math.floor(pfn / BLOCK_CHUNK);
    const c = this.chunk(id, true)!;
    const i = pfn - id * BLOCK_CHUNK;
    if (c[i] === 0) {
      this.size++;
      c[BLOCK_CHUNK]++;
    }
    c[i] = 1 + b.order + 64 * MIGRATE_TYPES.indexOf(b.migratetype);
  }

  delete(pfn: number): boolean {
    const id = Math.floor(pfn / BLOCK_CHUNK);
    const c = this.chunk(id, false);
    const i = pfn - id * BLOCK_CHUNK;
    if (c === undefined || c[i] === 0) return false;
    c[i] = 0;
    this.size--;
    if (--c[BLOCK_CHUNK] === 0) {
      this.chunks.delete(id);
      if (this.lastId === id) {
        this.lastId = -1;
        this.last = undefined;
      }
    }
    return true;
  }

  /** `fn(head, order)` for every block, heads ascending, without an iterator per entry. */
  forEachOrder(fn: (head: number, order: number) => void): void {
    for (const id of [...this.chunks.keys()].sort((x, y) => x - y)) {
      const c = this.chunks.get(id)!;
      const base = id * BLOCK_CHUNK;
      for (let i = 0; i < BLOCK_CHUNK; i++) {
        const v = c[i];
        if (v !== 0) fn(base + i, (v - 1) & 63);
      }
    }
  }

  *entries(): IterableIterator<[number, Block]> {
    for (const [id, c] of this.chunks)
      for (let i = 0; i < BLOCK_CHUNK; i++) {
        const v = c[i];
        if (v !== 0) yield [id * BLOCK_CHUNK + i, blockOf((v - 1) & 63, MIGRATE_TYPES[(v - 1) >> 6])];
      }
  }

  [Symbol.iterator](): IterableIterator<[number, Block]> {
    return this.entries();
  }
}

export class BuddyAllocator {
  readonly maxOrder: number;
  readonly pageblockOrder: number;
  private ranges: ManagedRange[] = [];
  /** Free blocks: head pfn → order. */
  private freeBlocks = new Map<number, number>();
  /** Free lists: key `(nid + 1) * 64 + (cma ? 32 : 0) + order` → heads (insertion-ordered). */
  private lists = new Map<number, Set<number>>();
  private allocated = new BlockTable();
  private reserved = new IntervalSet();
  private preserved = new IntervalSet();
  /** Pageblock indexes that are MIGRATE_CMA. */
  private cmaBlocks = new Set<number>();
  private nFree = 0;
  private nAllocated = 0;

  constructor(opts: BuddyOptions) {
    if (!Number.isInteger(opts.maxOrder) || opts.maxOrder < 0 || opts.maxOrder > 20)
      throw new KhoError('SIM_BAD_ARGUMENT', `max order ${opts.maxOrder} out of range`);
    this.maxOrder = opts.maxOrder;
    this.pageblockOrder = opts.pageblockOrder;
  }

  /** Pages currently free. */
  get freePages(): number {
    return this.nFree;
  }
  /** Pages currently allocated. */
  get allocatedPages(): number {
    return this.nAllocated;
  }
  /** Number of free blocks (the allocator's memory cost). */
  get freeBlockCount(): number {
    return this.freeBlocks.size;
  }
  /** Free-list length per order (all nodes and types), like /proc/buddyinfo summed. */
  freeCountsByOrder(): number[] {
    const counts = new Array<number>(this.maxOrder + 1).fill(0);
    for (const o of this.freeBlocks.values()) counts[o]++;
    return counts;
  }

  /** Declare a managed range of pages (all reserved until freed). */
  addRange(startPfn: number, endPfn: number, nid: number): void {
    if (
      !(Number.isSafeInteger(startPfn) && Number.isSafeInteger(endPfn)) ||
      startPfn < 0 ||
      endPfn < startPfn
    )
      throw new KhoError('SIM_BAD_ARGUMENT', `bad pfn range [${startPfn}, ${endPfn})`);
    if (startPfn === endPfn) return;
    if (this.ranges.some((r) => startPfn < r.end && r.start < endPfn))
      throw new KhoError('SIM_BAD_ARGUMENT', `pfn range [${startPfn}, ${endPfn}) overlaps a managed range`);
    this.ranges.push({ start: startPfn, end: endPfn, nid });
    this.ranges.sort((a, b) => a.start - b.start);
    // adjacent ranges of one node form one zone span: buddies may merge across them
    const merged: ManagedRange[] = [];
    for (const r of this.ranges) {
      const prev = merged[merged.length - 1];
      if (prev && prev.end === r.start && prev.nid === r.nid) prev.end = r.end;
      else merged.push({ ...r });
    }
    this.ranges = merged;
    this.reserved.add(startPfn, endPfn, 'memblock');
  }

  private rangeOf(pfn: number): ManagedRange | undefined {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ranges[mid].end <= pfn) lo = mid + 1;
      else hi = mid;
    }
    const r = this.ranges[lo];
    return r && r.start <= pfn ? r : undefined;
  }

  isCmaPfn(pfn: number): boolean {
    return this.cmaBlocks.has(Math.floor(pfn / 2 ** this.pageblockOrder));
  }

  private listKey(nid: number, cma: boolean, order: number): number {
    return (nid + 1) * 64 + (cma ? 32 : 0) + order;
  }

  private insertFree(pfn: number, order: number): void {
    const nid = this.rangeOf(pfn)!.nid;
    this.freeBlocks.set(pfn, order);
    const key = this.listKey(nid, this.isCmaPfn(pfn), order);
    let set = this.lists.get(key);
    if (!set) {
      set = new Set();
      this.lists.set(key, set);
    }
    set.add(pfn);
    this.nFree += 2 ** order;
  }

  private removeFree(pfn: number): number {
    const order = this.freeBlocks.get(pfn)!;
    const nid = this.rangeOf(pfn)!.nid;
    this.freeBlocks.delete(pfn);
    this.lists.get(this.listKey(nid, this.isCmaPfn(pfn), order))?.delete(pfn);
    this.nFree -= 2 ** order;
    return order;
  }

  private blockContaining(
    map: { get(pfn: number): number | Block | undefined },
    pfn: number,
  ): [number, number] | undefined {
    for (let o = 0; o <= this.maxOrder; o++) {
      const head = pfn - (pfn % 2 ** o);
      const v = map.get(head);
      if (v === undefined) continue;
      const order = typeof v === 'number' ? v : v.order;
      if (order >= o && pfn < head + 2 ** order) return [head, order];
    }
    return undefined;
  }

  /** Free one aligned block (merging), or route preserved pages to reserved. */
  private freeBlock(pfn: number, order: number): void {
    if (this.preserved.overlapping(pfn, pfn + 2 ** order).length > 0) {
      // split around the preserved pages: free the rest in aligned pieces
      this.freeSpan(pfn, pfn + 2 ** order);
      return;
    }
    let p = pfn;
    let o = order;
    const range = this.rangeOf(pfn)!;
    while (o < this.maxOrder) {
      const buddy = p ^ (2 ** o);
      if (buddy < range.start || buddy + 2 ** o > range.end) break;
      if (this.freeBlocks.get(buddy) !== o) break;
      if (o >= this.pageblockOrder && this.isCmaPfn(buddy) !== this.isCmaPfn(p)) break;
      this.removeFree(buddy);
      p = Math.min(p, buddy);
      o++;
    }
    this.insertFree(p, o);
  }

  /** Free every page of [start, end) (all currently not free, not allocated) in aligned pieces. */
  private freeSpan(start: number, end: number): void {
    let pfn = start;
    while (pfn < end) {
      const pres = this.preserved.find(pfn);
      if (pres) {
        const stop = Math.min(pres.end, end);
        this.reserved.add(pfn, stop, 'preserved');
        pfn = stop;
        continue;
      }
      let order = pfn === 0 ? this.maxOrder : Math.min(this.maxOrder, ctz(pfn));
      while (pfn + 2 ** order > end) order--;
      const next = this.preserved.overlapping(pfn, pfn + 2 ** order)[0];
      if (next) {
        // shrink to stop before the preserved range
        while (pfn + 2 ** order > next.start) order--;
      }
      this.reserved.remove(pfn, pfn + 2 ** order);
      this.freeBlock(pfn, order);
      pfn += 2 ** order;
    }
  }

  /**
   * `memblock_free_all`: clear scratch-only mode, declare every memblock.memory region managed, and
   * free every free memblock range (memory minus reserved, nomap skipped) page-aligned inwards, in the
   * largest aligned blocks. The rest stays reserved (tag `memblock`). Returns the pages freed.
   */
  static fromMemblock(mb: Memblock, opts: BuddyOptions): { buddy: BuddyAllocator; freed: number } {
    const buddy = new BuddyAllocator(opts);
    mb.clearKhoScratchOnly();
    const ps = mb.pageSize;
    for (const r of mb.memory) {
      const s = Number((r.base + ps - 1n) / ps);
      const e = Number((r.base + r.size) / ps);
      const last = buddy.ranges[buddy.ranges.length - 1];
      const from = last && last.end > s ? last.end : s;
      if (from < e) buddy.addRange(from, e, r.nid);
    }
    let freed = 0;
    for (const f of mb.freeRanges(NUMA_NO_NODE, MEMBLOCK_NONE)) {
      const s = Number((f.start + ps - 1n) / ps);
      const e = Number(f.end / ps);
      if (s >= e) continue;
      buddy.freeSpan(s, e);
      freed += e - s;
    }
    return { buddy, freed };
  }

  /** Mark pageblocks overlapping [startPfn, endPfn) MIGRATE_CMA, moving free blocks to CMA lists. */
  setMigrateCma(startPfn: number, endPfn: number): void {
    if (endPfn <= startPfn) return;
    const pb = 2 ** this.pageblockOrder;
    const first = Math.floor(startPfn / pb);
    const last = Math.floor((endPfn - 1) / pb);
    const lo = first * pb;
    const hi = (last + 1) * pb;
    const affected: [number, number][] = [];
    for (const [head, order] of this.freeBlocks)
      if (head < hi && head + 2 ** order > lo) affected.push([head, order]);
    for (const [head] of affected) this.removeFree(head);
    for (let b = first; b <= last; b++) this.cmaBlocks.add(b);
    for (const [head, order] of affected) {
      // re-free in pageblock-or-smaller pieces so nothing stays merged across a type boundary
      const size = 2 ** order;
      const piece = Math.min(size, pb);
      for (let p = head; p < head + size; p += piece) this.freeBlock(p, Math.log2(piece));
    }
  }

  /**
   * `init_cma_reserved_pageblock` for [startPfn, endPfn): mark the pageblocks CMA and free their
   * reserved pages into the buddy (cold-boot scratch at `kho_init`).
   */
  initCmaReserved(startPfn: number, endPfn: number): void {
    this.setMigrateCma(startPfn, endPfn);
    for (const it of this.reserved.overlapping(startPfn, endPfn)) {
      const s = Math.max(it.start, startPfn);
      const e = Math.min(it.end, endPfn);
      this.freeSpan(s, e);
    }
  }

  /** Allocate a block of `order`; null when no suitable free block exists. */
  alloc(order: number, opts: { migratetype?: MigrateType; nid?: number } = {}): number | null {
    if (!Number.isInteger(order) || order < 0 || order > this.maxOrder)
      throw new KhoError('SIM_BAD_ARGUMENT', `order ${order} not in [0, ${this.maxOrder}]`);
    const mt = opts.migratetype ?? 'unmovable';
    const nids = [...new Set(this.ranges.map((r) => r.nid))].sort((a, b) => a - b);
    const pref =
      opts.nid !== undefined && nids.includes(opts.nid)
        ? [opts.nid, ...nids.filter((n) => n !== opts.nid)]
        : nids;
    const kinds = mt === 'movable' ? [false, true] : [false];
    for (const nid of pref)
      for (const cma of kinds)
        for (let o = order; o <= this.maxOrder; o++) {
          const set = this.lists.get(this.listKey(nid, cma, o));
          if (!set || set.size === 0) continue;
          const head = set.values().next().value as number;
          this.removeFree(head);
          // expand: give back the upper halves
          for (let h = o; h > order; h--) this.insertFree(head + 2 ** (h - 1), h - 1);
          this.allocated.set(head, blockOf(order, mt));
          this.nAllocated += 2 ** order;
          return head;
        }
    return null;
  }

  /** Free an allocated block (exact head and order). */
  free(pfn: number, order: number): void {
    const b = this.allocated.get(pfn);
    if (!b || b.order !== order)
      throw new KhoError(
        'SIM_BAD_FREE',
        `free of pfn 0x${pfn.toString(16)} order ${order}: ${b ? `allocated with order ${b.order}` : 'not an allocated block head'}`,
        { path: `pfn:0x${pfn.toString(16)}` },
      );
    this.allocated.delete(pfn);
    this.nAllocated -= 2 ** order;
    this.freeSpan(pfn, pfn + 2 ** order);
  }

  /**
   * Take free (or already reserved) pages out of circulation with `tag`. Allocated pages cannot be
   * reserved (`SIM_PAGE_BUSY`); pages outside managed memory give `SIM_BAD_ADDRESS`.
   */
  reservePages(startPfn: number, count: number, tag = 'reserved'): void {
    const end = startPfn + count;
    this.checkManaged(startPfn, end);
    for (let p = startPfn; p < end; ) {
      const a = this.blockContaining(this.allocated, p);
      if (a)
        throw new KhoError('SIM_PAGE_BUSY', `pfn 0x${p.toString(16)} is allocated and cannot be reserved`, {
          path: `pfn:0x${p.toString(16)}`,
        });
      const f = this.blockContaining(this.freeBlocks, p);
      if (f) {
        this.carveFree(f[0], f[1], Math.max(startPfn, f[0]), Math.min(end, f[0] + 2 ** f[1]));
        p = f[0] + 2 ** f[1];
      } else {
        const r = this.reserved.find(p);
        p = r ? r.end : p + 1;
      }
    }
    this.reserved.add(startPfn, end, tag);
  }

  /** Remove a free block and give back everything except [s, e). */
  private carveFree(head: number, order: number, s: number, e: number): void {
    this.removeFree(head);
    const end = head + 2 ** order;
    this.reserved.add(head, end, 'carving');
    if (head < s) this.freeSpan(head, s);
    if (e < end) this.freeSpan(e, end);
    this.reserved.remove(s, e);
  }

  /** Return reserved pages to the buddy (`free_reserved_area`); allocated pages are refused. */
  unreservePages(startPfn: number, count: number): void {
    const end = startPfn + count;
    this.checkManaged(startPfn, end);
    for (const it of this.reserved.overlapping(startPfn, end)) {
      const s = Math.max(it.start, startPfn);
      const e = Math.min(it.end, end);
      this.freeSpan(s, e);
    }
  }

  /**
   * Claim reserved pages as an allocated block (what restoring a preserved folio does): the pages
   * `[pfn, pfn + 2^order)` must all be reserved; they become one allocated block.
   */
  claimReserved(pfn: number, order: number, migratetype: MigrateType = 'unmovable'): void {
    const end = pfn + 2 ** order;
    this.checkManaged(pfn, end);
    for (let p = pfn; p < end; ) {
      const r = this.reserved.find(p);
      if (!r)
        throw new KhoError('SIM_PAGE_BUSY', `pfn 0x${p.toString(16)} is not reserved`, {
          path: `pfn:0x${p.toString(16)}`,
        });
      p = r.end;
    }
    this.reserved.remove(pfn, end);
    this.preserved.remove(pfn, end);
    this.allocated.set(pfn, blockOf(order, migratetype));
    this.nAllocated += 2 ** order;
  }

  /**
   * Claim reserved pages `[pfn, pfn + count)` as `count` separate order-0 allocated pages (what
   * `kho_restore_pages` does: every page its own refcounted page), each freeable on its own.
   */
  claimReservedPages(pfn: number, count: number, migratetype: MigrateType = 'unmovable'): void {
    this.claimReserved(pfn, 0, migratetype);
    for (let p = pfn + 1; p < pfn + count; p++) this.claimReserved(p, 0, migratetype);
  }

  /** `split_page`: turn an allocated block of order n into 2^n allocated order-0 pages. */
  splitBlock(pfn: number): void {
    const b = this.allocated.get(pfn);
    if (!b)
      throw new KhoError('SIM_BAD_FREE', `pfn 0x${pfn.toString(16)} is not an allocated block head`, {
        path: `pfn:0x${pfn.toString(16)}`,
      });
    for (let p = pfn; p < pfn + 2 ** b.order; p++) this.allocated.set(p, blockOf(0, b.migratetype));
  }

  /** Mark pages preserved: never handed out (free ones become reserved now, freed ones later). */
  markPreserved(startPfn: number, count: number): void {
    const end = startPfn + count;
    this.checkManaged(startPfn, end);
    this.preserved.add(startPfn, end, 'preserved');
    for (let p = startPfn; p < end; ) {
      const f = this.blockContaining(this.freeBlocks, p);
      if (f) {
        const s = Math.max(startPfn, f[0]);
        const e = Math.min(end, f[0] + 2 ** f[1]);
        this.carveFree(f[0], f[1], s, e);
        this.reserved.add(s, e, 'preserved');
        p = e;
        continue;
      }
      const a = this.blockContaining(this.allocated, p);
      if (a) {
        p = a[0] + 2 ** a[1];
        continue;
      }
      const r = this.reserved.find(p);
      p = r ? r.end : p + 1;
    }
  }

  /** Undo `markPreserved` (pages stay where they are; reserved ones stay reserved). */
  unmarkPreserved(startPfn: number, count: number): void {
    this.preserved.remove(startPfn, startPfn + count);
  }

  isPreserved(pfn: number): boolean {
    return this.preserved.find(pfn) !== undefined;
  }

  private checkManaged(start: number, end: number): void {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start)
      throw new KhoError('SIM_BAD_ARGUMENT', `bad pfn range [${start}, ${end})`);
    for (let p = start; p < end; ) {
      const r = this.rangeOf(p);
      if (!r)
        throw new KhoError('SIM_BAD_ADDRESS', `pfn 0x${p.toString(16)} is not managed memory`, {
          path: `pfn:0x${p.toString(16)}`,
        });
      p = r.end;
    }
  }

  pageState(pfn: number): PageState {
    return this.pageInfo(pfn).state;
  }

  pageInfo(pfn: number): PageInfo {
    const range = Number.isSafeInteger(pfn) ? this.rangeOf(pfn) : undefined;
    const cma = range ? this.isCmaPfn(pfn) : false;
    const preserved = this.isPreserved(pfn);
    if (!range) return { pfn, state: 'absent', cma, preserved };
    const f = this.blockContaining(this.freeBlocks, pfn);
    if (f) return { pfn, state: 'free', nid: range.nid, head: f[0], order: f[1], cma, preserved };
    for (let o = 0; o <= this.maxOrder; o++) {
      const head = pfn - (pfn % 2 ** o);
      const b = this.allocated.get(head);
      if (b && pfn < head + 2 ** b.order)
        return {
          pfn,
          state: 'allocated',
          nid: range.nid,
          head,
          order: b.order,
          migratetype: b.migratetype,
          cma,
          preserved,
        };
    }
    const r = this.reserved.find(pfn);
    return { pfn, state: 'reserved', nid: range.nid, cma, preserved, ...(r ? { tag: r.tag } : {}) };
  }

  /** Free blocks as [head, order] pairs, ascending (for checkers and tests; O(free blocks)). */
  freeBlockList(): [number, number][] {
    return [...this.freeBlocks.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** Allocated blocks as [head, order] pairs, ascending. */
  allocatedBlockList(): [number, number][] {
    return [...this.allocated.entries()]
      .map(([h, b]) => [h, b.order] as [number, number])
      .sort((a, b) => a[0] - b[0]);
  }

  /** Call `fn(head, order)` for every free block, in no particular order (no copy, no sort). */
  forEachFree(fn: (head: number, order: number) => void): void {
    for (const [h, o] of this.freeBlocks) fn(h, o);
  }

  /** Call `fn(head, order)` for every allocated block, heads ascending (no copy). */
  forEachAllocated(fn: (head: number, order: number) => void): void {
    this.allocated.forEachOrder(fn);
  }

  /** Reserved pfn intervals `[start, end)` with tags, ascending. */
  reservedIntervals(): readonly { start: number; end: number; tag: string }[] {
    return this.reserved.list;
  }
}

/** Count of trailing zero bits of a positive safe integer. */
function ctz(n: number): number {
  if (n > 0 && n < 2 ** 31) return 31 - Math.clz32(n & -n);
  let c = 0;
  let v = n;
  while (v % 2 === 0 && c < 53) {
    v /= 2;
    c++;
  }
  return c;
}
