/**
 * KHO scratch areas: their sizes, their cold-boot allocation, and how the next kernel adopts them
 * (spec §3; `kernel/liveupdate/kexec_handover.c`: `scratch_size_update`, `scratch_size_node`,
 * `kho_reserve_scratch`, and the scratch part of `kho_populate`).
 *
 * Contract:
 * - `computeScratchSizes()` is the one pure implementation of the size rules, shared by the boot model
 *   and a `kho scratch-cost` command. With a scale s (percent, default 200):
 *     lowmem = round_up(K(low) * s / 100, A)
 *     global = round_up(K(all) * s / 100 - lowmem, A)          (u64 arithmetic, wrapping as in C)
 *     node n = round_up(K(all, n) * s / 100, A)
 *   where K(limit, nid) = memblock_reserved_kern_size and A = CMA_MIN_ALIGNMENT_BYTES (pageblock
 *   size). With explicit `kho_scratch=L,G,P`: lowmem = L and global = G exactly as given, each node
 *   round_up(P, A).
 *
 *   Why `global` is 0 on a machine whose memory all lies below ARCH_LOW_ADDRESS_LIMIT (the vectors'
 *   2 GiB default-scale boot: lowmem 164 MiB, global 0 bytes, per node 140 MiB): then
 *   K(all) = K(low), so K(all)*s/100 - lowmem = x - round_up(x, A), which is 0 or "negative". In u64
 *   the negative value is 2^64 - d with 0 < d < A, and round_up of that wraps to exactly 2^64 = 0
 *   (2^64 is a multiple of A). Either way global = 0. (And per node is smaller than lowmem because
 *   reservations made without a node, such as `reserve_mem=` and most early allocations before NUMA
 *   setup assigns nodes, count for lowmem but for no node.)
 * - `reserveScratch()` performs the cold-boot allocation in the kernel's order: the array
 *   (`memblock_alloc(cnt*16, PAGE_SIZE)`), lowmem below ARCH_LOW_ADDRESS_LIMIT, global, then each node
 *   with exact_nid; on failure everything is freed and the kernel's messages returned (KHO is then
 *   disabled).
 * - `adoptScratch()` is the next kernel's side: add + mark each area KHO_SCRATCH, reserve the array
 *   copy, and switch memblock to scratch-only allocation.
 */
import { DEFAULT_SCRATCH_SCALE, type KhoScratchConfig, type LogLine } from './cmdline.ts';
import {
  MEMBLOCK_ALLOC_ACCESSIBLE,
  type Memblock,
  NUMA_NO_NODE,
  PHYS_ADDR_MAX,
  roundUp,
} from './memblock.ts';

/** One `struct kho_scratch { phys_addr_t addr; phys_addr_t size; }` (16 bytes). */
export interface KhoScratchArea {
  addr: bigint;
  size: bigint;
}
export const KHO_SCRATCH_ENTRY_SIZE = 16n;

export type ScratchRegionKind = 'lowmem' | 'global' | 'node';

export interface ScratchRegionSize {
  kind: ScratchRegionKind;
  /** Node id for `node` regions. */
  nid?: number;
  size: bigint;
  /** How the size came about, for humans (`200% of 82 MiB, rounded up to 2 MiB`). */
  why: string;
}

export interface ScratchSizeInput {
  /** The `kho_scratch=` state (scale 0 = explicit sizes). Default: scale 200 %. */
  config?: KhoScratchConfig;
  /** CMA_MIN_ALIGNMENT_BYTES. */
  alignment: bigint;
  /** memblock_reserved_kern_size(ARCH_LOW_ADDRESS_LIMIT, NUMA_NO_NODE). */
  kernLow: bigint;
  /** memblock_reserved_kern_size(MEMBLOCK_ALLOC_ANYWHERE, NUMA_NO_NODE). */
  kernAll: bigint;
  /** Nodes with memory, ascending nid, with memblock_reserved_kern_size(ANYWHERE, nid). */
  nodes: { nid: number; kern: bigint }[];
}

export interface ScratchSizes {
  regions: ScratchRegionSize[];
  lowmem: bigint;
  global: bigint;
  nodes: { nid: number; size: bigint }[];
  /** Sum of all regions (what scratch costs the machine). */
  total: bigint;
  /** Entries in the scratch array: nodes + 2. */
  count: number;
  /** Bytes of the scratch array (count * 16). */
  arrayBytes: bigint;
}

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const mib = (v: bigint): string => (v % (1n << 20n) === 0n ? `${v >> 20n} MiB` : `${v} bytes`);

/** The kernel's scratch size rules (see the module comment). */
export function computeScratchSizes(input: ScratchSizeInput): ScratchSizes {
  const cfg = input.config ?? { scale: DEFAULT_SCRATCH_SCALE, lowmem: 0n, global: 0n, pernode: 0n };
  const A = input.alignment;
  const s = BigInt(cfg.scale >>> 0);
  const regions: ScratchRegionSize[] = [];
  let lowmem: bigint;
  let global: bigint;
  if (s !== 0n) {
    const lowScaled = U64(input.kernLow * s) / 100n;
    lowmem = roundUp(lowScaled, A);
    const allScaled = U64(U64(input.kernAll * s) / 100n - lowmem);
    global = roundUp(allScaled, A);
    regions.push({
      kind: 'lowmem',
      size: lowmem,
      why: `${s}% of ${mib(input.kernLow)} kernel reservations below the low limit, rounded up to ${mib(A)}`,
    });
    regions.push({
      kind: 'global',
      size: global,
      why: `${s}% of ${mib(input.kernAll)} kernel reservations minus lowmem, rounded up to ${mib(A)}${
        global === 0n ? ' (0: lowmem already covers all of it)' : ''
      }`,
    });
  } else {
    lowmem = cfg.lowmem;
    global = cfg.global;
    regions.push({ kind: 'lowmem', size: lowmem, why: 'kho_scratch= lowmem size as given' });
    regions.push({ kind: 'global', size: global, why: 'kho_scratch= global size as given' });
  }
  const nodes = input.nodes.map((n) => {
    const size = s !== 0n ? roundUp(U64(n.kern * s) / 100n, A) : roundUp(cfg.pernode, A);
    regions.push({
      kind: 'node',
      nid: n.nid,
      size,
      why:
        s !== 0n
          ? `${s}% of ${mib(n.kern)} kernel reservations on node ${n.nid}, rounded up to ${mib(A)}`
          : `kho_scratch= per-node size rounded up to ${mib(A)}`,
    });
    return { nid: n.nid, size };
  });
  const total = regions.reduce((a, r) => a + r.size, 0n);
  const count = input.nodes.length + 2;
  return { regions, lowmem, global, nodes, total, count, arrayBytes: BigInt(count) * KHO_SCRATCH_ENTRY_SIZE };
}

/** `computeScratchSizes` with the kernel-reservation totals read from a memblock state. */
export function computeScratchSizesFrom(
  mb: Memblock,
  opts: { config?: KhoScratchConfig; alignment: bigint; archLowAddressLimit: bigint; nodeIds: number[] },
): ScratchSizes {
  return computeScratchSizes({
    config: opts.config,
    alignment: opts.alignment,
    kernLow: mb.reservedKernSize(opts.archLowAddressLimit, NUMA_NO_NODE),
    kernAll: mb.reservedKernSize(PHYS_ADDR_MAX, NUMA_NO_NODE),
    nodes: opts.nodeIds.map((nid) => ({ nid, kern: mb.reservedKernSize(PHYS_ADDR_MAX, nid) })),
  });
}

export interface ReserveScratchOptions {
  config?: KhoScratchConfig;
  alignment: bigint;
  archLowAddressLimit: bigint;
  pageSize: bigint;
  /** Nodes with memory (N_MEMORY), ascending. */
  nodeIds: number[];
}

export type ReserveScratchResult =
  | { ok: true; areas: KhoScratchArea[]; arrayAddr: bigint; sizes: ScratchSizes; log: LogLine[] }
  | {
      ok: false;
      failed: 'array' | 'lowmem' | 'global' | 'node';
      nid?: number;
      sizes: ScratchSizes;
      log: LogLine[];
    };

/** `kho_reserve_scratch()` on a cold boot (call only when KHO is enabled). */
export function reserveScratch(mb: Memblock, opts: ReserveScratchOptions): ReserveScratchResult {
  const sizes = computeScratchSizesFrom(mb, opts);
  const A = opts.alignment;
  const log: LogLine[] = [];
  const fail = (
    failed: 'array' | 'lowmem' | 'global' | 'node',
    text: string,
    areas: KhoScratchArea[],
    arrayAddr: bigint,
    nid?: number,
  ): ReserveScratchResult => {
    log.push({ level: 'err', text: `KHO: ${text}` });
    for (let i = areas.length - 1; i >= 0; i--) mb.free(areas[i].addr, areas[i].size);
    if (arrayAddr) mb.free(arrayAddr, sizes.arrayBytes);
    log.push({ level: 'warning', text: 'KHO: Failed to reserve scratch area, disabling kexec handover' });
    return { ok: false, failed, ...(nid !== undefined ? { nid } : {}), sizes, log };
  };
  const arrayAddr = mb.alloc(sizes.arrayBytes, opts.pageSize);
  if (!arrayAddr) return fail('array', 'Failed to reserve scratch array', [], 0n);
  const areas: KhoScratchArea[] = [];
  const low = mb.physAllocRange(sizes.lowmem, A, 0n, opts.archLowAddressLimit);
  if (!low) return fail('lowmem', 'Failed to reserve lowmem scratch buffer', areas, arrayAddr);
  areas.push({ addr: low, size: sizes.lowmem });
  const glob = mb.physAlloc(sizes.global, A);
  if (!glob) return fail('global', 'Failed to reserve global scratch buffer', areas, arrayAddr);
  areas.push({ addr: glob, size: sizes.global });
  for (const n of sizes.nodes) {
    // scratch_size_node() is evaluated here, after the earlier allocations; those carry no node or
    // another node, so the per-node totals computed up front are the ones the kernel sees.
    const a = mb.allocRangeNid(n.size, A, 0n, MEMBLOCK_ALLOC_ACCESSIBLE, n.nid, true);
    if (!a) return fail('node', `Failed to reserve nid ${n.nid} scratch buffer`, areas, arrayAddr, n.nid);
    areas.push({ addr: a, size: n.size });
  }
  return { ok: true, areas, arrayAddr, sizes, log };
}

/**
 * The scratch part of `kho_populate()` in the next kernel: each area is added to memblock.memory and
 * flagged MEMBLOCK_KHO_SCRATCH, the array copy at `arrayPhys` is reserved, and memblock switches to
 * scratch-only allocation.
 */
export function adoptScratch(
  mb: Memblock,
  areas: readonly KhoScratchArea[],
  arrayPhys: bigint,
  arrayLen: bigint,
): void {
  for (const a of areas) {
    mb.add(a.addr, a.size);
    mb.markKhoScratch(a.addr, a.size);
  }
  mb.reserve(arrayPhys, arrayLen);
  mb.setKhoScratchOnly();
}

/** ISA_END_ADDRESS: the end of the x86 real-mode first megabyte. */
export const ISA_END_ADDRESS = 0x100000n;

/**
 * The x86 KHO-boot quirk (spec §3.5): while e820 memory is set up on a KHO boot, `[0, ISA_END_ADDRESS)`
 * is marked KHO_SCRATCH so the real-mode trampoline can be allocated in scratch-only mode; the marking
 * is cleared afterwards (`on = false`).
 */
export function x86LowMemoryScratch(mb: Memblock, on: boolean): void {
  if (on) mb.markKhoScratch(0n, ISA_END_ADDRESS);
  else mb.clearKhoScratch(0n, ISA_END_ADDRESS);
}

/** debugfs `out/scratch_len` and `out/scratch_phys`: one `0x%llx` line per area, array order. */
export function formatScratchDebugfs(areas: readonly KhoScratchArea[]): {
  scratchLen: string;
  scratchPhys: string;
} {
  return {
    scratchLen: areas.map((a) => `0x${a.size.toString(16)}\n`).join(''),
    scratchPhys: areas.map((a) => `0x${a.addr.toString(16)}\n`).join(''),
  };
}

/** Parse the debugfs files back (for reading real captures); null when malformed. */
export function parseScratchDebugfs(scratchLen: string, scratchPhys: string): KhoScratchArea[] | null {
  const parse = (t: string): bigint[] | null => {
    const lines = t.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const out: bigint[] = [];
    for (const l of lines) {
      if (!/^0x[0-9a-f]{1,16}$/.test(l)) return null;
      out.push(BigInt(l));
    }
    return out;
  };
  const lens = parse(scratchLen);
  const phys = parse(scratchPhys);
  if (!lens || !phys || lens.length !== phys.length) return null;
  return lens.map((size, i) => ({ addr: phys[i], size }));
}

/** Does `[addr, addr+size)` intersect any scratch area? (`kho_scratch_overlap`.) */
export function scratchOverlaps(areas: readonly KhoScratchArea[], addr: bigint, size: bigint): boolean {
  return areas.some((a) => addr < a.addr + a.size && a.addr < addr + size);
}
