/**
 * The firmware's view of a machine: physical RAM layout, NUMA nodes and the memory map handed to the
 * kernel (x86_64 e820 from SeaBIOS on a QEMU `pc` machine; arm64 devicetree `/memory` nodes on QEMU
 * `virt`).
 *
 * Contract: `buildLayout(spec)` is pure and deterministic. All ranges are half-open `[start, end)` in
 * `bigint` bytes. Modelled on the Linux 7.3.4 vectors (QEMU 7.2, SeaBIOS 1.16, `pc` machine, 2 GiB):
 * - RAM below 4 GiB is the whole RAM, or 3 GiB when RAM >= 3.5 GiB (QEMU pc with gigabyte alignment);
 *   the rest starts at 4 GiB, or at 1 TiB when it would reach the AMD HyperTransport window at
 *   0xfd00000000 (QEMU >= 7.1).
 * - e820: `[0, 0x9fc00)` RAM, `[0x9fc00, 0xa0000)` reserved (EBDA), `[0xf0000, 0x100000)` reserved
 *   (BIOS), `[0x100000, low - 0x23000)` RAM, `[low - 0x23000, low)` reserved (SeaBIOS tables),
 *   `[0xfffc0000, 4G)` reserved (flash), RAM above 4 GiB, `[0xfd00000000, 1T)` reserved (HT window).
 * - The kernel then marks page 0 reserved and drops RAM in `[0xa0000, 0x100000)`, which gives the
 *   `/proc/iomem` lines `00000000-00000fff : Reserved`, `00001000-0009fbff : System RAM`, ...
 * - NUMA: RAM is split evenly in 8 MiB granules (QEMU's automatic split; the last node takes the rest);
 *   each node is one contiguous physical range; node 0 starts at 0 on x86 (as the SRAT says).
 * - arm64 `virt`: RAM at 1 GiB, contiguous; one `/memory@<addr>` node per NUMA node.
 */
import type { MachineSpec } from './spec.ts';

export type RangeType = 'ram' | 'reserved';

export interface FirmwareRange {
  start: bigint;
  end: bigint;
  type: RangeType;
}

export interface NumaNode {
  nid: number;
  /** Physical range of the node (may contain holes that are not RAM). */
  start: bigint;
  end: bigint;
  /** RAM bytes on this node. */
  ramBytes: bigint;
}

/** A RAM range as the kernel's memblock.memory holds it: page-trimmed, split by node. */
export interface RamRange {
  start: bigint;
  end: bigint;
  nid: number;
}

export interface DtMemoryNode {
  /** Node name, `memory@<hex addr>`. */
  name: string;
  base: bigint;
  size: bigint;
  /** `numa-node-id`, present only on multi-node machines. */
  numaNodeId?: number;
}

export interface MachineLayout {
  /** What firmware reports: e820 entries (x86_64) or one range per `/memory` node (arm64). */
  firmwareMap: FirmwareRange[];
  /** The e820 table after the kernel's early fix-ups (x86_64), else the firmware map. */
  kernelMap: FirmwareRange[];
  /** arm64 devicetree `/memory` nodes (empty on x86_64). */
  dtMemory: DtMemoryNode[];
  nodes: NumaNode[];
  /** Usable RAM as memblock sees it (page-trimmed kernel RAM ranges split by node), ascending. */
  ram: RamRange[];
  /** End of the highest RAM range. */
  ramTop: bigint;
}

const G = 1n << 30n;
const M = 1n << 20n;
export const FOUR_GIB = 4n * G;
export const HT_WINDOW_START = 0xfd00000000n;
export const ONE_TIB = 1n << 40n;
export const SEABIOS_RESERVED = 0x23000n;
export const ARM64_RAM_BASE = 0x40000000n;
const NUMA_GRANULE = 8n * M;

interface RamSegment {
  start: bigint;
  end: bigint;
}

/** Where the machine's RAM bytes live in physical address space, in RAM order. */
function ramSegments(spec: MachineSpec): RamSegment[] {
  if (spec.arch === 'arm64') return [{ start: ARM64_RAM_BASE, end: ARM64_RAM_BASE + spec.memorySize }];
  const low = spec.memorySize >= 0xe0000000n ? 3n * G : spec.memorySize;
  const high = spec.memorySize - low;
  const segs: RamSegment[] = [{ start: 0n, end: low }];
  if (high > 0n) {
    const base = FOUR_GIB + high > HT_WINDOW_START ? ONE_TIB : FOUR_GIB;
    segs.push({ start: base, end: base + high });
  }
  return segs;
}

/** Physical address of RAM byte `offset` (0 <= offset < memorySize). */
function ramOffsetToPhys(segs: RamSegment[], offset: bigint): bigint {
  let off = offset;
  for (const s of segs) {
    const len = s.end - s.start;
    if (off < len) return s.start + off;
    off -= len;
  }
  const last = segs[segs.length - 1];
  return last.end + off;
}

function splitNodes(spec: MachineSpec, segs: RamSegment[]): NumaNode[] {
  const n = BigInt(spec.numaNodes);
  const per = n === 1n ? spec.memorySize : (spec.memorySize / n / NUMA_GRANULE) * NUMA_GRANULE;
  const nodes: NumaNode[] = [];
  for (let i = 0n; i < n; i++) {
    const offStart = i * per;
    const offEnd = i === n - 1n ? spec.memorySize : offStart + per;
    let start = ramOffsetToPhys(segs, offStart);
    if (i === 0n && spec.arch === 'x86_64') start = 0n;
    const end = ramOffsetToPhys(segs, offEnd - 1n) + 1n;
    nodes.push({ nid: Number(i), start, end, ramBytes: offEnd - offStart });
  }
  return nodes;
}

function x86FirmwareMap(segs: RamSegment[]): FirmwareRange[] {
  const low = segs[0].end;
  const map: FirmwareRange[] = [
    { start: 0n, end: 0x9fc00n, type: 'ram' },
    { start: 0x9fc00n, end: 0xa0000n, type: 'reserved' },
    { start: 0xf0000n, end: 0x100000n, type: 'reserved' },
    { start: 0x100000n, end: low - SEABIOS_RESERVED, type: 'ram' },
    { start: low - SEABIOS_RESERVED, end: low, type: 'reserved' },
    { start: 0xfffc0000n, end: FOUR_GIB, type: 'reserved' },
  ];
  const hi = segs[1];
  const ht: FirmwareRange = { start: HT_WINDOW_START, end: ONE_TIB, type: 'reserved' };
  if (hi && hi.start < HT_WINDOW_START) map.push({ ...hi, type: 'ram' }, ht);
  else if (hi) map.push(ht, { ...hi, type: 'ram' });
  else map.push(ht);
  return map;
}

/** The x86 kernel's early e820 fix-ups: page 0 becomes reserved, RAM in [0xa0000, 1M) is removed. */
function x86KernelMap(fw: FirmwareRange[]): FirmwareRange[] {
  const out: FirmwareRange[] = [];
  for (const r of fw) {
    if (r.type === 'ram' && r.start < 0x1000n) {
      out.push({ start: r.start, end: 0x1000n, type: 'reserved' });
      if (r.end > 0x1000n) out.push({ start: 0x1000n, end: r.end, type: 'ram' });
      continue;
    }
    if (r.type === 'ram' && r.start < 0x100000n && r.end > 0xa0000n) {
      if (r.start < 0xa0000n) out.push({ start: r.start, end: 0xa0000n, type: 'ram' });
      if (r.end > 0x100000n) out.push({ start: 0x100000n, end: r.end, type: 'ram' });
      continue;
    }
    out.push({ ...r });
  }
  return out;
}

const bmin = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const bmax = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/** Split page-trimmed RAM ranges at node boundaries. */
function ramByNode(map: FirmwareRange[], nodes: NumaNode[], pageSize: bigint): RamRange[] {
  const out: RamRange[] = [];
  for (const r of map) {
    if (r.type !== 'ram') continue;
    const start = ((r.start + pageSize - 1n) / pageSize) * pageSize;
    const end = (r.end / pageSize) * pageSize;
    if (start >= end) continue;
    for (const n of nodes) {
      const s = bmax(start, n.start);
      const e = bmin(end, n.end);
      if (s < e) out.push({ start: s, end: e, nid: n.nid });
    }
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

export function buildLayout(spec: MachineSpec): MachineLayout {
  const segs = ramSegments(spec);
  const nodes = splitNodes(spec, segs);
  const pageSize = BigInt(spec.pageSize);
  if (spec.arch === 'arm64') {
    const firmwareMap: FirmwareRange[] = nodes.map((n) => ({ start: n.start, end: n.end, type: 'ram' }));
    const dtMemory: DtMemoryNode[] = nodes.map((n) => ({
      name: `memory@${n.start.toString(16)}`,
      base: n.start,
      size: n.end - n.start,
      ...(spec.numaNodes > 1 ? { numaNodeId: n.nid } : {}),
    }));
    const ram = ramByNode(firmwareMap, nodes, pageSize);
    return { firmwareMap, kernelMap: firmwareMap, dtMemory, nodes, ram, ramTop: ram[ram.length - 1].end };
  }
  const firmwareMap = x86FirmwareMap(segs);
  const kernelMap = x86KernelMap(firmwareMap);
  const ram = ramByNode(kernelMap, nodes, pageSize);
  return { firmwareMap, kernelMap, dtMemory: [], nodes, ram, ramTop: ram[ram.length - 1].end };
}

function hex16(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

/**
 * The kernel's boot listing of the firmware e820 map (`e820__print_table("BIOS-e820")`), with the
 * `[gap ...]` lines Linux 7.x prints between non-adjacent entries.
 */
export function formatE820(map: FirmwareRange[], prefix = 'BIOS-e820'): string[] {
  const lines: string[] = [];
  let prevEnd: bigint | undefined;
  for (const r of map) {
    if (prevEnd !== undefined && r.start > prevEnd)
      lines.push(`${prefix}: [gap ${hex16(prevEnd)}-${hex16(r.start - 1n)}]`);
    const name = r.type === 'ram' ? 'System RAM' : 'device reserved';
    lines.push(`${prefix}: [mem ${hex16(r.start)}-${hex16(r.end - 1n)}]  ${name}`);
    prevEnd = r.end;
  }
  return lines;
}

/** Top-level `/proc/iomem` lines for the RAM and reserved ranges (`%08llx-%08llx : name`). */
export function formatIomem(map: FirmwareRange[]): string[] {
  return map.map(
    (r) =>
      `${r.start.toString(16).padStart(8, '0')}-${(r.end - 1n).toString(16).padStart(8, '0')} : ${
        r.type === 'ram' ? 'System RAM' : 'Reserved'
      }`,
  );
}
