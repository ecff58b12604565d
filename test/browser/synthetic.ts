/**
 * Synthetic memory-map inputs for the renderer tests: a machine of `bytes` RAM over `nodes` nodes, with
 * scratch areas, a reserve_mem region, kexec segments and `tiny` scattered 4 KiB preserved pages (plus
 * their tracker pages), placed by a fixed linear congruential sequence, so every run is the same.
 * Each tiny page is known in advance: `expected` lists every region the map must contain.
 */
import type { MapInput } from '../../src/map/model.ts';

export interface Synthetic {
  input: MapInput;
  /** Tiny preserved pages (start addresses), sorted. */
  tinyPages: bigint[];
}

export function syntheticInput(bytes: bigint, nodes: number, tiny: number, seed = 1): Synthetic {
  const PAGE = 4096n;
  const perNode = bytes / BigInt(nodes);
  const nodeList = Array.from({ length: nodes }, (_, i) => ({
    nid: i,
    start: BigInt(i) * perNode,
    end: BigInt(i + 1) * perNode,
  }));
  let x = seed >>> 0 || 1;
  const next = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x;
  };
  const pages = new Set<bigint>();
  const totalPages = bytes / PAGE;
  while (pages.size < tiny) {
    // Two draws: 32 bits are too few for a page index in 1 TiB (2^28 pages), so combine.
    const idx = ((BigInt(next()) << 16n) ^ BigInt(next())) % totalPages;
    // Keep clear of the first MiB and the top 64 MiB (reserved and scratch below).
    const pa = idx * PAGE;
    if (pa < 1n << 20n || pa >= bytes - (64n << 20n)) continue;
    pages.add(pa);
  }
  const tinyPages = [...pages].sort((a, b) => (a < b ? -1 : 1));
  const top = bytes - (64n << 20n);
  return {
    tinyPages,
    input: {
      source: `synthetic ${bytes} bytes`,
      pageSize: 4096,
      iomem: [
        { start: 0n, end: 0x1000n, name: 'Reserved', depth: 0 },
        { start: 0x1000n, end: bytes, name: 'System RAM', depth: 0 },
        { start: 0x1000000n, end: 0x1e34e48n, name: 'Kernel code', depth: 1 },
      ],
      nodes: nodeList,
      scratch: [
        { addr: top, size: 16n << 20n, role: 'lowmem' },
        { addr: top + (16n << 20n), size: 0n, role: 'global' },
        ...nodeList.map((n, i) => ({
          addr: n.start + (n.end - n.start) / 2n,
          size: 16n << 20n,
          role: `node${i}`,
        })),
      ],
      preserved: tinyPages.map((pa) => ({ pa, order: 0 })),
      trackerPages: [top + (40n << 20n), top + (40n << 20n) + PAGE],
      reserveMem: [{ name: 'trace_buf', start: top + (44n << 20n), size: 8n << 20n }],
      kexecSegments: [{ name: 'kernel', start: top + (2n << 20n), size: 8n << 20n }],
    },
  };
}
