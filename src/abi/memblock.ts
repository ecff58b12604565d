/**
 * The memblock sub-FDT: `reserve_mem=` regions handed over by mm/memblock.c (spec §5), node name
 * `memblock`.
 *
 * Layout: an FDT built with libfdt's sequential-write calls into one page (bufsize PAGE_SIZE):
 * root `compatible = "memblock-v1"`, then per region in command-line order a node named after the
 * region with `compatible = "reserve-mem-v1"`, `start` and `size` (phys_addr_t, 8 bytes, native
 * endian), in that order. `blob-size` is the FDT's totalsize. Defined for every profile and page size
 * (the page size only bounds the blob).
 *
 * Contract:
 * - `encodeMemblockFdt(regions, profile?)` makes the kernel's calls in the kernel's order and returns
 *   the finished blob (`totalsize` bytes); more regions than fit the page give FDT_ERR_NOSPACE.
 * - `decodeMemblockFdt(bytes | FdtBlob, profile?)` returns the regions in blob order plus findings for
 *   what the next kernel would reject (wrong compatible, `start`/`size` not 8 bytes ...); only a blob
 *   that is not an FDT throws (the reader's KhoError). `validateMemblockFdt` returns all findings.
 * - `reviveReserveMem(decoded, name, size, align)` applies the next kernel's checks for one
 *   `reserve_mem=` parameter and returns its log line.
 */
import { type Finding, findingFromError, KhoError, type Severity } from '../errors.ts';
import { type FdtBlob, type FdtNodeView, nodePath, parseFdt } from '../fdt/reader.ts';
import { asString, u64NativeValue } from '../fdt/values.ts';
import { FdtSw } from '../fdt/write-sw.ts';
import { type AbiProfile, getProfile } from './profile.ts';

export const MEMBLOCK_KHO_FDT = 'memblock';
export const MEMBLOCK_KHO_NODE_COMPATIBLE = 'memblock-v1';
export const RESERVE_MEM_KHO_NODE_COMPATIBLE = 'reserve-mem-v1';
const RESERVE_MEM_NAME_SIZE = 16;
const RESERVE_MEM_MAX_ENTRIES = 8;

export interface ReserveMemRegion {
  name: string;
  start: bigint;
  size: bigint;
}

export interface MemblockFdt {
  compatible?: string;
  /** Regions in blob order; a region whose start or size is unreadable is left out (see findings). */
  regions: ReserveMemRegion[];
  findings: Finding[];
}

function f(code: `KHO_${string}`, severity: Severity, message: string, path: string): Finding {
  return { code, severity, message, path };
}

/** The memblock sub-FDT the kernel writes for these regions (in command-line order). */
export function encodeMemblockFdt(
  regions: ReserveMemRegion[],
  profile: AbiProfile = getProfile(),
): Uint8Array {
  const sw = FdtSw.create(profile.pageSize);
  sw.finishReservemap();
  sw.beginNode('');
  sw.propertyString('compatible', MEMBLOCK_KHO_NODE_COMPATIBLE);
  for (const r of regions) {
    sw.beginNode(r.name);
    sw.propertyString('compatible', RESERVE_MEM_KHO_NODE_COMPATIBLE);
    sw.property('start', u64NativeValue(r.start, profile.endian));
    sw.property('size', u64NativeValue(r.size, profile.endian));
    sw.endNode();
  }
  sw.endNode();
  sw.finish();
  return sw.blob();
}

function str(node: FdtNodeView, name: string): string | undefined {
  const p = node.props.find((q) => q.name === name);
  if (!p) return undefined;
  try {
    return asString(p.value);
  } catch {
    return undefined;
  }
}

/** Decode a memblock sub-FDT (see the module contract). */
export function decodeMemblockFdt(
  input: Uint8Array | FdtBlob,
  profile: AbiProfile = getProfile(),
): MemblockFdt {
  const blob = input instanceof Uint8Array ? parseFdt(input) : input;
  const findings: Finding[] = [];
  const compatible = str(blob.root, 'compatible');
  if (compatible !== MEMBLOCK_KHO_NODE_COMPATIBLE) {
    findings.push(
      f(
        'KHO_MEMBLOCK_BAD_COMPATIBLE',
        'error',
        compatible === undefined
          ? 'the memblock FDT has no compatible string'
          : `the memblock FDT is '${compatible}', not '${MEMBLOCK_KHO_NODE_COMPATIBLE}'`,
        '/:compatible',
      ),
    );
  }
  const regions: ReserveMemRegion[] = [];
  if (blob.root.children.length > RESERVE_MEM_MAX_ENTRIES) {
    findings.push(
      f(
        'KHO_MEMBLOCK_TOO_MANY',
        'warning',
        `${blob.root.children.length} regions; the kernel accepts at most ${RESERVE_MEM_MAX_ENTRIES} reserve_mem= entries`,
        '/',
      ),
    );
  }
  for (const n of blob.root.children) {
    const path = nodePath(n);
    const c = str(n, 'compatible');
    if (c !== RESERVE_MEM_KHO_NODE_COMPATIBLE) {
      findings.push(
        f(
          'KHO_MEMBLOCK_BAD_COMPATIBLE',
          'error',
          `region '${n.name}' is ${c === undefined ? 'without compatible' : `'${c}'`}, not '${RESERVE_MEM_KHO_NODE_COMPATIBLE}'`,
          `${path}:compatible`,
        ),
      );
    }
    if (n.name.length === 0 || n.name.length >= RESERVE_MEM_NAME_SIZE) {
      findings.push(
        f(
          'KHO_MEMBLOCK_BAD_NAME',
          'warning',
          `region name '${n.name}' is ${n.name.length} bytes; reserve_mem= names are 1..${RESERVE_MEM_NAME_SIZE - 1}`,
          path,
        ),
      );
    }
    const vals: bigint[] = [];
    for (const name of ['start', 'size']) {
      const p = n.props.find((q) => q.name === name);
      if (p?.value.length !== 8) {
        findings.push(
          f(
            'KHO_MEMBLOCK_BAD_REGION',
            'error',
            `region '${n.name}': ${name} is ${p ? `${p.value.length} bytes` : 'missing'}; the kernel requires 8 bytes`,
            `${path}:${name}`,
          ),
        );
      } else {
        vals.push(
          new DataView(p.value.buffer, p.value.byteOffset, 8).getBigUint64(0, profile.endian === 'little'),
        );
      }
    }
    if (vals.length === 2) regions.push({ name: n.name, start: vals[0]!, size: vals[1]! });
  }
  return { ...(compatible !== undefined ? { compatible } : {}), regions, findings };
}

export function validateMemblockFdt(
  input: Uint8Array | FdtBlob,
  profile: AbiProfile = getProfile(),
): Finding[] {
  try {
    return decodeMemblockFdt(input, profile).findings;
  } catch (e) {
    if (e instanceof KhoError) return [findingFromError(e)];
    throw e;
  }
}

export interface ReviveResult {
  revived: boolean;
  region?: ReserveMemRegion;
  /** What the kernel logs for this outcome. */
  log: string;
}

/**
 * The next kernel's `reserve_mem_kho_revive(name, size, align)` on a decoded memblock FDT: a child
 * named `name` with the right compatible, 8-byte start and size, `start` aligned to `align`, the same
 * size. Success keeps the region at the same physical address.
 */
export function reviveReserveMem(fdt: MemblockFdt, name: string, size: bigint, align: bigint): ReviveResult {
  if (fdt.compatible !== MEMBLOCK_KHO_NODE_COMPATIBLE) {
    return { revived: false, log: `KHO memblock FDT is not '${MEMBLOCK_KHO_NODE_COMPATIBLE}'` };
  }
  const r = fdt.regions.find((x) => x.name === name);
  if (!r) return { revived: false, log: `FDT 'memblock' has no child '${name}': -1` };
  if (align !== 0n && r.start % align !== 0n) {
    return {
      revived: false,
      region: r,
      log: `KHO reserve-mem '${name}' has wrong alignment (0x${align.toString(16)}, 0x${r.start.toString(16)})`,
    };
  }
  if (r.size !== size) {
    return {
      revived: false,
      region: r,
      log: `KHO reserve-mem '${name}' has wrong size (0x${r.size.toString(16)} != 0x${size.toString(16)})`,
    };
  }
  return { revived: true, region: r, log: `Revived memory reservation '${name}' from KHO` };
}
