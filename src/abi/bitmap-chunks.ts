/**
 * The kho-v1 preserved-memory map: a linked list of `khoser_mem_chunk` pages pointing at per-order
 * bitmaps (6.16 → 6.19; profiles `kho-v1-6.16`, `kho-v1`).
 *
 * Contract (spec §2.2): every chunk is one page, native-endian:
 * - header `struct khoser_mem_chunk_hdr` (16 bytes): `u64 next` (phys of the next chunk, 0 = end),
 *   `u32 order`, `u32 num_elms`;
 * - then `(PAGE_SIZE - 16) / 16` entries (255 at 4 KiB) `struct khoser_mem_bitmap_ptr`:
 *   `u64 phys_start`, `u64 bitmap` (phys of a PAGE_SIZE bitmap page of `PAGE_SIZE*8` bits, native
 *   `unsigned long` words).
 * Bit b of the bitmap with index n for order o marks the block of `2^o` pages at
 * `phys_start + (b << (o + PAGE_SHIFT))`, where `phys_start = (n * PAGE_SIZE*8) << (o + PAGE_SHIFT)`.
 * Chunks are emitted per order, ascending (a new chunk for each order and whenever one is full);
 * entries within an order by ascending bitmap index. `preserved-memory-map = 0` means nothing was
 * serialized. Chunk and bitmap pages are not themselves preserved.
 *
 * The decoder never trusts pointers: a chunk reached twice (`KHO_CHUNK_LOOP`), a bitmap referenced
 * twice (`KHO_CHUNK_SHARED_BITMAP`), `num_elms` over capacity (`KHO_CHUNK_BAD_COUNT`), an order whose
 * blocks cannot be addressed (`KHO_CHUNK_BAD_ORDER`), addresses that overflow 64 bits
 * (`KHO_CHUNK_BAD_ENTRY`), unaligned pages and pointers outside the image are typed errors; every page
 * is read at most once and `maxBlocks` caps the output.
 *
 * Scale: `encodeBitmapChunksPacked` / `decodeBitmapChunksPacked` do the same on `PackedBlocks`
 * (radix-tree.ts) with no per-block objects or bigints (per-order bitmap cache; word-by-word scan of
 * bitmaps that can neither overflow nor pass the cap, into typed arrays sorted by a run merge). The
 * object codec stays a separate, straightforward implementation (the packed form cannot hold a block
 * at an address that is not page-aligned, which a hostile `phys_start` can give).
 */
import { type Finding, findingFromError, isKhoError, KhoError } from '../errors.ts';
import {
  cmpBig,
  hex,
  type PhysMemory,
  type PhysMemoryWriter,
  physPath,
  u64Bytes,
  view,
} from './memory/image.ts';
import type { Endianness } from './profile.ts';
import { type PackedBlocks, type PreservedBlock, sortPackedBlocks } from './radix-tree.ts';

export const BITMAP_CHUNK_PROFILES = ['kho-v1-6.16', 'kho-v1'] as const;
export const KHOSER_CHUNK_HDR_SIZE = 16;
export const KHOSER_BITMAP_PTR_SIZE = 16;

/** Entries per chunk: (PAGE_SIZE - 16) / 16 (255 at 4 KiB). */
export function chunkCapacity(pageSize = 4096): number {
  return (pageSize - KHOSER_CHUNK_HDR_SIZE) / KHOSER_BITMAP_PTR_SIZE;
}

/** Bits per bitmap page: PAGE_SIZE * 8. */
export function preserveBits(pageSize = 4096): number {
  return pageSize * 8;
}

export interface BitmapChunkEntry {
  physStart: bigint;
  bitmap: bigint;
}

export interface BitmapChunk {
  pa: bigint;
  next: bigint;
  order: number;
  entries: BitmapChunkEntry[];
}

export interface BitmapChunksOptions {
  pageSize?: number;
  endian?: Endianness;
  /** Cap on blocks returned (default 1 << 22). */
  maxBlocks?: number;
  /** Cap on chunks (default 1 << 16). */
  maxChunks?: number;
}

export interface BitmapChunksResult {
  head: bigint;
  chunks: BitmapChunk[];
  /** Blocks sorted by address, then order. */
  blocks: PreservedBlock[];
}

function bitIndex(j: number, k: number, le: boolean): number {
  return le ? j * 8 + k : (j >> 3) * 64 + (7 - (j & 7)) * 8 + k;
}

/** A chunk or bitmap pointer that is unaligned or outside the image, or null. */
function pointerProblem(
  mem: PhysMemory,
  pa: bigint,
  pageSize: number,
  what: string,
  path: string,
): KhoError | null {
  if (pa % BigInt(pageSize) !== 0n) {
    return new KhoError('KHO_CHUNK_UNALIGNED', `${what} ${hex(pa)} is not page-aligned`, { path });
  }
  if (!mem.has(pa, pageSize)) {
    return new KhoError('KHO_PTR_OUTSIDE_MEMORY', `${what} ${hex(pa)} is outside the memory image`, { path });
  }
  return null;
}

/** A chunk reached twice, or one past the cap, or null. */
function listProblem(
  seen: Set<bigint>,
  pa: bigint,
  count: number,
  maxChunks: number,
  path: string,
): KhoError | null {
  if (seen.has(pa)) {
    return new KhoError('KHO_CHUNK_LOOP', `chunk ${hex(pa)} is reached a second time`, {
      path,
      expected: 'a chunk list ending with next = 0',
    });
  }
  if (count >= maxChunks)
    return new KhoError('KHO_CHUNK_TOO_MANY', `more than ${maxChunks} chunks`, { path });
  return null;
}

/** A chunk's header (`next`, `order`, `num_elms`) and what is wrong with its count or order, if anything. */
function readChunkHeader(
  mem: PhysMemory,
  pa: bigint,
  pageSize: number,
  le: boolean,
  path: string,
): { dv: DataView; next: bigint; order: number; numElms: number; problem: KhoError | null } {
  const cap = chunkCapacity(pageSize);
  const shift = Math.log2(pageSize);
  const dv = view(mem.read(pa, pageSize));
  const next = dv.getBigUint64(0, le);
  const order = dv.getUint32(8, le);
  const numElms = dv.getUint32(12, le);
  let problem: KhoError | null = null;
  if (numElms > cap) {
    problem = new KhoError(
      'KHO_CHUNK_BAD_COUNT',
      `num_elms ${numElms} exceeds the ${cap} entries a chunk holds`,
      {
        path,
        offset: 12,
        expected: `0..${cap}`,
      },
    );
  } else if (order + shift >= 64) {
    problem = new KhoError('KHO_CHUNK_BAD_ORDER', `order ${order} cannot address any block`, {
      path,
      offset: 8,
      expected: `below ${64 - shift}`,
    });
  }
  return { dv, next, order, numElms, problem };
}

function walk(
  mem: PhysMemory,
  head: bigint,
  opts: BitmapChunksOptions,
  issue: (e: KhoError) => void,
): BitmapChunksResult {
  const pageSize = opts.pageSize ?? 4096;
  const shift = Math.log2(pageSize);
  const le = (opts.endian ?? 'little') === 'little';
  const maxBlocks = opts.maxBlocks ?? 1 << 22;
  const maxChunks = opts.maxChunks ?? 1 << 16;
  const chunks: BitmapChunk[] = [];
  const blocks: PreservedBlock[] = [];
  const seenChunks = new Set<bigint>();
  const seenBitmaps = new Set<bigint>();
  const pageOk = (pa: bigint, what: string, path: string): boolean => {
    const problem = pointerProblem(mem, pa, pageSize, what, path);
    if (problem) issue(problem);
    return problem === null;
  };
  for (let pa = head; pa !== 0n; ) {
    const path = `chunk[${chunks.length}] (${physPath(pa)})`;
    const listErr = listProblem(seenChunks, pa, chunks.length, maxChunks, path);
    if (listErr) {
      issue(listErr);
      break;
    }
    if (!pageOk(pa, 'chunk', path)) break;
    seenChunks.add(pa);
    const { dv, next, order, numElms, problem } = readChunkHeader(mem, pa, pageSize, le, path);
    const chunk: BitmapChunk = { pa, next, order, entries: [] };
    chunks.push(chunk);
    pa = next;
    if (problem) {
      issue(problem);
      continue;
    }
    const blockShift = BigInt(order + shift);
    for (let i = 0; i < numElms; i++) {
      const physStart = dv.getBigUint64(16 + i * 16, le);
      const bitmap = dv.getBigUint64(24 + i * 16, le);
      chunk.entries.push({ physStart, bitmap });
      const epath = `${path} entry[${i}]`;
      if (!pageOk(bitmap, 'bitmap', epath)) continue;
      if (seenBitmaps.has(bitmap)) {
        issue(
          new KhoError('KHO_CHUNK_SHARED_BITMAP', `bitmap ${hex(bitmap)} is referenced twice`, {
            path: epath,
          }),
        );
        continue;
      }
      seenBitmaps.add(bitmap);
      const bits = mem.read(bitmap, pageSize);
      for (let j = 0; j < bits.length; j++) {
        const byte = bits[j];
        if (byte === 0) continue;
        for (let k = 0; k < 8; k++) {
          if (!(byte & (1 << k))) continue;
          const b = bitIndex(j, k, le);
          const blockPa = physStart + (BigInt(b) << blockShift);
          if (blockPa + (1n << blockShift) > 1n << 64n) {
            issue(
              new KhoError('KHO_CHUNK_BAD_ENTRY', `bit ${b} from ${hex(physStart)} lies past 2^64`, {
                path: epath,
              }),
            );
            break;
          }
          if (blocks.length >= maxBlocks) {
            issue(
              new KhoError('KHO_CHUNK_TOO_MANY_BLOCKS', `more than ${maxBlocks} blocks`, { path: epath }),
            );
            return finish(head, chunks, blocks);
          }
          blocks.push({ pa: blockPa, order });
        }
      }
    }
  }
  return finish(head, chunks, blocks);
}

function finish(head: bigint, chunks: BitmapChunk[], blocks: PreservedBlock[]): BitmapChunksResult {
  blocks.sort((a, b) => cmpBig(a.pa, b.pa) || a.order - b.order);
  return { head, chunks, blocks };
}

/** Decode the chunk list at `head` (0 = nothing serialized); throws the first problem. */
export function decodeBitmapChunks(
  mem: PhysMemory,
  head: bigint,
  opts: BitmapChunksOptions = {},
): BitmapChunksResult {
  return walk(mem, head, opts, (e) => {
    throw e;
  });
}

/** Every problem, plus warnings where the list departs from what the kernel writes. */
export function validateBitmapChunks(
  mem: PhysMemory,
  head: bigint,
  opts: BitmapChunksOptions = {},
): Finding[] {
  const out: Finding[] = [];
  let res: BitmapChunksResult;
  try {
    res = walk(mem, head, opts, (e) => {
      out.push(findingFromError(e));
    });
  } catch (e) {
    if (isKhoError(e)) return [...out, findingFromError(e)];
    throw e;
  }
  const pageSize = opts.pageSize ?? 4096;
  const span = (order: number) => BigInt(preserveBits(pageSize)) << BigInt(order + Math.log2(pageSize));
  let prevOrder = -1;
  res.chunks.forEach((c, ci) => {
    if (c.order < prevOrder) {
      out.push({
        code: 'KHO_CHUNK_ORDER_SEQUENCE',
        severity: 'warning',
        message: `chunk ${ci} has order ${c.order} after order ${prevOrder}; the kernel emits orders ascending`,
        path: `chunk[${ci}] (${physPath(c.pa)})`,
      });
    }
    prevOrder = c.order;
    if (c.order + Math.log2(pageSize) >= 64) return;
    c.entries.forEach((e, i) => {
      if (e.physStart % span(c.order) !== 0n) {
        out.push({
          code: 'KHO_CHUNK_BAD_PHYS_START',
          severity: 'warning',
          message: `phys_start ${hex(e.physStart)} is not a multiple of ${hex(span(c.order))} (bitmap index × bits × block size)`,
          path: `chunk[${ci}] (${physPath(c.pa)}) entry[${i}]`,
        });
      }
    });
  });
  return out;
}

/**
 * Encode blocks the way the kernel does: bitmap pages are allocated when an (order, bitmap index) is
 * first preserved (in input order, as `__kho_preserve_order` does), then at serialization one chunk
 * per order ascending, a new chunk whenever `chunkCapacity` entries are used, entries by ascending
 * bitmap index. Returns the head chunk (0 when there are no blocks: nothing serialized), the chunk
 * pages and the bitmap pages.
 */
export function encodeBitmapChunks(
  blocks: Iterable<PreservedBlock>,
  writer: PhysMemoryWriter,
  opts: { endian?: Endianness } = {},
): { head: bigint; chunks: bigint[]; bitmaps: bigint[] } {
  const pageSize = writer.pageSize;
  const shift = Math.log2(pageSize);
  const bitsPer = preserveBits(pageSize);
  const endian = opts.endian ?? 'little';
  const le = endian === 'little';
  const orders = new Map<number, Map<bigint, { pa: bigint; bits: Uint8Array }>>();
  const bitmaps: bigint[] = [];
  for (const b of blocks) {
    if (!Number.isInteger(b.order) || b.order < 0 || b.order + shift >= 64) {
      throw new KhoError('KHO_CHUNK_BAD_ORDER', `order ${b.order} is out of range`, { path: physPath(b.pa) });
    }
    const bs = BigInt(b.order + shift);
    if (b.pa < 0n || b.pa % (1n << bs) !== 0n) {
      throw new KhoError('KHO_CHUNK_BAD_ENTRY', `block ${hex(b.pa)} is not aligned to order ${b.order}`, {
        path: physPath(b.pa),
      });
    }
    const pfnHigh = b.pa >> bs;
    const n = pfnHigh / BigInt(bitsPer);
    const bit = Number(pfnHigh % BigInt(bitsPer));
    let perOrder = orders.get(b.order);
    if (!perOrder) {
      perOrder = new Map();
      orders.set(b.order, perOrder);
    }
    let bm = perOrder.get(n);
    if (!bm) {
      bm = { pa: writer.allocPage(), bits: new Uint8Array(pageSize) };
      bitmaps.push(bm.pa);
      perOrder.set(n, bm);
    }
    const j = le ? bit >> 3 : (bit >> 6) * 8 + (7 - ((bit & 63) >> 3));
    bm.bits[j] |= 1 << (bit & 7);
  }
  for (const perOrder of orders.values()) for (const bm of perOrder.values()) writer.write(bm.pa, bm.bits);
  // Serialize: one chunk list, orders ascending.
  const cap = chunkCapacity(pageSize);
  const chunkPages: Array<{ pa: bigint; order: number; entries: BitmapChunkEntry[] }> = [];
  for (const order of [...orders.keys()].sort((a, b) => a - b)) {
    const perOrder = orders.get(order)!;
    let cur = { pa: writer.allocPage(), order, entries: [] as BitmapChunkEntry[] };
    chunkPages.push(cur);
    for (const n of [...perOrder.keys()].sort(cmpBig)) {
      if (cur.entries.length === cap) {
        cur = { pa: writer.allocPage(), order, entries: [] };
        chunkPages.push(cur);
      }
      cur.entries.push({
        physStart: (n * BigInt(bitsPer)) << BigInt(order + shift),
        bitmap: perOrder.get(n)!.pa,
      });
    }
  }
  chunkPages.forEach((c, i) => {
    const page = new Uint8Array(pageSize);
    const dv = view(page);
    page.set(u64Bytes(chunkPages[i + 1]?.pa ?? 0n, endian), 0);
    dv.setUint32(8, c.order, le);
    dv.setUint32(12, c.entries.length, le);
    c.entries.forEach((e, k) => {
      page.set(u64Bytes(e.physStart, endian), 16 + k * 16);
      page.set(u64Bytes(e.bitmap, endian), 24 + k * 16);
    });
    writer.write(c.pa, page);
  });
  return { head: chunkPages[0]?.pa ?? 0n, chunks: chunkPages.map((c) => c.pa), bitmaps };
}

/** Whether this machine stores a Uint32Array little-endian. */
const NATIVE_LE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Set bits of a bitmap page. */
function popcount(words: Uint32Array): number {
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

/**
 * The bulk encoder: the same pages, addresses and bytes as `encodeBitmapChunks` for the same blocks in
 * the same order, from packed blocks (pfn in pages of `writer.pageSize`), with no per-block bigint
 * work. Every block is checked first (`KHO_CHUNK_BAD_ORDER`, `KHO_CHUNK_BAD_ENTRY` for a pfn not
 * aligned to its order), so a bad block leaves the writer untouched.
 */
export function encodeBitmapChunksPacked(
  blocks: PackedBlocks,
  writer: PhysMemoryWriter,
  opts: { endian?: Endianness } = {},
): { head: bigint; chunks: bigint[]; bitmaps: bigint[] } {
  const pageSize = writer.pageSize;
  const shift = Math.log2(pageSize);
  const bitsPer = preserveBits(pageSize);
  const endian = opts.endian ?? 'little';
  const le = endian === 'little';
  const { pfn, order } = blocks;
  const n = blocks.length;
  const pfnLimit = 2 ** (64 - shift);
  if (!(n >= 0 && n <= pfn.length && n <= order.length)) {
    throw new KhoError('KHO_CHUNK_BAD_ENTRY', `packed block count ${n} exceeds its arrays`, {
      expected: `0..${Math.min(pfn.length, order.length)}`,
    });
  }
  const pow2 = Float64Array.from({ length: 256 }, (_, i) => 2 ** i);
  for (let i = 0; i < n; i++) {
    const o = order[i];
    const p = pfn[i];
    if (o + shift < 64 && p >= 0 && p < pfnLimit && Number.isInteger(p / pow2[o])) continue;
    const pa = Number.isSafeInteger(p) && p >= 0 ? BigInt(p) * BigInt(pageSize) : undefined;
    const path = pa === undefined ? undefined : physPath(pa);
    if (o + shift >= 64) throw new KhoError('KHO_CHUNK_BAD_ORDER', `order ${o} is out of range`, { path });
    throw new KhoError(
      'KHO_CHUNK_BAD_ENTRY',
      `block ${pa === undefined ? `pfn ${p}` : hex(pa)} is not aligned to order ${o}`,
      { path },
    );
  }
  // One map for all (order, bitmap index) pairs, keyed index * 64 + order; pages in first-use order.
  const maps = new Map<number, { pa: bigint; bits: Uint8Array; order: number; index: number }>();
  const bitmaps: bigint[] = [];
  // The last bitmap used per order: within one order the index grows with the address, so mostly a hit.
  const lastIndex = new Float64Array(64).fill(-1);
  const lastBits: Uint8Array[] = Array.from({ length: 64 }, () => new Uint8Array(0));
  for (let i = 0; i < n; i++) {
    const o = order[i];
    const high = pfn[i] / pow2[o];
    const index = Math.floor(high / bitsPer);
    let bits = lastBits[o];
    if (index !== lastIndex[o]) {
      const key = index * 64 + o;
      let bm = maps.get(key);
      if (!bm) {
        bm = { pa: writer.allocPage(), bits: new Uint8Array(pageSize), order: o, index };
        bitmaps.push(bm.pa);
        maps.set(key, bm);
      }
      bits = bm.bits;
      lastBits[o] = bits;
      lastIndex[o] = index;
    }
    const bit = high - index * bitsPer;
    bits[le ? bit >> 3 : ((bit >> 6) << 3) + 7 - ((bit & 63) >> 3)] |= 1 << (bit & 7);
  }
  for (const bm of maps.values()) writer.write(bm.pa, bm.bits);
  // Serialize: one chunk list, orders ascending, bitmap indices ascending within an order.
  const sorted = [...maps.values()].sort((a, b) => a.order - b.order || a.index - b.index);
  const cap = chunkCapacity(pageSize);
  const chunkPages: Array<{ pa: bigint; order: number; entries: BitmapChunkEntry[] }> = [];
  let cur: { pa: bigint; order: number; entries: BitmapChunkEntry[] } | undefined;
  for (const bm of sorted) {
    if (!cur || cur.order !== bm.order || cur.entries.length === cap) {
      cur = { pa: writer.allocPage(), order: bm.order, entries: [] };
      chunkPages.push(cur);
    }
    cur.entries.push({
      physStart: BigInt(bm.index * bitsPer) << BigInt(bm.order + shift),
      bitmap: bm.pa,
    });
  }
  chunkPages.forEach((c, i) => {
    const page = new Uint8Array(pageSize);
    const dv = view(page);
    dv.setBigUint64(0, chunkPages[i + 1]?.pa ?? 0n, le);
    dv.setUint32(8, c.order, le);
    dv.setUint32(12, c.entries.length, le);
    c.entries.forEach((e, k) => {
      dv.setBigUint64(16 + k * 16, e.physStart, le);
      dv.setBigUint64(24 + k * 16, e.bitmap, le);
    });
    writer.write(c.pa, page);
  });
  return { head: chunkPages[0]?.pa ?? 0n, chunks: chunkPages.map((c) => c.pa), bitmaps };
}

/**
 * The fast decoder: like `decodeBitmapChunks` (same checks, caps and errors, every page read at most
 * once) but blocks come back packed, sorted by (pfn, order). One more check: a `phys_start` that is not
 * page-aligned cannot be expressed in pages and gives `KHO_CHUNK_BAD_ENTRY` (the kernel always writes
 * multiples of the bitmap's span; `decodeBitmapChunks` decodes such entries as they are).
 */
export function decodeBitmapChunksPacked(
  mem: PhysMemory,
  head: bigint,
  opts: BitmapChunksOptions = {},
): { head: bigint; chunks: BitmapChunk[]; blocks: PackedBlocks } {
  const pageSize = opts.pageSize ?? 4096;
  const shift = Math.log2(pageSize);
  const le = (opts.endian ?? 'little') === 'little';
  const maxBlocks = opts.maxBlocks ?? 1 << 22;
  const maxChunks = opts.maxChunks ?? 1 << 16;
  const ps = BigInt(pageSize);
  const pfnLimit = 2 ** (64 - shift);
  const bitsPer = preserveBits(pageSize);
  const chunks: BitmapChunk[] = [];
  let outP = new Float64Array(1 << 12);
  let outO = new Uint8Array(1 << 12);
  let count = 0;
  const seenChunks = new Set<bigint>();
  const seenBitmaps = new Set<bigint>();
  const fail = (e: KhoError): never => {
    throw e;
  };
  const finish = () => {
    const blocks = { length: count, pfn: outP, order: outO };
    sortPackedBlocks(blocks);
    return { head, chunks, blocks };
  };
  const pageOk = (pa: bigint, what: string, path: string): void => {
    const problem = pointerProblem(mem, pa, pageSize, what, path);
    if (problem) fail(problem);
  };
  for (let pa = head; pa !== 0n; ) {
    const path = `chunk[${chunks.length}] (${physPath(pa)})`;
    const listErr = listProblem(seenChunks, pa, chunks.length, maxChunks, path);
    if (listErr) fail(listErr);
    pageOk(pa, 'chunk', path);
    seenChunks.add(pa);
    const { dv, next, order, numElms, problem } = readChunkHeader(mem, pa, pageSize, le, path);
    const chunk: BitmapChunk = { pa, next, order, entries: [] };
    chunks.push(chunk);
    pa = next;
    if (problem) fail(problem);
    const step = 2 ** order;
    for (let i = 0; i < numElms; i++) {
      const physStart = dv.getBigUint64(16 + i * 16, le);
      const bitmap = dv.getBigUint64(24 + i * 16, le);
      chunk.entries.push({ physStart, bitmap });
      const epath = `${path} entry[${i}]`;
      pageOk(bitmap, 'bitmap', epath);
      if (seenBitmaps.has(bitmap)) {
        fail(
          new KhoError('KHO_CHUNK_SHARED_BITMAP', `bitmap ${hex(bitmap)} is referenced twice`, {
            path: epath,
          }),
        );
      }
      seenBitmaps.add(bitmap);
      if (physStart % ps !== 0n) {
        fail(
          new KhoError('KHO_CHUNK_BAD_ENTRY', `phys_start ${hex(physStart)} is not page-aligned`, {
            path: epath,
            expected: `a multiple of ${hex(ps)}`,
          }),
        );
      }
      const base = Number(physStart / ps);
      let bits = mem.read(bitmap, pageSize);
      if (bits.byteOffset % 4 !== 0) bits = bits.slice();
      const words = new Uint32Array(bits.buffer, bits.byteOffset, pageSize / 4);
      const pop = popcount(words);
      if (le && NATIVE_LE && count + pop <= maxBlocks && base + bitsPer * step <= pfnLimit) {
        // Fast path: no bit can overflow or pass the cap, so scan words without per-bit checks.
        if (count + pop > outP.length) {
          const n2 = Math.min(Math.max(outP.length * 2, count + pop), maxBlocks);
          const p2 = new Float64Array(n2);
          p2.set(outP.subarray(0, count));
          outP = p2;
          const o2 = new Uint8Array(n2);
          o2.set(outO.subarray(0, count));
          outO = o2;
        }
        for (let h = 0; h < words.length; h++) {
          let v = words[h] | 0;
          const bb = base + (h * 32 + 31) * step;
          while (v !== 0) {
            const t = v & -v;
            v ^= t;
            outP[count] = bb - Math.clz32(t) * step;
            outO[count++] = order;
          }
        }
        continue;
      }
      const bv = view(bits);
      for (let w = 0; w < pageSize; w += 4) {
        if (bv.getUint32(w, true) === 0) continue;
        for (let j = w; j < w + 4; j++) {
          let byte = bits[j];
          while (byte !== 0) {
            const t = byte & -byte;
            byte ^= t;
            const k = 31 - Math.clz32(t);
            const b = le ? j * 8 + k : (j >> 3) * 64 + (7 - (j & 7)) * 8 + k;
            const p = base + b * step;
            if (p + step > pfnLimit) {
              fail(
                new KhoError('KHO_CHUNK_BAD_ENTRY', `bit ${b} from ${hex(physStart)} lies past 2^64`, {
                  path: epath,
                }),
              );
            }
            if (count >= maxBlocks) {
              fail(
                new KhoError('KHO_CHUNK_TOO_MANY_BLOCKS', `more than ${maxBlocks} blocks`, { path: epath }),
              );
            }
            if (count === outP.length) {
              const n2 = Math.min(count * 2, maxBlocks);
              const p2 = new Float64Array(n2);
              p2.set(outP);
              outP = p2;
              const o2 = new Uint8Array(n2);
              o2.set(outO);
              outO = o2;
            }
            outP[count] = p;
            outO[count++] = order;
          }
        }
      }
    }
  }
  return finish();
}
