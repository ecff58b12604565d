/**
 * The memory map model behind `kho map`: physical memory as ordered lanes of non-overlapping regions.
 *
 * Contract:
 * - `MapInput` is plain data (no classes, u64 as bigint) that every source fills: a real handover
 *   (`mapInputFromHandover` in `sources.ts`: debugfs files, memory image, `/proc/iomem`) or a simulated
 *   kernel (`mapInputFromKernel`). Everything in it is optional; what is absent is simply not drawn.
 * - `buildMemoryMap(input)` returns a `MemoryMap`: lanes in a fixed order (iomem, iomem detail, nodes,
 *   scratch, reserve_mem, kho, kexec), each lane's regions sorted by start and non-overlapping (a region
 *   that overlaps an earlier one of the same lane goes to an overflow lane `<name> #2`, ... up to
 *   `MAX_LANES`; only beyond that, on hostile input, regions are dropped, and a note says how many). Regions are half-open `[start, end)`; an empty region (`start === end`, e.g. a
 *   0-byte scratch area the kernel still lists) is kept, as a marker.
 * - Preserved blocks are attributed to a producer, first match wins: the root FDT page (`kho-fdt`,
 *   producer `kho`); a block holding a sub-blob (`preserved-data` .. `+blob-size`) → that sub-blob's
 *   name; a block inside a reserve_mem region → `memblock` (the producer that preserves reserve_mem);
 *   a block in a producer's recorded blocks or ranges (the self-test's folios and its `folios_info`
 *   vmalloc pages) → that producer; otherwise no producer (label says unknown). Radix-tree (tracker)
 *   pages, which are not preserved blocks themselves, are regions of kind `radix`. One region per block
 *   and page, labelled with its order; beyond `COALESCE_ABOVE` of them (huge handovers), runs of
 *   adjacent blocks with the same owner become one region (`<label> ×N`); if there are still more
 *   than `COALESCE_ABOVE`, the same-owner runs separated by the smallest gaps are grouped (`<label>: N
 *   blocks, SIZE, with gaps`, the region then spans the gaps), so the renderers draw at most about
 *   `COALESCE_ABOVE` KHO regions per owner interleaving, whatever the handover's size. A note says so.
 * - `parseIomem(text)` reads `/proc/iomem` (`start-end : name`, end inclusive, two spaces of indent per
 *   level) into entries with their depth; malformed lines are skipped and counted, never thrown.
 * - Deterministic: the same input gives the same model (sorting is total: start, end, kind, label).
 */
import type { PreservedBlock } from '../abi/radix-tree.ts';

export type RegionKind =
  | 'ram'
  | 'reserved'
  | 'kernel'
  | 'io'
  | 'node'
  | 'scratch-lowmem'
  | 'scratch-global'
  | 'scratch-node'
  | 'preserved'
  | 'reserve_mem'
  | 'kexec-segment'
  | 'kho-fdt'
  | 'radix'
  | 'free';

/** Every kind, in legend order. */
export const REGION_KINDS: readonly RegionKind[] = [
  'ram',
  'reserved',
  'kernel',
  'io',
  'node',
  'scratch-lowmem',
  'scratch-global',
  'scratch-node',
  'reserve_mem',
  'preserved',
  'kho-fdt',
  'radix',
  'kexec-segment',
  'free',
];

export interface MapRegion {
  /** First byte. */
  start: bigint;
  /** One past the last byte (`start === end` for an empty marker). */
  end: bigint;
  kind: RegionKind;
  label: string;
  /** The KHO producer (sub-blob name) that preserved it, when known. */
  producer?: string;
  /** NUMA node, when known. */
  node?: number;
}

export interface MapLane {
  name: string;
  regions: MapRegion[];
}

export interface MemoryMap {
  /** What the map was built from (`debugfs-dir test/.../out`, `simulated kernel 7.3.4 on 2 GiB`). */
  source: string;
  pageSize: number;
  /** Lowest start and highest end over all regions (0, 0 for an empty map). */
  start: bigint;
  end: bigint;
  nodes: { nid: number; start: bigint; end: bigint }[];
  lanes: MapLane[];
  /** Counts and sizes, for the text summary. */
  summary: {
    regions: number;
    preservedBlocks: number;
    preservedBytes: bigint;
    unattributedBlocks: number;
    byProducer: Record<string, { blocks: number; bytes: bigint }>;
  };
  notes: string[];
}

export interface IomemEntry {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  name: string;
  depth: number;
}

export interface MapInput {
  source: string;
  pageSize?: number;
  /** `/proc/iomem`, parsed (or `parseIomem(text)`). */
  iomem?: IomemEntry[];
  nodes?: { nid: number; start: bigint; end: bigint }[];
  /** Scratch areas in debugfs order (lowmem, global, then one per node), with their role. */
  scratch?: { addr: bigint; size: bigint; role: string }[];
  preserved?: PreservedBlock[];
  /** Radix-tree (or bitmap-chunk) tracker pages of the preserved-memory map. */
  trackerPages?: bigint[];
  /** The root FDT page. */
  rootFdt?: bigint;
  subBlobs?: { name: string; phys?: bigint; size?: bigint }[];
  reserveMem?: { name: string; start: bigint; size: bigint }[];
  /** Blocks a producer recorded itself (the self-test's folios). */
  producerBlocks?: { producer: string; label: string; blocks: PreservedBlock[] }[];
  /** Page ranges a producer owns (vmalloc chunk and data pages). */
  producerRanges?: { producer: string; label: string; start: bigint; size: bigint }[];
  kexecSegments?: { name: string; start: bigint; size: bigint }[];
  /** Free memory (simulated kernels: the buddy allocator's free ranges). */
  free?: { start: bigint; size: bigint }[];
  notes?: string[];
}

const IOMEM_LINE = /^( *)([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) : (.*)$/;

/** Parse `/proc/iomem`; returns entries in file order and the number of lines that did not parse. */
export function parseIomem(text: string): { entries: IomemEntry[]; skipped: number } {
  const entries: IomemEntry[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = IOMEM_LINE.exec(line);
    if (!m) {
      skipped++;
      continue;
    }
    const start = BigInt(`0x${m[2]}`);
    const last = BigInt(`0x${m[3]}`);
    if (last < start) {
      skipped++;
      continue;
    }
    entries.push({ start, end: last + 1n, name: m[4]!.trim(), depth: Math.floor(m[1]!.length / 2) });
  }
  return { entries, skipped };
}

function iomemKind(name: string): RegionKind {
  if (name === 'System RAM') return 'ram';
  if (name === 'Reserved' || name === 'reserved') return 'reserved';
  if (name.startsWith('Kernel ')) return 'kernel';
  return 'io';
}

const KIND_ORDER = new Map(REGION_KINDS.map((k, i) => [k, i]));

export function compareRegions(a: MapRegion, b: MapRegion): number {
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  if (a.end !== b.end) return a.end < b.end ? -1 : 1;
  const ka = KIND_ORDER.get(a.kind)! - KIND_ORDER.get(b.kind)!;
  if (ka !== 0) return ka;
  return a.label < b.label ? -1 : a.label > b.label ? 1 : 0;
}

/** Most overflow lanes per lane name (bounds the work on hostile, heavily overlapping input). */
export const MAX_LANES = 16;

/**
 * Sort regions and split them into lanes without overlap: each region goes to the first lane whose
 * last region ends at or before its start (empty markers too). Lane names: `name`, `name #2`, ...
 */
export function packLanes(name: string, regions: MapRegion[], notes?: string[]): MapLane[] {
  const sorted = [...regions].sort(compareRegions);
  const lanes: { lane: MapLane; end: bigint }[] = [];
  let dropped = 0;
  for (const r of sorted) {
    let slot = lanes.find((l) => l.end <= r.start);
    if (!slot) {
      if (lanes.length >= MAX_LANES) {
        dropped++;
        continue;
      }
      slot = {
        lane: { name: lanes.length === 0 ? name : `${name} #${lanes.length + 1}`, regions: [] },
        end: 0n,
      };
      lanes.push(slot);
    }
    slot.lane.regions.push(r);
    if (r.end > slot.end) slot.end = r.end;
  }
  if (dropped)
    notes?.push(`${dropped} ${name} region(s) overlap ${MAX_LANES} others at once and are not drawn`);
  return lanes.map((l) => l.lane);
}

function scratchKind(role: string): { kind: RegionKind; node?: number } {
  if (role === 'lowmem') return { kind: 'scratch-lowmem' };
  if (role === 'global') return { kind: 'scratch-global' };
  const m = /^node(\d+)$/.exec(role);
  return m ? { kind: 'scratch-node', node: Number(m[1]) } : { kind: 'scratch-node' };
}

function hx(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/** Sorted disjoint-or-not intervals with an owner; `find` returns the first (by start) containing [s,e). */
class IntervalIndex<T> {
  private readonly items: { start: bigint; end: bigint; value: T }[];
  private readonly maxEnd: bigint[];
  constructor(items: { start: bigint; end: bigint; value: T }[]) {
    this.items = [...items].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.maxEnd = [];
    let m = -1n;
    for (const it of this.items) {
      if (it.end > m) m = it.end;
      this.maxEnd.push(m);
    }
  }
  /** An interval that contains [s, e) wholly, or (with `overlap`) one that overlaps it. */
  find(s: bigint, e: bigint, overlap = false): T | undefined {
    // Last index with start <= s (contain) or start < e (overlap).
    const limit = overlap ? e : s + 1n;
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid]!.start < limit) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo - 1; i >= 0; i--) {
      if (this.maxEnd[i]! <= s) break;
      const it = this.items[i]!;
      if (overlap ? it.end > s && it.start < e : it.start <= s && it.end >= e) return it.value;
    }
    return undefined;
  }
}

interface Owner {
  producer: string;
  label: string;
  kind?: RegionKind;
}

/** Beyond this many preserved blocks and map pages, adjacent ones with the same owner are merged. */
export const COALESCE_ABOVE = 4096;

export interface BuildOptions {
  /** Merge adjacent same-owner blocks into runs when there are more than this (default `COALESCE_ABOVE`). */
  coalesceAbove?: number;
}

/** Build the lanes of a memory map from `input` (see the module contract). */
export function buildMemoryMap(input: MapInput, opts: BuildOptions = {}): MemoryMap {
  const pageSize = input.pageSize ?? 4096;
  const ps = BigInt(pageSize);
  const notes = [...(input.notes ?? [])];
  const lanes: MapLane[] = [];
  const pack = (name: string, regions: MapRegion[]) => packLanes(name, regions, notes);
  const nodes = [...(input.nodes ?? [])].sort((a, b) => a.nid - b.nid);
  // The node that wholly contains [start, end) (a region spanning two nodes has none).
  const nodeOf = (s: bigint, e: bigint): number | undefined =>
    nodes.find((n) => s >= n.start && s < n.end && e <= n.end)?.nid;
  const withNode = (r: MapRegion): MapRegion => {
    if (r.node !== undefined) return r;
    const n = nodeOf(r.start, r.end);
    return n === undefined ? r : { ...r, node: n };
  };

  if (input.iomem) {
    const top = input.iomem.filter((e) => e.depth === 0);
    const nested = input.iomem.filter((e) => e.depth === 1);
    lanes.push(
      ...pack(
        'iomem',
        top.map((e) => withNode({ start: e.start, end: e.end, kind: iomemKind(e.name), label: e.name })),
      ),
    );
    if (nested.length)
      lanes.push(
        ...pack(
          'iomem detail',
          nested.map((e) => withNode({ start: e.start, end: e.end, kind: iomemKind(e.name), label: e.name })),
        ),
      );
  }
  if (nodes.length) {
    lanes.push(
      ...pack(
        'nodes',
        nodes.map((n) => ({ start: n.start, end: n.end, kind: 'node', label: `node ${n.nid}`, node: n.nid })),
      ),
    );
  }
  if (input.scratch?.length) {
    lanes.push(
      ...pack(
        'scratch',
        input.scratch.map((s) => {
          const { kind, node } = scratchKind(s.role);
          return withNode({
            start: s.addr,
            end: s.addr + s.size,
            kind,
            label: `scratch ${s.role}`,
            ...(node !== undefined ? { node } : {}),
          });
        }),
      ),
    );
  }
  const reserveMem = input.reserveMem ?? [];
  if (reserveMem.length) {
    lanes.push(
      ...pack(
        'reserve_mem',
        reserveMem.map((r) =>
          withNode({
            start: r.start,
            end: r.start + r.size,
            kind: 'reserve_mem',
            label: `reserve_mem '${r.name}'`,
            producer: 'memblock',
          }),
        ),
      ),
    );
  }

  // Attribution of preserved blocks.
  // Recorded blocks by address (BigInt keys compare by value), then order.
  const exact = new Map<bigint, { order: number; owner: Owner }[]>();
  for (const pb of input.producerBlocks ?? [])
    for (const b of pb.blocks) {
      const list = exact.get(b.pa);
      const e = { order: b.order, owner: { producer: pb.producer, label: pb.label } };
      if (list) list.push(e);
      else exact.set(b.pa, [e]);
    }
  const subIdx = new IntervalIndex<Owner>(
    (input.subBlobs ?? [])
      .filter((s) => s.phys !== undefined)
      .map((s) => ({
        start: s.phys!,
        end: s.phys! + (s.size !== undefined && s.size > 0n ? s.size : 1n),
        value: { producer: s.name, label: `${s.name} sub-blob` },
      })),
  );
  const rmIdx = new IntervalIndex<Owner>(
    reserveMem.map((r) => ({
      start: r.start,
      end: r.start + r.size,
      value: { producer: 'memblock', label: `reserve_mem '${r.name}'` },
    })),
  );
  const prIdx = new IntervalIndex<Owner>(
    (input.producerRanges ?? []).map((r) => ({
      start: r.start,
      end: r.start + r.size,
      value: { producer: r.producer, label: r.label },
    })),
  );
  // A Map: producer names come from the handover (`__proto__` is a valid node name).
  const byProducer = new Map<string, { blocks: number; bytes: bigint }>();
  let unattributed = 0;
  let preservedBytes = 0n;
  // Blocks and tracker pages with their owner's label; labelled (or merged into runs) below.
  const raw: {
    start: bigint;
    end: bigint;
    kind: RegionKind;
    base: string;
    producer?: string;
    order?: number;
  }[] = [];
  for (const b of input.preserved ?? []) {
    const order = Math.min(Math.max(b.order, 0), 63);
    const size = ps << BigInt(order);
    const end = b.pa + size;
    let owner: Owner | undefined;
    if (input.rootFdt !== undefined && b.pa <= input.rootFdt && input.rootFdt < end)
      owner = { producer: 'kho', label: 'KHO root FDT', kind: 'kho-fdt' };
    owner ??= subIdx.find(b.pa, end, true);
    owner ??= rmIdx.find(b.pa, end);
    owner ??= exact.get(b.pa)?.find((e) => e.order === b.order)?.owner;
    owner ??= prIdx.find(b.pa, end);
    preservedBytes += size;
    if (owner) {
      let p = byProducer.get(owner.producer);
      if (!p) {
        p = { blocks: 0, bytes: 0n };
        byProducer.set(owner.producer, p);
      }
      p.blocks++;
      p.bytes += size;
    } else unattributed++;
    raw.push({
      start: b.pa,
      end,
      kind: owner?.kind ?? 'preserved',
      base: owner ? owner.label : 'preserved, producer unknown',
      ...(owner ? { producer: owner.producer } : {}),
      order: b.order,
    });
  }
  for (const pa of input.trackerPages ?? [])
    raw.push({ start: pa, end: pa + ps, kind: 'radix', base: 'preserved-memory-map page' });
  if (input.rootFdt !== undefined && !(input.preserved ?? []).length)
    raw.push({
      start: input.rootFdt,
      end: input.rootFdt + ps,
      kind: 'kho-fdt',
      base: 'KHO root FDT',
      producer: 'kho',
    });
  const kho: MapRegion[] = [];
  const coalesceAbove = opts.coalesceAbove ?? COALESCE_ABOVE;
  if (raw.length <= coalesceAbove) {
    for (const r of raw)
      kho.push(
        withNode({
          start: r.start,
          end: r.end,
          kind: r.kind,
          label: r.order === undefined ? r.base : `${r.base} (order ${r.order})`,
          ...(r.producer !== undefined ? { producer: r.producer } : {}),
        }),
      );
  } else {
    // Too many to draw one by one: runs of adjacent blocks with the same owner become one region;
    // if that is still too many, the closest same-owner runs are grouped across their gaps.
    let sorted = true;
    for (let i = 1; i < raw.length && sorted; i++) if (raw[i]!.start < raw[i - 1]!.start) sorted = false;
    if (!sorted) raw.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    type Raw = (typeof raw)[number];
    // A run of blocks; `owners`/`kinds` are only filled once a run takes in another owner's blocks.
    type Run = {
      r: Raw;
      key: string;
      end: bigint;
      n: number;
      bytes: bigint;
      gaps: boolean;
      owners?: Set<string>;
      kinds?: Set<RegionKind>;
    };
    const ownerKey = (r: Raw) => `${r.kind}\u0000${r.base}\u0000${r.producer ?? ''}`;
    const runs: Run[] = [];
    for (const r of raw) {
      const last = runs[runs.length - 1];
      const key = ownerKey(r);
      if (last && last.end === r.start && last.key === key) {
        last.end = r.end;
        last.n++;
        last.bytes += r.end - r.start;
      } else runs.push({ r, key, end: r.end, n: 1, bytes: r.end - r.start, gaps: false });
    }
    let drawn = runs;
    if (runs.length > coalesceAbove) {
      // Merge the `runs.length - coalesceAbove` closest neighbours, same-owner pairs first.
      // Gaps as doubles: ordering by approximate size is all that is needed here.
      const gap = new Float64Array(runs.length);
      const mixed = new Uint8Array(runs.length);
      const idx: number[] = [];
      for (let i = 0; i + 1 < runs.length; i++) {
        const a = runs[i]!;
        const b = runs[i + 1]!;
        gap[i] = Number(b.r.start - a.end);
        mixed[i] = a.key !== b.key ? 1 : 0;
        if (b.r.start >= a.end) idx.push(i); // overlapping (hostile input): never merged
      }
      idx.sort((x, y) => mixed[x]! - mixed[y]! || gap[x]! - gap[y]! || x - y);
      const join = new Uint8Array(runs.length);
      for (const i of idx.slice(0, runs.length - coalesceAbove)) join[i] = 1;
      drawn = [];
      runs.forEach((run, i) => {
        const last = drawn[drawn.length - 1];
        if (last && i > 0 && join[i - 1]) {
          if (run.key !== last.key || last.owners) {
            last.owners ??= new Set([last.key]);
            last.kinds ??= new Set([last.r.kind]);
            last.owners.add(run.key);
            last.kinds.add(run.r.kind);
          }
          last.end = run.end;
          last.n += run.n;
          last.bytes += run.bytes;
          last.gaps = true;
        } else drawn.push({ ...run });
      });
    }
    for (const { r, end, n, bytes, gaps, owners, kinds } of drawn) {
      const mixed = owners !== undefined && owners.size > 1;
      const producers = new Set([...(owners ?? [])].map((o) => o.split('\u0000')[2]).filter((x) => x));
      kho.push(
        withNode({
          start: r.start,
          end,
          kind: !kinds || kinds.size === 1 ? r.kind : 'preserved',
          label: mixed
            ? `${n} blocks of ${owners.size} kinds/owners (${[...producers].sort().join(', ') || 'unknown'}), ${formatBytes(bytes)}, with gaps`
            : gaps
              ? `${r.base}: ${n} blocks, ${formatBytes(bytes)}, with gaps`
              : n === 1
                ? r.base
                : `${r.base} ×${n}`,
          ...(!mixed && r.producer !== undefined ? { producer: r.producer } : {}),
        }),
      );
    }
    notes.push(
      drawn === runs
        ? `${raw.length} preserved blocks and map pages are drawn as ${kho.length} runs of adjacent blocks with the same owner`
        : `${raw.length} preserved blocks and map pages are drawn as ${kho.length} groups: runs of adjacent blocks with the same owner, and the closest of those grouped across their gaps ("with gaps")`,
    );
  }
  if (kho.length) lanes.push(...pack('kho', kho));
  if (input.kexecSegments?.length) {
    lanes.push(
      ...pack(
        'kexec',
        input.kexecSegments.map((s) =>
          withNode({
            start: s.start,
            end: s.start + s.size,
            kind: 'kexec-segment',
            label: `kexec ${s.name}`,
          }),
        ),
      ),
    );
  }
  if (input.free?.length) {
    lanes.push(
      ...pack(
        'free',
        input.free.map((f) =>
          withNode({ start: f.start, end: f.start + f.size, kind: 'free', label: 'free' }),
        ),
      ),
    );
  }
  if (unattributed) notes.push(`${unattributed} preserved block(s) could not be attributed to a producer`);

  let start: bigint | undefined;
  let end = 0n;
  let count = 0;
  for (const l of lanes)
    for (const r of l.regions) {
      count++;
      if (start === undefined || r.start < start) start = r.start;
      if (r.end > end) end = r.end;
    }
  for (const n of nodes) if (n.end > end) end = n.end;
  return {
    source: input.source,
    pageSize,
    start: start ?? 0n,
    end,
    nodes,
    lanes,
    summary: {
      regions: count,
      preservedBlocks: input.preserved?.length ?? 0,
      preservedBytes,
      unattributedBlocks: unattributed,
      // Own data properties, whatever the names (Object.fromEntries defines, never assigns).
      byProducer: Object.fromEntries(byProducer),
    },
    notes,
  };
}

/** Every region of the map, lane by lane. */
export function allRegions(map: MemoryMap): (MapRegion & { lane: string })[] {
  return map.lanes.flatMap((l) => l.regions.map((r) => ({ ...r, lane: l.name })));
}

/** `4 KiB`, `1.5 GiB`: binary units, at most 3 significant decimals. */
export function formatBytes(n: bigint): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let u = 0;
  let whole = n;
  while (whole >= 1024n && u < units.length - 1) {
    whole /= 1024n;
    u++;
  }
  if (u === 0) return `${n} B`;
  const scaled = Number(n) / 1024 ** u;
  const text = Number.isInteger(scaled) ? String(scaled) : scaled.toFixed(scaled < 10 ? 2 : 1);
  return `${text} ${units[u]}`;
}

export { hx as hexAddr };
