/**
 * The KHO scratch array and its debugfs text form.
 *
 * Profiles: all eras (debugfs names `scratch_*` until 7.3, `bootmem_*` in kho-v4-bootmem); any page size.
 *
 * Contract (spec §3.1, §4.2, §7; checked against the Linux 7.3.4 vectors):
 * - Binary: `struct kho_scratch { phys_addr_t addr; phys_addr_t size; }`, 16 bytes per entry, native
 *   byte order, naturally aligned, no header. This is the kexec segment `kho_fill_kimage()` adds
 *   (`scratch_size = 16 * cnt` in x86's `setup_data` / `linux,kho-scratch`). All eras, all page sizes.
 * - Entry order: `[0]` lowmem, `[1]` global, `[2..]` one per NUMA node with memory (ascending nid), so
 *   `cnt = 2 + nodes`. A 0-byte entry is still listed (the default scale gives global 0 bytes on a 2 GiB
 *   machine, at an address).
 * - debugfs `out/scratch_phys` and `out/scratch_len` (from 7.4, `bootmem_*`): one `0x%llx\n` line per
 *   entry (lowercase hex, no padding), same order.
 *
 * `validateScratch` reports all problems: fewer than 2 entries, mismatched file lengths, entries that
 * wrap, overlap one another, or are not aligned to `alignment` (default: page size; the kernel aligns
 * cold-boot regions to `CMA_MIN_ALIGNMENT_BYTES`).
 */
import { type Finding, KhoError } from '../errors.ts';
import { hex } from './memory/image.ts';
import type { Endianness } from './profile.ts';

export const KHO_SCRATCH_ENTRY_BYTES = 16;

export interface ScratchEntry {
  addr: bigint;
  size: bigint;
}

export type ScratchRole = 'lowmem' | 'global' | `node${number}`;

/** Role of entry `i`: lowmem, global, then `node<k>` for the k-th node with memory. */
export function scratchRole(i: number): ScratchRole {
  return i === 0 ? 'lowmem' : i === 1 ? 'global' : `node${i - 2}`;
}

export function encodeScratchArray(
  entries: readonly ScratchEntry[],
  endian: Endianness = 'little',
): Uint8Array {
  const out = new Uint8Array(entries.length * KHO_SCRATCH_ENTRY_BYTES);
  const dv = new DataView(out.buffer);
  const le = endian === 'little';
  entries.forEach((e, i) => {
    dv.setBigUint64(i * 16, BigInt.asUintN(64, e.addr), le);
    dv.setBigUint64(i * 16 + 8, BigInt.asUintN(64, e.size), le);
  });
  return out;
}

/** Decode; throws `KHO_SCRATCH_BAD_SIZE` unless the length is a multiple of 16. */
export function decodeScratchArray(bytes: Uint8Array, endian: Endianness = 'little'): ScratchEntry[] {
  if (bytes.length % KHO_SCRATCH_ENTRY_BYTES !== 0) {
    throw new KhoError(
      'KHO_SCRATCH_BAD_SIZE',
      `scratch array of ${bytes.length} bytes is not whole entries`,
      {
        expected: 'a multiple of 16 bytes',
      },
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = endian === 'little';
  const out: ScratchEntry[] = [];
  for (let o = 0; o < bytes.length; o += 16) {
    out.push({ addr: dv.getBigUint64(o, le), size: dv.getBigUint64(o + 8, le) });
  }
  return out;
}

/** Format values as the debugfs file does: `0x%llx\n` per value. */
export function formatScratchText(values: readonly bigint[]): string {
  return values.map((v) => `0x${BigInt.asUintN(64, v).toString(16)}\n`).join('');
}

/**
 * Parse a `scratch_phys` / `scratch_len` file. Strict: every line `0x` + lowercase hex + `\n`, values
 * at most 64 bits; throws `KHO_SCRATCH_BAD_TEXT` with the line's byte offset otherwise.
 */
export function parseScratchText(text: string, path = 'scratch'): bigint[] {
  const out: bigint[] = [];
  if (text === '') return out;
  if (!text.endsWith('\n')) {
    throw new KhoError('KHO_SCRATCH_BAD_TEXT', 'the last line has no newline', {
      path,
      offset: text.length,
      expected: '0x%llx\\n lines',
    });
  }
  let off = 0;
  for (const line of text.slice(0, -1).split('\n')) {
    if (!/^0x(0|[1-9a-f][0-9a-f]{0,15})$/.test(line)) {
      throw new KhoError('KHO_SCRATCH_BAD_TEXT', `line ${JSON.stringify(line.slice(0, 40))} is not 0x%llx`, {
        path,
        offset: off,
        expected: '0x followed by lowercase hex without leading zeros',
      });
    }
    out.push(BigInt(line));
    off += line.length + 1;
  }
  return out;
}

/** Combine the two debugfs files into entries; throws `KHO_SCRATCH_MISMATCH` if the counts differ. */
export function scratchFromDebugfs(physText: string, lenText: string): ScratchEntry[] {
  const phys = parseScratchText(physText, 'scratch_phys');
  const lens = parseScratchText(lenText, 'scratch_len');
  if (phys.length !== lens.length) {
    throw new KhoError(
      'KHO_SCRATCH_MISMATCH',
      `scratch_phys has ${phys.length} lines but scratch_len has ${lens.length}`,
      { path: 'scratch_len' },
    );
  }
  return phys.map((addr, i) => ({ addr, size: lens[i] }));
}

/** The two debugfs file contents for entries. */
export function scratchToDebugfs(entries: readonly ScratchEntry[]): { phys: string; len: string } {
  return {
    phys: formatScratchText(entries.map((e) => e.addr)),
    len: formatScratchText(entries.map((e) => e.size)),
  };
}

export function validateScratch(
  entries: readonly ScratchEntry[],
  opts: { alignment?: bigint } = {},
): Finding[] {
  const align = opts.alignment ?? 4096n;
  const out: Finding[] = [];
  if (entries.length < 2) {
    out.push({
      code: 'KHO_SCRATCH_TOO_FEW',
      severity: 'error',
      message: `${entries.length} scratch entries; the kernel always has lowmem, global and one per node`,
      expected: 'at least 2 entries',
    });
  }
  const limit = 1n << 64n;
  entries.forEach((e, i) => {
    const path = `scratch[${i}] (${scratchRole(i)})`;
    if (e.addr + e.size > limit) {
      out.push({
        code: 'KHO_SCRATCH_WRAPS',
        severity: 'error',
        message: `${hex(e.addr)}+${hex(e.size)} wraps`,
        path,
      });
    }
    if (e.addr % align !== 0n || e.size % align !== 0n) {
      out.push({
        code: 'KHO_SCRATCH_UNALIGNED',
        severity: 'warning',
        message: `${hex(e.addr)}+${hex(e.size)} is not aligned to ${hex(align)}`,
        path,
      });
    }
    for (let j = 0; j < i; j++) {
      const o = entries[j];
      if (e.size > 0n && o.size > 0n && e.addr < o.addr + o.size && o.addr < e.addr + e.size) {
        out.push({
          code: 'KHO_SCRATCH_OVERLAP',
          severity: 'error',
          message: `${scratchRole(i)} ${hex(e.addr)}+${hex(e.size)} overlaps ${scratchRole(j)} ${hex(o.addr)}+${hex(o.size)}`,
          path,
        });
      }
    }
  });
  return out;
}

/**
 * Invariant 6 (spec §10): no preserved block may intersect a scratch region (the kernel enforces it
 * only under CONFIG_KEXEC_HANDOVER_DEBUG, but the next kernel allocates from scratch before it has
 * reserved the preserved blocks). One error per offending block and region.
 */
export function validatePreservedOutsideScratch(
  blocks: Iterable<{ pa: bigint; order: number }>,
  entries: readonly ScratchEntry[],
  pageSize = 4096,
): Finding[] {
  const out: Finding[] = [];
  for (const b of blocks) {
    const end = b.pa + (BigInt(pageSize) << BigInt(b.order));
    entries.forEach((e, i) => {
      if (e.size > 0n && b.pa < e.addr + e.size && e.addr < end) {
        out.push({
          code: 'KHO_SCRATCH_PRESERVED_OVERLAP',
          severity: 'error',
          message: `preserved block ${hex(b.pa)} (order ${b.order}) overlaps ${scratchRole(i)} scratch ${hex(e.addr)}+${hex(e.size)}`,
          path: `phys:${hex(b.pa)}`,
        });
      }
    });
  }
  return out;
}
