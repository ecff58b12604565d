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
