/**
 * vmalloc preservation (6.18+, unchanged through kho-v4; `include/linux/kho/abi/kexec_handover.h`).
 *
 * Profiles: all eras from 6.18 (kho-v1 6.18/6.19, kho-v2, kho-v3, kho-v4, kho-v4-bootmem); any page size
 * (a chunk is one page). No compatible string of its own in these eras.
 *
 * Contract (spec §2.5): a preserved vmalloc area is described by `struct kho_vmalloc` (16 bytes,
 * native-endian, naturally aligned): `u64 first` (phys of the first chunk, 0 = none), `u32 total_pages`,
 * `u16 flags` (`KHO_VMALLOC_ALLOC = 1`, `KHO_VMALLOC_HUGE_VMAP = 2`), `u16 order`. Chunks are one page
 * each: `u64 next` (phys, 0 = end) then `u64 phys[(PAGE_SIZE-8)/8]` (511 at 4 KiB), the physical start
 * of each contiguous block of `2^order` pages in vmalloc order, zero-terminated unless full. Every chunk
 * page is preserved as order 0, every data block with `kho_preserve_pages(block, 2^order)`.
 *
 * Checked against the 7.3.4 vectors: the self-test's `folios_info` descriptor in each `kho_test` blob
 * decodes from the captured memory (one chunk, one data page, both preserved order 0).
 *
 * The receiving kernel (`kho_restore_vmalloc`) fails when the blocks would exceed `total_pages` or when
 * their final count differs from it; it ignores flag bits it does not know. The decoder additionally
 * never trusts the chunk list: a chunk reached twice (`KHO_VMALLOC_LOOP`, which would hang the kernel),
 * chunks outside the image or unaligned, an impossible order, and more chunks than `total_pages` can
 * need are typed errors; work is bounded by `total_pages`.
 */
import { type Finding, findingFromError, isKhoError, KhoError } from '../errors.ts';
import {
  hex,
  outsideMemory,
  type PhysMemory,
  type PhysMemoryWriter,
  physPath,
  u64Bytes,
  view,
} from './memory/image.ts';
import type { Endianness } from './profile.ts';

export const KHO_VMALLOC_ALLOC = 0x1;
export const KHO_VMALLOC_HUGE_VMAP = 0x2;
export const KHO_VMALLOC_SIZE_BYTES = 16;

export interface KhoVmalloc {
  first: bigint;
  totalPages: number;
  flags: number;
  order: number;
}

/** Entries per chunk: (PAGE_SIZE - 8) / 8. */
export function vmallocChunkEntries(pageSize = 4096): number {
  return (pageSize - 8) / 8;
}

export function encodeKhoVmalloc(v: KhoVmalloc, endian: Endianness = 'little'): Uint8Array {
  const out = new Uint8Array(KHO_VMALLOC_SIZE_BYTES);
  const dv = new DataView(out.buffer);
  const le = endian === 'little';
  dv.setBigUint64(0, v.first, le);
  dv.setUint32(8, v.totalPages, le);
  dv.setUint16(12, v.flags, le);
  dv.setUint16(14, v.order, le);
  return out;
}

/** Decode the 16-byte descriptor; throws `KHO_VMALLOC_TOO_SMALL` for fewer bytes. */
export function decodeKhoVmalloc(bytes: Uint8Array, endian: Endianness = 'little'): KhoVmalloc {
  if (bytes.length < KHO_VMALLOC_SIZE_BYTES) {
    throw new KhoError('KHO_VMALLOC_TOO_SMALL', `struct kho_vmalloc needs 16 bytes, got ${bytes.length}`, {
      expected: '16 bytes',
    });
  }
  const dv = view(bytes);
  const le = endian === 'little';
  return {
    first: dv.getBigUint64(0, le),
    totalPages: dv.getUint32(8, le),
    flags: dv.getUint16(12, le),
    order: dv.getUint16(14, le),
  };
}

export interface DecodedVmalloc extends KhoVmalloc {
  /** Chunk pages in list order. */
  chunks: bigint[];
  /** Physical start of each data block (2^order pages), in vmalloc order. */
  blocks: bigint[];
}

export interface VmallocOptions {
  pageSize?: number;
  endian?: Endianness;
}

/** Walk the chunk list of `desc`, applying the kernel's restore checks and our pointer checks. */
export function decodeVmalloc(mem: PhysMemory, desc: KhoVmalloc, opts: VmallocOptions = {}): DecodedVmalloc {
  const pageSize = opts.pageSize ?? 4096;
  const le = (opts.endian ?? 'little') === 'little';
  const per = vmallocChunkEntries(pageSize);
  if (desc.order > 30 || BigInt(pageSize) << BigInt(desc.order) > 1n << 63n) {
    throw new KhoError('KHO_VMALLOC_BAD_ORDER', `order ${desc.order} is impossible`, {
      offset: 14,
      expected: '0..30',
    });
  }
  const contig = 1 << desc.order;
  const maxBlocks = Math.ceil(desc.totalPages / contig);
  const maxChunks = Math.max(1, Math.ceil(maxBlocks / per)) + 1;
  const chunks: bigint[] = [];
  const blocks: bigint[] = [];
  const seen = new Set<bigint>();
  let pages = 0;
  for (let chunk = desc.first; chunk !== 0n; ) {
    const path = `chunk[${chunks.length}] (${physPath(chunk)})`;
    if (chunk % BigInt(pageSize) !== 0n) {
      throw new KhoError('KHO_VMALLOC_UNALIGNED', `chunk ${hex(chunk)} is not page-aligned`, { path });
    }
    if (!mem.has(chunk, pageSize)) {
      throw new KhoError('KHO_PTR_OUTSIDE_MEMORY', `chunk ${hex(chunk)} is outside the memory image`, {
        path,
      });
    }
    if (seen.has(chunk)) {
      throw new KhoError('KHO_VMALLOC_LOOP', `chunk ${hex(chunk)} is reached a second time`, {
        path,
        expected: 'a chunk list ending with next = 0',
      });
    }
    if (chunks.length >= maxChunks) {
      throw new KhoError(
        'KHO_VMALLOC_TOO_MANY_CHUNKS',
        `more than ${maxChunks} chunks for ${desc.totalPages} pages of order ${desc.order}`,
        { path },
      );
    }
    seen.add(chunk);
    chunks.push(chunk);
    const dv = view(mem.read(chunk, pageSize));
    for (let i = 0; i < per; i++) {
      const phys = dv.getBigUint64(8 + i * 8, le);
      if (phys === 0n) break;
      if (pages + contig > desc.totalPages) {
        throw new KhoError(
          'KHO_VMALLOC_TOO_MANY_PAGES',
          `block ${hex(phys)} would exceed total_pages ${desc.totalPages}`,
          { path: `${path} phys[${i}]`, expected: `${desc.totalPages} pages in all` },
        );
      }
      blocks.push(phys);
      pages += contig;
    }
    chunk = dv.getBigUint64(0, le);
  }
  if (pages !== desc.totalPages) {
    throw new KhoError(
      'KHO_VMALLOC_COUNT_MISMATCH',
      `chunks hold ${pages} pages but total_pages is ${desc.totalPages}`,
      { offset: 8, expected: `${desc.totalPages} pages` },
    );
  }
  return { ...desc, chunks, blocks };
}

/** Findings: the decode error if any, plus warnings for unknown flags and unaligned data blocks. */
export function validateVmalloc(mem: PhysMemory, desc: KhoVmalloc, opts: VmallocOptions = {}): Finding[] {
  const out: Finding[] = [];
  const pageSize = opts.pageSize ?? 4096;
  if (desc.flags & ~(KHO_VMALLOC_ALLOC | KHO_VMALLOC_HUGE_VMAP)) {
    out.push({
      code: 'KHO_VMALLOC_UNKNOWN_FLAGS',
      severity: 'warning',
      message: `flags ${hex(desc.flags)} has bits the kernel ignores`,
      offset: 12,
    });
  }
  try {
    const d = decodeVmalloc(mem, desc, opts);
    d.blocks.forEach((pa, i) => {
      if (pa % BigInt(pageSize) !== 0n) {
        out.push({
          code: 'KHO_VMALLOC_UNALIGNED',
          severity: 'warning',
          message: `data block ${i} at ${hex(pa)} is not page-aligned`,
          path: physPath(pa),
        });
      }
    });
  } catch (e) {
    if (!isKhoError(e)) throw e;
    out.push(findingFromError(e));
  }
  return out;
}

/**
 * Encode a preserved area the way `kho_preserve_vmalloc` does: the first chunk is allocated up front
 * and a new one whenever the current one is full. Returns the descriptor and the chunk pages (which a
 * producer preserves as order 0).
 */
export function encodeVmalloc(
  writer: PhysMemoryWriter,
  blocks: readonly bigint[],
  opts: { order?: number; flags?: number; endian?: Endianness } = {},
): { desc: KhoVmalloc; bytes: Uint8Array; chunks: bigint[] } {
  const order = opts.order ?? 0;
  const endian = opts.endian ?? 'little';
  const per = vmallocChunkEntries(writer.pageSize);
  const totalPages = blocks.length * (1 << order);
  if (totalPages > 0xffffffff) throw new KhoError('KHO_VMALLOC_TOO_MANY_PAGES', `${totalPages} pages`);
  const nChunks = Math.max(1, Math.ceil(blocks.length / per));
  const chunks: bigint[] = [];
  for (let c = 0; c < nChunks; c++) chunks.push(writer.allocPage());
  chunks.forEach((pa, c) => {
    const page = new Uint8Array(writer.pageSize);
    page.set(u64Bytes(chunks[c + 1] ?? 0n, endian), 0);
    blocks.slice(c * per, (c + 1) * per).forEach((b, i) => {
      page.set(u64Bytes(b, endian), 8 + i * 8);
    });
    writer.write(pa, page);
  });
  const desc: KhoVmalloc = { first: chunks[0], totalPages, flags: opts.flags ?? KHO_VMALLOC_ALLOC, order };
  return { desc, bytes: encodeKhoVmalloc(desc, endian), chunks };
}

/**
 * The area's contents: every data block's pages concatenated (`total_pages * PAGE_SIZE` bytes). Every
 * block is checked to be in the image before anything is allocated; `maxBytes` (default 256 MiB) caps
 * the result (`KHO_VMALLOC_TOO_LARGE`), since hostile chunks can name one block many times.
 */
export function readVmallocData(
  mem: PhysMemory,
  d: DecodedVmalloc,
  opts: { pageSize?: number; maxBytes?: number } = {},
): Uint8Array {
  const pageSize = opts.pageSize ?? 4096;
  const blockBytes = pageSize * 2 ** d.order;
  const total = d.blocks.length * blockBytes;
  const max = opts.maxBytes ?? 256 << 20;
  if (total > max) {
    throw new KhoError('KHO_VMALLOC_TOO_LARGE', `area of ${total} bytes exceeds the ${max}-byte cap`);
  }
  for (const pa of d.blocks) if (!mem.has(pa, blockBytes)) throw outsideMemory(pa, blockBytes);
  const out = new Uint8Array(total);
  d.blocks.forEach((pa, i) => {
    out.set(mem.read(pa, blockBytes), i * blockBytes);
  });
  return out;
}
