/**
 * Sources of a memory map: what fills a `MapInput` (see `model.ts`).
 *
 * Contract:
 * - `mapInputFromHandover(h, { memory?, iomem?, dmesg?, pageSize? })`: a decoded real handover
 *   (`loadHandoverPath`) plus, optionally, the memory image it was decoded with (for the
 *   preserved-memory map's own tracker pages and the self-test's `folios_info` vmalloc pages),
 *   `/proc/iomem` text and `dmesg` text (NUMA node ranges from `Initmem setup node N [mem a-b]`).
 *   What cannot be decoded becomes a note, never an exception (only bugs escape).
 * - `mapInputFromKernel(kernel)`: a running simulated kernel (`src/sim/kernel/kernel.ts`): its machine's
 *   nodes, its `/proc/iomem`, scratch areas, outgoing preserved blocks and tracker pages (the
 *   simulator's own state), sub-blobs, reserve_mem regions and the self-test's folios decoded from its
 *   outgoing root FDT in simulated memory through the same ABI decoders as a real handover, and the
 *   kexec segments of a loaded kernel, and free memory (the buddy allocator's free blocks, merged).
 * - `parseDmesgNodes(text)`: node ranges (end exclusive) from the kernel log, sorted by node id.
 */
import { decodeHandover, type Handover } from '../abi/handover.ts';
import type { PhysMemory } from '../abi/memory/image.ts';
import { getProfile } from '../abi/profile.ts';
import { decodePreservedMemoryMap } from '../abi/radix-tree.ts';
import { scratchRole } from '../abi/scratch.ts';
import { decodeVmalloc } from '../abi/vmalloc.ts';
import { KhoError } from '../errors.ts';
import { procIomem } from '../sim/kernel/debugfs.ts';
import type { Kernel } from '../sim/kernel/kernel.ts';
import { formatBytes, type MapInput, parseIomem } from './model.ts';

const NODE_LINE = /Initmem setup node (\d+) \[mem 0x([0-9a-fA-F]{1,16})-0x([0-9a-fA-F]{1,16})\]/;

/** NUMA node ranges from a kernel log (`Initmem setup node N [mem 0x..-0x..]`, end inclusive). */
export function parseDmesgNodes(text: string): { nid: number; start: bigint; end: bigint }[] {
  const byNid = new Map<number, { nid: number; start: bigint; end: bigint }>();
  for (const line of text.split('\n')) {
    const m = NODE_LINE.exec(line);
    if (!m) continue;
    const nid = Number(m[1]);
    const start = BigInt(`0x${m[2]}`);
    const last = BigInt(`0x${m[3]}`);
    if (last < start || nid > 1 << 16) continue;
    byNid.set(nid, { nid, start, end: last + 1n });
  }
  return [...byNid.values()].sort((a, b) => a.nid - b.nid);
}

export interface HandoverMapOptions {
  memory?: PhysMemory;
  /** `/proc/iomem` text. */
  iomem?: string;
  /** Kernel log text (node ranges). */
  dmesg?: string;
  pageSize?: number;
}

function why(e: unknown): string {
  if (e instanceof KhoError) return e.describe();
  throw e;
}

/** Fill a `MapInput` from a decoded handover (see the module contract). */
export function mapInputFromHandover(h: Handover, opts: HandoverMapOptions = {}): MapInput {
  const pageSize = opts.pageSize ?? 4096;
  const notes: string[] = [];
  const input: MapInput = {
    source: `${h.source.kind}${h.source.path !== undefined ? ` ${h.source.path}` : ''}`,
    pageSize,
    notes,
  };
  if (opts.iomem !== undefined) {
    const { entries, skipped } = parseIomem(opts.iomem);
    input.iomem = entries;
    if (skipped) notes.push(`${skipped} line(s) of the iomem file did not parse`);
  }
  if (opts.dmesg !== undefined) {
    const nodes = parseDmesgNodes(opts.dmesg);
    if (nodes.length) input.nodes = nodes;
  }
  if (h.scratch) input.scratch = h.scratch.map((s) => ({ addr: s.addr, size: s.size, role: s.role }));
  const noFdt = h.findings.find((f) => f.code === 'KHO_DEBUGFS_NO_FDT');
  if (noFdt) notes.push(noFdt.message);
  const stale = h.findings.find((f) => f.code === 'KHO_MAP_STALE');
  if (h.preserved) input.preserved = h.preserved.list;
  else if (stale) notes.push(`preserved memory is not shown: ${stale.message}`);
  else if (h.root?.memoryMap)
    notes.push(
      opts.memory
        ? 'the preserved-memory map could not be decoded from the memory image (see kho inspect)'
        : 'no memory image: preserved memory is not shown (pass --memory)',
    );
  if (h.root?.wholeAt !== undefined) input.rootFdt = h.root.wholeAt;
  input.subBlobs = h.subBlobs.map((s) => ({
    name: s.name,
    ...(s.phys !== undefined ? { phys: s.phys } : {}),
    ...(s.size !== undefined ? { size: s.size } : {}),
  }));
  input.reserveMem = h.reserveMem.map((r) => ({ name: r.name, start: r.start, size: r.size }));
  const profile = getProfile(h.profile, { pageSize });
  if (opts.memory && h.root?.memoryMap && h.preserved) {
    try {
      input.trackerPages = decodePreservedMemoryMap(opts.memory, h.root.memoryMap, profile).trackerPages;
    } catch (e) {
      notes.push(`preserved-memory map pages: ${why(e)}`);
    }
  }
  const producerBlocks: NonNullable<MapInput['producerBlocks']> = [];
  const producerRanges: NonNullable<MapInput['producerRanges']> = [];
  for (const sb of h.subBlobs) {
    const t = sb.khoTest;
    if (!t) continue;
    if (t.folios) producerBlocks.push({ producer: sb.name, label: `${sb.name} folio`, blocks: t.folios });
    if (t.foliosInfo && opts.memory && h.preserved) {
      try {
        const v = decodeVmalloc(opts.memory, t.foliosInfo, profile);
        const ps = BigInt(pageSize);
        const label = `${sb.name} folios_info (vmalloc)`;
        for (const c of v.chunks) producerRanges.push({ producer: sb.name, label, start: c, size: ps });
        for (const b of v.blocks)
          producerRanges.push({ producer: sb.name, label, start: b, size: ps << BigInt(v.order) });
      } catch (e) {
        notes.push(`${sb.name} folios_info: ${why(e)}`);
      }
    }
  }
  if (producerBlocks.length) input.producerBlocks = producerBlocks;
  if (producerRanges.length) input.producerRanges = producerRanges;
  return input;
}

/** Fill a `MapInput` from a running simulated kernel (see the module contract). */
export function mapInputFromKernel(k: Kernel): MapInput {
  const m = k.machine;
  const pageSize = m.spec.pageSize;
  const nodes = m.nodes.map((n) => ({ nid: n.nid, start: n.start, end: n.end }));
  let handover: Handover | undefined;
  if (k.kho.initialized) {
    handover = decodeHandover({
      fdt: k.kho.rootFdt(),
      memory: k.kho.phys,
      profile: k.profile.name,
      pageSize,
      label: 'out/fdt',
    });
  }
  const base = handover
    ? mapInputFromHandover(handover, { memory: k.kho.phys, pageSize })
    : { source: '', pageSize, notes: [] as string[] };
  const input: MapInput = {
    ...base,
    source: `simulated kernel ${k.release} on ${formatBytes(m.spec.memorySize)} (${m.spec.arch}, ${m.spec.numaNodes} node${m.spec.numaNodes === 1 ? '' : 's'})`,
    pageSize,
    nodes,
    iomem: parseIomem(procIomem(k)).entries,
  };
  if (k.scratch.length)
    input.scratch = k.scratch.map((s, i) => ({ addr: s.addr, size: s.size, role: scratchRole(i) }));
  if (k.kho.initialized) {
    input.preserved = k.kho.preservedBlocks();
    input.trackerPages = [...k.kho.trackerPages];
    input.rootFdt = k.kho.rootFdtPhys;
  }
  // Free memory: the buddy allocator's free blocks, adjacent ones merged.
  if (k.buddy) {
    const shift = BigInt(m.spec.pageShift);
    const free: { start: bigint; size: bigint }[] = [];
    let runStart = -1;
    let runEnd = -1;
    for (const [pfn, order] of k.buddy.freeBlockList()) {
      const end = pfn + 2 ** order;
      if (pfn === runEnd) runEnd = end;
      else {
        if (runStart >= 0)
          free.push({ start: BigInt(runStart) << shift, size: BigInt(runEnd - runStart) << shift });
        runStart = pfn;
        runEnd = end;
      }
    }
    if (runStart >= 0)
      free.push({ start: BigInt(runStart) << shift, size: BigInt(runEnd - runStart) << shift });
    if (free.length) input.free = free;
  }
  const segs = k.loaded?.plan.segments ?? [];
  if (segs.length) input.kexecSegments = segs.map((s) => ({ name: s.name, start: s.mem, size: s.memsz }));
  if (!k.kho.enabled)
    input.notes = [...(input.notes ?? []), 'KHO is off in this kernel: nothing is preserved'];
  return input;
}
