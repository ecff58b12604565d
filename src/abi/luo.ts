/**
 * LUO (Live Update Orchestrator) state as handed over through KHO, luo-v5 era (`include/linux/kho/abi/luo.h`,
 * `include/linux/kho/abi/memfd.h`); decode-only beyond the top struct.
 *
 * Profiles: kho-v4 kernels with CONFIG_LIVEUPDATE (7.3.4 writes luo-v5); page size only matters for the
 * block sets and FLB pages.
 *
 * Contract (spec §9; the Linux 7.3.4 vectors win where they differ):
 * - The KHO sub-node `LUO` holds a raw, packed, native-endian `struct luo_ser` of 32 bytes, not an FDT:
 *   `char compatible[8]` (`"luo-v5"`, NUL-padded to ALIGN(sizeof, 8)), `u64 liveupdate_num`,
 *   `u64 sessions_pa`, `u64 flbs_pa`. The receiving kernel compares the compatible with `strncmp` over
 *   8 bytes and **panics** on a mismatch or a shorter blob. In the vectors the stage-1 blob already
 *   carries liveupdate number 1 and sessions address 0 (sessions are serialized during the kexec itself).
 * - `sessions_pa` → a KHO block set (`block.ts`) of `struct luo_session_ser` (80 bytes): `char name[64]`,
 *   then `struct luo_file_set_ser { u64 files; u64 count; }`; `files` → a block set of
 *   `struct luo_file_ser` (64 bytes): `char compatible[48]`, `u64 data`, `u64 token`.
 * - `flbs_pa` → one preserved region of `pgcnt` pages: `struct luo_flb_header_ser { u64 pgcnt; u64 count; }`
 *   then `count` × `struct luo_flb_ser { char name[48]; u64 data; u64 count; }` (64 bytes). The vector's
 *   FLB page holds pgcnt 1, count 0.
 * - memfd (`"memfd-v2"`): `luo_file_ser.data` → `struct memfd_luo_ser { u64 pos; u64 size; u32 seals;
 *   u32 flags; u64 nr_folios; struct kho_vmalloc folios; }` (48 bytes, packed; memfd-v1 lacked
 *   seals/flags: 40 bytes); the vmalloc area holds `nr_folios` × `struct memfd_luo_folio_ser { u64
 *   pfn:52, flags:12; u64 index; }` (16 bytes; flags bit 0 dirty, bit 1 uptodate).
 *
 * Session, file, FLB and memfd layouts come from the spec and kernel headers only: no vector holds them
 * (the capture was taken before sessions were serialized), so they are marked unverified.
 */
import { type Finding, findingFromError, KhoError } from '../errors.ts';
import { decodeBlockSetEntries } from './block.ts';
import { hex, type PhysMemory, physPath, view } from './memory/image.ts';
import type { Endianness } from './profile.ts';
import { decodeKhoVmalloc, decodeVmalloc, readVmallocData } from './vmalloc.ts';

export const LUO_KHO_ENTRY_NAME = 'LUO';
export const LUO_ABI_COMPATIBLE = 'luo-v5';
/** ALIGN(sizeof("luo-v5"), 8). */
export const LUO_ABI_COMPAT_LEN = 8;
export const LUO_SER_SIZE = 32;
export const LIVEUPDATE_SESSION_NAME_LENGTH = 64;
export const LIVEUPDATE_HNDL_COMPAT_LENGTH = 48;
export const LIVEUPDATE_FLB_COMPAT_LENGTH = 48;
export const LUO_SESSION_SER_SIZE = 80;
export const LUO_FILE_SER_SIZE = 64;
export const LUO_FLB_SER_SIZE = 64;
export const LUO_FLB_HEADER_SIZE = 16;
export const MEMFD_LUO_FH_COMPATIBLE = 'memfd-v2';
export const MEMFD_LUO_SER_SIZE_V2 = 48;
export const MEMFD_LUO_SER_SIZE_V1 = 40;
export const MEMFD_LUO_FOLIO_SER_SIZE = 16;
export const MEMFD_LUO_FOLIO_DIRTY = 1;
export const MEMFD_LUO_FOLIO_UPTODATE = 2;

export interface LuoSer {
  compatible: string;
  liveupdateNum: bigint;
  sessionsPa: bigint;
  flbsPa: bigint;
}

const latin1 = new TextDecoder('latin1');

/** A fixed-size C string field: text up to the first NUL, and whether a NUL was found. */
export function cString(bytes: Uint8Array): { text: string; terminated: boolean } {
  const nul = bytes.indexOf(0);
  return { text: latin1.decode(nul < 0 ? bytes : bytes.subarray(0, nul)), terminated: nul >= 0 };
}

function putCString(out: Uint8Array, off: number, len: number, s: string, what: string): void {
  const b = new TextEncoder().encode(s);
  if (b.length >= len) {
    throw new KhoError('KHO_LUO_STRING_TOO_LONG', `${what} '${s}' does not fit ${len} bytes with its NUL`);
  }
  out.set(b, off);
}

export function encodeLuoSer(
  v: { liveupdateNum: bigint; sessionsPa: bigint; flbsPa: bigint; compatible?: string },
  endian: Endianness = 'little',
): Uint8Array {
  const out = new Uint8Array(LUO_SER_SIZE);
  putCString(out, 0, LUO_ABI_COMPAT_LEN, v.compatible ?? LUO_ABI_COMPATIBLE, 'compatible');
  const dv = view(out);
  const le = endian === 'little';
  dv.setBigUint64(8, v.liveupdateNum, le);
  dv.setBigUint64(16, v.sessionsPa, le);
  dv.setBigUint64(24, v.flbsPa, le);
  return out;
}

/**
 * Decode a `LUO` blob. Throws `KHO_LUO_TOO_SMALL` for fewer than 32 bytes and `KHO_LUO_BAD_COMPATIBLE`
 * when the first 8 bytes do not compare equal to `"luo-v5"` with strncmp (both make the kernel panic).
 */
export function decodeLuoSer(blob: Uint8Array, endian: Endianness = 'little'): LuoSer {
  if (blob.length < LUO_SER_SIZE) {
    throw new KhoError(
      'KHO_LUO_TOO_SMALL',
      `LUO blob of ${blob.length} bytes is shorter than struct luo_ser`,
      {
        expected: `${LUO_SER_SIZE} bytes`,
      },
    );
  }
  const compat = cString(blob.subarray(0, LUO_ABI_COMPAT_LEN));
  if (compat.text !== LUO_ABI_COMPATIBLE) {
    throw new KhoError(
      'KHO_LUO_BAD_COMPATIBLE',
      `LUO compatible ${JSON.stringify(compat.text)} is not ${JSON.stringify(LUO_ABI_COMPATIBLE)} (the kernel panics)`,
      { offset: 0, expected: LUO_ABI_COMPATIBLE },
    );
  }
  const dv = view(blob);
  const le = endian === 'little';
  return {
    compatible: compat.text,
    liveupdateNum: dv.getBigUint64(8, le),
    sessionsPa: dv.getBigUint64(16, le),
    flbsPa: dv.getBigUint64(24, le),
  };
}

export function validateLuoSer(blob: Uint8Array, endian: Endianness = 'little'): Finding[] {
  const out: Finding[] = [];
  try {
    const s = decodeLuoSer(blob, endian);
    if (blob.length > LUO_SER_SIZE) {
      out.push({
        code: 'KHO_LUO_TRAILING',
        severity: 'info',
        message: `${blob.length - LUO_SER_SIZE} bytes after struct luo_ser`,
        offset: LUO_SER_SIZE,
      });
    }
    if (s.liveupdateNum === 0n) {
      out.push({
        code: 'KHO_LUO_ZERO_NUMBER',
        severity: 'warning',
        message: 'liveupdate_num 0: the writer stores its own number + 1, so at least 1',
        offset: 8,
      });
    }
    for (const [name, pa, off] of [
      ['sessions_pa', s.sessionsPa, 16],
      ['flbs_pa', s.flbsPa, 24],
    ] as const) {
      if (pa % 4096n !== 0n) {
        out.push({
          code: 'KHO_LUO_UNALIGNED',
          severity: 'error',
          message: `${name} ${hex(pa)} is not page-aligned`,
          offset: off,
        });
      }
    }
  } catch (e) {
    if (!(e instanceof KhoError)) throw e;
    out.push(findingFromError(e));
  }
  return out;
}

export interface LuoOptions {
  pageSize?: number;
  endian?: Endianness;
}

export interface LuoFile {
  compatible: string;
  data: bigint;
  token: bigint;
}

export interface LuoSession {
  name: string;
  filesPa: bigint;
  fileCount: bigint;
}

/** The sessions block set at `sessionsPa` (0 = none). */
export function decodeLuoSessions(mem: PhysMemory, sessionsPa: bigint, opts: LuoOptions = {}): LuoSession[] {
  const le = (opts.endian ?? 'little') === 'little';
  return decodeBlockSetEntries(mem, sessionsPa, LUO_SESSION_SER_SIZE, opts).map((e) => {
    const dv = view(e);
    return {
      name: cString(e.subarray(0, LIVEUPDATE_SESSION_NAME_LENGTH)).text,
      filesPa: dv.getBigUint64(64, le),
      fileCount: dv.getBigUint64(72, le),
    };
  });
}

/** The files block set of one session. */
export function decodeLuoFiles(mem: PhysMemory, filesPa: bigint, opts: LuoOptions = {}): LuoFile[] {
  const le = (opts.endian ?? 'little') === 'little';
  return decodeBlockSetEntries(mem, filesPa, LUO_FILE_SER_SIZE, opts).map((e) => {
    const dv = view(e);
    return {
      compatible: cString(e.subarray(0, LIVEUPDATE_HNDL_COMPAT_LENGTH)).text,
      data: dv.getBigUint64(48, le),
      token: dv.getBigUint64(56, le),
    };
  });
}

export interface LuoFlb {
  name: string;
  data: bigint;
  count: bigint;
}

/**
 * The FLB region at `flbsPa` (0 = none). Throws `KHO_LUO_BAD_FLB` when `pgcnt` is 0 or the entries do
 * not fit in `pgcnt` pages, and `KHO_PTR_OUTSIDE_MEMORY` when the pages are not in the image.
 */
export function decodeLuoFlbs(
  mem: PhysMemory,
  flbsPa: bigint,
  opts: LuoOptions = {},
): { pgcnt: bigint; flbs: LuoFlb[] } {
  if (flbsPa === 0n) return { pgcnt: 0n, flbs: [] };
  const pageSize = opts.pageSize ?? 4096;
  const le = (opts.endian ?? 'little') === 'little';
  const h = view(mem.read(flbsPa, LUO_FLB_HEADER_SIZE));
  const pgcnt = h.getBigUint64(0, le);
  const count = h.getBigUint64(8, le);
  const need = BigInt(LUO_FLB_HEADER_SIZE) + count * BigInt(LUO_FLB_SER_SIZE);
  if (pgcnt === 0n || need > pgcnt * BigInt(pageSize)) {
    throw new KhoError('KHO_LUO_BAD_FLB', `FLB header: ${count} entries do not fit ${pgcnt} pages`, {
      path: physPath(flbsPa),
    });
  }
  if (!mem.has(flbsPa, need)) {
    throw new KhoError(
      'KHO_PTR_OUTSIDE_MEMORY',
      `FLB entries at ${hex(flbsPa)} are outside the memory image`,
      {
        path: physPath(flbsPa),
      },
    );
  }
  const body = mem.read(flbsPa + BigInt(LUO_FLB_HEADER_SIZE), Number(count) * LUO_FLB_SER_SIZE);
  const flbs: LuoFlb[] = [];
  for (let i = 0; i < Number(count); i++) {
    const e = body.subarray(i * LUO_FLB_SER_SIZE, (i + 1) * LUO_FLB_SER_SIZE);
    const dv = view(e);
    flbs.push({
      name: cString(e.subarray(0, LIVEUPDATE_FLB_COMPAT_LENGTH)).text,
      data: dv.getBigUint64(48, le),
      count: dv.getBigUint64(56, le),
    });
  }
  return { pgcnt, flbs };
}

export interface MemfdLuoSer {
  pos: bigint;
  size: bigint;
  /** memfd-v2 only. */
  seals?: number;
  /** memfd-v2 only. */
  flags?: number;
  nrFolios: bigint;
  folios: { first: bigint; totalPages: number; flags: number; order: number };
}

export interface MemfdFolio {
  pfn: bigint;
  flags: number;
  index: bigint;
}

/** Decode `struct memfd_luo_ser` (memfd-v2: 48 bytes; memfd-v1: 40). */
export function decodeMemfdLuoSer(
  bytes: Uint8Array,
  version: 'memfd-v1' | 'memfd-v2' = 'memfd-v2',
  endian: Endianness = 'little',
): MemfdLuoSer {
  const size = version === 'memfd-v2' ? MEMFD_LUO_SER_SIZE_V2 : MEMFD_LUO_SER_SIZE_V1;
  if (bytes.length < size) {
    throw new KhoError(
      'KHO_MEMFD_TOO_SMALL',
      `struct memfd_luo_ser needs ${size} bytes, got ${bytes.length}`,
    );
  }
  const dv = view(bytes);
  const le = endian === 'little';
  if (version === 'memfd-v1') {
    return {
      pos: dv.getBigUint64(0, le),
      size: dv.getBigUint64(8, le),
      nrFolios: dv.getBigUint64(16, le),
      folios: decodeKhoVmalloc(bytes.subarray(24, 40), endian),
    };
  }
  return {
    pos: dv.getBigUint64(0, le),
    size: dv.getBigUint64(8, le),
    seals: dv.getUint32(16, le),
    flags: dv.getUint32(20, le),
    nrFolios: dv.getBigUint64(24, le),
    folios: decodeKhoVmalloc(bytes.subarray(32, 48), endian),
  };
}

/** The folio entries of a memfd, read through its vmalloc area; `KHO_MEMFD_BAD_FOLIOS` if they do not fit. */
export function decodeMemfdFolios(mem: PhysMemory, ser: MemfdLuoSer, opts: LuoOptions = {}): MemfdFolio[] {
  const pageSize = opts.pageSize ?? 4096;
  const le = (opts.endian ?? 'little') === 'little';
  if (ser.nrFolios * BigInt(MEMFD_LUO_FOLIO_SER_SIZE) > BigInt(ser.folios.totalPages) * BigInt(pageSize)) {
    throw new KhoError(
      'KHO_MEMFD_BAD_FOLIOS',
      `${ser.nrFolios} folio entries do not fit the ${ser.folios.totalPages}-page array`,
    );
  }
  if (ser.nrFolios === 0n) return [];
  const area = readVmallocData(mem, decodeVmalloc(mem, ser.folios, opts), { pageSize });
  const dv = view(area);
  const out: MemfdFolio[] = [];
  for (let i = 0; i < Number(ser.nrFolios); i++) {
    const w = dv.getBigUint64(i * 16, le);
    out.push({
      pfn: w & ((1n << 52n) - 1n),
      flags: Number(w >> 52n),
      index: dv.getBigUint64(i * 16 + 8, le),
    });
  }
  return out;
}

export interface LuoState {
  luo: LuoSer;
  sessions: Array<
    LuoSession & { files: Array<LuoFile & { memfd?: { ser: MemfdLuoSer; folios: MemfdFolio[] } }> }
  >;
  flbs: { pgcnt: bigint; flbs: LuoFlb[] };
}

/**
 * Everything reachable from a `LUO` blob: sessions, their files (memfd files decoded when their
 * compatible is memfd-v2 or memfd-v1 and their data is in the image), and FLBs.
 */
export function decodeLuoState(mem: PhysMemory, blob: Uint8Array, opts: LuoOptions = {}): LuoState {
  const endian = opts.endian ?? 'little';
  const luo = decodeLuoSer(blob, endian);
  const sessions = decodeLuoSessions(mem, luo.sessionsPa, opts).map((s) => ({
    ...s,
    files: decodeLuoFiles(mem, s.filesPa, opts).map((f) => {
      const v =
        f.compatible === 'memfd-v2' ? 'memfd-v2' : f.compatible === 'memfd-v1' ? 'memfd-v1' : undefined;
      if (!v) return f;
      const size = v === 'memfd-v2' ? MEMFD_LUO_SER_SIZE_V2 : MEMFD_LUO_SER_SIZE_V1;
      const memfd = decodeMemfdLuoSer(mem.read(f.data, size), v, endian);
      return { ...f, memfd: { ser: memfd, folios: decodeMemfdFolios(mem, memfd, opts) } };
    }),
  }));
  return { luo, sessions, flbs: decodeLuoFlbs(mem, luo.flbsPa, opts) };
}

/**
 * Every problem reachable from a `LUO` blob: the struct itself, then each session, file set, memfd and
 * the FLB region, each checked on its own so one broken part does not hide the others.
 */
export function validateLuoState(mem: PhysMemory, blob: Uint8Array, opts: LuoOptions = {}): Finding[] {
  const out = validateLuoSer(blob, opts.endian);
  if (out.some((f) => f.severity === 'error')) return out;
  const luo = decodeLuoSer(blob, opts.endian);
  const guard = (path: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof KhoError)) throw e;
      out.push({
        code: e.code,
        severity: 'error',
        message: e.message,
        path: e.path ? `${path} ${e.path}` : path,
      });
    }
  };
  guard('sessions', () => {
    const names = new Set<string>();
    for (const s of decodeLuoSessions(mem, luo.sessionsPa, opts)) {
      const path = `session ${JSON.stringify(s.name)}`;
      if (names.has(s.name)) {
        out.push({
          code: 'KHO_LUO_DUPLICATE_SESSION',
          severity: 'error',
          message: `two sessions named ${JSON.stringify(s.name)}`,
          path,
        });
      }
      names.add(s.name);
      guard(path, () => {
        const files = decodeLuoFiles(mem, s.filesPa, opts);
        if (BigInt(files.length) !== s.fileCount) {
          out.push({
            code: 'KHO_LUO_FILE_COUNT',
            severity: 'warning',
            message: `file set count ${s.fileCount} but its blocks hold ${files.length} files`,
            path,
          });
        }
        const tokens = new Set<bigint>();
        for (const f of files) {
          const fpath = `${path} token ${hex(f.token)}`;
          if (tokens.has(f.token)) {
            out.push({
              code: 'KHO_LUO_DUPLICATE_TOKEN',
              severity: 'error',
              message: `token ${hex(f.token)} used twice`,
              path: fpath,
            });
          }
          tokens.add(f.token);
          if (f.compatible === 'memfd-v2' || f.compatible === 'memfd-v1') {
            guard(fpath, () => {
              const size = f.compatible === 'memfd-v2' ? MEMFD_LUO_SER_SIZE_V2 : MEMFD_LUO_SER_SIZE_V1;
              const ser = decodeMemfdLuoSer(
                mem.read(f.data, size),
                f.compatible as 'memfd-v1' | 'memfd-v2',
                opts.endian,
              );
              decodeMemfdFolios(mem, ser, opts);
            });
          }
        }
      });
    }
  });
  guard('flbs', () => decodeLuoFlbs(mem, luo.flbsPa, opts));
  return out;
}
