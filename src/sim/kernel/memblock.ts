/**
 * memblock: the kernel's boot-time memory manager, modelled on mm/memblock.c (Linux 7.3).
 *
 * Contract:
 * - Two sorted, non-overlapping, merged region lists: `memory` (what exists) and `reserved` (what is
 *   taken). Each region has a base, size, flags (`MEMBLOCK_*`) and a node id. Adding a range never
 *   changes the parts already covered (the kernel's `memblock_add_range`); neighbours with equal node and
 *   flags merge.
 * - Allocation is top-down by default, like the kernel: the highest suitably aligned free range
 *   (memory minus reserved, nomap skipped) inside `[max(start, PAGE_SIZE), end)`. An allocation reserves
 *   its range with `MEMBLOCK_RSRV_KERN` and the requested node (`NUMA_NO_NODE` when none) and returns
 *   its address; **0n means failure**, as in C. After a KHO boot `setKhoScratchOnly()` restricts every
 *   allocation to memory regions flagged `MEMBLOCK_KHO_SCRATCH` until `clearKhoScratchOnly()` (which
 *   `memblock_free_all` does).
 * - `reservedKernSize(limit, nid)` is `memblock_reserved_kern_size`.
 * - Arguments outside u64 (negative, or base+size past 2^64 where the kernel would not cap) give
 *   `KhoError('SIM_BAD_ARGUMENT')`; `*OrThrow` variants turn a failed allocation into `SIM_NOMEM`.
 * - `ReserveMemTable` is the `reserve_mem=` table and handler (checks, messages and allocation order of
 *   `reserve_mem()` in mm/memblock.c), with a hook for KHO revival.
 */
import { KhoError } from '../../errors.ts';
import {
  type LogLine,
  parseReserveMem,
  RESERVE_MEM_MALFORMED,
  RESERVE_MEM_MAX_ENTRIES,
  SMP_CACHE_BYTES,
} from './cmdline.ts';

export const MEMBLOCK_NONE = 0;
export const MEMBLOCK_HOTPLUG = 0x1;
export const MEMBLOCK_MIRROR = 0x2;
export const MEMBLOCK_NOMAP = 0x4;
export const MEMBLOCK_DRIVER_MANAGED = 0x8;
export const MEMBLOCK_RSRV_NOINIT = 0x10;
export const MEMBLOCK_RSRV_KERN = 0x20;
export const MEMBLOCK_KHO_SCRATCH = 0x40;

/** Flag names as memblock's debugfs prints them. */
export const MEMBLOCK_FLAG_NAMES: Readonly<Record<number, string>> = {
  [MEMBLOCK_HOTPLUG]: 'HOTPLUG',
  [MEMBLOCK_MIRROR]: 'MIRROR',
  [MEMBLOCK_NOMAP]: 'NOMAP',
  [MEMBLOCK_DRIVER_MANAGED]: 'DRV_MNG',
  [MEMBLOCK_RSRV_NOINIT]: 'RSV_NIT',
  [MEMBLOCK_RSRV_KERN]: 'RSV_KERN',
  [MEMBLOCK_KHO_SCRATCH]: 'KHO_SCRATCH',
};

export const NUMA_NO_NODE = -1;
/** MAX_NUMNODES: the node id `memblock_add` gives memory of no particular node. */
export const MAX_NUMNODES = 64;
export const PHYS_ADDR_MAX = 0xffffffffffffffffn;
export const MEMBLOCK_ALLOC_ANYWHERE = PHYS_ADDR_MAX;
export const MEMBLOCK_ALLOC_ACCESSIBLE = 0n;
export const MEMBLOCK_ALLOC_NOLEAKTRACE = 1n;

export interface MemblockRegion {
  base: bigint;
  size: bigint;
  flags: number;
  nid: number;
}

export type MemblockTypeName = 'memory' | 'reserved';

export function numaValidNode(nid: number): boolean {
  return nid >= 0 && nid < MAX_NUMNODES;
}

/** C's round_down/round_up for a power-of-two `y`, as the kernel's mask macros compute them. */
export function roundDown(x: bigint, y: bigint): bigint {
  return BigInt.asUintN(64, x & ~(y - 1n));
}
export function roundUp(x: bigint, y: bigint): bigint {
  return BigInt.asUintN(64, (BigInt.asUintN(64, x - 1n) | (y - 1n)) + 1n);
}

function checkU64(what: string, v: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v > PHYS_ADDR_MAX)
    throw new KhoError('SIM_BAD_ARGUMENT', `${what} ${String(v)} is not a u64`, {
      expected: '0 <= value < 2^64',
    });
}

const clamp = (x: bigint, lo: bigint, hi: bigint): bigint => (x < lo ? lo : x > hi ? hi : x);
const bmin = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export interface MemblockOptions {
  pageSize?: number;
  /** SMP_CACHE_BYTES, the alignment used when 0 is asked (default 64). */
  smpCacheBytes?: bigint;
}

export class Memblock {
  readonly pageSize: bigint;
  readonly smpCacheBytes: bigint;
  memory: MemblockRegion[] = [];
  reserved: MemblockRegion[] = [];
  /** memblock.current_limit (MEMBLOCK_ALLOC_ACCESSIBLE resolves to it). */
  currentLimit: bigint = MEMBLOCK_ALLOC_ANYWHERE;
  bottomUp = false;
  private scratchOnly = false;
  private hasMirror = false;

  constructor(opts: MemblockOptions = {}) {
    this.pageSize = BigInt(opts.pageSize ?? 4096);
    this.smpCacheBytes = opts.smpCacheBytes ?? SMP_CACHE_BYTES;
  }

  private list(type: MemblockTypeName): MemblockRegion[] {
    return type === 'memory' ? this.memory : this.reserved;
  }

  /** `memblock_add_range`: add what is not yet covered; merge. Size is capped at 2^64 - base. */
  addRange(type: MemblockTypeName, base: bigint, size: bigint, nid: number, flags: number): void {
    checkU64('base', base);
    checkU64('size', size);
    const cap = PHYS_ADDR_MAX - base;
    const sz = size < cap ? size : cap;
    if (sz === 0n) return;
    const end = base + sz;
    const regs = this.list(type);
    const out: MemblockRegion[] = [];
    let cursor = base;
    let i = 0;
    for (; i < regs.length && regs[i].base + regs[i].size <= base; i++) out.push(regs[i]);
    for (; i < regs.length && regs[i].base < end; i++) {
      const r = regs[i];
      if (r.base > cursor) out.push({ base: cursor, size: r.base - cursor, flags, nid });
      out.push(r);
      const rend = r.base + r.size;
      if (rend > cursor) cursor = bmin(rend, end);
    }
    if (cursor < end) out.push({ base: cursor, size: end - cursor, flags, nid });
    for (; i < regs.length; i++) out.push(regs[i]);
    this.setList(type, merge(out));
  }

  private setList(type: MemblockTypeName, regs: MemblockRegion[]): void {
    if (type === 'memory') this.memory = regs;
    else this.reserved = regs;
  }

  /** `memblock_isolate_range`: split regions at base and base+size; returns [first, end) indexes inside. */
  private isolate(type: MemblockTypeName, base: bigint, size: bigint): [number, number] {
    checkU64('base', base);
    checkU64('size', size);
    const cap = PHYS_ADDR_MAX - base;
    const end = base + (size < cap ? size : cap);
    if (end === base) return [0, 0];
    const out: MemblockRegion[] = [];
    let first = -1;
    let last = -1;
    for (const r of this.list(type)) {
      const rend = r.base + r.size;
      const pieces: MemblockRegion[] = [];
      if (rend <= base || r.base >= end) pieces.push(r);
      else {
        const cuts = [r.base, ...[base, end].filter((c) => c > r.base && c < rend), rend];
        for (let k = 0; k + 1 < cuts.length; k++)
          pieces.push({ base: cuts[k], size: cuts[k + 1] - cuts[k], flags: r.flags, nid: r.nid });
      }
      for (const p of pieces) {
        if (p.base >= base && p.base + p.size <= end) {
          if (first < 0) first = out.length;
          last = out.length + 1;
        }
        out.push(p);
      }
    }
    this.setList(type, out);
    return first < 0 ? [0, 0] : [first, last];
  }

  private removeRange(type: MemblockTypeName, base: bigint, size: bigint): void {
    const [a, b] = this.isolate(type, base, size);
    const regs = this.list(type);
    regs.splice(a, b - a);
  }

  private setClrFlag(type: MemblockTypeName, base: bigint, size: bigint, set: boolean, flag: number): void {
    const [a, b] = this.isolate(type, base, size);
    const regs = this.list(type);
    for (let i = a; i < b; i++)
      regs[i] = { ...regs[i], flags: set ? regs[i].flags | flag : regs[i].flags & ~flag };
    this.setList(type, merge(regs));
  }

  /** `memblock_add` (node MAX_NUMNODES: none yet). */
  add(base: bigint, size: bigint): void {
    this.addRange('memory', base, size, MAX_NUMNODES, MEMBLOCK_NONE);
  }
  /** `memblock_add_node`. */
  addNode(base: bigint, size: bigint, nid: number, flags = MEMBLOCK_NONE): void {
    this.addRange('memory', base, size, nid, flags);
  }
  /** `memblock_remove`. */
  remove(base: bigint, size: bigint): void {
    this.removeRange('memory', base, size);
  }
  /** `__memblock_reserve` (plain `memblock_reserve`: NUMA_NO_NODE, no flags). */
  reserve(base: bigint, size: bigint, nid = NUMA_NO_NODE, flags = MEMBLOCK_NONE): void {
    this.addRange('reserved', base, size, nid, flags);
  }
  /** `memblock_reserve_kern`. */
  reserveKern(base: bigint, size: bigint): void {
    this.addRange('reserved', base, size, NUMA_NO_NODE, MEMBLOCK_RSRV_KERN);
  }
  /** `memblock_phys_free`: drop a reservation. */
  free(base: bigint, size: bigint): void {
    this.removeRange('reserved', base, size);
  }
  /** `memblock_set_node`. */
  setNode(base: bigint, size: bigint, type: MemblockTypeName, nid: number): void {
    const [a, b] = this.isolate(type, base, size);
    const regs = this.list(type);
    for (let i = a; i < b; i++) regs[i] = { ...regs[i], nid };
    this.setList(type, merge(regs));
  }
  markMirror(base: bigint, size: bigint): void {
    this.hasMirror = true;
    this.setClrFlag('memory', base, size, true, MEMBLOCK_MIRROR);
  }
  markNomap(base: bigint, size: bigint): void {
    this.setClrFlag('memory', base, size, true, MEMBLOCK_NOMAP);
  }
  clearNomap(base: bigint, size: bigint): void {
    this.setClrFlag('memory', base, size, false, MEMBLOCK_NOMAP);
  }
  /** `memblock_mark_kho_scratch`. */
  markKhoScratch(base: bigint, size: bigint): void {
    this.setClrFlag('memory', base, size, true, MEMBLOCK_KHO_SCRATCH);
  }
  /** `memblock_clear_kho_scratch`. */
  clearKhoScratch(base: bigint, size: bigint): void {
    this.setClrFlag('memory', base, size, false, MEMBLOCK_KHO_SCRATCH);
  }
  /** `memblock_reserved_mark_noinit`. */
  reservedMarkNoinit(base: bigint, size: bigint): void {
    this.setClrFlag('reserved', base, size, true, MEMBLOCK_RSRV_NOINIT);
  }
  /** `memblock_set_kho_scratch_only`: from now on allocate only from KHO_SCRATCH memory. */
  setKhoScratchOnly(): void {
    this.scratchOnly = true;
  }
  clearKhoScratchOnly(): void {
    this.scratchOnly = false;
  }
  get khoScratchOnly(): boolean {
    return this.scratchOnly;
  }

  /** `choose_memblock_flags`. */
  chooseFlags(): number {
    if (this.scratchOnly) return MEMBLOCK_KHO_SCRATCH;
    return this.hasMirror ? MEMBLOCK_MIRROR : MEMBLOCK_NONE;
  }

  /** `should_skip_region` for memory regions. */
  private skip(m: MemblockRegion, nid: number, flags: number): boolean {
    if (nid !== NUMA_NO_NODE && nid !== m.nid) return true;
    if (flags & MEMBLOCK_MIRROR && !(m.flags & MEMBLOCK_MIRROR)) return true;
    if (!(flags & MEMBLOCK_NOMAP) && m.flags & MEMBLOCK_NOMAP) return true;
    if (flags & MEMBLOCK_KHO_SCRATCH && !(m.flags & MEMBLOCK_KHO_SCRATCH)) return true;
    return false;
  }

  /** `for_each_free_mem_range`: memory (filtered by nid and flags) minus reserved, ascending. */
  freeRanges(nid = NUMA_NO_NODE, flags = MEMBLOCK_NONE): { start: bigint; end: bigint; nid: number }[] {
    const out: { start: bigint; end: bigint; nid: number }[] = [];
    const res = this.reserved;
    let j = 0;
    for (const m of this.memory) {
      if (this.skip(m, nid, flags)) continue;
      const mend = m.base + m.size;
      while (j > 0 && res[j - 1].base + res[j - 1].size > m.base) j--;
      while (j < res.length && res[j].base + res[j].size <= m.base) j++;
      let cursor = m.base;
      let k = j;
      for (; k < res.length && res[k].base < mend; k++) {
        if (res[k].base > cursor) out.push({ start: cursor, end: res[k].base, nid: m.nid });
        const rend = res[k].base + res[k].size;
        if (rend > cursor) cursor = rend;
      }
      if (cursor < mend) out.push({ start: cursor, end: mend, nid: m.nid });
    }
    return out;
  }

  /** `memblock_find_in_range_node`: an address, or 0n when nothing fits. */
  findInRangeNode(
    size: bigint,
    align: bigint,
    start: bigint,
    end: bigint,
    nid: number,
    flags: number,
  ): bigint {
    checkU64('size', size);
    checkU64('align', align);
    let e = end === MEMBLOCK_ALLOC_ACCESSIBLE || end === MEMBLOCK_ALLOC_NOLEAKTRACE ? this.currentLimit : end;
    const s = start > this.pageSize ? start : this.pageSize;
    e = e > s ? e : s;
    const ranges = this.freeRanges(nid, flags);
    if (this.bottomUp) {
      for (const r of ranges) {
        const ts = clamp(r.start, s, e);
        const te = clamp(r.end, s, e);
        const cand = roundUp(ts, align);
        if (cand < te && te - cand >= size) return cand;
      }
      return 0n;
    }
    for (let i = ranges.length - 1; i >= 0; i--) {
      const ts = clamp(ranges[i].start, s, e);
      const te = clamp(ranges[i].end, s, e);
      if (te < size) continue;
      const cand = roundDown(te - size, align);
      if (cand >= ts) return cand;
    }
    return 0n;
  }

  /** `memblock_alloc_range_nid`: the allocation every other one goes through. 0n on failure. */
  allocRangeNid(
    size: bigint,
    align: bigint,
    start: bigint,
    end: bigint,
    nid: number,
    exactNid: boolean,
  ): bigint {
    let flags = this.chooseFlags();
    let n = nid === MAX_NUMNODES ? NUMA_NO_NODE : nid;
    const a = align === 0n ? this.smpCacheBytes : align;
    for (;;) {
      let found = this.findInRangeNode(size, a, start, end, n, flags);
      if (found) {
        this.reserve(found, size, n, MEMBLOCK_RSRV_KERN);
        return found;
      }
      if (numaValidNode(n) && !exactNid) {
        found = this.findInRangeNode(size, a, start, end, NUMA_NO_NODE, flags);
        if (found) {
          this.reserveKern(found, size);
          return found;
        }
      }
      if (flags & MEMBLOCK_MIRROR) {
        flags &= ~MEMBLOCK_MIRROR;
        n = nid === MAX_NUMNODES ? NUMA_NO_NODE : nid;
        continue;
      }
      return 0n;
    }
  }

  /** `memblock_phys_alloc_range`. */
  physAllocRange(size: bigint, align: bigint, start: bigint, end: bigint): bigint {
    return this.allocRangeNid(size, align, start, end, NUMA_NO_NODE, false);
  }
  /** `memblock_phys_alloc`. */
  physAlloc(size: bigint, align: bigint): bigint {
    return this.physAllocRange(size, align, 0n, MEMBLOCK_ALLOC_ACCESSIBLE);
  }
  /** `memblock_alloc_try_nid` (the physical address; zeroing the memory is the caller's job). */
  allocTryNid(
    size: bigint,
    align: bigint,
    minAddr: bigint,
    maxAddr: bigint,
    nid: number,
    exactNid = false,
  ): bigint {
    const max = maxAddr > this.currentLimit ? this.currentLimit : maxAddr;
    let found = this.allocRangeNid(size, align, minAddr, max, nid, exactNid);
    if (!found && minAddr) found = this.allocRangeNid(size, align, 0n, max, nid, exactNid);
    return found;
  }
  /** `memblock_alloc` (physical address). */
  alloc(size: bigint, align: bigint): bigint {
    return this.allocTryNid(size, align, 0n, MEMBLOCK_ALLOC_ACCESSIBLE, NUMA_NO_NODE);
  }
  /** `memblock_phys_alloc`, throwing `SIM_NOMEM` instead of returning 0n. */
  physAllocOrThrow(size: bigint, align: bigint): bigint {
    const a = this.physAlloc(size, align);
    if (!a)
      throw new KhoError('SIM_NOMEM', `memblock: cannot allocate ${size} bytes aligned to ${align}`, {
        expected: 'a free range large enough',
      });
    return a;
  }

  /** `memblock_reserved_kern_size`: MEMBLOCK_RSRV_KERN bytes below `limit` on `nid` (any node if invalid). */
  reservedKernSize(limit: bigint, nid: number): bigint {
    let total = 0n;
    for (const r of this.reserved) {
      if (r.base > limit) break;
      const size = r.base + r.size > limit ? limit - r.base : r.size;
      if ((nid === r.nid || !numaValidNode(nid)) && r.flags & MEMBLOCK_RSRV_KERN) total += size;
    }
    return total;
  }

  /** Sum of `memory` sizes (`memblock_phys_mem_size`). */
  memorySize(): bigint {
    return this.memory.reduce((a, r) => a + r.size, 0n);
  }
  /** Sum of `reserved` sizes (`memblock_reserved_size`). */
  reservedSize(): bigint {
    return this.reserved.reduce((a, r) => a + r.size, 0n);
  }

  private search(type: MemblockTypeName, addr: bigint): MemblockRegion | undefined {
    const regs = this.list(type);
    let lo = 0;
    let hi = regs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (addr < regs[mid].base) hi = mid;
      else if (addr >= regs[mid].base + regs[mid].size) lo = mid + 1;
      else return regs[mid];
    }
    return undefined;
  }
  isReserved(addr: bigint): boolean {
    return this.search('reserved', addr) !== undefined;
  }
  isMemory(addr: bigint): boolean {
    return this.search('memory', addr) !== undefined;
  }
  /** `memblock_is_region_reserved`: does `[base, base+size)` intersect a reservation? */
  isRegionReserved(base: bigint, size: bigint): boolean {
    const end = base + size;
    return this.reserved.some((r) => base < r.base + r.size && r.base < end);
  }

  /** The debugfs `memblock/<type>` listing: `%4d: %pa..%pa %4d|x FLAG`. */
  dump(type: MemblockTypeName): string {
    return this.list(type)
      .map((r, i) => {
        const a = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;
        const nid = numaValidNode(r.nid) ? r.nid.toString().padStart(4) : '   x';
        let flag = 'NONE';
        if (r.flags) {
          const bit = Object.keys(MEMBLOCK_FLAG_NAMES)
            .map(Number)
            .sort((x, y) => x - y)
            .find((b) => r.flags & b);
          flag = bit === undefined ? 'UNKNOWN' : MEMBLOCK_FLAG_NAMES[bit];
        }
        return `${i.toString().padStart(4)}: ${a(r.base)}..${a(r.base + r.size - 1n)} ${nid} ${flag}\n`;
      })
      .join('');
  }
}

/** A memblock whose `memory` is the given RAM ranges (e.g. `Machine.ram`), each on its node. */
export function memblockFromRam(
  ram: readonly { start: bigint; end: bigint; nid: number }[],
  opts: MemblockOptions = {},
): Memblock {
  const mb = new Memblock(opts);
  for (const r of ram) mb.addNode(r.start, r.end - r.start, r.nid);
  return mb;
}

/** `memblock_merge_regions`. */
function merge(regs: MemblockRegion[]): MemblockRegion[] {
  const out: MemblockRegion[] = [];
  for (const r of regs) {
    const prev = out[out.length - 1];
    if (prev && prev.base + prev.size === r.base && prev.nid === r.nid && prev.flags === r.flags)
      out[out.length - 1] = { ...prev, size: prev.size + r.size };
    else out.push({ ...r });
  }
  return out;
}

export interface ReserveMemEntry {
  name: string;
  start: bigint;
  size: bigint;
}

/** What `reserve_mem()` did with one parameter. */
export type ReserveMemOutcome =
  | { result: 'allocated' | 'revived'; entry: ReserveMemEntry; log: LogLine[] }
  | { result: 'EINVAL' | 'EBUSY' | 'ENOMEM'; log: LogLine[] };

/** `reserve_mem_kho_revive`: returns the start of the revived region, or undefined to allocate afresh. */
export type ReserveMemReviveHook = (name: string, size: bigint, align: bigint) => bigint | undefined;

/** The `reserve_mem=` table (at most 8 entries, names up to 15 bytes) and its command-line handler. */
export class ReserveMemTable {
  readonly entries: ReserveMemEntry[] = [];

  /** `reserve_mem_find_by_name` (entries released to size 0 do not count). */
  findByName(name: string): ReserveMemEntry | undefined {
    return this.entries.find((e) => e.size !== 0n && e.name === name);
  }

  /**
   * `reserve_mem(p)`: NULL → malformed; table full → `reserve_mem: no more room for reserved memory`;
   * syntax → `reserve_mem: empty or malformed parameter`; duplicate → `reserve_mem: name "<n>" was
   * already used`; then KHO revival (the hook logs its own lines); else `memblock_phys_alloc(size,
   * align)` → `reserve_mem: memblock allocation failed`.
   */
  handle(value: string | null, mb: Memblock, revive?: ReserveMemReviveHook): ReserveMemOutcome {
    if (value === null) return { result: 'EINVAL', log: [{ level: 'err', text: RESERVE_MEM_MALFORMED }] };
    if (this.entries.length >= RESERVE_MEM_MAX_ENTRIES)
      return {
        result: 'EBUSY',
        log: [{ level: 'err', text: 'reserve_mem: no more room for reserved memory' }],
      };
    const p = parseReserveMem(value);
    if (!p.ok) return { result: 'EINVAL', log: [p.log] };
    if (this.findByName(p.name))
      return {
        result: 'EBUSY',
        log: [{ level: 'err', text: `reserve_mem: name "${p.name}" was already used` }],
      };
    const revived = revive?.(p.name, p.size, p.align);
    if (revived !== undefined) {
      const entry = { name: p.name, start: revived, size: p.size };
      this.entries.push(entry);
      return { result: 'revived', entry, log: [] };
    }
    const start = mb.physAlloc(p.size, p.align);
    if (!start)
      return { result: 'ENOMEM', log: [{ level: 'err', text: 'reserve_mem: memblock allocation failed' }] };
    const entry = { name: p.name, start, size: p.size };
    this.entries.push(entry);
    return { result: 'allocated', entry, log: [] };
  }
}
