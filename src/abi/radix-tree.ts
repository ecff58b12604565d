/**
 * The KHO preserved-memory radix tree (kho-v2, kho-v3, kho-v4; `include/linux/kho/abi/kexec_handover.h`).
 *
 * Contract (spec §2.1, checked against the Linux 7.3.4 vectors):
 * - Every node is one page. Levels `depth-1 .. 1` are tables of `PAGE_SIZE/8` u64 physical addresses
 *   (native byte order; 0 = empty); level 0 is a leaf bitmap of `PAGE_SIZE*8` bits stored as native
 *   `unsigned long` words (on little-endian bit i is byte i>>3, bit i&7).
 * - A block of `2^order` pages at `pa` (aligned to `PAGE_SIZE << order`) is the key
 *   `(1 << (ORDER_0_LOG2 - order)) | (pa >> (PAGE_SHIFT + order))`, `ORDER_0_LOG2 = 64 - PAGE_SHIFT`.
 *   Leaf bit = low `BITMAP_LOG2 = PAGE_SHIFT+3` key bits; level L table index = the next
 *   `TABLE_LOG2 = PAGE_SHIFT-3` bits from bit `BITMAP_LOG2 + TABLE_LOG2*(L-1)`.
 *   Decoding: `order = ORDER_0_LOG2 + 1 - fls64(key)`, `pa = (key << (PAGE_SHIFT + order)) mod 2^64`.
 * - Depth: 4 KiB pages → 6 levels (52-bit order-0 key), 64 KiB → 4 levels. 16 KiB pages are
 *   **ambiguous**: the kho-v2..v4 header's depth formula `ceil((64-PAGE_SHIFT - BITMAP_LOG2)/TABLE_LOG2)+1`
 *   gives 4 levels, which cannot hold the order bit of an order-0 key (bit 50), and the later kernel fix
 *   "kho: fix KHO_TREE_MAX_DEPTH for non-4KB page sizes" (key width `65-PAGE_SHIFT`) gives 5. Which one a
 *   kernel uses is not visible in the blob, so `radixGeometry(16384)` throws `KHO_UNSUPPORTED_PAGE_SIZE`.
 * - The root is always a top-level table and always exists; the root FDT's `preserved-memory-map` is
 *   its physical address. Tree pages are not themselves preserved.
 *
 * The decoder never trusts pointers: an unaligned or zero root, child pointers outside the image or not
 * page-aligned, a node page reached twice (loop or shared subtree), impossible keys, and more nodes or
 * blocks than the caps give `KHO_RADIX_*` / `KHO_PTR_OUTSIDE_MEMORY` errors naming the physical address
 * and the index path (`/L5[2]/L4[0]/.../bit 5`). Each page is read at most once, so work is bounded by
 * the image size. The encoder follows the kernel's insert path (walk top → 1, allocating missing
 * children in that order), so a simulator with the kernel's allocator gets the kernel's addresses.
 */
import { type Finding, findingFromError, isKhoError, KhoError } from '../errors.ts';
import { decodeBitmapChunks } from './bitmap-chunks.ts';
import {
  cmpBig,
  hex,
  type PhysMemory,
  type PhysMemoryWriter,
  type PhysRange,
  physPath,
  u64Bytes,
  view,
} from './memory/image.ts';
import type { AbiProfile, Endianness } from './profile.ts';

/** Profiles whose memory map is this radix tree. */
export const RADIX_TREE_PROFILES = ['kho-v2', 'kho-v3', 'kho-v4', 'kho-v4-bootmem'] as const;

export interface RadixGeometry {
  pageSize: number;
  pageShift: number;
  /** 64 - PAGE_SHIFT: position of the order bit of an order-0 key. */
  order0Log2: number;
  /** log2(PAGE_SIZE / 8): index bits per table level. */
  tableLog2: number;
  /** PAGE_SHIFT + 3: index bits of a leaf bitmap. */
  bitmapLog2: number;
  /** Levels including the leaf level (6 for 4 KiB pages). */
  depth: number;
  /** Largest order a key can encode (ORDER_0_LOG2). */
  maxOrder: number;
}

export function radixGeometry(pageSize = 4096): RadixGeometry {
  if (pageSize === 16384) {
    throw new KhoError(
      'KHO_UNSUPPORTED_PAGE_SIZE',
      'the radix tree is ambiguous for 16 KiB pages: the kho-v2..v4 depth formula gives 4 levels, which ' +
        'cannot hold an order-0 key (51 bits), and the later kernel fix gives 5; the blob does not say which',
      { expected: '4096 or 65536' },
    );
  }
  if (pageSize !== 4096 && pageSize !== 65536) {
    throw new KhoError(
      'KHO_UNSUPPORTED_PAGE_SIZE',
      `the radix tree is not defined for page size ${pageSize}`,
      {
        expected: '4096 or 65536',
      },
    );
  }
  const pageShift = Math.log2(pageSize);
  const order0Log2 = 64 - pageShift;
  const tableLog2 = pageShift - 3;
  const bitmapLog2 = pageShift + 3;
  const depth = Math.ceil((order0Log2 - bitmapLog2) / tableLog2) + 1;
  return { pageSize, pageShift, order0Log2, tableLog2, bitmapLog2, depth, maxOrder: order0Log2 };
}

export interface PreservedBlock {
  pa: bigint;
  order: number;
}

/** The key of a block; throws `KHO_RADIX_BAD_BLOCK` for an impossible order or unaligned address. */
export function radixKey(pa: bigint, order: number, geo: RadixGeometry = radixGeometry()): bigint {
  if (!Number.isInteger(order) || order < 0 || order > geo.maxOrder) {
    throw new KhoError('KHO_RADIX_BAD_BLOCK', `order ${order} is out of range`, {
      expected: `0..${geo.maxOrder}`,
      path: physPath(pa),
    });
  }
  const shift = BigInt(geo.pageShift + order);
  if (pa < 0n || pa >= 1n << 64n || pa % (1n << shift) !== 0n) {
    throw new KhoError(
      'KHO_RADIX_BAD_BLOCK',
      `block ${hex(pa)} is not aligned to its size (order ${order})`,
      {
        path: physPath(pa),
        expected: `a multiple of ${hex(1n << shift)}`,
      },
    );
  }
  return (1n << BigInt(geo.order0Log2 - order)) | (pa >> shift);
}

function fls64(v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length;
}

/** Decode a key; returns undefined when it encodes no valid block (zero, or bits above the order-0 bit). */
export function decodeRadixKey(
  key: bigint,
  geo: RadixGeometry = radixGeometry(),
): PreservedBlock | undefined {
  const f = fls64(key);
  if (f === 0 || f > geo.order0Log2 + 1) return undefined;
  const order = geo.order0Log2 + 1 - f;
  const pa = BigInt.asUintN(64, key << BigInt(geo.pageShift + order));
  return { pa, order };
}

/** Table index of `key` at `level` (1..depth-1), or the leaf bit at level 0. */
export function radixIndex(key: bigint, level: number, geo: RadixGeometry = radixGeometry()): number {
  if (level === 0) return Number(key & ((1n << BigInt(geo.bitmapLog2)) - 1n));
  const shift = BigInt(geo.bitmapLog2 + geo.tableLog2 * (level - 1));
  return Number((key >> shift) & ((1n << BigInt(geo.tableLog2)) - 1n));
}

/** Byte offset and bit mask of leaf bit `i` for a native `unsigned long` bitmap. */
function leafBitPos(i: number, endian: Endianness): [number, number] {
  if (endian === 'little') return [i >> 3, 1 << (i & 7)];
  const word = i >> 6;
  const b = i & 63;
  return [word * 8 + (7 - (b >> 3)), 1 << (b & 7)];
}

/** Leaf bit number of byte `j`, bit `k` (inverse of leafBitPos). */
function leafBitIndex(j: number, k: number, endian: Endianness): number {
  if (endian === 'little') return j * 8 + k;
  return (j >> 3) * 64 + (7 - (j & 7)) * 8 + k;
}

export interface RadixNodeInfo {
  pa: bigint;
  /** depth-1 for the root, 0 for leaves. */
  level: number;
  /** Table indices from the root down to this node. */
  path: number[];
}

export interface RadixDecodeOptions {
  pageSize?: number;
  endian?: Endianness;
  /** Cap on tree pages visited (default: 1 << 20). */
  maxNodes?: number;
  /** Cap on blocks returned (default: 1 << 22). */
  maxBlocks?: number;
}

export interface RadixDecodeResult {
  root: bigint;
  /** Blocks sorted by address (then order). */
  blocks: PreservedBlock[];
  /** Every tree page, in walk order (depth-first, indices ascending). */
  nodes: RadixNodeInfo[];
}

function pathText(geo: RadixGeometry, path: number[], tail?: string): string {
  const parts = path.map((idx, i) => `L${geo.depth - 1 - i}[${idx}]`);
  return `/${parts.join('/')}${tail ? `/${tail}` : ''}`;
}

/**
 * Walk the tree at `root`, calling `issue` for each problem. Throws from `issue` stop the walk
 * (decode); returning skips the broken part (validate).
 */
function walk(
  mem: PhysMemory,
  root: bigint,
  opts: RadixDecodeOptions,
  issue: (e: KhoError) => void,
): RadixDecodeResult {
  const geo = radixGeometry(opts.pageSize ?? 4096);
  const endian = opts.endian ?? 'little';
  const le = endian === 'little';
  const maxNodes = opts.maxNodes ?? 1 << 20;
  const maxBlocks = opts.maxBlocks ?? 1 << 22;
  const ps = BigInt(geo.pageSize);
  const blocks: PreservedBlock[] = [];
  const nodes: RadixNodeInfo[] = [];
  const seen = new Set<bigint>();
  const entries = geo.pageSize / 8;
  const top = geo.depth - 1;
  let stopped = false;

  const checkPage = (pa: bigint, path: number[], what: string): boolean => {
    const where = `${pathText(geo, path)} (${physPath(pa)})`;
    if (pa % ps !== 0n) {
      issue(
        new KhoError('KHO_RADIX_UNALIGNED', `${what} ${hex(pa)} is not page-aligned`, {
          path: where,
          expected: `a multiple of ${hex(ps)}`,
        }),
      );
      return false;
    }
    if (!mem.has(pa, geo.pageSize)) {
      issue(
        new KhoError('KHO_PTR_OUTSIDE_MEMORY', `${what} ${hex(pa)} is outside the memory image`, {
          path: where,
        }),
      );
      return false;
    }
    if (seen.has(pa)) {
      issue(
        new KhoError(
          'KHO_RADIX_LOOP',
          `${what} ${hex(pa)} is reached a second time (a cycle or a shared subtree)`,
          { path: where, expected: 'each tree page referenced once' },
        ),
      );
      return false;
    }
    if (seen.size >= maxNodes) {
      issue(
        new KhoError('KHO_RADIX_TOO_MANY_NODES', `more than ${maxNodes} tree pages`, {
          path: where,
        }),
      );
      stopped = true;
      return false;
    }
    seen.add(pa);
    return true;
  };

  const visit = (pa: bigint, level: number, path: number[], prefix: bigint): void => {
    nodes.push({ pa, level, path });
    const page = mem.read(pa, geo.pageSize);
    if (level === 0) {
      // Above the leaf bits the prefix is fixed, so every key of this leaf has the same order unless the
      // prefix is 0 (then the bit itself carries the order bit).
      const fixed = prefix === 0n ? undefined : decodeRadixKey(prefix, geo);
      const blockShift = fixed ? BigInt(geo.pageShift + fixed.order) : 0n;
      for (let j = 0; j < page.length && !stopped; j++) {
        const byte = page[j];
        if (byte === 0) continue;
        for (let k = 0; k < 8; k++) {
          if (!(byte & (1 << k))) continue;
          const bit = leafBitIndex(j, k, endian);
          let block: PreservedBlock | undefined;
          if (fixed)
            block = { pa: BigInt.asUintN(64, fixed.pa + (BigInt(bit) << blockShift)), order: fixed.order };
          else if (prefix === 0n) block = decodeRadixKey(BigInt(bit), geo);
          if (!block) {
            const key = prefix | BigInt(bit);
            issue(
              new KhoError('KHO_RADIX_BAD_KEY', `key ${hex(key)} encodes no block`, {
                path: `${pathText(geo, path, `bit ${bit}`)} (${physPath(pa)})`,
                expected: `a key with its highest set bit at or below bit ${geo.order0Log2}`,
              }),
            );
            continue;
          }
          if (blocks.length >= maxBlocks) {
            issue(
              new KhoError('KHO_RADIX_TOO_MANY_BLOCKS', `more than ${maxBlocks} preserved blocks`, {
                path: `${pathText(geo, path, `bit ${bit}`)} (${physPath(pa)})`,
              }),
            );
            stopped = true;
            return;
          }
          blocks.push(block);
        }
      }
      return;
    }
    const dv = view(page);
    const shift = BigInt(geo.bitmapLog2 + geo.tableLog2 * (level - 1));
    for (let idx = 0; idx < entries && !stopped; idx++) {
      const child = dv.getBigUint64(idx * 8, le);
      if (child === 0n) continue;
      const childPrefix = prefix | (BigInt(idx) << shift);
      const childPath = [...path, idx];
      if (childPrefix >> BigInt(geo.order0Log2 + 1) !== 0n) {
        issue(
          new KhoError(
            'KHO_RADIX_BAD_KEY',
            `table entry ${idx} at level ${level} leads only to keys above the order-0 bit`,
            {
              path: `${pathText(geo, childPath)} (${physPath(pa)})`,
              expected: `key bits above bit ${geo.order0Log2} clear`,
            },
          ),
        );
        continue;
      }
      if (!checkPage(child, childPath, `level-${level - 1} node`)) continue;
      visit(child, level - 1, childPath, childPrefix);
    }
  };

  if (root === 0n) {
    issue(
      new KhoError('KHO_RADIX_NO_ROOT', 'the radix tree root address is 0', { expected: 'a page address' }),
    );
  } else if (checkPage(root, [], 'root')) {
    visit(root, top, [], 0n);
  }
  blocks.sort((a, b) => cmpBig(a.pa, b.pa) || a.order - b.order);
  return { root, blocks, nodes };
}

/** Decode the tree at `root`; throws the first problem as a `KhoError`. */
export function decodeRadixTree(
  mem: PhysMemory,
  root: bigint,
  opts: RadixDecodeOptions = {},
): RadixDecodeResult {
  return walk(mem, root, opts, (e) => {
    throw e;
  });
}

/**
 * Every problem of the tree at `root`, not only the first: structural errors (as in decode) plus
 * warnings for blocks that overlap each other.
 */
export function validateRadixTree(mem: PhysMemory, root: bigint, opts: RadixDecodeOptions = {}): Finding[] {
  const findings: Finding[] = [];
  let res: RadixDecodeResult;
  try {
    res = walk(mem, root, opts, (e) => {
      findings.push(findingFromError(e));
    });
  } catch (e) {
    if (isKhoError(e)) return [...findings, findingFromError(e)];
    throw e;
  }
  const geo = radixGeometry(opts.pageSize ?? 4096);
  let prevEnd = -1n;
  let prev: PreservedBlock | undefined;
  for (const b of res.blocks) {
    const end = b.pa + (BigInt(geo.pageSize) << BigInt(b.order));
    if (prev && b.pa < prevEnd) {
      findings.push({
        code: 'KHO_RADIX_OVERLAP',
        severity: 'warning',
        message: `block ${hex(b.pa)} order ${b.order} overlaps block ${hex(prev.pa)} order ${prev.order}`,
        path: physPath(b.pa),
      });
    }
    if (end > prevEnd) {
      prevEnd = end;
      prev = b;
    }
  }
  return findings;
}

export interface RadixWriterOptions {
  pageSize?: number;
  endian?: Endianness;
  /** Use an existing (zeroed, already written) root page instead of allocating one. */
  root?: bigint;
}

/**
 * Builds a radix tree into a `PhysMemoryWriter` the way the kernel does: the root is allocated first
 * (`kho_init`), `add()` walks from the top level down to level 1 allocating each missing child (in that
 * order), then sets the leaf bit; `remove()` clears the bit and frees nothing. Every change is written
 * through immediately, so the writer's memory is always a valid tree.
 */
export class RadixTreeWriter {
  readonly root: bigint;
  readonly geometry: RadixGeometry;
  /** Tree pages in allocation order (root first unless given). */
  readonly pages: bigint[] = [];
  private readonly endian: Endianness;
  private readonly tables = new Map<bigint, Map<number, bigint>>();
  private readonly leaves = new Map<bigint, Uint8Array>();

  constructor(
    private readonly writer: PhysMemoryWriter,
    opts: RadixWriterOptions = {},
  ) {
    this.geometry = radixGeometry(opts.pageSize ?? writer.pageSize);
    this.endian = opts.endian ?? 'little';
    if (opts.root !== undefined) {
      this.root = opts.root;
      this.tables.set(this.root, new Map());
    } else {
      this.root = this.newPage(false);
    }
  }

  private newPage(leaf: boolean): bigint {
    const pa = this.writer.allocPage();
    this.writer.write(pa, new Uint8Array(this.geometry.pageSize));
    this.pages.push(pa);
    if (leaf) this.leaves.set(pa, new Uint8Array(this.geometry.pageSize));
    else this.tables.set(pa, new Map());
    return pa;
  }

  /** The leaf page for `key`, allocating the path when `create`. */
  private leafFor(key: bigint, create: boolean): bigint | undefined {
    let node = this.root;
    for (let level = this.geometry.depth - 1; level > 0; level--) {
      const idx = radixIndex(key, level, this.geometry);
      const table = this.tables.get(node)!;
      let child = table.get(idx);
      if (child === undefined) {
        if (!create) return undefined;
        child = this.newPage(level === 1);
        table.set(idx, child);
        this.writer.write(node + BigInt(idx * 8), u64Bytes(child, this.endian));
      }
      node = child;
    }
    return node;
  }

  private setBit(pa: bigint, order: number, on: boolean): boolean {
    const key = radixKey(pa, order, this.geometry);
    const leaf = this.leafFor(key, on);
    if (leaf === undefined) return false;
    const [byte, mask] = leafBitPos(radixIndex(key, 0, this.geometry), this.endian);
    const bytes = this.leaves.get(leaf)!;
    const was = (bytes[byte] & mask) !== 0;
    bytes[byte] = on ? bytes[byte] | mask : bytes[byte] & ~mask;
    this.writer.write(leaf + BigInt(byte), bytes.subarray(byte, byte + 1));
    return was;
  }

  /** Mark a block preserved (idempotent: bits have no reference count). */
  add(pa: bigint, order: number): void {
    this.setBit(pa, order, true);
  }

  /** Clear a block's bit; returns whether it was set. Nodes are never freed. */
  remove(pa: bigint, order: number): boolean {
    return this.setBit(pa, order, false);
  }
}

/** Encode blocks into a fresh tree (inserted in the given order); returns the root and tree pages. */
export function encodeRadixTree(
  blocks: Iterable<PreservedBlock>,
  writer: PhysMemoryWriter,
  opts: RadixWriterOptions = {},
): { root: bigint; pages: bigint[] } {
  const w = new RadixTreeWriter(writer, opts);
  for (const b of blocks) w.add(b.pa, b.order);
  return { root: w.root, pages: [...w.pages] };
}

/** Merge blocks into sorted physical ranges (adjacent and overlapping blocks join). */
export function mergeBlockRanges(blocks: Iterable<PreservedBlock>, pageSize = 4096): PhysRange[] {
  const spans = [...blocks]
    .map((b) => ({ start: b.pa, size: BigInt(pageSize) << BigInt(b.order) }))
    .sort((a, b) => cmpBig(a.start, b.start));
  const out: PhysRange[] = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && s.start <= last.start + last.size) {
      const end = s.start + s.size;
      if (end > last.start + last.size) last.size = end - last.start;
    } else out.push({ ...s });
  }
  return out;
}

/** How many blocks of each order. */
export function countBlocksByOrder(blocks: Iterable<PreservedBlock>): Record<number, number> {
  const out: Record<number, number> = {};
  for (const b of blocks) out[b.order] = (out[b.order] ?? 0) + 1;
  return out;
}

/** Total bytes covered by the blocks (overlaps counted once per block). */
export function blocksBytes(blocks: Iterable<PreservedBlock>, pageSize = 4096): bigint {
  let n = 0n;
  for (const b of blocks) n += BigInt(pageSize) << BigInt(b.order);
  return n;
}

/**
 * Decode the `preserved-memory-map` of any era: bitmap chunks for the kho-v1 profiles (0 = nothing
 * serialized), the radix tree otherwise. An `AbiProfile` from `getProfile()` carries the page size and
 * byte order, so it can be passed as the options of every decoder in this directory.
 */
export function decodePreservedMemoryMap(
  mem: PhysMemory,
  address: bigint,
  profile: Pick<AbiProfile, 'memoryMap' | 'pageSize' | 'endian'>,
): { format: AbiProfile['memoryMap']; blocks: PreservedBlock[]; trackerPages: bigint[] } {
  if (profile.memoryMap === 'bitmap-chunks') {
    const r = decodeBitmapChunks(mem, address, profile);
    return {
      format: 'bitmap-chunks',
      blocks: r.blocks,
      trackerPages: [
        ...r.chunks.map((c) => c.pa),
        ...r.chunks.flatMap((c) => c.entries.map((e) => e.bitmap)),
      ],
    };
  }
  const r = decodeRadixTree(mem, address, profile);
  return { format: 'radix-tree', blocks: r.blocks, trackerPages: r.nodes.map((n) => n.pa) };
}
