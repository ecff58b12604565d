/**
 * Machine specifications: what a simulated machine is made of, validated.
 *
 * Contract: `resolveMachineSpec(input)` turns a loose description (`{ memory: '8G', numa: 2 }`) into a
 * `MachineSpec` with every derived constant the kernel model needs (page shift, MAX_PAGE_ORDER,
 * pageblock order, CMA_MIN_ALIGNMENT_BYTES, ARCH_LOW_ADDRESS_LIMIT), or throws `KhoError('SIM_BAD_SPEC')`
 * naming the field and what would be valid. Sizes are `bigint` bytes.
 *
 * Arch constants (Linux 7.3, default Kconfig):
 * - x86_64: 4 KiB pages only, MAX_PAGE_ORDER 10, pageblock order 9 (2 MiB = HPAGE), ARCH_LOW_ADDRESS_LIMIT
 *   0xffffffff (the generic default in include/linux/memblock.h: an inclusive-style end, 4 GiB - 1).
 * - arm64: 4 KiB (MAX_PAGE_ORDER 10, pageblock 9 → 2 MiB), 16 KiB (11, 11 → 32 MiB), 64 KiB (13, 13 →
 *   512 MiB): ARCH_FORCE_MAX_ORDER defaults and pageblock_order = min(HUGETLB_PAGE_ORDER, MAX_PAGE_ORDER)
 *   with HPAGE = PMD size. ARCH_LOW_ADDRESS_LIMIT is `arm64_dma_phys_limit - 1`; with RAM starting
 *   below 4 GiB (QEMU virt: at 1 GiB) and no firmware DMA constraint, arm64_dma_phys_limit =
 *   min(4 GiB, end of DRAM) (`max_zone_phys`), so the limit is min(4 GiB, 1 GiB + RAM) - 1.
 */
import { KhoError } from '../../errors.ts';

export type Arch = 'x86_64' | 'arm64';
export const ARCHES: readonly Arch[] = ['x86_64', 'arm64'];

export interface MachineSpecInput {
  /** Installed RAM: bytes, or a size string like `8G`, `512M`, `1T`, `2GiB`. */
  memory: bigint | number | string;
  /** NUMA node count (default 1): RAM is split evenly, each node one contiguous range. */
  numa?: number;
  /** Page size in bytes or `4K`/`16K`/`64K` (default 4K; larger sizes are arm64-only). */
  pageSize?: number | string;
  /** Architecture (default x86_64). */
  arch?: Arch;
}

export interface MachineSpec {
  arch: Arch;
  memorySize: bigint;
  numaNodes: number;
  pageSize: number;
  pageShift: number;
  /** MAX_PAGE_ORDER: the largest buddy order. */
  maxPageOrder: number;
  /** pageblock_order: migrate types are tracked per pageblock. */
  pageblockOrder: number;
  /** CMA_MIN_ALIGNMENT_BYTES = PAGE_SIZE << pageblock_order (scratch alignment). */
  cmaMinAlignment: bigint;
  /** ARCH_LOW_ADDRESS_LIMIT (the lowmem scratch bound). */
  archLowAddressLimit: bigint;
}

/** Where QEMU virt (arm64) puts RAM. */
const ARM64_RAM_START = 0x40000000n;

/** Smallest machine the model accepts (64 MiB) and smallest node (16 MiB). */
export const MIN_MEMORY = 64n << 20n;
export const MIN_NODE_MEMORY = 16n << 20n;
/** Largest machine the model accepts: 64 TiB. */
export const MAX_MEMORY = 64n << 40n;
/** MAX_NUMA_NODES with NODES_SHIFT 6. */
export const MAX_NUMA_NODES = 64;

const UNITS: Record<string, number> = { '': 0, K: 10, M: 20, G: 30, T: 40, P: 50 };

/** Parse a human size: digits, optional K/M/G/T/P (any case), optional `B`/`iB`. Binary units. */
export function parseSize(text: string, field = 'size'): bigint {
  const m = /^\s*(\d{1,20})\s*([kmgtpKMGTP]?)(?:i?[bB])?\s*$/.exec(text);
  if (!m)
    throw new KhoError('SIM_BAD_SPEC', `${field} '${text}' is not a size`, {
      path: field,
      expected: 'a whole number with an optional K/M/G/T/P suffix, e.g. 8G',
    });
  return BigInt(m[1]) << BigInt(UNITS[m[2].toUpperCase()]);
}

/** Format a byte count the short way (`2G`, `512M`, `4096`). */
export function formatSize(bytes: bigint): string {
  for (const [u, s] of [
    ['T', 40n],
    ['G', 30n],
    ['M', 20n],
    ['K', 10n],
  ] as const) {
    if (bytes >= 1n << s && bytes % (1n << s) === 0n) return `${bytes >> s}${u}`;
  }
  return bytes.toString();
}

function bad(field: string, message: string, expected: string): never {
  throw new KhoError('SIM_BAD_SPEC', message, { path: field, expected });
}

/** Validate and complete a machine description. */
export function resolveMachineSpec(input: MachineSpecInput): MachineSpec {
  if (typeof input !== 'object' || input === null) bad('spec', 'machine spec is not an object', 'an object');
  const arch = input.arch ?? 'x86_64';
  if (!ARCHES.includes(arch)) bad('arch', `unknown arch '${String(arch)}'`, ARCHES.join(' or '));

  let pageSize: number;
  const ps = input.pageSize ?? 4096;
  if (typeof ps === 'string') {
    const v = parseSize(ps, 'pageSize');
    pageSize = Number(v);
  } else pageSize = ps;
  const allowed = arch === 'arm64' ? [4096, 16384, 65536] : [4096];
  if (!allowed.includes(pageSize))
    bad(
      'pageSize',
      `page size ${pageSize} is not supported on ${arch}`,
      allowed.map((p) => `${p / 1024}K`).join(', '),
    );

  let memorySize: bigint;
  const mem = input.memory;
  if (typeof mem === 'bigint') memorySize = mem;
  else if (typeof mem === 'number') {
    if (!Number.isSafeInteger(mem)) bad('memory', `memory ${mem} is not a whole number`, 'bytes');
    memorySize = BigInt(mem);
  } else if (typeof mem === 'string') memorySize = parseSize(mem, 'memory');
  else bad('memory', 'memory size is missing', 'e.g. 8G');
  if (memorySize < MIN_MEMORY || memorySize > MAX_MEMORY)
    bad('memory', `memory ${formatSize(memorySize)} out of range`, '64M to 64T');
  if (memorySize % BigInt(pageSize) !== 0n)
    bad('memory', `memory ${memorySize} is not a multiple of the page size ${pageSize}`, 'whole pages');

  const numaNodes = input.numa ?? 1;
  if (!Number.isInteger(numaNodes) || numaNodes < 1 || numaNodes > MAX_NUMA_NODES)
    bad('numa', `NUMA node count ${numaNodes} out of range`, `1 to ${MAX_NUMA_NODES}`);
  if (memorySize / BigInt(numaNodes) < MIN_NODE_MEMORY)
    bad('numa', `${numaNodes} nodes leave less than 16M per node`, 'at least 16M of memory per node');

  const pageShift = Math.log2(pageSize);
  const maxPageOrder = pageSize === 4096 ? 10 : pageSize === 16384 ? 11 : 13;
  const pageblockOrder = pageSize === 4096 ? 9 : pageSize === 16384 ? 11 : 13;
  return {
    arch,
    memorySize,
    numaNodes,
    pageSize,
    pageShift,
    maxPageOrder,
    pageblockOrder,
    cmaMinAlignment: BigInt(pageSize) << BigInt(pageblockOrder),
    archLowAddressLimit:
      arch === 'arm64' && ARM64_RAM_START + memorySize < 1n << 32n
        ? ARM64_RAM_START + memorySize - 1n
        : 0xffffffffn,
  };
}
