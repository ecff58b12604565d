/**
 * ELF64 core files as physical memory: QEMU `dump-guest-memory` output and the kernel's `/proc/vmcore`.
 *
 * Contract (ELF64 gABI): the 64-byte header must have magic `\x7fELF`, class ELFCLASS64 (2), data
 * ELFDATA2LSB (1) or ELFDATA2MSB (2), EI_VERSION 1, `e_type` ET_CORE (4), `e_version` 1, `e_ehsize` 64
 * and `e_phentsize` 56; the program header table must lie inside the file. `e_phnum` = PN_XNUM
 * (0xffff) takes the real count from section header 0's `sh_info`. Every PT_LOAD (type 1) segment maps
 * physical `[p_paddr, p_paddr + p_memsz)`: the first `p_filesz` bytes from file offset `p_offset`, the
 * rest zeros. Segments whose file bytes lie outside the file, whose `p_filesz > p_memsz`, or whose
 * physical range wraps past 2^64 are errors (`KHO_ELF_*`); segments mapping the same physical bytes
 * twice (vmcore maps kernel text twice) are clipped, the first one wins. Reads are lazy.
 */
import { fstatSync, readSync } from 'node:fs';
import { KhoError } from '../../errors.ts';
import { hex, type Segment, U64_MAX } from './image.ts';
import { FileMemory, fileSegment, openFile } from './raw.ts';

export const ELF_MAGIC = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46);
export const ET_CORE = 4;
export const PT_LOAD = 1;
export const PN_XNUM = 0xffff;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;

export interface ElfLoadSegment {
  paddr: bigint;
  vaddr: bigint;
  offset: bigint;
  filesz: bigint;
  memsz: bigint;
}

export interface ElfCoreInfo {
  endian: 'little' | 'big';
  machine: number;
  phnum: number;
  loads: ElfLoadSegment[];
}

function elfErr(code: string, msg: string, path: string, offset?: number): KhoError {
  return new KhoError(`KHO_ELF_${code}`, msg, { path, ...(offset !== undefined ? { offset } : {}) });
}

/**
 * Parse and strictly validate an ELF64 core's headers. `readAt(off, len)` returns file bytes (fewer at
 * the end of the file); `fileSize` bounds every table.
 */
export function parseElfCore(
  readAt: (off: number, len: number) => Uint8Array,
  fileSize: number,
  path = '<elf>',
): ElfCoreInfo {
  if (fileSize < EHDR_SIZE)
    throw elfErr('TRUNCATED', `file of ${fileSize} bytes is shorter than an ELF64 header`, path, 0);
  const h = readAt(0, EHDR_SIZE);
  if (h.length < EHDR_SIZE) throw elfErr('TRUNCATED', 'short ELF header', path, 0);
  for (let i = 0; i < 4; i++)
    if (h[i] !== ELF_MAGIC[i]) throw elfErr('BAD_MAGIC', 'not an ELF file', path, 0);
  if (h[4] !== 2) throw elfErr('BAD_CLASS', `EI_CLASS ${h[4]} is not ELFCLASS64 (2)`, path, 4);
  if (h[5] !== 1 && h[5] !== 2)
    throw elfErr('BAD_DATA', `EI_DATA ${h[5]} is neither LSB (1) nor MSB (2)`, path, 5);
  if (h[6] !== 1) throw elfErr('BAD_VERSION', `EI_VERSION ${h[6]} is not 1`, path, 6);
  const le = h[5] === 1;
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const eType = dv.getUint16(16, le);
  if (eType !== ET_CORE) throw elfErr('NOT_CORE', `e_type ${eType} is not ET_CORE (4)`, path, 16);
  const machine = dv.getUint16(18, le);
  const version = dv.getUint32(20, le);
  if (version !== 1) throw elfErr('BAD_VERSION', `e_version ${version} is not 1`, path, 20);
  const phoff = dv.getBigUint64(32, le);
  const shoff = dv.getBigUint64(40, le);
  const ehsize = dv.getUint16(52, le);
  if (ehsize !== EHDR_SIZE) throw elfErr('BAD_HEADER', `e_ehsize ${ehsize} is not 64`, path, 52);
  const phentsize = dv.getUint16(54, le);
  let phnum = dv.getUint16(56, le);
  if (phnum > 0 && phentsize !== PHDR_SIZE)
    throw elfErr('BAD_HEADER', `e_phentsize ${phentsize} is not 56`, path, 54);
  const size = BigInt(fileSize);
  if (phnum === PN_XNUM) {
    const shentsize = dv.getUint16(58, le);
    if (shoff === 0n || shentsize !== SHDR_SIZE || shoff + BigInt(SHDR_SIZE) > size) {
      throw elfErr(
        'BAD_HEADER',
        'e_phnum is PN_XNUM but section header 0 is missing or outside the file',
        path,
        40,
      );
    }
    const sh = readAt(Number(shoff), SHDR_SIZE);
    if (sh.length < SHDR_SIZE) throw elfErr('TRUNCATED', 'short section header 0', path, Number(shoff));
    phnum = new DataView(sh.buffer, sh.byteOffset, sh.byteLength).getUint32(44, le);
  }
  if (phnum === 0) return { endian: le ? 'little' : 'big', machine, phnum, loads: [] };
  if (phoff + BigInt(phnum) * BigInt(PHDR_SIZE) > size) {
    throw elfErr(
      'PHDR_OUTSIDE_FILE',
      `program header table (${phnum} entries at ${hex(phoff)}) runs past the end of the file (${fileSize} bytes)`,
      path,
      32,
    );
  }
  const table = readAt(Number(phoff), phnum * PHDR_SIZE);
  if (table.length < phnum * PHDR_SIZE)
    throw elfErr('TRUNCATED', 'short program header table', path, Number(phoff));
  const tv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const loads: ElfLoadSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * PHDR_SIZE;
    if (tv.getUint32(o, le) !== PT_LOAD) continue;
    const at = Number(phoff) + o;
    const seg: ElfLoadSegment = {
      offset: tv.getBigUint64(o + 8, le),
      vaddr: tv.getBigUint64(o + 16, le),
      paddr: tv.getBigUint64(o + 24, le),
      filesz: tv.getBigUint64(o + 32, le),
      memsz: tv.getBigUint64(o + 40, le),
    };
    if (seg.filesz > seg.memsz)
      throw elfErr(
        'BAD_SEGMENT',
        `PT_LOAD #${i}: p_filesz ${hex(seg.filesz)} > p_memsz ${hex(seg.memsz)}`,
        path,
        at,
      );
    if (seg.offset + seg.filesz > size) {
      throw elfErr(
        'SEGMENT_OUTSIDE_FILE',
        `PT_LOAD #${i}: file bytes ${hex(seg.offset)}+${hex(seg.filesz)} run past the end of the file (${fileSize} bytes)`,
        path,
        at,
      );
    }
    if (seg.memsz > 0n && seg.paddr + seg.memsz - 1n > U64_MAX) {
      throw elfErr(
        'BAD_SEGMENT',
        `PT_LOAD #${i}: physical range ${hex(seg.paddr)}+${hex(seg.memsz)} wraps past 2^64`,
        path,
        at,
      );
    }
    loads.push(seg);
  }
  return { endian: le ? 'little' : 'big', machine, phnum, loads };
}

/** Segments for the loads of a parsed core backed by `fd`. */
function loadSegments(fd: number, info: ElfCoreInfo, path: string): Segment[] {
  const segs: Segment[] = [];
  for (const l of info.loads) {
    if (l.filesz > 0n) segs.push(fileSegment(fd, Number(l.offset), l.paddr, l.filesz, path));
    const tail = l.memsz - l.filesz;
    if (tail > 0n) {
      segs.push({ start: l.paddr + l.filesz, size: tail, read: (_off, len) => new Uint8Array(len) });
    }
  }
  return segs;
}

/** Open an ELF64 core as physical memory (segments by `p_paddr`). */
export function openElfCore(path: string): FileMemory & { elf: ElfCoreInfo } {
  const fd = openFile(path);
  try {
    const fileSize = fstatSync(fd).size;
    const readAt = (off: number, len: number): Uint8Array => {
      const buf = new Uint8Array(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, buf, got, len - got, off + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    };
    const info = parseElfCore(readAt, fileSize, path);
    const mem = new FileMemory(loadSegments(fd, info, path), [fd], 'elf') as FileMemory & {
      elf: ElfCoreInfo;
    };
    mem.elf = info;
    return mem;
  } catch (e) {
    new FileMemory([], [fd], 'elf').close();
    throw e;
  }
}
