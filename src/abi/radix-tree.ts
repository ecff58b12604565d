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
 *
 * Scale (a 1 TiB machine preserving 64 Mi pages is ~14 M blocks): `PackedBlocks` holds blocks as
 * parallel typed arrays (`pfn: Float64Array`, `order: Uint8Array`; bigint only at the API boundary).
 * `encodeRadixTreePacked` builds every page in memory with double arithmetic per block (per-order leaf
 * cache, a path walk only for a new leaf) and writes each page once; `decodeRadixTreePacked` walks the
 * tables (all checks and caps as above, counting each leaf's bits), then scans leaves word by word
 * (`Math.clz32` on the lowest set bit) into exactly-sized arrays, one sorted run per order, merged in
 * place. `encodeRadixTree`, `decodeRadixTree` and `validateRadixTree` are thin wrappers over these
 * (`packBlocks` / `unpackBlocks`), with the same pages, blocks and errors as before. One difference
 * from the byte-by-byte walk: in big-endian trees, bits within a 64-bit leaf word are visited in
 * ascending bit order (was: byte order), which matters only when `maxBlocks` is reached inside such a
 * word (which bit the error names, which blocks `validateRadixTree` kept).
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
 * Blocks in compact form, for maps with millions of blocks: parallel typed arrays where block `i` is
 * `2^order[i]` pages at page frame number `pfn[i]` (physical address `pfn × PAGE_SIZE`). A pfn is below
 * 2^52 (4 KiB pages; 2^48 for 64 KiB), so a double holds it exactly. Only the first `length` entries
 * count; the arrays may be longer.
 */
export interface PackedBlocks {
  length: number;
  pfn: Float64Array;
  order: Uint8Array;
}

/** Whether this machine stores a Uint32Array little-endian. */
const NATIVE_LE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** 2^i for i = 0..64, exact doubles. */
const POW2 = Float64Array.from({ length: 65 }, (_, i) => 2 ** i);

/**
 * Blocks → packed form (pfn in units of `pageSize`). Throws `KHO_RADIX_BAD_BLOCK` for an order that is
 * not an integer in 0..255 and for an address that is negative, at or above 2^64 or not page-aligned.
 */
export function packBlocks(blocks: Iterable<PreservedBlock>, pageSize = 4096): PackedBlocks {
  const ps = BigInt(pageSize);
  let pfn = new Float64Array(64);
  let order = new Uint8Array(64);
  let n = 0;
  for (const b of blocks) {
    if (!Number.isInteger(b.order) || b.order < 0 || b.order > 255) {
      throw new KhoError('KHO_RADIX_BAD_BLOCK', `order ${b.order} is out of range`, {
        expected: '0..255',
        path: physPath(b.pa),
      });
    }
    if (b.pa < 0n || b.pa >= 1n << 64n || b.pa % ps !== 0n) {
      throw new KhoError(
        'KHO_RADIX_BAD_BLOCK',
        `block ${hex(b.pa)} is not aligned to its size (order ${b.order})`,
        { path: physPath(b.pa), expected: `a multiple of ${hex(ps << BigInt(b.order))}` },
      );
    }
    if (n === pfn.length) {
      const p2 = new Float64Array(n * 2);
      p2.set(pfn);
      pfn = p2;
      const o2 = new Uint8Array(n * 2);
      o2.set(order);
      order = o2;
    }
    pfn[n] = Number(b.pa / ps);
    order[n++] = b.order;
  }
  return { length: n, pfn, order };
}

/** Packed form → block objects (`pa = pfn × pageSize`). */
export function unpackBlocks(p: PackedBlocks, pageSize = 4096): PreservedBlock[] {
  const ps = BigInt(pageSize);
  const out: PreservedBlock[] = new Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = { pa: BigInt(p.pfn[i]) * ps, order: p.order[i] };
  return out;
}

/** Merge sorted `src[lo, mid)` and `src[mid, hi)` into `dst` from `at`, by (pfn, order). */
function mergeInto(
  sp: Float64Array,
  so: Uint8Array,
  lo: number,
  mid: number,
  hi: number,
  dp: Float64Array,
  dO: Uint8Array,
  at: number,
): void {
  let i = lo;
  let j = mid;
  let k = at;
  while (i < mid && j < hi) {
    const a = sp[i];
    const c = sp[j];
    if (c < a || (c === a && so[j] < so[i])) {
      dp[k] = c;
      dO[k++] = so[j++];
    } else {
      dp[k] = a;
      dO[k++] = so[i++];
    }
  }
  if (i < mid) {
    dp.set(sp.subarray(i, mid), k);
    dO.set(so.subarray(i, mid), k);
    k += mid - i;
  }
  if (j < hi) {
    dp.set(sp.subarray(j, hi), k);
    dO.set(so.subarray(j, hi), k);
  }
}

/** Bottom-up merging of the sorted runs `bounds` (ping-pong with `t*`); returns the arrays holding the result. */
function mergeRuns(
  p: Float64Array,
  o: Uint8Array,
  tp: Float64Array,
  to: Uint8Array,
  bounds: number[],
): [Float64Array, Uint8Array] {
  let sp = p;
  let so = o;
  let dp = tp;
  let dO = to;
  let b = bounds;
  while (b.length > 2) {
    const nb: number[] = [];
    let r = 0;
    for (; r + 2 < b.length; r += 2) {
      mergeInto(sp, so, b[r], b[r + 1], b[r + 2], dp, dO, b[r]);
      nb.push(b[r]);
    }
    if (r + 1 < b.length) {
      dp.set(sp.subarray(b[r], b[r + 1]), b[r]);
      dO.set(so.subarray(b[r], b[r + 1]), b[r]);
      nb.push(b[r]);
    }
    nb.push(b[b.length - 1]);
    [sp, so, dp, dO] = [dp, dO, sp, so];
    b = nb;
  }
  return [sp, so];
}

/**
 * Sort packed blocks in place by (pfn, order). A natural merge sort: decoders produce a few long sorted
 * runs (one per order), so the work is about one pass when one run dominates (it is merged in place with
 * the others, which are sorted in a side buffer of their size), at most log2(runs) passes otherwise.
 */
export function sortPackedBlocks(p: PackedBlocks): void {
  const n = p.length;
  const P = p.pfn;
  const O = p.order;
  const bounds = [0];
  for (let i = 1; i < n; i++) {
    const a = P[i - 1];
    const b = P[i];
    if (b < a || (b === a && O[i] < O[i - 1])) bounds.push(i);
  }
  bounds.push(n);
  if (bounds.length <= 2) return;
  let big = 0;
  for (let r = 1; r + 1 < bounds.length; r++)
    if (bounds[r + 1] - bounds[r] > bounds[big + 1] - bounds[big]) big = r;
  const bigStart = bounds[big];
  const bigEnd = bounds[big + 1];
  const s = n - (bigEnd - bigStart);
  if (s * 2 > n) {
    // No dominant run: plain ping-pong merging with a full-size buffer.
    const [rp, ro] = mergeRuns(P, O, new Float64Array(n), new Uint8Array(n), bounds);
    if (rp !== P) {
      P.set(rp.subarray(0, n));
      O.set(ro.subarray(0, n));
    }
    return;
  }
  // Move the other runs out (sorting them among themselves), the big run to the end, then merge forward
  // in place: the write index never passes the big run's read index.
  const sp = new Float64Array(s);
  const so = new Uint8Array(s);
  const sb = [0];
  let at = 0;
  for (let r = 0; r + 1 < bounds.length; r++) {
    if (r === big) continue;
    sp.set(P.subarray(bounds[r], bounds[r + 1]), at);
    so.set(O.subarray(bounds[r], bounds[r + 1]), at);
    at += bounds[r + 1] - bounds[r];
    sb.push(at);
  }
  P.copyWithin(s, bigStart, bigEnd);
  O.copyWithin(s, bigStart, bigEnd);
  const [rp, ro] = mergeRuns(sp, so, new Float64Array(s), new Uint8Array(s), sb);
  mergeForward(rp, ro, s, P, O, n);
}

/**
 * Merge sorted `r*[0, s)` into `P/O`, whose sorted part is `[s, n)`, in place from the front: the write
 * index `k = i + (j - s)` never passes the read index `j`.
 */
function mergeForward(
  rp: Float64Array,
  ro: Uint8Array,
  s: number,
  P: Float64Array,
  O: Uint8Array,
  n: number,
): void {
  let i = 0;
  let j = s;
  let k = 0;
  while (i < s && j < n) {
    const a = rp[i];
    const c = P[j];
    if (c < a || (c === a && O[j] < ro[i])) {
      P[k] = c;
      O[k++] = O[j++];
    } else {
      P[k] = a;
      O[k++] = ro[i++];
    }
  }
  if (i < s) {
    P.set(rp.subarray(i, s), k);
    O.set(ro.subarray(i, s), k);
  }
}

/** Index of the highest set bit plus one, for a non-negative integer below 2^53. */
function flsNum(v: number): number {
  if (v >= 4294967296) return 64 - Math.clz32(Math.floor(v / 4294967296));
  return 32 - Math.clz32(v);
}

/** Set bits of a page (word order does not matter). */
function popcountPage(words: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < words.length; i++) {
    let v = words[i];
    if (v === 0) continue;
    v -= (v >>> 1) & 0x55555555;
    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
    n += Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
  }
  return n;
}

/** Byte offset of the 32-bit half `h` of a leaf (bits 32h..32h+31) in a native `unsigned long` bitmap. */
function halfOffset(h: number, le: boolean): number {
  return le ? h * 4 : (h * 4) ^ 4;
}

/** Leaf bit number of the `n`-th (0-based) set bit, bit 0 skipped when `skip0`; -1 when there is none. */
function nthSetBit(dv: DataView, le: boolean, skip0: boolean, n: number): number {
  let left = n;
  for (let h = 0; h < dv.byteLength / 4; h++) {
    let v = dv.getUint32(halfOffset(h, le), le) | 0;
    while (v !== 0) {
      const t = v & -v;
      v ^= t;
      const bit = h * 32 + 31 - Math.clz32(t);
      if (skip0 && bit === 0) continue;
      if (left-- === 0) return bit;
    }
  }
  return -1;
}

/** A leaf found by the walk: its bytes, key prefix, whether bit 0 is an invalid key, blocks to take. */
interface LeafRef {
  dv: DataView;
  prefix: number;
  skip0: boolean;
  take: number;
}

/**
 * Walk the tree at `root`, calling `issue` for each problem. Throws from `issue` stop the walk
 * (decode); returning skips the broken part (validate). Two phases: the depth-first walk checks every
 * pointer and counts each leaf's blocks (so problems are reported in walk order and the caps apply
 * before anything large is allocated); then the leaves are scanned word by word into exactly-sized
 * packed arrays, sorted by (pfn, order).
 */
function walk(
  mem: PhysMemory,
  root: bigint,
  opts: RadixDecodeOptions,
  issue: (e: KhoError) => void,
): { root: bigint; blocks: PackedBlocks; nodes: RadixNodeInfo[] } {
  const geo = radixGeometry(opts.pageSize ?? 4096);
  const endian = opts.endian ?? 'little';
  const le = endian === 'little';
  const maxNodes = opts.maxNodes ?? 1 << 20;
  const maxBlocks = opts.maxBlocks ?? 1 << 22;
  const ps = BigInt(geo.pageSize);
  const nodes: RadixNodeInfo[] = [];
  const seen = new Set<bigint>();
  const entries = geo.pageSize / 8;
  const top = geo.depth - 1;
  const keyLimit = POW2[geo.order0Log2 + 1];
  const leaves: LeafRef[] = [];
  let count = 0;
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

  const visit = (pa: bigint, level: number, path: number[], prefix: number): void => {
    nodes.push({ pa, level, path });
    const page = mem.read(pa, geo.pageSize);
    // Own, 4-aligned bytes (a reader may return a view into a larger buffer).
    const dv = view(page.byteOffset % 4 === 0 ? page : page.slice());
    if (level === 0) {
      let valid = popcountPage(new Uint32Array(dv.buffer, dv.byteOffset, geo.pageSize / 4));
      if (valid === 0) return;
      // Above the leaf bits the prefix fixes the order unless it is 0; then the bit is the whole key and
      // bit 0 (key 0) encodes nothing.
      const skip0 = prefix === 0 && (page[le ? 0 : 7] & 1) !== 0;
      if (skip0) {
        valid--;
        issue(
          new KhoError('KHO_RADIX_BAD_KEY', `key ${hex(0n)} encodes no block`, {
            path: `${pathText(geo, path, 'bit 0')} (${physPath(pa)})`,
            expected: `a key with its highest set bit at or below bit ${geo.order0Log2}`,
          }),
        );
      }
      if (count + valid > maxBlocks) {
        const take = maxBlocks - count;
        leaves.push({ dv, prefix, skip0, take });
        count = maxBlocks;
        const bit = nthSetBit(dv, le, skip0, take);
        stopped = true;
        issue(
          new KhoError('KHO_RADIX_TOO_MANY_BLOCKS', `more than ${maxBlocks} preserved blocks`, {
            path: `${pathText(geo, path, `bit ${bit}`)} (${physPath(pa)})`,
          }),
        );
        return;
      }
      if (valid > 0) leaves.push({ dv, prefix, skip0, take: valid });
      count += valid;
      return;
    }
    const shiftPow = POW2[geo.bitmapLog2 + geo.tableLog2 * (level - 1)];
    for (let idx = 0; idx < entries && !stopped; idx++) {
      if (dv.getUint32(idx * 8, le) === 0 && dv.getUint32(idx * 8 + 4, le) === 0) continue;
      const child = dv.getBigUint64(idx * 8, le);
      const childPrefix = prefix + idx * shiftPow;
      const childPath = [...path, idx];
      if (childPrefix >= keyLimit) {
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
    visit(root, top, [], 0);
  }
  return { root, blocks: scanLeaves(leaves, count, geo, le), nodes };
}

/** The valid bits of the all-zero-prefix leaf (ascending, bit 0 skipped when invalid, at most `take`). */
function zeroLeafBits(leaf: LeafRef, le: boolean): number[] {
  const bits: number[] = [];
  for (let h = 0; h < leaf.dv.byteLength / 4 && bits.length < leaf.take; h++) {
    let v = leaf.dv.getUint32(halfOffset(h, le), le) | 0;
    while (v !== 0 && bits.length < leaf.take) {
      const t = v & -v;
      v ^= t;
      const bit = h * 32 + 31 - Math.clz32(t);
      if (!(bit === 0 && leaf.skip0)) bits.push(bit);
    }
  }
  return bits;
}

/**
 * Phase two of the walk: every counted leaf bit as a packed block, sorted by (pfn, order). Within one
 * order the walk meets keys, so addresses, in ascending order; so each order's blocks are written as one
 * sorted run. The largest run (usually order 0) goes straight to the end of the output and the others to
 * a side buffer, where they are merged together and then merged into the output in place: one pass over
 * the output, extra memory only for the smaller orders. Without a dominant order, plain run merging.
 */
function scanLeaves(leaves: LeafRef[], count: number, geo: RadixGeometry, le: boolean): PackedBlocks {
  const o0 = geo.order0Log2;
  const halves = geo.pageSize / 4;
  const perOrder = new Float64Array(o0 + 1);
  let zeroBits: number[] = [];
  for (const leaf of leaves) {
    if (leaf.prefix !== 0) perOrder[o0 + 1 - flsNum(leaf.prefix)] += leaf.take;
    else {
      zeroBits = zeroLeafBits(leaf, le);
      for (const bit of zeroBits) perOrder[o0 + 1 - (32 - Math.clz32(bit))]++;
    }
  }
  let big = 0;
  for (let o = 1; o <= o0; o++) if (perOrder[o] > perOrder[big]) big = o;
  const s = count - perOrder[big];
  const dominant = s * 2 <= count;
  const P = new Float64Array(count);
  const O = new Uint8Array(count);
  const SP = dominant ? new Float64Array(s) : P;
  const SO = dominant ? new Uint8Array(s) : O;
  // Where each order's run goes (walk order: orders descending), and the runs' bounds in SP/SO.
  const pos = new Float64Array(o0 + 1);
  const bounds = [0];
  for (let o = o0, at = 0; o >= 0; o--) {
    if (perOrder[o] === 0) continue;
    if (dominant && o === big) {
      pos[o] = s;
      continue;
    }
    pos[o] = at;
    at += perOrder[o];
    bounds.push(at);
  }
  for (const leaf of leaves) {
    const { dv, prefix } = leaf;
    if (prefix === 0) {
      // The all-zero path: each bit is a whole key with its own order.
      for (const bit of zeroBits) {
        const f = 32 - Math.clz32(bit);
        const order = o0 + 1 - f;
        const inMain = dominant && order === big;
        const w = pos[order]++;
        (inMain ? P : SP)[w] = (bit - POW2[f - 1]) * POW2[order];
        (inMain ? O : SO)[w] = order;
      }
      continue;
    }
    const order = o0 + 1 - flsNum(prefix);
    const step = POW2[order];
    const base = (prefix - POW2[o0 - order]) * step;
    const dp = dominant && order === big ? P : SP;
    const dO = dominant && order === big ? O : SO;
    let w = pos[order] | 0;
    let left = leaf.take;
    if (le && NATIVE_LE) {
      // Native order: the 32-bit halves are plain Uint32Array words (the page copy is 4-aligned).
      const words = new Uint32Array(dv.buffer, dv.byteOffset, halves);
      scan: for (let h = 0; h < halves; h++) {
        let v = words[h] | 0;
        if (v === 0) continue;
        const bb = h * 32 + 31;
        while (v !== 0) {
          const t = v & -v;
          v ^= t;
          dp[w] = base + (bb - Math.clz32(t)) * step;
          dO[w++] = order;
          if (--left === 0) break scan;
        }
      }
    } else {
      scan: for (let h = 0; h < halves; h++) {
        let v = dv.getUint32(halfOffset(h, le), le) | 0;
        if (v === 0) continue;
        const bb = h * 32 + 31;
        while (v !== 0) {
          const t = v & -v;
          v ^= t;
          dp[w] = base + (bb - Math.clz32(t)) * step;
          dO[w++] = order;
          if (--left === 0) break scan;
        }
      }
    }
    pos[order] = w;
  }
  if (!dominant) {
    const [rp, ro] = mergeRuns(P, O, new Float64Array(count), new Uint8Array(count), bounds);
    return { length: count, pfn: rp, order: ro };
  }
  if (s > 0) {
    const [rp, ro] = mergeRuns(SP, SO, new Float64Array(s), new Uint8Array(s), bounds);
    mergeForward(rp, ro, s, P, O, count);
  }
  return { length: count, pfn: P, order: O };
}

/**
 * The fast decoder: like `decodeRadixTree` (same checks, caps and errors) but blocks come back packed,
 * sorted by (pfn, order), with no per-block objects or bigints. For maps of millions of blocks raise
 * `maxBlocks` (default 1 << 22); output is 9 bytes per block.
 */
export function decodeRadixTreePacked(
  mem: PhysMemory,
  root: bigint,
  opts: RadixDecodeOptions = {},
): { root: bigint; blocks: PackedBlocks; nodes: RadixNodeInfo[] } {
  return walk(mem, root, opts, (e) => {
    throw e;
  });
}

/** Decode the tree at `root`; throws the first problem as a `KhoError`. */
export function decodeRadixTree(
  mem: PhysMemory,
  root: bigint,
  opts: RadixDecodeOptions = {},
): RadixDecodeResult {
  const r = decodeRadixTreePacked(mem, root, opts);
  return { root, blocks: unpackBlocks(r.blocks, opts.pageSize ?? 4096), nodes: r.nodes };
}

/**
 * Every problem of the tree at `root`, not only the first: structural errors (as in decode) plus
 * warnings for blocks that overlap each other.
 */
export function validateRadixTree(mem: PhysMemory, root: bigint, opts: RadixDecodeOptions = {}): Finding[] {
  const findings: Finding[] = [];
  let blocks: PackedBlocks;
  try {
    blocks = walk(mem, root, opts, (e) => {
      findings.push(findingFromError(e));
    }).blocks;
  } catch (e) {
    if (isKhoError(e)) return [...findings, findingFromError(e)];
    throw e;
  }
  const ps = BigInt(radixGeometry(opts.pageSize ?? 4096).pageSize);
  const { pfn, order } = blocks;
  let prevEnd = -1;
  let prev = -1;
  for (let i = 0; i < blocks.length; i++) {
    const end = pfn[i] + POW2[order[i]];
    if (prev >= 0 && pfn[i] < prevEnd) {
      const pa = BigInt(pfn[i]) * ps;
      findings.push({
        code: 'KHO_RADIX_OVERLAP',
        severity: 'warning',
        message: `block ${hex(pa)} order ${order[i]} overlaps block ${hex(BigInt(pfn[prev]) * ps)} order ${order[prev]}`,
        path: physPath(pa),
      });
    }
    if (end > prevEnd) {
      prevEnd = end;
      prev = i;
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

/**
 * Encode blocks into a fresh tree (inserted in the given order); returns the root and tree pages.
 * Same pages, addresses and bytes as adding each block to a `RadixTreeWriter`, via `encodeRadixTreePacked`.
 */
export function encodeRadixTree(
  blocks: Iterable<PreservedBlock>,
  writer: PhysMemoryWriter,
  opts: RadixWriterOptions = {},
): { root: bigint; pages: bigint[] } {
  return encodeRadixTreePacked(packBlocks(blocks, opts.pageSize ?? writer.pageSize), writer, opts);
}

/**
 * Set recorded leaf bits (`slot << bitmapLog2 | bit`), grouped by 256-leaf chunk first (a counting
 * sort), so the writes of each group stay within one megabyte-sized chunk.
 */
function applyPending(
  pending: Uint32Array,
  np: number,
  chunks: Uint8Array[],
  geo: RadixGeometry,
  le: boolean,
): void {
  const bl = geo.bitmapLog2;
  const bitMask = POW2[bl] - 1;
  const ps = geo.pageSize;
  const starts = new Float64Array(chunks.length + 1);
  for (let q = 0; q < np; q++) starts[(pending[q] >>> bl) >>> 8]++;
  for (let c = 0, at = 0; c <= chunks.length; c++) {
    const k = starts[c];
    starts[c] = at;
    at += k;
  }
  const sorted = new Uint32Array(np);
  for (let q = 0; q < np; q++) {
    const v = pending[q];
    sorted[starts[(v >>> bl) >>> 8]++] = v;
  }
  for (let q = 0; q < np; q++) {
    const v = sorted[q];
    const slot = v >>> bl;
    const bit = v & bitMask;
    const chunk = chunks[slot >>> 8];
    const off = (slot & 255) * ps;
    if (le) chunk[off + (bit >> 3)] |= 1 << (bit & 7);
    else chunk[off + ((bit >> 6) << 3) + 7 - ((bit & 63) >> 3)] |= 1 << (bit & 7);
  }
}

export interface RadixBulkOptions extends RadixWriterOptions {
  /**
   * How leaf bits are set (the result is the same): `direct` sets each bit as its block is met;
   * `bucketed` records (leaf, bit) per block and sets them leaf by leaf at the end (cache-friendly for
   * blocks in random address order); `auto` (default) watches the first 65536 blocks and switches to
   * bucketed when more than 1 in 8 of them needs a different leaf than the last of its order.
   */
  strategy?: 'auto' | 'direct' | 'bucketed';
}

/** A tree page being built: its address and bytes (undefined for a given root, written entry by entry). */
interface BuildPage {
  pa: bigint;
  bytes: Uint8Array | undefined;
}

/**
 * The bulk encoder. Produces exactly what `RadixTreeWriter.add` gives for the blocks in the given order
 * (the kernel's insert path: pages allocated root first, then each missing level top-down when a block
 * needs a new path), but builds every page in memory and writes each once at the end. Per block it is a
 * few double operations and a byte OR; only a new leaf costs a path walk. Every block is checked
 * (`KHO_RADIX_BAD_BLOCK` for an order above the key's range or a pfn not aligned to its order, as
 * `radixKey` throws) before its bit is set; pages are written only at the end, so after a bad block
 * nothing has been written (pages may have been allocated).
 */
export function encodeRadixTreePacked(
  blocks: PackedBlocks,
  writer: PhysMemoryWriter,
  opts: RadixBulkOptions = {},
): { root: bigint; pages: bigint[] } {
  const geo = radixGeometry(opts.pageSize ?? writer.pageSize);
  const le = (opts.endian ?? 'little') === 'little';
  const ps = geo.pageSize;
  const o0 = geo.order0Log2;
  const n = blocks.length;
  const { pfn, order } = blocks;
  const pfnLimit = POW2[64 - geo.pageShift];
  if (!(n >= 0 && n <= pfn.length && n <= order.length)) {
    throw new KhoError('KHO_RADIX_BAD_BLOCK', `packed block count ${n} exceeds its arrays`, {
      expected: `0..${Math.min(pfn.length, order.length)}`,
    });
  }
  const badBlock = (p: number, o: number, what: 'order' | 'address'): never => {
    const pa = Number.isSafeInteger(p) && p >= 0 ? BigInt(p) * BigInt(ps) : undefined;
    const path = pa === undefined ? undefined : physPath(pa);
    if (what === 'order') {
      throw new KhoError('KHO_RADIX_BAD_BLOCK', `order ${o} is out of range`, {
        expected: `0..${geo.maxOrder}`,
        path,
      });
    }
    throw new KhoError(
      'KHO_RADIX_BAD_BLOCK',
      `block ${pa === undefined ? `pfn ${p}` : hex(pa)} is not aligned to its size (order ${o})`,
      { path, expected: `a multiple of ${hex(BigInt(ps) * BigInt(POW2[o]))}` },
    );
  };
  const built: BuildPage[] = [];
  // Leaf pages live in 256-page chunks (slot s: chunk s >> 8, byte offset (s & 255) * ps), found by
  // leaf id through an open-addressing table of doubles: blocks in random address order (as the
  // kernel may preserve them) cost a probe in a small table and one write, not a Map lookup.
  const chunks: Uint8Array[] = [];
  let slots = 0;
  const alloc = (leaf: boolean): BuildPage => {
    const pa = writer.allocPage();
    let bytes: Uint8Array;
    if (leaf) {
      if ((slots & 255) === 0) chunks.push(new Uint8Array(ps * 256));
      bytes = chunks[slots >> 8].subarray((slots & 255) * ps, ((slots & 255) + 1) * ps);
      slots++;
    } else bytes = new Uint8Array(ps);
    const pg = { pa, bytes };
    built.push(pg);
    return pg;
  };
  const root: BuildPage = opts.root === undefined ? alloc(false) : { pa: opts.root, bytes: undefined };
  // Tables per level 1.. (index = level), keyed by key / 2^(bits below that level's node).
  const levels: Array<Map<number, BuildPage>> = Array.from({ length: geo.depth }, () => new Map());
  const entries = ps / 8;
  /** Allocate the missing part of the path to the leaf of `key` (kernel order); returns its slot. */
  const newPath = (key: number): number => {
    let node = root;
    for (let level = geo.depth - 1; level > 1; level--) {
      const childId = Math.floor(key / POW2[geo.bitmapLog2 + geo.tableLog2 * (level - 1)]);
      let child = levels[level - 1].get(childId);
      if (child === undefined) {
        child = alloc(false);
        levels[level - 1].set(childId, child);
        link(node, childId % entries, child.pa);
      }
      node = child;
    }
    const slot = slots;
    link(node, Math.floor(key / POW2[geo.bitmapLog2]) % entries, alloc(true).pa);
    return slot;
  };
  const link = (node: BuildPage, idx: number, child: bigint) => {
    if (node.bytes) view(node.bytes).setBigUint64(idx * 8, child, le);
    else writer.write(node.pa + BigInt(idx * 8), u64Bytes(child, le ? 'little' : 'big'));
  };
  let cap = 1024;
  let keys = new Float64Array(cap).fill(-1);
  let vals = new Int32Array(cap);
  const hash = (id: number) =>
    Math.imul((id | 0) ^ Math.imul(Math.floor(id / 4294967296), 0x85ebca6b), 0x9e3779b1) >>> 0;
  const leafSpan = POW2[geo.bitmapLog2];
  // The last leaf used per order: within one order keys grow with the address, so mostly a hit.
  const lastLeafId = new Float64Array(geo.maxOrder + 1).fill(-1);
  const lastChunk: Uint8Array[] = Array.from({ length: geo.maxOrder + 1 }, () => new Uint8Array(0));
  const lastOff = new Float64Array(geo.maxOrder + 1);
  const lastSlot = new Float64Array(geo.maxOrder + 1);
  // Bucketed mode: pending (slot << bitmapLog2 | bit) as u32, so at most 2^32 / leafSpan leaves.
  const strategy = opts.strategy ?? 'auto';
  const maxDeferSlots = POW2[32 - geo.bitmapLog2];
  let pending = strategy === 'bucketed' ? new Uint32Array(n) : undefined;
  let np = 0;
  let misses = 0;
  const probe = strategy === 'auto' ? Math.min(n, 65536) : -1;
  for (let i = 0; i < n; i++) {
    if (i === probe && misses * 8 > probe) pending = new Uint32Array(n - i);
    const o = order[i];
    const p = pfn[i];
    if (o > geo.maxOrder) badBlock(p, o, 'order');
    const high = p / POW2[o];
    if (!(p >= 0 && p < pfnLimit && high === Math.floor(high))) badBlock(p, o, 'address');
    const key = POW2[o0 - o] + high;
    const leafId = Math.floor(key / leafSpan);
    let chunk = lastChunk[o];
    let off = lastOff[o];
    if (leafId !== lastLeafId[o]) {
      misses++;
      let mask = cap - 1;
      let h = hash(leafId) & mask;
      let k = keys[h];
      while (k !== leafId && k !== -1) {
        h = (h + 1) & mask;
        k = keys[h];
      }
      let slot: number;
      if (k === -1) {
        slot = newPath(key);
        keys[h] = leafId;
        vals[h] = slot;
        if (slots * 2 > cap) {
          const ok = keys;
          const ov = vals;
          cap *= 2;
          mask = cap - 1;
          keys = new Float64Array(cap).fill(-1);
          vals = new Int32Array(cap);
          for (let q = 0; q < ok.length; q++) {
            if (ok[q] === -1) continue;
            let hh = hash(ok[q]) & mask;
            while (keys[hh] !== -1) hh = (hh + 1) & mask;
            keys[hh] = ok[q];
            vals[hh] = ov[q];
          }
        }
      } else slot = vals[h];
      chunk = chunks[slot >> 8];
      off = (slot & 255) * ps;
      lastChunk[o] = chunk;
      lastOff[o] = off;
      lastSlot[o] = slot;
      lastLeafId[o] = leafId;
      if (pending && slots > maxDeferSlots) {
        // Too many leaves for u32 records: set the recorded bits now, the rest directly.
        applyPending(pending, np, chunks, geo, le);
        pending = undefined;
      }
    }
    const bit = key - leafId * leafSpan;
    if (pending) pending[np++] = lastSlot[o] * leafSpan + bit;
    else if (le) chunk[off + (bit >> 3)] |= 1 << (bit & 7);
    else chunk[off + ((bit >> 6) << 3) + 7 - ((bit & 63) >> 3)] |= 1 << (bit & 7);
  }
  if (pending) applyPending(pending, np, chunks, geo, le);
  for (const pg of built) writer.write(pg.pa, pg.bytes!);
  return { root: root.pa, pages: built.map((pg) => pg.pa) };
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
