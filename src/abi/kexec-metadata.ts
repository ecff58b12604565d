/**
 * The `kexec-metadata` sub-blob (kho-v3, kho-v4; `include/linux/kho/abi/kexec_metadata.h`).
 *
 * Profiles: kho-v3, kho-v4, kho-v4-bootmem; layout independent of page size.
 *
 * Contract (spec §6, checked against the Linux 7.3.4 vectors): a packed, native-endian C struct, not an
 * FDT, 73 bytes:
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 4 | `u32 version` = 1 |
 * | 4 | 65 | `char previous_release[65]`: `uname -r` of the kernel that wrote it, NUL-terminated, zero-padded |
 * | 69 | 4 | `u32 kexec_count` (unaligned) |
 *
 * Stored in one zeroed preserved page, `blob-size` = 73; page size does not change the layout. The
 * blob written at cold boot already carries count 1 (`kexec_count = incoming count + 1`, incoming 0 on a
 * cold boot), so the first kexec'd kernel logs `KHO: exec from: <release> (count 1)`.
 *
 * `acceptKexecMetadata()` reproduces the receiving kernel's checks in order, with its exact warning texts
 * (`kho_in_kexec_metadata()`, pr_fmt prefix `KHO: `): size < 4 → `kexec-metadata blob too small (%zu
 * bytes)`; version ≠ 1 → `kexec-metadata version %u not supported (expected %u)`; size < 73 →
 * `kexec-metadata blob too small for v%u (%zu < %zu)`; otherwise `exec from: %s (count %u)`.
 */
import { type Finding, KhoError } from '../errors.ts';
import type { Endianness } from './profile.ts';

export const KHO_METADATA_NODE_NAME = 'kexec-metadata';
export const KHO_KEXEC_METADATA_VERSION = 1;
/** `__NEW_UTS_LEN + 1`. */
export const KEXEC_METADATA_RELEASE_LEN = 65;
export const KEXEC_METADATA_SIZE = 73;
/** The kernel's log prefix for these messages. */
export const KHO_LOG_PREFIX = 'KHO: ';

export interface KexecMetadata {
  version: number;
  /** Release string up to the first NUL. */
  previousRelease: string;
  kexecCount: number;
}

const latin1 = new TextDecoder('latin1');

/** Encode a 73-byte blob; throws `KHO_METADATA_RELEASE_TOO_LONG` for releases over 64 bytes. */
export function encodeKexecMetadata(
  m: { previousRelease: string; kexecCount: number; version?: number },
  endian: Endianness = 'little',
): Uint8Array {
  const rel = new TextEncoder().encode(m.previousRelease);
  if (rel.length > KEXEC_METADATA_RELEASE_LEN - 1) {
    throw new KhoError('KHO_METADATA_RELEASE_TOO_LONG', `release is ${rel.length} bytes`, {
      expected: 'at most 64 bytes',
    });
  }
  if (!Number.isInteger(m.kexecCount) || m.kexecCount < 0 || m.kexecCount > 0xffffffff) {
    throw new KhoError('KHO_METADATA_BAD_COUNT', `kexec_count ${m.kexecCount} is not a u32`);
  }
  const out = new Uint8Array(KEXEC_METADATA_SIZE);
  const dv = new DataView(out.buffer);
  const le = endian === 'little';
  dv.setUint32(0, m.version ?? KHO_KEXEC_METADATA_VERSION, le);
  out.set(rel, 4);
  dv.setUint32(69, m.kexecCount, le);
  return out;
}

/** Decode; throws `KHO_METADATA_TOO_SMALL` (under 73 bytes) or `KHO_METADATA_BAD_VERSION`. */
export function decodeKexecMetadata(blob: Uint8Array, endian: Endianness = 'little'): KexecMetadata {
  const le = endian === 'little';
  if (blob.length < 4) {
    throw new KhoError('KHO_METADATA_TOO_SMALL', `kexec-metadata blob too small (${blob.length} bytes)`, {
      expected: `${KEXEC_METADATA_SIZE} bytes`,
    });
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const version = dv.getUint32(0, le);
  if (version !== KHO_KEXEC_METADATA_VERSION) {
    throw new KhoError('KHO_METADATA_BAD_VERSION', `kexec-metadata version ${version} not supported`, {
      offset: 0,
      expected: String(KHO_KEXEC_METADATA_VERSION),
    });
  }
  if (blob.length < KEXEC_METADATA_SIZE) {
    throw new KhoError(
      'KHO_METADATA_TOO_SMALL',
      `kexec-metadata blob too small for v1 (${blob.length} bytes)`,
      {
        expected: `${KEXEC_METADATA_SIZE} bytes`,
      },
    );
  }
  const rel = blob.subarray(4, 4 + KEXEC_METADATA_RELEASE_LEN);
  const nul = rel.indexOf(0);
  return {
    version,
    previousRelease: latin1.decode(nul < 0 ? rel : rel.subarray(0, nul)),
    kexecCount: dv.getUint32(69, le),
  };
}

export interface KexecMetadataAcceptance {
  accepted: boolean;
  metadata?: KexecMetadata;
  /** The warning the kernel logs (with `KHO: `), when it rejects the blob. */
  warning?: string;
  /** The info line the kernel logs when it accepts it: `KHO: exec from: <release> (count <n>)`. */
  logLine?: string;
}

/**
 * What the receiving kernel does with a blob of `blob.length` bytes (= its `blob-size`). Without a blob
 * (`undefined`: no `kexec-metadata` node) it is silently not accepted.
 */
export function acceptKexecMetadata(
  blob: Uint8Array | undefined,
  endian: Endianness = 'little',
): KexecMetadataAcceptance {
  if (blob === undefined) return { accepted: false };
  const size = blob.length;
  if (size < 4)
    return { accepted: false, warning: `${KHO_LOG_PREFIX}kexec-metadata blob too small (${size} bytes)` };
  const version = new DataView(blob.buffer, blob.byteOffset, 4).getUint32(0, endian === 'little');
  if (version !== KHO_KEXEC_METADATA_VERSION) {
    return {
      accepted: false,
      warning: `${KHO_LOG_PREFIX}kexec-metadata version ${version} not supported (expected ${KHO_KEXEC_METADATA_VERSION})`,
    };
  }
  if (size < KEXEC_METADATA_SIZE) {
    return {
      accepted: false,
      warning: `${KHO_LOG_PREFIX}kexec-metadata blob too small for v${version} (${size} < ${KEXEC_METADATA_SIZE})`,
    };
  }
  const metadata = decodeKexecMetadata(blob, endian);
  return { accepted: true, metadata, logLine: kexecMetadataLogLine(metadata) };
}

/** `KHO: exec from: <release> (count <n>)`. */
export function kexecMetadataLogLine(m: KexecMetadata): string {
  return `${KHO_LOG_PREFIX}exec from: ${m.previousRelease} (count ${m.kexecCount})`;
}

/** Parse a `KHO: exec from: <release> (count <n>)` line out of a kernel log (the first one). */
export function parseExecFromLine(log: string): { previousRelease: string; kexecCount: number } | undefined {
  const m = /KHO: exec from: (.*) \(count (\d+)\)/.exec(log);
  return m ? { previousRelease: m[1], kexecCount: Number(m[2]) } : undefined;
}

/** All findings: the kernel's rejections (errors) plus format details it tolerates (warnings). */
export function validateKexecMetadata(blob: Uint8Array, endian: Endianness = 'little'): Finding[] {
  const acc = acceptKexecMetadata(blob, endian);
  const out: Finding[] = [];
  if (!acc.accepted) {
    const code = /version/.test(acc.warning!) ? 'KHO_METADATA_BAD_VERSION' : 'KHO_METADATA_TOO_SMALL';
    out.push({ code, severity: 'error', message: acc.warning!.slice(KHO_LOG_PREFIX.length) });
    return out;
  }
  const rel = blob.subarray(4, 4 + KEXEC_METADATA_RELEASE_LEN);
  const nul = rel.indexOf(0);
  if (nul < 0) {
    out.push({
      code: 'KHO_METADATA_UNTERMINATED',
      severity: 'error',
      message: 'previous_release has no NUL terminator; the kernel would print past it',
      offset: 4,
    });
  } else if (rel.subarray(nul).some((b) => b !== 0)) {
    out.push({
      code: 'KHO_METADATA_NOT_ZERO_PADDED',
      severity: 'warning',
      message: 'previous_release is not zero-padded after its terminator',
      offset: 4 + nul,
    });
  }
  if (blob.length > KEXEC_METADATA_SIZE) {
    out.push({
      code: 'KHO_METADATA_TRAILING',
      severity: 'info',
      message: `blob has ${blob.length - KEXEC_METADATA_SIZE} bytes beyond the 73-byte struct (ignored)`,
      offset: KEXEC_METADATA_SIZE,
    });
  }
  if (acc.metadata!.kexecCount === 0) {
    out.push({
      code: 'KHO_METADATA_ZERO_COUNT',
      severity: 'warning',
      message: 'kexec_count 0: a writer always stores its incoming count + 1, so at least 1',
      offset: 69,
    });
  }
  return out;
}
