/**
 * The KHO core of one simulated kernel (`kernel/liveupdate/kexec_handover.c`, Linux 7.3, spec §1-§2,
 * §4): the outgoing state a kernel builds for its successor and the incoming state it found.
 *
 * Contract:
 * - Outgoing (`KhoCore.init()` = `kho_init`): the radix-tree root page is allocated first from the
 *   simulated page allocator, then the root FDT page with `allocPreserve(PAGE_SIZE)`; the FDT is built
 *   and edited by `src/abi/kho-fdt.ts`'s `KhoRootBuilder` (the kernel's libfdt call sequence) and its
 *   bytes are written into that page after every change; preserved blocks are inserted with
 *   a tracker that grows the radix tree exactly as `src/abi/radix-tree.ts`'s `RadixTreeWriter` does (same
 *   pages, allocated at the same moments, same bytes; number keys, bits stored straight into memory),
 *   whose pages come from the allocator and are written into
 *   simulated memory at once. So simulated memory always holds exactly what the real kernel's memory
 *   would, and the next kernel learns only what it reads there.
 * - Preserve API: `preserveFolio(pa, order)`, `preservePages(pa, nr)`, `preserveVmalloc(area)`,
 *   `allocPreserve(size)`, their inverses, `addSubtree(name, pa, size)`, `removeSubtree(pa)`. Errors are
 *   the kernel's, as `KhoError` with code `SIM_<ERRNO>` (`SIM_EINVAL`, `SIM_ENOMEM`, `SIM_EEXIST`,
 *   `SIM_E2BIG`, `SIM_ENOENT`, `SIM_EOPNOTSUPP`); `errnoOf(err)` gives the negative errno. Preserving
 *   before `kho_init` or with KHO disabled is -EINVAL; a range overlapping scratch is -EINVAL only with
 *   CONFIG_KEXEC_HANDOVER_DEBUG (the kernel's stub is `false` otherwise); preserving a block twice is
 *   allowed and idempotent (bits carry no reference count), one unpreserve clears it.
 * - Incoming: `retrieveSubtree(name)` (`kho_retrieve_subtree`), `restoreFolio(pa)`, `restorePages(pa,
 *   nr)`, `restoreVmalloc(desc)`: a block can be restored once, only at its head page (the
 *   `KHO_PAGE_MAGIC` stamp of the walk); anything else returns null and logs the kernel's WARN line once.
 * - Bitmap-chunk profiles (kho-v1): preserved blocks are tracked in memory and serialized only by
 *   `finalize()` (`kho_finalize`: `encodeBitmapChunks` into freshly allocated pages, the previous
 *   serialization freed, the root's `preserved-memory-map` patched; kho-v1-6.16 builds the whole root FDT
 *   then and refuses later preserves and sub-trees with -EBUSY). Without finalize the map stays 0 and the
 *   next kernel disables revival, as the real 6.16-7.0 kernels do. `finalize()` on a radix profile is
 *   -EOPNOTSUPP (there is nothing to finalize). The incoming walk decodes every profile's map through
 *   `decodePreservedMemoryMap`.
 */

import { encodeBitmapChunks } from '../../abi/bitmap-chunks.ts';
import { type KhoRoot, KhoRootBuilder } from '../../abi/kho-fdt.ts';
import type { PhysMemory, PhysMemoryWriter, PhysRange } from '../../abi/memory/image.ts';
import { u64Bytes } from '../../abi/memory/image.ts';
import type { AbiProfile, Endianness } from '../../abi/profile.ts';
import {
  type PackedBlocks,
  type PreservedBlock,
  type RadixGeometry,
  radixGeometry,
  radixKey,
  unpackBlocks,
} from '../../abi/radix-tree.ts';
import { decodeVmalloc, encodeVmalloc, KHO_VMALLOC_ALLOC, type KhoVmalloc } from '../../abi/vmalloc.ts';
import { KhoError, type KhoErrorInit } from '../../errors.ts';
import type { Machine } from '../machine/machine.ts';
import type { PhysicalMemory } from '../machine/memory.ts';
import type { BuddyAllocator } from './buddy.ts';
import type { KernelLog } from './printk.ts';
import type { KhoScratchArea } from './scratch.ts';

/** errno values the KHO API returns (include/uapi/asm-generic/errno*.h). */
export const KHO_ERRNO = {
  ENOENT: 2,
  E2BIG: 7,
  ENOMEM: 12,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
} as const;
export type KhoErrnoName = keyof typeof KHO_ERRNO;

/** A kernel API error: code `SIM_<ERRNO>`, message ending with `(-ERRNO)`. */
export function kernelError(errno: KhoErrnoName, message: string, init: KhoErrorInit = {}): KhoError {
  return new KhoError(`SIM_${errno}`, `${message} (-${errno})`, init);
}

/** The negative errno an error stands for (`-22` for SIM_EINVAL), or undefined. */
export function errnoOf(e: unknown): number | undefined {
  if (!(e instanceof KhoError)) return undefined;
  const name = e.code.startsWith('SIM_') ? e.code.slice(4) : '';
  const n = (KHO_ERRNO as Record<string, number>)[name];
  return n === undefined ? undefined : -n;
}

/** `KHO_PAGE_MAGIC` ("KHOP"), stamped into `page->private` of each preserved head page by the walk. */
export const KHO_PAGE_MAGIC = 0x4b484f50;

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** Simulated physical memory through the ABI library's read interface (RAM only). */
export function machinePhysMemory(machine: Machine): PhysMemory {
  const ranges: PhysRange[] = [];
  for (const r of machine.ram) {
    const last = ranges[ranges.length - 1];
    if (last && last.start + last.size === r.start) last.size += r.end - r.start;
    else ranges.push({ start: r.start, size: r.end - r.start });
  }
  return {
    read(pa, len) {
      if (!machine.isRam(pa, BigInt(len)))
        throw new KhoError('KHO_PTR_OUTSIDE_MEMORY', `read of ${len} bytes at ${hex(pa)} is outside RAM`, {
          path: `phys:${hex(pa)}`,
        });
      return machine.memory.read(pa, len);
    },
    has: (pa, len) => pa >= 0n && machine.isRam(pa, BigInt(len)),
    ranges: () => ranges.map((r) => ({ ...r })),
  };
}

/** A vmalloc area of the simulated kernel: its physical blocks of `2^order` pages, in address order. */
export interface VmallocArea {
  blocks: bigint[];
  order: number;
  /** Bytes asked for. */
  size: number;
  /** `KHO_VMALLOC_*` flags the area would be preserved with. */
  flags: number;
}

export interface RestoredFolio {
  pa: bigint;
  order: number;
}

/** The outgoing preserved-memory tracker: the radix tree, or kho-v1's bitmaps serialized at finalize. */
interface MapTracker {
  add(pa: bigint, order: number): void;
  remove(pa: bigint, order: number): boolean;
  readonly root: bigint;
  readonly pages: readonly bigint[];
}

/** kho-v1: blocks in memory until `serialize()` writes bitmap pages and chunks (`kho_finalize`). */
class BitmapTracker implements MapTracker {
  root = 0n;
  pages: bigint[] = [];
  private readonly blocks = new Map<bigint, number>();
  add(pa: bigint, order: number): void {
    this.blocks.set(pa, order);
  }
  remove(pa: bigint, order: number): boolean {
    if (this.blocks.get(pa) !== order) return false;
    this.blocks.delete(pa);
    return true;
  }
  serialize(kho: KhoCore): bigint {
    for (const p of this.pages) kho.freePages(p, 0);
    const blocks = [...this.blocks].map(([pa, order]) => ({ pa, order }));
    const r = encodeBitmapChunks(blocks, kho.writer(), { endian: kho.profile.endian });
    this.root = r.head;
    this.pages = [...r.chunks, ...r.bitmaps];
    return r.head;
  }
}

/**
 * The radix tree as the kernel grows it, one preserve call at a time (`kho_radix_add_page`): the same
 * pages, allocated at the same moments and written with the same bytes as `RadixTreeWriter` (the path
 * top-down from the root, each missing child allocated, zeroed and linked; then the leaf bit), but with
 * keys as doubles (a key is below 2^53) and each leaf bit stored straight into its page of simulated
 * memory instead of a one-byte `write()`.
 */
class RadixTracker implements MapTracker {
  readonly root: bigint;
  readonly pages: bigint[] = [];
  private readonly geo: RadixGeometry;
  private readonly le: boolean;
  private readonly memory: PhysicalMemory;
  private readonly writer: PhysMemoryWriter;
  /** Nodes per level (index = level - 1; the leaves at 0), keyed by the key prefix above the node. */
  private readonly levels: Map<number, RadixNode>[];
  /** Divisors of the key for each level's prefix: 2^(BITMAP_LOG2 + TABLE_LOG2 * level). */
  private readonly div: number[];
  private last: RadixNode | undefined;
  private lastId = -1;

  constructor(writer: PhysMemoryWriter, memory: PhysicalMemory, pageSize: number, endian: Endianness) {
    this.geo = radixGeometry(pageSize);
    this.le = endian === 'little';
    this.memory = memory;
    this.writer = writer;
    this.levels = Array.from({ length: this.geo.depth - 1 }, () => new Map());
    this.div = Array.from(
      { length: this.geo.depth },
      (_, l) => 2 ** (this.geo.bitmapLog2 + this.geo.tableLog2 * l),
    );
    this.root = this.newPage(false).pa;
    this.rootNode = { pa: this.root, pfn: Number(this.root / BigInt(pageSize)), bytes: undefined };
  }
  private readonly rootNode: RadixNode;

  private newPage(leaf: boolean): RadixNode {
    const ps = this.geo.pageSize;
    const pa = this.writer.allocPage();
    this.writer.write(pa, new Uint8Array(ps));
    this.pages.push(pa);
    return { pa, pfn: Number(pa / BigInt(ps)), bytes: leaf ? new Uint8Array(ps) : undefined };
  }

  /** The leaf holding `key` (allocating the missing path, kernel order, when `create`). */
  private leafFor(key: number, leafId: number, create: boolean): RadixNode | undefined {
    if (leafId === this.lastId) return this.last;
    let leaf = this.levels[0].get(leafId);
    if (leaf === undefined) {
      if (!create) return undefined;
      const { depth, tableLog2 } = this.geo;
      const entries = 2 ** tableLog2;
      let node = this.rootNode;
      for (let level = depth - 1; level > 0; level--) {
        const id = Math.floor(key / this.div[level - 1]);
        let child = this.levels[level - 1].get(id);
        if (child === undefined) {
          child = this.newPage(level === 1);
          this.levels[level - 1].set(id, child);
          this.writer.write(
            node.pa + BigInt((id % entries) * 8),
            u64Bytes(child.pa, this.le ? 'little' : 'big'),
          );
        }
        node = child;
      }
      leaf = node;
    }
    this.lastId = leafId;
    this.last = leaf;
    return leaf;
  }

  private setBit(pa: bigint, order: number, on: boolean): boolean {
    const { pageShift, order0Log2, pageSize } = this.geo;
    const pfn = Number(pa >> BigInt(pageShift));
    if (
      !(Number.isInteger(order) && order >= 0 && order <= order0Log2) ||
      pa < 0n ||
      pa % BigInt(pageSize) !== 0n ||
      pfn >= 2 ** order0Log2 ||
      pfn % 2 ** order !== 0
    )
      radixKey(pa, order, this.geo); // throws KHO_RADIX_BAD_BLOCK
    return this.setPfnBit(pfn, order, on);
  }

  /**
   * Set or clear the bit of the block of `2^order` pages at page `pfn`, already checked: `order` an
   * integer in 0..ORDER_0_LOG2, `pfn` below 2^ORDER_0_LOG2 and aligned to `2^order`.
   */
  setPfnBit(pfn: number, order: number, on: boolean): boolean {
    const { order0Log2 } = this.geo;
    const key = 2 ** (order0Log2 - order) + pfn / 2 ** order;
    const leafId = Math.floor(key / this.div[0]);
    const leaf = this.leafFor(key, leafId, on);
    if (leaf === undefined) return false;
    const bit = key - leafId * this.div[0];
    const byte = this.le ? bit >> 3 : ((bit >> 6) << 3) + 7 - ((bit & 63) >> 3);
    const mask = 1 << (bit & 7);
    const bytes = leaf.bytes!;
    const was = (bytes[byte] & mask) !== 0;
    const v = on ? bytes[byte] | mask : bytes[byte] & ~mask;
    bytes[byte] = v;
    const page = this.memory.pageBytes(leaf.pfn, v !== 0);
    if (page) page[byte] = v;
    return was;
  }

  add(pa: bigint, order: number): void {
    this.setBit(pa, order, true);
  }

  remove(pa: bigint, order: number): boolean {
    return this.setBit(pa, order, false);
  }
}

interface RadixNode {
  pa: bigint;
  pfn: number;
  /** The leaf's bits as the kernel's copy has them (tables: undefined, their entries are only written). */
  bytes: Uint8Array | undefined;
}

/**
 * The incoming head pages still stamped with KHO_PAGE_MAGIC, as a read-only map pfn → order over the
 * walk's sorted packed blocks (no per-block map entry): lookups by binary search, `delete` clears a
 * flag. A pfn listed with several orders (a hostile map) keeps the last, as `Map.set` in walk order did.
 */
class Stamps implements ReadonlyMap<number, number> {
  private readonly live: Uint8Array;
  private count = 0;

  constructor(
    private readonly pfn: Float64Array,
    private readonly order: Uint8Array,
    private readonly n: number,
  ) {
    this.live = new Uint8Array(n);
    for (let i = 0; i < n; i++)
      if (i + 1 === n || pfn[i + 1] !== pfn[i]) {
        this.live[i] = 1;
        this.count++;
      }
  }

  /** Index of the live entry for `pfn`, or -1. */
  private find(pfn: number): number {
    const a = this.pfn;
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid] <= pfn) lo = mid + 1;
      else hi = mid;
    }
    const i = lo - 1;
    return i >= 0 && a[i] === pfn && this.live[i] === 1 ? i : -1;
  }

  get size(): number {
    return this.count;
  }
  get(pfn: number): number | undefined {
    const i = this.find(pfn);
    return i < 0 ? undefined : this.order[i];
  }
  has(pfn: number): boolean {
    return this.find(pfn) >= 0;
  }
  delete(pfn: number): boolean {
    return this.take(pfn) !== undefined;
  }
  /** Remove the stamp of `pfn`; its order, or undefined when there was none. */
  take(pfn: number): number | undefined {
    const i = this.find(pfn);
    if (i < 0) return undefined;
    this.live[i] = 0;
    this.count--;
    return this.order[i];
  }
  *entries(): MapIterator<[number, number]> {
    for (let i = 0; i < this.n; i++) if (this.live[i] === 1) yield [this.pfn[i], this.order[i]];
  }
  *keys(): MapIterator<number> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): MapIterator<number> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): MapIterator<[number, number]> {
    return this.entries();
  }
  /** In pfn order, without an iterator per entry. */
  forEach(
    fn: (value: number, key: number, map: ReadonlyMap<number, number>) => void,
    thisArg?: unknown,
  ): void {
    for (let i = 0; i < this.n; i++)
      if (this.live[i] === 1) fn.call(thisArg, this.order[i], this.pfn[i], this);
  }
}

/** Page frames per `PfnOrderTable` chunk. */
const PFN_CHUNK = 1024;

/**
 * pfn → order for the outgoing preserved blocks (a `Map` subset plus `ReadonlyMap`), stored as
 * `order + 1` bytes in chunks of `PFN_CHUNK` page frames: setting one is a probe of a small map (the
 * last chunk cached) and a byte store, not an entry in a map of every block. Iteration goes chunk by
 * chunk (in the order chunks were created), ascending within a chunk.
 */
class PfnOrderTable implements ReadonlyMap<number, number> {
  /** Chunks; slot `PFN_CHUNK` holds the chunk's number of entries. */
  private readonly chunks = new Map<number, Uint16Array>();
  private lastId = -1;
  private last: Uint16Array | undefined;
  private n = 0;

  private chunk(id: number, create: boolean): Uint16Array | undefined {
    if (id === this.lastId) return this.last;
    let c = this.chunks.get(id);
    if (c === undefined) {
      if (!create) return undefined;
      c = new Uint16Array(PFN_CHUNK + 1);
      this.chunks.set(id, c);
    }
    this.lastId = id;
    this.last = c;
    return c;
  }

  get size(): number {
    return this.n;
  }
  get(pfn: number): number | undefined {
    const id = Math.floor(pfn / PFN_CHUNK);
    const v = this.chunk(id, false)?.[pfn - id * PFN_CHUNK];
    return v ? v - 1 : undefined;
  }
  has(pfn: number): boolean {
    return this.get(pfn) !== undefined;
  }
  set(pfn: number, order: number): void {
    const id = Math.floor(pfn / PFN_CHUNK);
    const c = this.chunk(id, true)!;
    const i = pfn - id * PFN_CHUNK;
    if (c[i] === 0) {
      this.n++;
      c[PFN_CHUNK]++;
    }
    c[i] = order + 1;
  }
  delete(pfn: number): boolean {
    const id = Math.floor(pfn / PFN_CHUNK);
    const c = this.chunk(id, false);
    const i = pfn - id * PFN_CHUNK;
    if (c === undefined || c[i] === 0) return false;
    c[i] = 0;
    this.n--;
    if (--c[PFN_CHUNK] === 0) {
      this.chunks.delete(id);
      if (this.lastId === id) {
        this.lastId = -1;
        this.last = undefined;
      }
    }
    return true;
  }
  /** Chunk ids ascending (so iteration is in pfn order). */
  private ids(): number[] {
    return [...this.chunks.keys()].sort((x, y) => x - y);
  }
  *entries(): MapIterator<[number, number]> {
    for (const id of this.ids()) {
      const c = this.chunks.get(id)!;
      for (let i = 0; i < PFN_CHUNK; i++) if (c[i] !== 0) yield [id * PFN_CHUNK + i, c[i] - 1];
    }
  }
  *keys(): MapIterator<number> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): MapIterator<number> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): MapIterator<[number, number]> {
    return this.entries();
  }
  /** In pfn order, without an iterator per entry. */
  forEach(
    fn: (value: number, key: number, map: ReadonlyMap<number, number>) => void,
    thisArg?: unknown,
  ): void {
    for (const id of this.ids()) {
      const c = this.chunks.get(id)!;
      const base = id * PFN_CHUNK;
      for (let i = 0; i < PFN_CHUNK; i++) if (c[i] !== 0) fn.call(thisArg, c[i] - 1, base + i, this);
    }
  }
}

export interface KhoSubtreeInfo {
  name: string;
  phys: bigint;
  size: bigint;
}

export interface KhoCoreOptions {
  machine: Machine;
  profile: AbiProfile;
  log: KernelLog;
  /** CONFIG_KEXEC_HANDOVER_DEBUG: scratch-overlap checks on preserve. */
  debugChecks: boolean;
  /** Called when a sub-tree is added or removed (debugfs `out/sub_fdts`). */
  onSubtreesChanged?: () => void;
}

/** Incoming state found by `kho_populate` + the walk. */
export interface KhoIncoming {
  fdtPhys: bigint;
  root: KhoRoot;
  scratchPhys: bigint;
  scratchLen: bigint;
  scratch: KhoScratchArea[];
  /** Preserved blocks decoded from the map (address order). */
  blocks: PreservedBlock[];
  /** Tracker pages of the map (radix nodes or chunk/bitmap pages). */
  trackerPages: bigint[];
  /** The blocks merged into physical ranges (computed once by the walk). */
  ranges?: PhysRange[];
  /** The same blocks packed (radix walks): `blocks` is then computed from these on first use. */
  packed?: PackedBlocks;
}

/**
 * Give `inc` its blocks in packed form (sorted by pfn, then order); `inc.blocks` becomes a property
 * that unpacks them on first read (a kexec hop that never looks at them never builds 10 000 objects)
 * and can still be assigned.
 */
export function setPackedBlocks(inc: KhoIncoming, packed: PackedBlocks, pageSize: number): void {
  inc.packed = packed;
  let blocks: PreservedBlock[] | undefined;
  Object.defineProperty(inc, 'blocks', {
    configurable: true,
    enumerable: true,
    get: () => {
      blocks ??= unpackBlocks(packed, pageSize);
      return blocks;
    },
    set: (v: PreservedBlock[]) => {
      blocks = v;
      delete inc.packed;
    },
  });
}

/** Sorted packed blocks merged into physical ranges (adjacent and overlapping blocks join). */
export function mergePackedRanges(p: PackedBlocks, pageSize: number): PhysRange[] {
  const out: PhysRange[] = [];
  const ps = BigInt(pageSize);
  let s = -1;
  let e = -1;
  for (let i = 0; i < p.length; i++) {
    const b = p.pfn[i];
    const end = b + 2 ** p.order[i];
    if (b <= e) {
      if (end > e) e = end;
      continue;
    }
    if (s >= 0) out.push({ start: BigInt(s) * ps, size: BigInt(e - s) * ps });
    s = b;
    e = end;
  }
  if (s >= 0) out.push({ start: BigInt(s) * ps, size: BigInt(e - s) * ps });
  return out;
}

export class KhoCore {
  readonly machine: Machine;
  readonly profile: AbiProfile;
  readonly log: KernelLog;
  readonly debugChecks: boolean;
  readonly pageSize: bigint;
  readonly pageShift: bigint;
  /** `kho_enable` (the command line / Kconfig default, cleared by failures). */
  enabled = false;
  /** Scratch areas of this kernel (cold boot: reserved; KHO boot: inherited). */
  scratch: KhoScratchArea[] = [];
  /** Incoming state, when this is a KHO boot whose map was walked (`is_kho_boot()`). */
  incoming: KhoIncoming | null = null;
  buddy: BuddyAllocator | null = null;
  /** Physical memory (read interface for the ABI decoders). */
  readonly phys: PhysMemory;

  private tree: MapTracker | null = null;
  /** kho-v1: `kho_finalize` has run (6.16: the state is frozen). */
  finalized = false;
  /** Called after `finalize()` (debugfs: 6.16 creates `out/fdt` then). */
  onFinalize: (() => void) | undefined;
  private builder: KhoRootBuilder | null = null;
  private fdtPa = 0n;
  /** Outgoing preserved blocks: pfn → order (one bit each, no reference count). */
  private readonly preserved = new PfnOrderTable();
  private readonly subtrees: KhoSubtreeInfo[] = [];
  /** Incoming head pages still stamped with KHO_PAGE_MAGIC: pfn → order. */
  private stamps = new Stamps(new Float64Array(0), new Uint8Array(0), 0);
  private warnedRestore = false;
  private readonly onSubtreesChanged: (() => void) | undefined;

  /** RAM as merged page-frame ranges `[start, end)` (pairs), for the number fast paths. */
  private readonly ramPfns: number[] = [];
  private readonly ps: number;

  constructor(opts: KhoCoreOptions) {
    this.machine = opts.machine;
    this.ps = opts.machine.spec.pageSize;
    for (const r of opts.machine.ram) {
      const s = Math.ceil(Number(r.start) / this.ps);
      const e = Math.floor(Number(r.end) / this.ps);
      const n = this.ramPfns.length;
      if (e <= s) continue;
      if (n > 0 && this.ramPfns[n - 1] === s) this.ramPfns[n - 1] = e;
      else this.ramPfns.push(s, e);
    }
    this.profile = opts.profile;
    this.log = opts.log;
    this.debugChecks = opts.debugChecks;
    this.pageSize = BigInt(opts.machine.spec.pageSize);
    this.pageShift = BigInt(opts.machine.spec.pageShift);
    this.phys = machinePhysMemory(opts.machine);
    this.onSubtreesChanged = opts.onSubtreesChanged;
  }

  /** `is_kho_boot()`. */
  get isKhoBoot(): boolean {
    return this.incoming !== null;
  }
  /** Whether `kho_init` built the outgoing state. */
  get initialized(): boolean {
    return this.tree !== null;
  }
  /** Physical address of the outgoing root FDT page (0n before `kho_init`). */
  get rootFdtPhys(): bigint {
    return this.fdtPa;
  }
  /** Physical address of the outgoing radix root (0n before `kho_init`). */
  get memoryMapRoot(): bigint {
    return this.tree?.root ?? 0n;
  }
  /** Tracker pages of the outgoing tree (the root first). */
  get trackerPages(): readonly bigint[] {
    return this.tree?.pages ?? [];
  }
  /** The outgoing root FDT blob (`totalsize` bytes, as in memory). */
  rootFdt(): Uint8Array {
    if (!this.builder) throw kernelError('EINVAL', 'KHO is not initialised');
    return this.builder.blob();
  }
  /** Outgoing sub-trees, in registration order. */
  outSubtrees(): readonly KhoSubtreeInfo[] {
    return this.subtrees;
  }
  /** Outgoing preserved blocks, sorted by address. */
  preservedBlocks(): PreservedBlock[] {
    return [...this.preserved.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([pfn, order]) => ({ pa: BigInt(pfn) << this.pageShift, order }));
  }
  /** Outgoing preserved blocks as pfn → order (no copy, unsorted). */
  preservedPfns(): ReadonlyMap<number, number> {
    return this.preserved;
  }
  /** Incoming head pages not yet restored (pfn → order). */
  unrestored(): ReadonlyMap<number, number> {
    return this.stamps;
  }

  /** The allocator as the radix and vmalloc encoders want it (order-0 unmovable pages). */
  writer(): PhysMemoryWriter {
    return {
      pageSize: Number(this.pageSize),
      allocPage: () => this.allocPages(0),
      write: (pa, bytes) => this.machine.memory.write(pa, bytes),
    };
  }

  /** Allocate `2^order` pages (unmovable), zeroed; throws SIM_ENOMEM. */
  allocPages(order: number): bigint {
    if (!this.buddy) throw kernelError('ENOMEM', 'the page allocator is not up yet');
    const pfn = this.buddy.alloc(order, { migratetype: 'unmovable' });
    if (pfn === null) throw kernelError('ENOMEM', `no free block of order ${order}`);
    const pa = BigInt(pfn) << this.pageShift;
    this.machine.memory.zero(pa, this.pageSize << BigInt(order));
    return pa;
  }

  /** Free pages allocated with `allocPages`. */
  freePages(pa: bigint, order: number): void {
    this.buddy?.free(Number(pa >> this.pageShift), order);
  }

  /**
   * `kho_init()`'s outgoing part: the tree root, then the root FDT page (allocated and preserved), then
   * the FDT itself written into it.
   */
  init(): void {
    if (this.profile.memoryMap === 'radix-tree') {
      const tree = new RadixTracker(
        this.writer(),
        this.machine.memory,
        Number(this.pageSize),
        this.profile.endian,
      );
      this.tree = tree;
      this.fdtPa = this.allocPreserve(Number(this.pageSize));
      this.builder = new KhoRootBuilder(this.profile, tree.root);
    } else {
      this.tree = new BitmapTracker();
      this.fdtPa = this.allocPreserve(Number(this.pageSize));
      this.builder = new KhoRootBuilder(this.profile, 0n);
    }
    this.writeRoot();
  }

  /** Whether the root FDT exists in memory (always, except kho-v1-6.16 before finalize). */
  get rootBuilt(): boolean {
    return this.builder?.isBuilt ?? false;
  }

  /**
   * `kho_finalize()` (kho-v1 profiles only): serialize the bitmaps and patch the root's map address;
   * kho-v1-6.16 builds the whole root FDT here. -EOPNOTSUPP for radix profiles or with KHO off.
   */
  finalize(): void {
    const tree = this.tree;
    if (!this.enabled || !(tree instanceof BitmapTracker) || !this.builder)
      throw kernelError(
        'EOPNOTSUPP',
        `kho_finalize: ${this.profile.name} has no finalize step or KHO is off`,
      );
    if (this.finalized && this.profile.rootBuild === 'finalize-sw')
      throw kernelError('EEXIST', 'kho_finalize: already finalized');
    const head = tree.serialize(this);
    this.builder.finalize(head);
    this.finalized = true;
    this.writeRoot();
    this.onFinalize?.();
  }

  private writeRoot(): void {
    if (this.builder?.isBuilt) this.machine.memory.write(this.fdtPa, this.builder.page());
  }

  private requireInit(what: string): MapTracker {
    if (!this.enabled || !this.tree)
      throw kernelError(
        'EINVAL',
        `${what}: KHO is not enabled or not initialised yet (kho_init runs at fs_initcall)`,
      );
    if (this.finalized && this.profile.rootBuild === 'finalize-sw')
      throw kernelError('EBUSY', `${what}: the KHO state is finalized`);
    return this.tree;
  }

  private checkScratch(pa: bigint, size: bigint, what: string): void {
    if (!this.debugChecks) return;
    for (const a of this.scratch)
      if (pa < a.addr + a.size && a.addr < pa + size)
        throw kernelError('EINVAL', `${what} [${hex(pa)}, ${hex(pa + size)}) overlaps scratch`, {
          path: `phys:${hex(pa)}`,
          expected: 'memory outside every scratch area',
        });
  }

  private checkManaged(pa: bigint, pages: number, what: string): void {
    if (pa < 0n || pa % this.pageSize !== 0n)
      throw kernelError('EINVAL', `${what}: ${hex(pa)} is not page-aligned`, { path: `phys:${hex(pa)}` });
    if (!this.machine.isRam(pa, BigInt(pages) * this.pageSize))
      throw kernelError('EINVAL', `${what}: ${hex(pa)} is not RAM`, { path: `phys:${hex(pa)}` });
  }

  /** The page frame number of `pa` when it is page-aligned and a safe double, else -1. */
  private pfnOf(pa: bigint): number {
    const a = Number(pa);
    if (!(a >= 0 && a < 2 ** 53)) return -1;
    const pfn = a / this.ps;
    return Number.isInteger(pfn) ? pfn : -1;
  }

  /** Whether pages `[pfn, pfn + n)` are all RAM (adjacent RAM ranges count as one). */
  private isRamPfns(pfn: number, n: number): boolean {
    const r = this.ramPfns;
    for (let i = 0; i < r.length; i += 2) if (pfn >= r[i] && pfn + n <= r[i + 1]) return true;
    return false;
  }

  /**
   * Whether pages `[pfn, pfn + n)` need no scratch-overlap error: no CONFIG_KEXEC_HANDOVER_DEBUG, or
   * they miss every scratch area. False also when the areas are not exact doubles (the bigint path
   * decides then).
   */
  private outsideScratch(pfn: number, n: number): boolean {
    if (!this.debugChecks) return true;
    if (this.scratchNumFor !== this.scratch) {
      this.scratchNumFor = this.scratch;
      this.scratchNum = [];
      for (const a of this.scratch) {
        if (a.addr + a.size >= 1n << 53n) {
          this.scratchNum = null;
          break;
        }
        this.scratchNum.push(Number(a.addr), Number(a.addr + a.size));
      }
    }
    const r = this.scratchNum;
    if (!r) return false;
    const s = pfn * this.ps;
    const e = (pfn + n) * this.ps;
    for (let i = 0; i < r.length; i += 2) if (s < r[i + 1] && r[i] < e) return false;
    return true;
  }
  private scratchNumFor: KhoScratchArea[] | undefined;
  private scratchNum: number[] | null = null;

  /** `kho_preserve_folio()`. */
  preserveFolio(pa: bigint, order: number): void {
    const tree = this.requireInit('kho_preserve_folio');
    if (!Number.isInteger(order) || order < 0 || order > this.machine.spec.maxPageOrder)
      throw kernelError('EINVAL', `folio order ${order} out of range`);
    const pfn = this.pfnOf(pa);
    const unit = 2 ** order;
    if (pfn >= 0 && pfn % unit === 0 && this.isRamPfns(pfn, unit) && this.outsideScratch(pfn, unit)) {
      // the common case, in numbers: aligned, RAM, not in scratch (or no check)
      if (tree instanceof RadixTracker) tree.setPfnBit(pfn, order, true);
      else tree.add(pa, order);
      this.preserved.set(pfn, order);
      return;
    }
    const size = this.pageSize << BigInt(order);
    this.checkManaged(pa, 1 << order, 'kho_preserve_folio');
    if (pa % size !== 0n)
      throw kernelError('EINVAL', `folio ${hex(pa)} is not aligned to its order ${order}`, {
        path: `phys:${hex(pa)}`,
      });
    this.checkScratch(pa, size, 'kho_preserve_folio');
    tree.add(pa, order);
    this.preserved.set(Number(pa >> this.pageShift), order);
  }

  /** `kho_unpreserve_folio()`: the same pa and order as the preserve. */
  unpreserveFolio(pa: bigint, order: number): void {
    const tree = this.requireInit('kho_unpreserve_folio');
    const pfn = Number(pa >> this.pageShift);
    if (this.preserved.get(pfn) === order) this.preserved.delete(pfn);
    tree.remove(pa, order);
  }

  /** The blocks `kho_preserve_pages` splits a range into (v3+: never across a NUMA node boundary). */
  splitPages(pa: bigint, nrPages: number): PreservedBlock[] {
    const out: PreservedBlock[] = [];
    let pfn = Number(pa >> this.pageShift);
    const end = pfn + nrPages;
    const perNode = this.profile.hasBlobSize;
    while (pfn < end) {
      let order = Math.min(ctz(pfn), Math.floor(Math.log2(end - pfn)));
      if (perNode) {
        const nid = this.machine.nodeOf(BigInt(pfn) << this.pageShift);
        while (order > 0 && this.machine.nodeOf(BigInt(pfn + 2 ** order - 1) << this.pageShift) !== nid)
          order--;
      }
      out.push({ pa: BigInt(pfn) << this.pageShift, order });
      pfn += 2 ** order;
    }
    return out;
  }

  /** `kho_preserve_pages()`: maximal aligned blocks; rolls back on failure. */
  preservePages(pa: bigint, nrPages: number): void {
    const tree = this.requireInit('kho_preserve_pages');
    if (!Number.isSafeInteger(nrPages) || nrPages <= 0)
      throw kernelError('EINVAL', `kho_preserve_pages: bad page count ${nrPages}`);
    this.checkManaged(pa, nrPages, 'kho_preserve_pages');
    this.checkScratch(pa, BigInt(nrPages) * this.pageSize, 'kho_preserve_pages');
    for (const b of this.splitPages(pa, nrPages)) {
      tree.add(b.pa, b.order);
      this.preserved.set(Number(b.pa >> this.pageShift), b.order);
    }
  }

  /** `kho_unpreserve_pages()`: the same range as the preserve. */
  unpreservePages(pa: bigint, nrPages: number): void {
    const tree = this.requireInit('kho_unpreserve_pages');
    for (const b of this.splitPages(pa, nrPages)) {
      const pfn = Number(b.pa >> this.pageShift);
      if (this.preserved.get(pfn) === b.order) this.preserved.delete(pfn);
      tree.remove(b.pa, b.order);
    }
  }

  /** `kho_alloc_preserve(size)`: a zeroed, preserved folio of `get_order(size)`; returns its address. */
  allocPreserve(size: number): bigint {
    if (!this.enabled) throw kernelError('EINVAL', 'kho_alloc_preserve: KHO is not enabled');
    if (!Number.isSafeInteger(size) || size <= 0)
      throw kernelError('EINVAL', `kho_alloc_preserve: size ${size}`);
    const order = getOrder(BigInt(size), this.pageSize);
    if (order > this.machine.spec.maxPageOrder)
      throw kernelError('E2BIG', `kho_alloc_preserve: order ${order} exceeds MAX_PAGE_ORDER`);
    const pa = this.allocPages(order);
    try {
      this.preserveFolio(pa, order);
    } catch (e) {
      this.freePages(pa, order);
      throw e;
    }
    return pa;
  }

  /** `kho_unpreserve_free(mem)`. */
  unpreserveFree(pa: bigint): void {
    const pfn = Number(pa >> this.pageShift);
    const order = this.preserved.get(pfn);
    if (order === undefined) throw kernelError('EINVAL', `kho_unpreserve_free: ${hex(pa)} is not preserved`);
    this.unpreserveFolio(pa, order);
    this.freePages(pa, order);
  }

  /** Allocate a vmalloc area of `size` bytes (order-0 pages unless `order` is given). */
  vmalloc(size: number, order = 0): VmallocArea {
    if (!Number.isSafeInteger(size) || size <= 0) throw kernelError('EINVAL', `vmalloc: size ${size}`);
    const blockBytes = Number(this.pageSize) << order;
    const n = Math.ceil(size / blockBytes);
    const blocks: bigint[] = [];
    try {
      for (let i = 0; i < n; i++) blocks.push(this.allocPages(order));
    } catch (e) {
      for (const b of blocks) this.freePages(b, order);
      throw e;
    }
    return { blocks, order, size, flags: KHO_VMALLOC_ALLOC };
  }

  /** Write `data` into a vmalloc area (from its start). */
  writeVmalloc(area: VmallocArea, data: Uint8Array): void {
    const bb = Number(this.pageSize) << area.order;
    if (data.length > area.blocks.length * bb) throw kernelError('EINVAL', 'data larger than the area');
    for (let off = 0, i = 0; off < data.length; off += bb, i++)
      this.machine.memory.write(area.blocks[i], data.subarray(off, off + bb));
  }

  /** `kho_preserve_vmalloc()`: chunk pages allocated and written, data and chunks preserved. */
  preserveVmalloc(area: VmallocArea): KhoVmalloc {
    this.requireInit('kho_preserve_vmalloc');
    if ((area.flags & ~3) !== 0) throw kernelError('EOPNOTSUPP', `vmalloc flags ${hex(area.flags)}`);
    const enc = encodeVmalloc(this.writer(), area.blocks, {
      order: area.order,
      flags: area.flags,
      endian: this.profile.endian,
    });
    for (const c of enc.chunks) this.preserveFolio(c, 0);
    for (const b of area.blocks) this.preservePages(b, 1 << area.order);
    return enc.desc;
  }

  /** `kho_unpreserve_vmalloc()`: unpreserves data and chunks and frees the chunk pages. */
  unpreserveVmalloc(desc: KhoVmalloc): void {
    const d = decodeVmalloc(this.phys, desc, {
      pageSize: Number(this.pageSize),
      endian: this.profile.endian,
    });
    for (const b of d.blocks) this.unpreservePages(b, 1 << d.order);
    for (const c of d.chunks) {
      this.unpreserveFolio(c, 0);
      this.freePages(c, 0);
    }
  }

  /** `kho_add_subtree(name, blob at pa, size)`. The blob must be preserved by the caller. */
  addSubtree(name: string, pa: bigint, size: bigint): void {
    this.requireInit('kho_add_subtree');
    if (!this.builder) throw kernelError('EINVAL', 'kho_add_subtree: no root FDT');
    try {
      this.builder.addSubtree(name, pa, size);
    } catch (e) {
      if (e instanceof KhoError && e.code === 'KHO_EBUSY')
        throw kernelError('EBUSY', `kho_add_subtree: finalized`);
      if (e instanceof KhoError && e.code === 'KHO_EEXIST')
        throw kernelError('EEXIST', `kho_add_subtree: '${name}' exists`, { path: `/${name}`, cause: e });
      if (e instanceof KhoError)
        throw kernelError('ENOMEM', `kho_add_subtree: '${name}'`, { path: `/${name}`, cause: e });
      throw e;
    } finally {
      this.writeRoot();
    }
    this.subtrees.push({ name, phys: pa, size });
    this.onSubtreesChanged?.();
  }

  /** `kho_remove_subtree(blob at pa)`: removes the first node pointing at `pa`; silent if none. */
  removeSubtree(pa: bigint): void {
    if (!this.builder) return;
    if (this.builder.removeSubtree(pa)) {
      const i = this.subtrees.findIndex((s) => s.phys === pa);
      if (i >= 0) this.subtrees.splice(i, 1);
      this.writeRoot();
      this.onSubtreesChanged?.();
    }
  }

  // ---- incoming side ----

  /** Record the incoming state after a successful walk; stamps every head page. */
  adoptIncoming(inc: KhoIncoming): void {
    this.incoming = inc;
    const p = inc.packed;
    if (p) this.stamps = new Stamps(p.pfn, p.order, p.length);
    else {
      const pairs = inc.blocks
        .map((b) => [Number(b.pa >> this.pageShift), b.order] as const)
        .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      this.stamps = new Stamps(
        Float64Array.from(pairs, (x) => x[0]),
        Uint8Array.from(pairs, (x) => x[1]),
        pairs.length,
      );
    }
  }

  /**
   * `kho_retrieve_subtree(name)`: `SIM_ENOENT` when this is not a KHO boot or there is no such child;
   * `SIM_EINVAL` (with the kernel's warning) when `blob-size` is missing (kho-v3+) or the address is.
   */
  retrieveSubtree(name: string): KhoSubtreeInfo {
    const inc = this.incoming;
    if (!inc) throw kernelError('ENOENT', `kho_retrieve_subtree('${name}'): not a KHO boot`);
    const sub = inc.root.subtrees.find((s) => s.name === name);
    if (!sub) throw kernelError('ENOENT', `kho_retrieve_subtree('${name}'): no such sub-tree`);
    if (sub.phys === undefined) throw kernelError('EINVAL', `kho_retrieve_subtree('${name}'): no address`);
    if (this.profile.hasBlobSize && sub.size === undefined) {
      this.log.warn(`KHO: broken KHO subnode '${name}': missing or invalid blob-size property`);
      throw kernelError('EINVAL', `kho_retrieve_subtree('${name}'): no blob-size`);
    }
    return { name, phys: sub.phys, size: sub.size ?? this.fdtTotalsizeAt(sub.phys) };
  }

  /** `fdt_totalsize` of an FDT at `pa` (kho-v1/v2 sub-blobs have no `blob-size`), 0 if none is there. */
  fdtTotalsizeAt(pa: bigint): bigint {
    if (!this.phys.has(pa, 8)) return 0n;
    const dv = new DataView(this.machine.memory.read(pa, 8).buffer);
    return dv.getUint32(0, false) === 0xd00dfeed ? BigInt(dv.getUint32(4, false)) : 0n;
  }

  /** Read an incoming sub-blob's bytes (`blob-size` long), or undefined when absent/unreadable. */
  readSubtree(name: string): Uint8Array | undefined {
    try {
      const s = this.retrieveSubtree(name);
      if (s.size > BigInt(1 << 24) || !this.phys.has(s.phys, s.size)) return undefined;
      return this.machine.memory.read(s.phys, Number(s.size));
    } catch (e) {
      if (e instanceof KhoError) return undefined;
      throw e;
    }
  }

  private refuse(pa: bigint): null {
    if (!this.warnedRestore) {
      this.warnedRestore = true;
      this.log.warn('------------[ cut here ]------------');
      this.log.warn(
        `WARNING: CPU: 0 PID: 1 at kernel/liveupdate/kexec_handover.c kho_restore_page (phys ${hex(pa)}: no KHO_PAGE_MAGIC)`,
      );
      this.log.warn('---[ end trace 0000000000000000 ]---');
    }
    return null;
  }

  /** `kho_restore_folio(pa)`: the folio, or null (not preserved, not a head page, restored already). */
  restoreFolio(pa: bigint): RestoredFolio | null {
    let pfn = this.pfnOf(pa);
    const aligned = pfn >= 0;
    if (!aligned) pfn = Number(pa >> this.pageShift);
    const order = this.buddy ? this.stamps.take(pfn) : undefined;
    if (order === undefined || !this.buddy) return this.refuse(pa);
    this.buddy.claimReserved(pfn, order);
    return { pa: aligned ? pa : BigInt(pfn) << this.pageShift, order };
  }

  /** `kho_restore_pages(pa, nr)`: every page its own order-0 page; null on the first failure. */
  restorePages(pa: bigint, nrPages: number): bigint | null {
    const buddy = this.buddy;
    if (!buddy) return null;
    if (!Number.isSafeInteger(nrPages) || nrPages <= 0) return null;
    for (const b of this.splitPages(pa, nrPages)) {
      const pfn = Number(b.pa >> this.pageShift);
      if (!this.stamps.has(pfn)) return this.refuse(b.pa);
      this.stamps.delete(pfn);
      buddy.claimReservedPages(pfn, 2 ** b.order);
    }
    return pa;
  }

  /** `kho_restore_vmalloc(desc)`: the area (chunk pages restored and freed), or null on any mismatch. */
  restoreVmalloc(desc: KhoVmalloc): VmallocArea | null {
    let d: ReturnType<typeof decodeVmalloc>;
    try {
      d = decodeVmalloc(this.phys, desc, { pageSize: Number(this.pageSize), endian: this.profile.endian });
    } catch (e) {
      if (e instanceof KhoError) return null;
      throw e;
    }
    for (const b of d.blocks) if (this.restorePages(b, 1 << d.order) === null) return null;
    for (const c of d.chunks) {
      const f = this.restoreFolio(c);
      if (!f) return null;
      this.freePages(f.pa, f.order);
    }
    return {
      blocks: d.blocks,
      order: d.order,
      size: d.totalPages * Number(this.pageSize),
      flags: d.flags,
    };
  }

  /** Read a restored vmalloc area's bytes. */
  readVmalloc(area: VmallocArea, len = area.size): Uint8Array {
    const bb = Number(this.pageSize) << area.order;
    const out = new Uint8Array(len);
    for (let off = 0, i = 0; off < len; off += bb, i++)
      out.set(this.machine.memory.read(area.blocks[i], Math.min(bb, len - off)), off);
    return out;
  }
}

/** `get_order(size)`. */
export function getOrder(size: bigint, pageSize: bigint): number {
  let order = 0;
  while (pageSize << BigInt(order) < size) order++;
  return order;
}

/** Trailing zero bits of a non-negative safe integer (53 for 0). */
export function ctz(n: number): number {
  if (n === 0) return 53;
  let c = 0;
  let v = n;
  while (v % 2 === 0) {
    v /= 2;
    c++;
  }
  return c;
}
