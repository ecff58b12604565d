/**
 * The root KHO FDT: decode, validate and encode, for every ABI profile.
 *
 * Layout (spec §1, checked against the Linux 7.3.4 vectors): a standard FDT (version 17, big-endian
 * structure) whose root holds `compatible` (`kho-v1`..`kho-v4`), `preserved-memory-map` (a native-endian
 * u64: the radix-tree root page in kho-v2+, the first bitmap chunk in kho-v1, 0 before finalize in
 * kho-v1), and one child per producer, carrying the producer blob's physical address (`fdt` in kho-v1,
 * `preserved-data` from kho-v2) and, from kho-v3, its `blob-size`. Every u64 value is native endian.
 *
 * Contract:
 * - `decodeKhoRoot(bytes | FdtBlob, profile?)` decodes what can be read: a buffer that is not an FDT
 *   throws the reader's `KhoError` (libfdt's names); everything else the kernel would reject (missing or
 *   wrong-length properties, unknown compatible, missing `blob-size` ...) becomes a `Finding` in
 *   `root.findings`, so a cut-short or odd blob still yields its readable sub-trees. Sub-trees are listed
 *   in blob order. `validateKhoRoot` returns every finding (a parse error becomes one finding).
 * - `KhoRootBuilder` produces the kernel's bytes by making the kernel's libfdt calls in the kernel's
 *   order (sequential write at init, then `fdt_open_into` / `fdt_add_subnode` / `fdt_setprop` /
 *   `fdt_pack` per `kho_add_subtree`; kho-v1-6.16 rebuilds the whole FDT at finalize in notifier order).
 *   `encodeKhoRoot(state)` replays a decoded state (blob order = reverse registration order, except in
 *   kho-v1-6.16) through the builder, so decode → encode gives the original bytes.
 */
import { type Finding, finding, findingFromError, KhoError } from '../errors.ts';
import {
  type FdtBlob,
  type FdtNodeView,
  type FdtPropView,
  type FdtTruncation,
  nodePath,
  parseFdt,
} from '../fdt/reader.ts';
import { asString, u64NativeValue } from '../fdt/values.ts';
import { FdtRw } from '../fdt/write-rw.ts';
import { FdtSw } from '../fdt/write-sw.ts';
import {
  type AbiProfile,
  type AbiProfileDef,
  DEFAULT_PROFILE,
  getProfile,
  PROFILE_NAMES,
  type ProfileName,
  profilesForCompatible,
} from './profile.ts';

export const KHO_FDT_MEMORY_MAP_PROP_NAME = 'preserved-memory-map';
export const KHO_SUB_TREE_PROP_NAME = 'preserved-data';
export const KHO_V1_SUB_TREE_PROP_NAME = 'fdt';
export const KHO_SUB_TREE_SIZE_PROP_NAME = 'blob-size';

/** One producer's entry under the root, as found in the blob. */
export interface KhoSubtree {
  /** Node name, exactly as the kernel wrote it (latin1: one char per byte). */
  name: string;
  /** Physical address of the producer's blob (`preserved-data`, or `fdt` in kho-v1); undefined if unreadable. */
  phys?: bigint;
  /** `blob-size` (kho-v3+); undefined when absent or invalid. */
  size?: bigint;
  /** Node path in the root FDT (`/memblock`). */
  path: string;
  /** libfdt offset of the node's tag. */
  offset: number;
}

export interface KhoRoot {
  /** Root `compatible` as written, or undefined. */
  compatible?: string;
  /** Profiles whose compatible matches (several eras share `kho-v1` and `kho-v4`), most likely first. */
  detected: ProfileName[];
  /** The profile the blob was judged by: the caller's, else the first detected, else the default. */
  profile: AbiProfile;
  /** `preserved-memory-map` value; undefined when missing or not 8 bytes. */
  memoryMap?: bigint;
  /** Producer sub-trees in blob order (newest first for live-edited profiles). */
  subtrees: KhoSubtree[];
  /** Set when the buffer is shorter than the blob's `totalsize` (Linux 7.3 debugfs `out/fdt`). */
  truncation: FdtTruncation | null;
  /** Every problem found, in blob order. */
  findings: Finding[];
  /** The decoded FDT. */
  blob: FdtBlob;
}

export interface DecodeRootOptions {
  /** Judge the blob by this profile instead of the one its compatible suggests. */
  profile?: ProfileName | AbiProfile;
  /** Page size for the size check and for a profile given by name (default 4096). */
  pageSize?: number;
  endian?: 'little' | 'big';
}

/** Guess the era among profiles sharing a compatible; kho-v1 6.16 blobs are never packed. */
function detectProfiles(compatible: string | undefined, blob: FdtBlob): ProfileName[] {
  if (compatible === undefined) return [];
  const defs: AbiProfileDef[] = profilesForCompatible(compatible);
  const names = defs.map((d) => d.name);
  if (compatible === 'kho-v1' && names.length > 1) {
    // 6.16 wrote the whole FDT with sequential-write calls (reservation map at 48, never packed);
    // 6.18+ packs after every add (reservation map at 40).
    const sw = blob.header.offMemRsvmap === 48 && blob.root.children.length > 0;
    return sw ? ['kho-v1-6.16', 'kho-v1'] : ['kho-v1', 'kho-v1-6.16'];
  }
  if (compatible === 'kho-v4') return ['kho-v4', 'kho-v4-bootmem'];
  return names;
}

function resolveProfile(
  given: ProfileName | AbiProfile | undefined,
  detected: ProfileName[],
  opts: DecodeRootOptions,
): AbiProfile {
  const po = {
    ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
    ...(opts.endian !== undefined ? { endian: opts.endian } : {}),
  };
  if (given !== undefined) return typeof given === 'string' ? getProfile(given, po) : given;
  return getProfile(detected[0] ?? DEFAULT_PROFILE, po);
}

/**
 * The strings block the kernel's calls leave, per profile: sequential write prepends each new name
 * (so the root's two names appear last-seen first), read-write appends.
 */
export function kernelRootStrings(profile: AbiProfileDef): string[] {
  if (profile.rootBuild === 'finalize-sw') return ['fdt', KHO_FDT_MEMORY_MAP_PROP_NAME, 'compatible'];
  const base = [KHO_FDT_MEMORY_MAP_PROP_NAME, 'compatible', profile.subTreeProp];
  return profile.hasBlobSize ? [...base, KHO_SUB_TREE_SIZE_PROP_NAME] : base;
}

function stringOffsets(strings: string[]): Map<number, string> {
  const m = new Map<number, string>();
  let off = 0;
  for (const s of strings) {
    m.set(off, s);
    off += s.length + 1;
  }
  return m;
}

/**
 * Names of properties whose strings lie beyond the end of a cut-short buffer, inferred from the
 * kernel's string table: the table whose `compatible` slot holds that profile's compatible wins.
 */
function inferNames(blob: FdtBlob, given: AbiProfileDef | undefined): Map<number, string> | null {
  const cands = given ? [given] : PROFILE_NAMES.map((n) => getProfile(n));
  for (const p of cands) {
    const table = stringOffsets(kernelRootStrings(p));
    const compatOff = [...table].find(([, s]) => s === 'compatible')![0];
    const cp = blob.root.props.find((q) => q.nameoff === compatOff);
    if (!cp) continue;
    const v = cp.value;
    const str = Buffer.from(v.buffer, v.byteOffset, v.length).toString('latin1');
    if (given || str === `${p.compatible}\0`) return table;
  }
  return null;
}

interface Ctx {
  profile: AbiProfile;
  findings: Finding[];
  nameOf: (p: FdtPropView) => string;
  /** Nodes still open where a cut-short buffer ends: properties missing there may lie beyond the cut. */
  open: Set<FdtNodeView>;
}

function findProp(ctx: Ctx, node: FdtNodeView, name: string): FdtPropView | undefined {
  return node.props.find((q) => ctx.nameOf(q) === name);
}

function missingFinding(ctx: Ctx, node: FdtNodeView, code: `KHO_${string}`, message: string, path: string) {
  if (ctx.open.has(node)) {
    ctx.findings.push(finding(code, 'info', `${message} (it may lie beyond the cut)`, path));
  } else {
    ctx.findings.push(finding(code, 'error', message, path));
  }
}

function readU64(ctx: Ctx, v: Uint8Array): bigint {
  return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, ctx.profile.endian === 'little');
}

/** Read a native u64 property; pushes a finding and returns undefined when missing or not 8 bytes. */
function u64Prop(
  ctx: Ctx,
  node: FdtNodeView,
  name: string,
  missing: { code: `KHO_${string}`; message: string },
  badLen: { code: `KHO_${string}`; message: string },
): bigint | undefined {
  const p = findProp(ctx, node, name);
  const path = `${nodePath(node)}:${name}`;
  if (!p) {
    missingFinding(ctx, node, missing.code, missing.message, path);
    return undefined;
  }
  if (p.value.length !== 8) {
    ctx.findings.push(
      finding(badLen.code, 'error', `${badLen.message} (${p.value.length} bytes)`, path, {
        expected: '8 bytes (a native-endian u64)',
      }),
    );
    return undefined;
  }
  return readU64(ctx, p.value);
}

/** Decode a root KHO FDT (see the module contract). */
export function decodeKhoRoot(input: Uint8Array | FdtBlob, opts: DecodeRootOptions = {}): KhoRoot {
  const blob = input instanceof Uint8Array ? parseFdt(input, { allowTruncated: true }) : input;
  const findings: Finding[] = [];
  const root = blob.root;
  const givenDef =
    opts.profile === undefined
      ? undefined
      : typeof opts.profile === 'string'
        ? getProfile(opts.profile)
        : opts.profile;

  const hidden = [...blob.nodes()].some((n) => n.props.some((p) => p.nameUnavailable));
  const inferred = hidden ? inferNames(blob, givenDef) : null;
  const nameOf = (p: FdtPropView) => (p.nameUnavailable ? (inferred?.get(p.nameoff) ?? p.name) : p.name);
  const open = new Set<FdtNodeView>();
  if (blob.truncation && !blob.truncation.structComplete) {
    for (let n: FdtNodeView | undefined = root; n; n = n.children[n.children.length - 1]) open.add(n);
  }

  let compatible: string | undefined;
  const cp = root.props.find((p) => nameOf(p) === 'compatible');
  if (cp) {
    try {
      compatible = asString(cp.value, '/:compatible');
    } catch {
      findings.push(
        finding('KHO_ROOT_BAD_COMPATIBLE', 'error', 'root compatible is not one NUL-terminated string', '/', {
          expected: 'a string such as "kho-v4"',
        }),
      );
    }
  }
  const detected = detectProfiles(compatible, blob);
  const profile = resolveProfile(opts.profile, detected, opts);
  const ctx: Ctx = { profile, findings, nameOf, open };

  if (blob.truncation) {
    const t = blob.truncation;
    findings.push(
      finding(
        'KHO_FDT_CUT_SHORT',
        'warning',
        `the buffer holds ${t.have} of the blob's ${t.totalsize} bytes (${t.totalsize - t.have} bytes cut off)` +
          (t.structComplete ? '' : '; nodes after the cut are missing'),
        '/',
        { offset: t.have, expected: `${t.totalsize} bytes` },
      ),
    );
  }
  if (hidden) {
    findings.push(
      finding(
        'KHO_FDT_NAMES_INFERRED',
        'info',
        inferred
          ? "the strings block lies beyond the cut: property names were inferred from the kernel's string table"
          : 'the strings block lies beyond the cut and the names could not be inferred',
        '/',
      ),
    );
  }
  if (!cp) {
    missingFinding(ctx, root, 'KHO_ROOT_NO_COMPATIBLE', 'the root node has no compatible property', '/');
  } else if (compatible !== undefined && detected.length === 0) {
    findings.push(
      finding('KHO_ROOT_UNKNOWN_COMPATIBLE', 'error', `unknown KHO ABI compatible '${compatible}'`, '/', {
        expected: `one of ${[...new Set(PROFILE_NAMES.map((n) => getProfile(n).compatible))].join(', ')}`,
      }),
    );
  } else if (compatible !== undefined && compatible !== profile.compatible) {
    findings.push(
      finding(
        'KHO_ROOT_INCOMPATIBLE',
        'error',
        `handover FDT is incompatible with '${profile.compatible}' (it says '${compatible}'); a ${profile.name} kernel disables KHO revival`,
        '/',
        { expected: `compatible = "${profile.compatible}"` },
      ),
    );
  }

  const memoryMap = u64Prop(
    ctx,
    root,
    KHO_FDT_MEMORY_MAP_PROP_NAME,
    {
      code: 'KHO_ROOT_NO_MEMORY_MAP',
      message: 'failed to get preserved memory map: the root has no preserved-memory-map',
    },
    { code: 'KHO_ROOT_BAD_MEMORY_MAP', message: 'failed to get preserved memory map: wrong length' },
  );
  if (memoryMap === 0n) {
    if (profile.needsFinalize) {
      findings.push(
        finding(
          'KHO_ROOT_NOT_FINALIZED',
          'error',
          'preserved-memory-map is 0: the state was never finalized; the next kernel disables KHO revival',
          `/:${KHO_FDT_MEMORY_MAP_PROP_NAME}`,
          { expected: 'the address of the first bitmap chunk' },
        ),
      );
    } else {
      findings.push(
        finding(
          'KHO_ROOT_NO_MEMORY_MAP',
          'error',
          'failed to get preserved memory map: preserved-memory-map is 0',
          `/:${KHO_FDT_MEMORY_MAP_PROP_NAME}`,
          { expected: 'the physical address of the radix-tree root page' },
        ),
      );
    }
  }
  for (const p of root.props) {
    const n = nameOf(p);
    if (n !== 'compatible' && n !== KHO_FDT_MEMORY_MAP_PROP_NAME) {
      findings.push(
        finding('KHO_ROOT_UNKNOWN_PROPERTY', 'warning', `unexpected root property '${n}'`, `/:${n}`),
      );
    }
  }
  if (blob.reserves.length > 0) {
    findings.push(
      finding(
        'KHO_ROOT_RESERVE_ENTRIES',
        'warning',
        `the memory reservation block holds ${blob.reserves.length} entries; the kernel writes none`,
        '/',
      ),
    );
  }
  if (blob.header.totalsize > profile.pageSize) {
    findings.push(
      finding(
        'KHO_ROOT_TOO_BIG',
        'error',
        `totalsize ${blob.header.totalsize} exceeds the root FDT's page (${profile.pageSize} bytes)`,
        '/',
        { expected: `totalsize <= ${profile.pageSize}` },
      ),
    );
  }

  const dataProp = profile.subTreeProp;
  const otherDataProp = dataProp === 'fdt' ? KHO_SUB_TREE_PROP_NAME : KHO_V1_SUB_TREE_PROP_NAME;
  const subtrees: KhoSubtree[] = [];
  const seen = new Set<string>();
  for (const child of root.children) {
    const path = nodePath(child);
    if (seen.has(child.name)) {
      findings.push(
        finding('KHO_SUBTREE_DUPLICATE', 'error', `a second sub-tree named '${child.name}'`, path, {
          expected: 'unique names (the kernel refuses a duplicate with -EEXIST)',
        }),
      );
    }
    seen.add(child.name);
    const st: KhoSubtree = { name: child.name, path, offset: child.offset };
    const hasOther = child.props.some((p) => nameOf(p) === otherDataProp);
    const phys = u64Prop(
      ctx,
      child,
      dataProp,
      {
        code: 'KHO_SUBTREE_NO_DATA',
        message: `sub-tree '${child.name}' has no ${dataProp} property${hasOther ? ` (it has '${otherDataProp}': another ABI era)` : ''}`,
      },
      { code: 'KHO_SUBTREE_BAD_DATA', message: `sub-tree '${child.name}': ${dataProp} is not a u64` },
    );
    if (phys !== undefined) st.phys = phys;
    if (profile.hasBlobSize) {
      const bs = findProp(ctx, child, KHO_SUB_TREE_SIZE_PROP_NAME);
      if (bs?.value.length === 8) {
        st.size = readU64(ctx, bs.value);
      } else if (bs || !open.has(child)) {
        findings.push(
          finding(
            'KHO_SUBTREE_NO_BLOB_SIZE',
            'error',
            `broken KHO subnode '${child.name}': missing or invalid blob-size property`,
            `${path}:${KHO_SUB_TREE_SIZE_PROP_NAME}`,
            { expected: '8 bytes (a native-endian u64)' },
          ),
        );
      } else {
        missingFinding(
          ctx,
          child,
          'KHO_SUBTREE_NO_BLOB_SIZE',
          `sub-tree '${child.name}' has no blob-size`,
          `${path}:${KHO_SUB_TREE_SIZE_PROP_NAME}`,
        );
      }
    } else if (findProp(ctx, child, KHO_SUB_TREE_SIZE_PROP_NAME)) {
      findings.push(
        finding(
          'KHO_SUBTREE_UNEXPECTED_PROPERTY',
          'warning',
          `sub-tree '${child.name}' has blob-size, which ${profile.name} does not define`,
          `${path}:${KHO_SUB_TREE_SIZE_PROP_NAME}`,
        ),
      );
    }
    for (const p of child.props) {
      const n = nameOf(p);
      if (n !== dataProp && n !== KHO_SUB_TREE_SIZE_PROP_NAME && n !== otherDataProp) {
        findings.push(
          finding(
            'KHO_SUBTREE_UNEXPECTED_PROPERTY',
            'warning',
            `sub-tree '${child.name}' has an unexpected property '${n}'`,
            `${path}:${n}`,
          ),
        );
      }
    }
    if (child.children.length > 0) {
      findings.push(
        finding(
          'KHO_SUBTREE_NESTED',
          'warning',
          `sub-tree '${child.name}' has ${child.children.length} child nodes; the kernel writes none`,
          path,
        ),
      );
    }
    subtrees.push(st);
  }

  return {
    ...(compatible !== undefined ? { compatible } : {}),
    detected,
    profile,
    ...(memoryMap !== undefined ? { memoryMap } : {}),
    subtrees,
    truncation: blob.truncation,
    findings,
    blob,
  };
}

/** Every finding for a root KHO FDT; a blob the FDT reader rejects gives one error finding. */
export function validateKhoRoot(input: Uint8Array | FdtBlob, opts: DecodeRootOptions = {}): Finding[] {
  try {
    return decodeKhoRoot(input, opts).findings;
  } catch (e) {
    if (e instanceof KhoError) return [findingFromError(e)];
    throw e;
  }
}

/** A producer's registration: what `kho_add_subtree(name, blob, size)` records. */
export interface KhoSubtreeEntry {
  name: string;
  phys: bigint;
  /** `blob-size` (kho-v3+; ignored by earlier profiles). */
  size?: bigint;
}

/**
 * The root FDT as the kernel builds and edits it, call for call, in one PAGE_SIZE buffer.
 *
 * Live profiles (kho-v1 6.18+, kho-v2+): the constructor is `kho_out_fdt_setup()` (sequential write:
 * create(PAGE_SIZE), finish_reservemap, begin_node(""), property_string(compatible),
 * property(preserved-memory-map, u64), end_node, finish; kho-v1 writes the map as 0);
 * `addSubtree` is `kho_add_subtree` (open_into(PAGE_SIZE), add_subnode(0, name), setprop(the blob's
 * address), setprop(blob-size) from kho-v3, pack; the node is deleted again when a setprop fails from
 * kho-v3 on, as since the Apr 2026 fix); `removeSubtree` is `kho_remove_subtree`; `finalize` (kho-v1)
 * patches the map address in place.
 * kho-v1-6.16: `addSubtree` only records (a notifier callee's turn); `finalize` builds the whole FDT
 * sequentially in registration order.
 * Errors are the kernel's: KHO_EEXIST (-EEXIST) for a duplicate name, KHO_ENOMEM (-ENOMEM) for any
 * other failure; before the fix (kho-v1, kho-v2) a failed setprop returns libfdt's own error (the
 * FDT_ERR_* code) and leaves the node in place.
 */
export class KhoRootBuilder {
  readonly profile: AbiProfile;
  private buf: Uint8Array;
  private built: boolean;
  private readonly pending: KhoSubtreeEntry[] = [];

  constructor(profile: AbiProfile | ProfileName = DEFAULT_PROFILE, memoryMap = 0n) {
    this.profile = typeof profile === 'string' ? getProfile(profile) : profile;

    this.buf = new Uint8Array(this.profile.pageSize);
    this.built = false;
    if (this.profile.rootBuild === 'live-rw') {
      this.writeSw(this.profile.needsFinalize ? 0n : memoryMap, []);
    }
  }

  private u64(v: bigint): Uint8Array {
    return u64NativeValue(v, this.profile.endian);
  }

  /** The sequential-write build: the whole FDT in one go (init, or 6.16's finalize). */
  private writeSw(map: bigint, subs: KhoSubtreeEntry[]): void {
    const sw = FdtSw.create(this.profile.pageSize);
    sw.finishReservemap();
    sw.beginNode('');
    sw.propertyString('compatible', this.profile.compatible);
    sw.property(KHO_FDT_MEMORY_MAP_PROP_NAME, this.u64(map));
    for (const s of subs) {
      sw.beginNode(s.name);
      sw.property(KHO_V1_SUB_TREE_PROP_NAME, this.u64(s.phys));
      sw.endNode();
    }
    sw.endNode();
    sw.finish();
    this.buf = sw.bytes();
    this.built = true;
  }

  /** `kho_add_subtree(name, blob at phys, size)`. */
  addSubtree(name: string, phys: bigint, size?: bigint): void {
    if (this.profile.rootBuild === 'finalize-sw') {
      if (this.built) {
        throw new KhoError('KHO_EBUSY', 'kho-v1-6.16 takes sub-trees only from the finalize notifier', {
          expected: 'addSubtree before finalize',
        });
      }
      this.pending.push({ name, phys });
      return;
    }
    const rw = FdtRw.openInPlace(this.buf, this.profile.pageSize);
    try {
      let off: number;
      try {
        off = rw.addSubnode(0, name);
      } catch (e) {
        if (e instanceof KhoError && e.code === 'FDT_ERR_EXISTS') {
          throw new KhoError('KHO_EEXIST', `a sub-tree named '${name}' already exists (-EEXIST)`, {
            path: `/${name}`,
            cause: e,
          });
        }
        throw new KhoError('KHO_ENOMEM', `cannot add sub-tree '${name}' (-ENOMEM)`, {
          path: `/${name}`,
          cause: e,
        });
      }
      try {
        rw.setprop(off, this.profile.subTreeProp, this.u64(phys));
        if (this.profile.hasBlobSize) rw.setprop(off, KHO_SUB_TREE_SIZE_PROP_NAME, this.u64(size ?? 0n));
      } catch (e) {
        if (!this.profile.hasBlobSize) throw e;
        rw.delNode(off);
        throw new KhoError('KHO_ENOMEM', `cannot set the properties of sub-tree '${name}' (-ENOMEM)`, {
          path: `/${name}`,
          cause: e,
        });
      }
    } finally {
      rw.pack();
      this.buf = rw.buffer;
    }
  }

  /**
   * `kho_remove_subtree(blob at phys)`: deletes the first root child whose 8-byte address property
   * equals `phys`; returns whether one was found (the kernel returns nothing).
   */
  removeSubtree(phys: bigint): boolean {
    if (this.profile.rootBuild === 'finalize-sw') {
      const i = this.pending.findIndex((s) => s.phys === phys);
      if (i >= 0 && !this.built) this.pending.splice(i, 1);
      return i >= 0 && !this.built;
    }
    const rw = FdtRw.openInPlace(this.buf, this.profile.pageSize);
    let found = false;
    try {
      const root = parseFdt(rw.blob());
      for (const child of root.root.children) {
        const p = child.props.find((q) => q.name === this.profile.subTreeProp);
        if (p?.value.length !== 8) continue;
        const v = new DataView(p.value.buffer, p.value.byteOffset, 8).getBigUint64(
          0,
          this.profile.endian === 'little',
        );
        if (v === phys) {
          rw.delNode(child.offset);
          found = true;
          break;
        }
      }
    } finally {
      rw.pack();
      this.buf = rw.buffer;
    }
    return found;
  }

  /** kho-v1 only: serialize the memory map (6.18+: patch the address in place; 6.16: build it all). */
  finalize(memoryMap: bigint): void {
    if (!this.profile.needsFinalize) {
      throw new KhoError('KHO_EOPNOTSUPP', `${this.profile.name} has no finalize step`, {
        expected: 'a kho-v1 profile',
      });
    }

    if (this.profile.rootBuild === 'finalize-sw') {
      this.writeSw(memoryMap, this.pending);
      return;
    }
    // Overwritten in place (same length): no open_into, so totalsize and layout stay as they are.
    const blob = parseFdt(this.blob());
    const p = blob.root.props.find((q) => q.name === KHO_FDT_MEMORY_MAP_PROP_NAME);
    if (p?.value.length !== 8) {
      throw new KhoError('KHO_ROOT_NO_MEMORY_MAP', 'the root has no 8-byte preserved-memory-map to patch', {
        path: `/:${KHO_FDT_MEMORY_MAP_PROP_NAME}`,
      });
    }
    this.buf.set(this.u64(memoryMap), blob.header.offDtStruct + p.offset + 12);
  }

  /** Whether the FDT exists (always for live profiles; after finalize for kho-v1-6.16). */
  get isBuilt(): boolean {
    return this.built;
  }

  /** A copy of the whole page, stale bytes included. */
  page(): Uint8Array {
    this.requireBuilt();
    return this.buf.slice();
  }

  /** A copy of the blob (`totalsize` bytes). */
  blob(): Uint8Array {
    this.requireBuilt();
    const total = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(4, false);
    return this.buf.slice(0, Math.min(total, this.buf.length));
  }

  private requireBuilt(): void {
    if (!this.built) {
      throw new KhoError('KHO_NOT_FINALIZED', 'kho-v1-6.16 builds the root FDT only at finalize', {
        expected: 'finalize() first',
      });
    }
  }
}

/** A root FDT's logical state: what `encodeKhoRoot` needs. */
export interface KhoRootState {
  profile?: ProfileName | AbiProfile;
  memoryMap: bigint;
  /** Sub-trees in blob order, as `decodeKhoRoot` lists them. */
  subtrees: KhoSubtreeEntry[];
}

/** The state of a decoded root, ready for `encodeKhoRoot` (sub-trees without an address are left out). */
export function khoRootState(root: KhoRoot): KhoRootState {
  return {
    profile: root.profile,
    memoryMap: root.memoryMap ?? 0n,
    subtrees: root.subtrees
      .filter((s) => s.phys !== undefined)
      .map((s) => ({ name: s.name, phys: s.phys!, ...(s.size !== undefined ? { size: s.size } : {}) })),
  };
}

/**
 * The kernel's bytes for a state: sub-trees registered in reverse blob order (live profiles insert
 * each new node first) or in blob order (kho-v1-6.16); kho-v1 is finalized unless the map is 0.
 */
export function encodeKhoRoot(state: KhoRootState): Uint8Array {
  const profile =
    state.profile === undefined
      ? getProfile()
      : typeof state.profile === 'string'
        ? getProfile(state.profile)
        : state.profile;
  const b = new KhoRootBuilder(profile, state.memoryMap);
  const order = profile.rootBuild === 'finalize-sw' ? state.subtrees : [...state.subtrees].reverse();
  for (const s of order) b.addSubtree(s.name, s.phys, s.size);
  if (profile.needsFinalize && (state.memoryMap !== 0n || profile.rootBuild === 'finalize-sw')) {
    b.finalize(state.memoryMap);
  }
  return b.blob();
}
