/**
 * KHO serialization blocks (kho-v4; `include/linux/kho/abi/block.h`, `kernel/liveupdate/kho_block.c`).
 *
 * Profiles: kho-v4 and kho-v4-bootmem (7.3+), any page size (blocks are one page).
 *
 * Contract (spec §2.6): a *block set* is a singly linked chain of page-sized blocks
 * (`KHO_BLOCK_SIZE = PAGE_SIZE`, each from `kho_alloc_preserve(PAGE_SIZE)`, so each block page is itself
 * preserved as order 0). A block starts with the packed, native-endian header
 * `struct kho_block_header_ser { u64 next; u64 count; }` (16 bytes) followed by `count` fixed-size
 * entries; `next` is the physical address of the next block, 0 ends the chain. A set's head address 0
 * is the empty set. `count_per_block = (PAGE_SIZE - 16) / entry_size`; at most `KHO_MAX_BLOCKS =
 * 10000` blocks per set (the producer fails with -ENOSPC beyond). The kernel's restore first runs a
 * Floyd cycle check over the chain, then rejects any block with `count == 0` or
 * `count > count_per_block` (both -EINVAL). Users (LUO from luo-v4) append
 * `KHO_BLOCK_ABI_COMPATIBLE = "kho-block-v1"` to their own compatible, when they do.
 *
 * The decoder never trusts the chain: a cycle (`KHO_BLOCK_LOOP`), more than KHO_MAX_BLOCKS blocks
 * (`KHO_BLOCK_TOO_MANY`), a bad count (`KHO_BLOCK_BAD_COUNT`), a block not page-aligned
 * (`KHO_BLOCK_UNALIGNED`) or outside the image (`KHO_PTR_OUTSIDE_MEMORY`) are typed errors with the
 * block's physical address. Work is bounded by KHO_MAX_BLOCKS pages.
 */
import { type Finding, findingFromError, isKhoError, KhoError } from '../errors.ts';
import { hex, type PhysMemory, type PhysMemoryWriter, physPath, u64Bytes, view } from './memory/image.ts';
import type { Endianness } from './profile.ts';

export const KHO_BLOCK_ABI_COMPATIBLE = 'kho-block-v1';
export const KHO_BLOCK_HEADER_SIZE = 16;
export const KHO_MAX_BLOCKS = 10000;

export interface BlockSetOptions {
  pageSize?: number;
  endian?: Endianness;
  /** Cap on blocks (default KHO_MAX_BLOCKS). */
  maxBlocks?: number;
}

export interface DecodedBlock {
  pa: bigint;
  next: bigint;
  count: number;
  /** `count` entries of `entrySize` bytes each. */
  entries: Uint8Array[];
}

export function blockEntriesPerBlock(entrySize: number, pageSize = 4096): number {
  if (!Number.isInteger(entrySize) || entrySize <= 0 || entrySize > pageSize - KHO_BLOCK_HEADER_SIZE) {
    throw new KhoError('KHO_BLOCK_BAD_ENTRY_SIZE', `entry size ${entrySize} does not fit a block`, {
      expected: `1..${pageSize - KHO_BLOCK_HEADER_SIZE}`,
    });
  }
  return Math.floor((pageSize - KHO_BLOCK_HEADER_SIZE) / entrySize);
}

function header(mem: PhysMemory, pa: bigint, le: boolean): { next: bigint; count: bigint } {
  const h = view(mem.read(pa, KHO_BLOCK_HEADER_SIZE));
  return { next: h.getBigUint64(0, le), count: h.getBigUint64(8, le) };
}

function checkBlockPtr(mem: PhysMemory, pa: bigint, pageSize: number, index: number): void {
  const path = `block[${index}] (${physPath(pa)})`;
  if (pa % BigInt(pageSize) !== 0n) {
    throw new KhoError('KHO_BLOCK_UNALIGNED', `block ${hex(pa)} is not page-aligned`, { path });
  }
  if (!mem.has(pa, pageSize)) {
    throw new KhoError('KHO_PTR_OUTSIDE_MEMORY', `block ${hex(pa)} is outside the memory image`, { path });
  }
}

/**
 * Floyd's cycle check over the chain at `head`, as the kernel runs it before restoring: throws
 * `KHO_BLOCK_LOOP` on a cycle, `KHO_BLOCK_TOO_MANY` past the cap, pointer errors as found.
 * Returns the chain's block addresses in order.
 */
export function blockChain(mem: PhysMemory, head: bigint, opts: BlockSetOptions = {}): bigint[] {
  const pageSize = opts.pageSize ?? 4096;
  const le = (opts.endian ?? 'little') === 'little';
  const max = opts.maxBlocks ?? KHO_MAX_BLOCKS;
  const next = (pa: bigint, i: number): bigint => {
    checkBlockPtr(mem, pa, pageSize, i);
    return header(mem, pa, le).next;
  };
  // Tortoise and hare.
  let slow = head;
  let fast = head;
  let steps = 0;
  while (fast !== 0n) {
    fast = next(fast, 2 * steps);
    if (fast === 0n) break;
    fast = next(fast, 2 * steps + 1);
    slow = next(slow, steps);
    steps++;
    if (fast !== 0n && fast === slow) {
      throw new KhoError('KHO_BLOCK_LOOP', `the block chain starting at ${hex(head)} loops`, {
        path: `block chain (${physPath(head)})`,
        expected: 'a chain ending with next = 0',
      });
    }
    if (steps > max + 1) break;
  }
  const out: bigint[] = [];
  for (let pa = head; pa !== 0n; pa = next(pa, out.length - 1)) {
    if (out.length >= max) {
      throw new KhoError('KHO_BLOCK_TOO_MANY', `the block chain has more than ${max} blocks`, {
        path: `block[${out.length}] (${physPath(pa)})`,
        expected: `at most ${max} blocks (KHO_MAX_BLOCKS)`,
      });
    }
    checkBlockPtr(mem, pa, pageSize, out.length);
    out.push(pa);
  }
  return out;
}

/** Decode a block set of `entrySize`-byte entries (head 0 = empty). */
export function decodeBlockSet(
  mem: PhysMemory,
  head: bigint,
  entrySize: number,
  opts: BlockSetOptions = {},
): DecodedBlock[] {
  const pageSize = opts.pageSize ?? 4096;
  const le = (opts.endian ?? 'little') === 'little';
  const perBlock = blockEntriesPerBlock(entrySize, pageSize);
  const chain = blockChain(mem, head, opts);
  return chain.map((pa, i) => {
    const h = header(mem, pa, le);
    if (h.count === 0n || h.count > BigInt(perBlock)) {
      throw new KhoError('KHO_BLOCK_BAD_COUNT', `block ${hex(pa)} has count ${h.count}`, {
        path: `block[${i}] (${physPath(pa)})`,
        offset: 8,
        expected: `1..${perBlock}`,
      });
    }
    const count = Number(h.count);
    const body = mem.read(pa + BigInt(KHO_BLOCK_HEADER_SIZE), count * entrySize);
    const entries = Array.from({ length: count }, (_, k) =>
      body.subarray(k * entrySize, (k + 1) * entrySize),
    );
    return { pa, next: h.next, count, entries };
  });
}

/** All entries of a block set, in order. */
export function decodeBlockSetEntries(
  mem: PhysMemory,
  head: bigint,
  entrySize: number,
  opts: BlockSetOptions = {},
): Uint8Array[] {
  return decodeBlockSet(mem, head, entrySize, opts).flatMap((b) => b.entries);
}

/**
 * All findings for a block set: chain errors stop the walk (a broken chain has no further blocks to
 * look at); count errors are reported for every block.
 */
export function validateBlockSet(
  mem: PhysMemory,
  head: bigint,
  entrySize: number,
  opts: BlockSetOptions = {},
): Finding[] {
  const out: Finding[] = [];
  const pageSize = opts.pageSize ?? 4096;
  const le = (opts.endian ?? 'little') === 'little';
  let chain: bigint[];
  let perBlock: number;
  try {
    perBlock = blockEntriesPerBlock(entrySize, pageSize);
    chain = blockChain(mem, head, opts);
  } catch (e) {
    if (isKhoError(e)) return [findingFromError(e)];
    throw e;
  }
  chain.forEach((pa, i) => {
    const { count } = header(mem, pa, le);
    if (count === 0n || count > BigInt(perBlock)) {
      out.push({
        code: 'KHO_BLOCK_BAD_COUNT',
        severity: 'error',
        message: `block ${hex(pa)} has count ${count}`,
        path: `block[${i}] (${physPath(pa)})`,
        offset: 8,
        expected: `1..${perBlock}`,
      });
    }
  });
  return out;
}

/**
 * Encode entries into a block set: blocks filled in order, `count_per_block` entries each, allocated in
 * chain order. Returns the head (0 for no entries) and the block pages (which a producer preserves).
 * Throws `KHO_BLOCK_TOO_MANY` (the kernel's -ENOSPC) past KHO_MAX_BLOCKS.
 */
export function encodeBlockSet(
  writer: PhysMemoryWriter,
  entries: readonly Uint8Array[],
  entrySize: number,
  opts: { endian?: Endianness } = {},
): { head: bigint; blocks: bigint[] } {
  const pageSize = writer.pageSize;
  const perBlock = blockEntriesPerBlock(entrySize, pageSize);
  const n = Math.ceil(entries.length / perBlock);
  if (n > KHO_MAX_BLOCKS) {
    throw new KhoError('KHO_BLOCK_TOO_MANY', `${entries.length} entries need ${n} blocks`, {
      expected: `at most ${KHO_MAX_BLOCKS} blocks`,
    });
  }
  const endian = opts.endian ?? 'little';
  const blocks: bigint[] = [];
  for (let b = 0; b < n; b++) blocks.push(writer.allocPage());
  blocks.forEach((pa, b) => {
    const page = new Uint8Array(pageSize);
    const slice = entries.slice(b * perBlock, (b + 1) * perBlock);
    page.set(u64Bytes(blocks[b + 1] ?? 0n, endian), 0);
    page.set(u64Bytes(BigInt(slice.length), endian), 8);
    slice.forEach((e, k) => {
      if (e.length !== entrySize) {
        throw new KhoError('KHO_BLOCK_BAD_ENTRY_SIZE', `entry ${b * perBlock + k} is ${e.length} bytes`, {
          expected: `${entrySize} bytes`,
        });
      }
      page.set(e, KHO_BLOCK_HEADER_SIZE + k * entrySize);
    });
    writer.write(pa, page);
  });
  return { head: blocks[0] ?? 0n, blocks };
}
