/**
 * The in-kernel KHO self-test's sub-FDT (`lib/test_kho.c`, node `kho_test`, spec §8.1); decode only,
 * since the kernel owns the writer.
 *
 * Layout: root `compatible = "kho-test-v1"` (12 bytes with its NUL) and `magic` (u32 native,
 * 0x4b484f21 "KHO!"); child `data` with `nr_folios` (u32 native), `folios_info` (the raw 16-byte
 * `struct kho_vmalloc`: u64 first chunk, u32 total_pages, u16 flags, u16 order, native endian) and
 * `csum` (u32 native). Defined for every profile that has the self-test (6.16+).
 *
 * Contract: `decodeKhoTestFdt(bytes | FdtBlob, profile?)` returns the fields it can read and a finding
 * for each check of the restore path that would fail (compatible, magic, lengths); only a blob that is
 * not an FDT throws (the reader's KhoError). `validateKhoTestFdt` returns all findings.
 */
import { type Finding, KhoError } from '../errors.ts';
import { type FdtBlob, type FdtNodeView, parseFdt } from '../fdt/reader.ts';
import { asString } from '../fdt/values.ts';
import { type AbiProfile, getProfile } from './profile.ts';
import { decodeKhoVmalloc, type KhoVmalloc } from './vmalloc.ts';

export const KHO_TEST_FDT = 'kho_test';
export const KHO_TEST_COMPAT = 'kho-test-v1';
export const KHO_TEST_MAGIC = 0x4b484f21;
/** `struct kho_vmalloc` as stored in `folios_info` (decoded by `vmalloc.ts`). */
export type KhoVmallocDesc = KhoVmalloc;

export interface KhoTestFdt {
  compatible?: string;
  magic?: number;
  nrFolios?: number;
  foliosInfo?: KhoVmallocDesc;
  csum?: number;
  /** With a memory image: the folios the self-test recorded (`phys | order` entries of folios_info). */
  folios?: { pa: bigint; order: number }[];
  /** With every folio in the image: the checksum recomputed over them (x86_64 csum_partial). */
  csumComputed?: number;
  findings: Finding[];
}

function u32(
  node: FdtNodeView,
  name: string,
  le: boolean,
  findings: Finding[],
  path: string,
): number | undefined {
  const p = node.props.find((q) => q.name === name);
  if (p?.value.length !== 4) {
    findings.push({
      code: 'KHO_TEST_BAD_PROPERTY',
      severity: 'error',
      message: `${name} is ${p ? `${p.value.length} bytes` : 'missing'}; the self-test requires a 4-byte u32`,
      path: `${path}:${name}`,
    });
    return undefined;
  }
  return new DataView(p.value.buffer, p.value.byteOffset, 4).getUint32(0, le);
}

export function decodeKhoTestFdt(
  input: Uint8Array | FdtBlob,
  profile: AbiProfile = getProfile(),
): KhoTestFdt {
  const blob = input instanceof Uint8Array ? parseFdt(input) : input;
  const le = profile.endian === 'little';
  const findings: Finding[] = [];
  const out: KhoTestFdt = { findings };
  const cp = blob.root.props.find((p) => p.name === 'compatible');
  try {
    if (cp) out.compatible = asString(cp.value);
  } catch {
    // reported below
  }
  if (out.compatible !== KHO_TEST_COMPAT) {
    findings.push({
      code: 'KHO_TEST_BAD_COMPATIBLE',
      severity: 'error',
      message: `the self-test FDT's compatible is ${out.compatible === undefined ? 'missing' : `'${out.compatible}'`}, not '${KHO_TEST_COMPAT}'`,
      path: '/:compatible',
    });
  }
  const magic = u32(blob.root, 'magic', le, findings, '/');
  if (magic !== undefined) {
    out.magic = magic;
    if (magic !== KHO_TEST_MAGIC) {
      findings.push({
        code: 'KHO_TEST_BAD_MAGIC',
        severity: 'error',
        message: `magic is 0x${magic.toString(16)}, not 0x${KHO_TEST_MAGIC.toString(16)}`,
        path: '/:magic',
      });
    }
  }
  const data = blob.root.children.find((c) => c.name === 'data');
  if (!data) {
    findings.push({ code: 'KHO_TEST_NO_DATA', severity: 'error', message: 'no /data node', path: '/data' });
    return out;
  }
  const nr = u32(data, 'nr_folios', le, findings, '/data');
  if (nr !== undefined) out.nrFolios = nr;
  const fi = data.props.find((p) => p.name === 'folios_info');
  if (fi?.value.length !== 16) {
    findings.push({
      code: 'KHO_TEST_BAD_PROPERTY',
      severity: 'error',
      message: `folios_info is ${fi ? `${fi.value.length} bytes` : 'missing'}; the self-test requires 16 bytes`,
      path: '/data:folios_info',
    });
  } else {
    out.foliosInfo = decodeKhoVmalloc(fi.value, profile.endian);
  }
  const csum = u32(data, 'csum', le, findings, '/data');
  if (csum !== undefined) out.csum = csum;
  return out;
}

export function validateKhoTestFdt(
  input: Uint8Array | FdtBlob,
  profile: AbiProfile = getProfile(),
): Finding[] {
  try {
    return decodeKhoTestFdt(input, profile).findings;
  } catch (e) {
    if (e instanceof KhoError) return [{ code: e.code, severity: 'error', message: e.message }];
    throw e;
  }
}

/**
 * x86_64's `csum_partial(buff, len, sum)` for a buffer whose length is a multiple of 8 (folios always
 * are): a ones'-complement sum of the little-endian u64 words seeded with `sum`, folded to 32 bits
 * with end-around carry. The self-test chains it over its folios in allocation order. Other
 * architectures fold differently, so the value is only comparable on x86_64.
 */
export function x86CsumPartial(bytes: Uint8Array, sum: number): number {
  if (bytes.length % 8 !== 0) {
    throw new KhoError('KHO_TEST_CSUM_LENGTH', `csum over ${bytes.length} bytes`, {
      expected: 'a multiple of 8',
    });
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  // Two 32-bit halves with deferred carries keep this in fast number arithmetic.
  let lo = sum >>> 0;
  let hi = 0;
  for (let i = 0; i < bytes.length; i += 8) {
    lo += dv.getUint32(i, true);
    hi += dv.getUint32(i + 4, true);
    if (lo > 0xfffffffff || hi > 0xfffffffff) {
      hi += Math.floor(lo / 0x100000000);
      lo %= 0x100000000;
      const c = Math.floor(hi / 0x100000000);
      hi %= 0x100000000;
      lo += c;
    }
  }
  // Normalise to a 64-bit ones'-complement value (end-around carry), then fold 64 -> 32.
  for (;;) {
    hi += Math.floor(lo / 0x100000000);
    lo %= 0x100000000;
    const c = Math.floor(hi / 0x100000000);
    hi %= 0x100000000;
    if (c === 0) break;
    lo += c;
  }
  let r = hi + lo;
  if (r > 0xffffffff) r = (r % 0x100000000) + 1;
  return r >>> 0;
}
