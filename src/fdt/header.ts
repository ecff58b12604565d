/**
 * The FDT header and libfdt's header check (`fdt_check_header`, libfdt 1.6.1 rules).
 *
 * Contract: `readHeader(bytes)` returns the ten big-endian header fields of a blob whose first
 * bytes hold them; `checkHeader(bytes)` throws the `KhoError` libfdt's check would return
 * (FDT_ERR_BADMAGIC, FDT_ERR_BADVERSION, FDT_ERR_TRUNCATED), with the header offset of the field
 * at fault. Fields shorter versions lack (size_dt_struct before v17, size_dt_strings before v3,
 * boot_cpuid_phys before v2) read as 0. Nothing here reads past `bytes.length`.
 */
import { KhoError } from '../errors.ts';
import { FDT_FIRST_SUPPORTED_VERSION, FDT_LAST_SUPPORTED_VERSION, FDT_MAGIC } from './model.ts';

export interface FdtHeader {
  magic: number;
  totalsize: number;
  offDtStruct: number;
  offDtStrings: number;
  offMemRsvmap: number;
  version: number;
  lastCompVersion: number;
  bootCpuidPhys: number;
  sizeDtStrings: number;
  sizeDtStruct: number;
}

/** Byte offsets of the header fields. */
export const HDR = {
  magic: 0,
  totalsize: 4,
  offDtStruct: 8,
  offDtStrings: 12,
  offMemRsvmap: 16,
  version: 20,
  lastCompVersion: 24,
  bootCpuidPhys: 28,
  sizeDtStrings: 32,
  sizeDtStruct: 36,
} as const;

/** Header size for a version, as libfdt's fdt_header_size_(). */
export function headerSizeForVersion(version: number): number {
  if (version <= 1) return 28;
  if (version <= 2) return 32;
  if (version <= 16) return 36;
  return 40;
}

export function be32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** Read the header fields; throws FDT_ERR_TRUNCATED if even the magic/version are not there. */
export function readHeader(bytes: Uint8Array): FdtHeader {
  if (bytes.length < 28) {
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `blob is ${bytes.length} bytes, shorter than the smallest FDT header`,
      {
        offset: bytes.length,
        expected: 'at least 28 bytes (40 for version 17)',
      },
    );
  }
  const get = (off: number) => (off + 4 <= bytes.length ? be32(bytes, off) : 0);
  const version = be32(bytes, HDR.version);
  const hdrsize = headerSizeForVersion(version);
  const field = (off: number) => (off + 4 <= hdrsize ? get(off) : 0);
  return {
    magic: be32(bytes, HDR.magic),
    totalsize: be32(bytes, HDR.totalsize),
    offDtStruct: be32(bytes, HDR.offDtStruct),
    offDtStrings: be32(bytes, HDR.offDtStrings),
    offMemRsvmap: be32(bytes, HDR.offMemRsvmap),
    version,
    lastCompVersion: be32(bytes, HDR.lastCompVersion),
    bootCpuidPhys: field(HDR.bootCpuidPhys),
    sizeDtStrings: field(HDR.sizeDtStrings),
    sizeDtStruct: field(HDR.sizeDtStruct),
  };
}

const INT_MAX = 0x7fffffff;

function checkOff(hdrsize: number, totalsize: number, off: number): boolean {
  return off >= hdrsize && off <= totalsize;
}

function checkBlock(hdrsize: number, totalsize: number, base: number, size: number): boolean {
  return (
    checkOff(hdrsize, totalsize, base) &&
    base + size <= 0xffffffff &&
    checkOff(hdrsize, totalsize, base + size)
  );
}

/**
 * libfdt's fdt_check_header(): magic, versions, and that each block lies inside `totalsize`.
 * Does not compare `totalsize` with the buffer; see `checkBuffer`.
 */
export function checkHeader(h: FdtHeader): void {
  if (h.magic !== FDT_MAGIC) {
    throw new KhoError('FDT_ERR_BADMAGIC', `bad magic 0x${h.magic.toString(16).padStart(8, '0')}`, {
      offset: HDR.magic,
      expected: '0xd00dfeed',
    });
  }
  if (h.version < FDT_FIRST_SUPPORTED_VERSION || h.lastCompVersion > FDT_LAST_SUPPORTED_VERSION) {
    throw new KhoError(
      'FDT_ERR_BADVERSION',
      `unsupported version ${h.version} (last compatible ${h.lastCompVersion})`,
      {
        offset: h.version < FDT_FIRST_SUPPORTED_VERSION ? HDR.version : HDR.lastCompVersion,
        expected: `version >= ${FDT_FIRST_SUPPORTED_VERSION} and last_comp_version <= ${FDT_LAST_SUPPORTED_VERSION}`,
      },
    );
  }
  if (h.version < h.lastCompVersion) {
    throw new KhoError(
      'FDT_ERR_BADVERSION',
      `version ${h.version} is older than last_comp_version ${h.lastCompVersion}`,
      { offset: HDR.version, expected: 'version >= last_comp_version' },
    );
  }
  const hdrsize = headerSizeForVersion(h.version);
  if (h.totalsize < hdrsize || h.totalsize > INT_MAX) {
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `totalsize ${h.totalsize} cannot hold a version ${h.version} header`,
      {
        offset: HDR.totalsize,
        expected: `${hdrsize} <= totalsize <= ${INT_MAX}`,
      },
    );
  }
  if (!checkOff(hdrsize, h.totalsize, h.offMemRsvmap)) {
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `memory reservation block offset ${h.offMemRsvmap} is outside the blob`,
      {
        offset: HDR.offMemRsvmap,
        expected: `${hdrsize} <= off_mem_rsvmap <= totalsize ${h.totalsize}`,
      },
    );
  }
  const structOk =
    h.version < 17
      ? checkOff(hdrsize, h.totalsize, h.offDtStruct)
      : checkBlock(hdrsize, h.totalsize, h.offDtStruct, h.sizeDtStruct);
  if (!structOk) {
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `structure block [${h.offDtStruct}, +${h.sizeDtStruct}) is outside the blob of ${h.totalsize} bytes`,
      { offset: HDR.offDtStruct, expected: 'the structure block inside totalsize' },
    );
  }
  if (!checkBlock(hdrsize, h.totalsize, h.offDtStrings, h.sizeDtStrings)) {
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `strings block [${h.offDtStrings}, +${h.sizeDtStrings}) is outside the blob of ${h.totalsize} bytes`,
      { offset: HDR.offDtStrings, expected: 'the strings block inside totalsize' },
    );
  }
}
