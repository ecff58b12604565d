/**
 * A whole KHO handover, decoded and named: the root FDT, every sub-blob by kind, the preserved memory
 * (by order and as merged ranges), reserve_mem regions, kexec metadata, scratch, and every finding.
 *
 * Contract:
 * - `decodeHandover({ fdt, memory?, subBlobFiles?, scratchText?, profile? })` never throws for bad
 *   content: what cannot be read becomes a `Finding` (code, severity, path). Only bugs escape.
 *   Sub-blobs are read from `memory` at their `preserved-data` address for `blob-size` bytes when the
 *   image covers them, otherwise from debugfs `sub_fdts/<name>` files; what is read is checked (length
 *   against blob-size, FDT magic where the kind needs it, the LUO compatible) instead of trusted: a
 *   debugfs file can show a reused page. Reads are capped (`MAX_SUBBLOB_READ`) so a hostile
 *   blob-size never allocates much.
 * - A cut-short root (Linux 7.3's debugfs `out/fdt`) is decoded as far as it goes; with a memory image
 *   the whole blob is searched among the preserved order-0 pages (the root FDT page is itself
 *   preserved) and, when found, decoded instead; the finding says where it is.
 * - `loadHandoverPath(path, opts)` reads a root FDT file, a single sub-blob file, or a debugfs
 *   directory (`out/` or `in/`: `fdt`, `sub_fdts/*`, `scratch_phys`, `scratch_len`) from the host;
 *   `loadHandoverFiles(files, path, opts)` does the same through any `HandoverFiles` (the simulator's VFS).
 * - `diffHandovers(a, b)` lists sub-blobs added / removed / changed, preserved ranges gained / lost,
 *   and changes of the root, metadata and reserve_mem regions.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type Finding, finding, findingFromError, KhoError } from '../errors.ts';
import { parseFdt } from '../fdt/reader.ts';
import { decodeBitmapChunks } from './bitmap-chunks.ts';
import { acceptKexecMetadata, type KexecMetadata, KHO_METADATA_NODE_NAME } from './kexec-metadata.ts';
import { decodeKhoRoot, type KhoRoot } from './kho-fdt.ts';
import {
  decodeKhoTestFdt,
  KHO_TEST_COMPAT,
  KHO_TEST_FDT,
  type KhoTestFdt,
  x86CsumPartial,
} from './kho-test.ts';
import { decodeLuoSer, decodeLuoState, LUO_SER_SIZE, validateLuoSer } from './luo.ts';
import {
  decodeMemblockFdt,
  MEMBLOCK_KHO_FDT,
  MEMBLOCK_KHO_NODE_COMPATIBLE,
  type MemblockFdt,
  type ReserveMemRegion,
} from './memblock.ts';
import type { PhysMemory, PhysRange } from './memory/image.ts';
import { openMemoryImage } from './memory/open.ts';
import { type AbiProfile, getProfile, type ProfileName } from './profile.ts';
import {
  blocksBytes,
  countBlocksByOrder,
  decodeRadixTree,
  mergeBlockRanges,
  type PreservedBlock,
} from './radix-tree.ts';
import {
  type ScratchEntry,
  scratchFromDebugfs,
  scratchRole,
  validatePreservedOutsideScratch,
} from './scratch.ts';
import { decodeVmalloc, readVmallocData } from './vmalloc.ts';

/** Largest sub-blob read for decoding (bigger ones are reported and previewed only). */
export const MAX_SUBBLOB_READ = 16 << 20;
/** Most preserved order-0 pages probed for the whole root FDT. */
const MAX_ROOT_CANDIDATES = 1 << 20;
/** Largest total of self-test folios checksummed. */
export const MAX_CSUM_BYTES = 256 << 20;
const PREVIEW_BYTES = 64;
const FDT_MAGIC_BYTES = [0xd0, 0x0d, 0xfe, 0xed];
export const LUO_NODE_NAME = 'LUO';

export type SubBlobKind = 'memblock' | 'kho_test' | 'kexec-metadata' | 'LUO' | 'fdt' | 'raw';

export interface SubBlob {
  name: string;
  phys?: bigint;
  size?: bigint;
  /** Where the bytes came from; `none` when neither memory nor a debugfs file had them. */
  source: 'memory' | 'debugfs' | 'none';
  kind: SubBlobKind;
  /** Bytes read. */
  length: number;
  /** First bytes as hex (raw and unrecognised blobs). */
  preview?: string;
  memblock?: MemblockFdt;
  khoTest?: KhoTestFdt;
  metadata?: KexecMetadata & { logLine?: string; warning?: string };
  luo?: {
    compatible: string;
    liveupdateNumber: bigint;
    sessions: bigint;
    flb: bigint;
    /** With a memory image: sessions (name, file compatibles) and the number of FLBs. */
    state?: { sessions: { name: string; files: string[] }[]; flbs: number };
  };
  /** For a generic FDT: its root compatible and node count. */
  fdt?: { compatible?: string; nodes: number; totalsize: number };
}

export interface PreservedSummary {
  /** Radix root (or first bitmap chunk) address. */
  root: bigint;
  format: 'radix-tree' | 'bitmap-chunks';
  blocks: number;
  bytes: bigint;
  byOrder: Record<number, number>;
  ranges: PhysRange[];
  /** The blocks themselves, sorted by address. */
  list: PreservedBlock[];
}

export interface RootSummary {
  compatible?: string;
  profile: ProfileName;
  detected: ProfileName[];
  memoryMap?: bigint;
  totalsize: number;
  /** Bytes given (less than totalsize for a cut-short blob). */
  have: number;
  /** Where the whole root FDT was found in the memory image. */
  wholeAt?: bigint;
  subtrees: { name: string; phys?: bigint; size?: bigint }[];
}

export interface Handover {
  /** What was given: a file or a directory, with its path when loaded from disk. */
  source: { kind: 'fdt' | 'sub-blob' | 'debugfs-dir' | 'memory' | 'bytes'; path?: string };
  profile: ProfileName;
  root?: RootSummary;
  subBlobs: SubBlob[];
  preserved?: PreservedSummary;
  reserveMem: ReserveMemRegion[];
  metadata?: KexecMetadata & { logLine?: string };
  scratch?: (ScratchEntry & { role: string })[];
  findings: Finding[];
}

export interface HandoverInput {
  /** Root FDT bytes (may be cut short). */
  fdt?: Uint8Array;
  memory?: PhysMemory;
  profile?: ProfileName;
  /** Page size of the machine (default 4096; arm64 may use 16384 or 65536). */
  pageSize?: number;
  /** debugfs `sub_fdts/<name>` contents by name. */
  subBlobFiles?: Map<string, Uint8Array>;
  /** debugfs `scratch_phys` / `scratch_len` contents. */
  scratchText?: { phys: string; len: string };
  /** `in` or `out` when the files came from that debugfs directory (for messages). */
  direction?: 'in' | 'out';
  /** Locator of the input for findings (`out/fdt`). */
  label?: string;
}

function hx(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

function asFinding(e: unknown, path?: string): Finding {
  if (e instanceof KhoError) return findingFromError(e, 'error', path);
  throw e;
}

function isFdt(b: Uint8Array): boolean {
  return b.length >= 4 && FDT_MAGIC_BYTES.every((x, i) => b[i] === x);
}

function preview(b: Uint8Array): string {
  return Buffer.from(b.subarray(0, PREVIEW_BYTES)).toString('hex');
}

/** Decode one sub-blob's bytes by kind: FDT magic first, then the node name. */
export function decodeSubBlob(
  name: string,
  bytes: Uint8Array,
  profile: AbiProfile,
  findings: Finding[],
  where: string,
  mem?: PhysMemory,
): Omit<SubBlob, 'name' | 'source' | 'phys' | 'size'> {
  const base = { length: bytes.length };
  if (isFdt(bytes)) {
    let blob: ReturnType<typeof parseFdt>;
    try {
      blob = parseFdt(bytes);
    } catch (e) {
      findings.push(asFinding(e, where));
      return { ...base, kind: 'fdt', preview: preview(bytes) };
    }
    const cp = blob.root.props.find((p) => p.name === 'compatible');
    const compat = cp ? Buffer.from(cp.value).toString('latin1').replace(/\0.*$/s, '') : undefined;
    const tag = (list: Finding[]) => list.map((f) => ({ ...f, path: `${where}${f.path ?? ''}` }));
    if (name === MEMBLOCK_KHO_FDT || compat === MEMBLOCK_KHO_NODE_COMPATIBLE) {
      const m = decodeMemblockFdt(blob, profile);
      findings.push(...tag(m.findings));
      return { ...base, kind: 'memblock', memblock: m };
    }
    if (name === KHO_TEST_FDT || compat === KHO_TEST_COMPAT) {
      const t = decodeKhoTestFdt(blob, profile);
      findings.push(...tag(t.findings));
      return { ...base, kind: 'kho_test', khoTest: t };
    }
    return {
      ...base,
      kind: 'fdt',
      fdt: {
        ...(compat !== undefined ? { compatible: compat } : {}),
        nodes: [...blob.nodes()].length,
        totalsize: blob.header.totalsize,
      },
    };
  }
  if (name === MEMBLOCK_KHO_FDT || name === KHO_TEST_FDT) {
    findings.push(
      finding(
        'KHO_SUBBLOB_NOT_FDT',
        'error',
        `sub-blob '${name}' is not an FDT (no 0xd00dfeed magic): it may be a reused page`,
        where,
        { expected: 'an FDT' },
      ),
    );
    return { ...base, kind: 'raw', preview: preview(bytes) };
  }
  if (name === KHO_METADATA_NODE_NAME) {
    const acc = acceptKexecMetadata(bytes, profile.endian);
    if (acc.accepted && acc.metadata) {
      return {
        ...base,
        kind: 'kexec-metadata',
        metadata: { ...acc.metadata, ...(acc.logLine ? { logLine: acc.logLine } : {}) },
      };
    }
    findings.push(
      finding('KHO_METADATA_REJECTED', 'warning', acc.warning ?? 'kexec-metadata rejected', where, {
        expected: '73 bytes, version 1',
      }),
    );
    return { ...base, kind: 'kexec-metadata', preview: preview(bytes) };
  }
  if (name === LUO_NODE_NAME) {
    const text = Buffer.from(bytes.subarray(0, 8)).toString('latin1');
    if (bytes.length >= LUO_SER_SIZE && text.startsWith('luo-v')) {
      const l = decodeLuoSer(bytes, profile.endian);
      for (const f of validateLuoSer(bytes, profile.endian))
        findings.push({ ...f, path: `${where}${f.path ?? ''}` });
      const out: Omit<SubBlob, 'name' | 'source' | 'phys' | 'size'> = {
        ...base,
        kind: 'LUO',
        luo: {
          compatible: l.compatible,
          liveupdateNumber: l.liveupdateNum,
          sessions: l.sessionsPa,
          flb: l.flbsPa,
        },
      };
      if (mem) {
        try {
          const st = decodeLuoState(mem, bytes, { pageSize: profile.pageSize, endian: profile.endian });
          out.luo!.state = {
            sessions: st.sessions.map((x) => ({ name: x.name, files: x.files.map((f) => f.compatible) })),
            flbs: st.flbs.flbs.length,
          };
        } catch (e) {
          findings.push({ ...asFinding(e, where), severity: 'warning' });
        }
      }
      return out;
    }
    findings.push(
      finding(
        'KHO_SUBBLOB_STALE',
        'warning',
        `sub-blob 'LUO' does not hold a LUO blob (no 'luo-v' compatible; it starts ${JSON.stringify(text)}): ` +
          'LUO frees its incoming page once consumed and the page was reused, while debugfs still points at it',
        where,
        { expected: "a struct luo_ser starting 'luo-v'" },
      ),
    );
    return { ...base, kind: 'raw', preview: preview(bytes) };
  }
  return { ...base, kind: 'raw', preview: preview(bytes) };
}

/** Read a sub-blob from memory: `size` bytes, or (without blob-size) an FDT's totalsize or one page. */
function readFromMemory(
  mem: PhysMemory,
  phys: bigint,
  size: bigint | undefined,
  profile: AbiProfile,
  findings: Finding[],
  where: string,
): Uint8Array | undefined {
  let len: bigint;
  if (size !== undefined) {
    len = size;
  } else {
    if (!mem.has(phys, 8)) return undefined;
    const head = mem.read(phys, 8);
    len = isFdt(head)
      ? BigInt(new DataView(head.buffer, head.byteOffset, 8).getUint32(4, false))
      : BigInt(profile.pageSize);
  }
  if (len > BigInt(MAX_SUBBLOB_READ)) {
    findings.push(
      finding(
        'KHO_SUBBLOB_TOO_BIG',
        'warning',
        `sub-blob is ${len} bytes; only the first ${PREVIEW_BYTES} are read`,
        where,
        { expected: `at most ${MAX_SUBBLOB_READ} bytes to decode` },
      ),
    );
    len = BigInt(PREVIEW_BYTES);
  }
  if (!mem.has(phys, len)) return undefined;
  return mem.read(phys, Number(len));
}

/** Find the whole root FDT among preserved order-0 pages: same compatible and memory map. */
function findWholeRoot(
  mem: PhysMemory,
  blocks: PreservedBlock[] | undefined,
  cut: KhoRoot,
  profile: AbiProfile,
): { at: bigint; bytes: Uint8Array } | undefined {
  const total = cut.blob.header.totalsize;
  const head = cut.blob.bytes.subarray(0, 8);
  const candidates: bigint[] = [];
  if (blocks) for (const b of blocks) if (b.order === 0) candidates.push(b.pa);
  if (cut.memoryMap !== undefined) candidates.unshift(cut.memoryMap + BigInt(profile.pageSize));
  const seen = new Set<bigint>();
  for (const pa of candidates) {
    if (seen.has(pa)) continue;
    seen.add(pa);
    if (seen.size > MAX_ROOT_CANDIDATES) break;
    if (!mem.has(pa, total)) continue;
    const h8 = mem.read(pa, 8);
    if (!head.every((x, i) => h8[i] === x)) continue;
    const b = mem.read(pa, total);
    try {
      const r = decodeKhoRoot(b, { profile });
      if (r.compatible === cut.compatible && r.memoryMap === cut.memoryMap && !r.truncation)
        return { at: pa, bytes: b };
    } catch {
      // not it
    }
  }
  return undefined;
}

function decodePreserved(
  mem: PhysMemory,
  root: bigint,
  profile: AbiProfile,
  findings: Finding[],
): PreservedSummary | undefined {
  try {
    const opts = { pageSize: profile.pageSize, endian: profile.endian };
    const list =
      profile.memoryMap === 'radix-tree'
        ? decodeRadixTree(mem, root, opts).blocks
        : decodeBitmapChunks(mem, root, opts).blocks;
    return {
      root,
      format: profile.memoryMap,
      blocks: list.length,
      bytes: blocksBytes(list, profile.pageSize),
      byOrder: countBlocksByOrder(list),
      ranges: mergeBlockRanges(list, profile.pageSize),
      list,
    };
  } catch (e) {
    findings.push(asFinding(e, `phys:${hx(root)}`));
    return undefined;
  }
}

function covered(ranges: PhysRange[], pa: bigint, len: bigint): boolean {
  const end = pa + (len > 0n ? len : 1n);
  return ranges.some((r) => r.start <= pa && end <= r.start + r.size);
}

/** Decode a whole handover (see the module contract). */
export function decodeHandover(input: HandoverInput): Handover {
  const findings: Finding[] = [];
  const label = input.label ?? 'fdt';
  const pageOpts = input.pageSize !== undefined ? { pageSize: input.pageSize } : {};
  let root: KhoRoot | undefined;
  if (input.fdt) {
    try {
      root = decodeKhoRoot(input.fdt, {
        ...(input.profile ? { profile: getProfile(input.profile, pageOpts) } : {}),
        ...(input.pageSize !== undefined ? { pageSize: input.pageSize } : {}),
      });
    } catch (e) {
      findings.push(asFinding(e, label));
    }
  }
  const profile = root?.profile ?? getProfile(input.profile ?? undefined, pageOpts);
  const out: Handover = {
    source: { kind: 'bytes' },
    profile: profile.name,
    subBlobs: [],
    reserveMem: [],
    findings,
  };
  let wholeAt: bigint | undefined;
  let given: number | undefined;
  let preserved: PreservedSummary | undefined;
  if (root) {
    const mem = input.memory;
    if (mem && root.memoryMap !== undefined && root.memoryMap !== 0n) {
      const mapFindings: Finding[] = [];
      preserved = decodePreserved(mem, root.memoryMap, profile, mapFindings);
      if (!preserved && input.direction === 'in') {
        // A kernel walks its incoming map early in boot and does not keep the map's pages: an image
        // taken later shows whatever reused them (as the 7.3.4 stage-2 captures do).
        findings.push(
          finding(
            'KHO_MAP_STALE',
            'info',
            'the incoming preserved-memory map is consumed at boot and its pages reused; decode it from ' +
              "an image of the previous kernel's memory taken before the kexec",
            '/:preserved-memory-map',
          ),
          ...mapFindings.map((f) => ({ ...f, severity: 'warning' as const })),
        );
      } else {
        findings.push(...mapFindings);
      }
    }
    if (root.truncation) {
      const t = root.truncation;
      given = t.have;
      const whole = mem ? findWholeRoot(mem, preserved?.list, root, profile) : undefined;
      if (whole) {
        wholeAt = whole.at;
        findings.push(
          finding(
            'KHO_FDT_CUT_SHORT',
            'warning',
            `${label} is cut short: ${t.have} of ${t.totalsize} bytes (${t.totalsize - t.have} missing); ` +
              `the whole blob was found in the memory image at ${hx(whole.at)} and is decoded instead`,
            label,
          ),
        );
        root = decodeKhoRoot(whole.bytes, { profile });
      } else {
        findings.push(
          finding(
            'KHO_FDT_CUT_SHORT',
            'warning',
            `${label} is cut short: ${t.have} of ${t.totalsize} bytes (${t.totalsize - t.have} missing; Linux 7.3 fixes ` +
              'the debugfs out/fdt length when the file is created, so sub-trees added later are cut off). ' +
              'The whole blob is the root FDT page, itself a preserved order-0 page: ' +
              (mem
                ? 'it was not found among the preserved pages of the memory image; if you know its address ' +
                  "(the previous kernel's SETUP_KEXEC_KHO fdt_addr or /chosen linux,kho-fdt), read it with --fdt-at"
                : 'pass a memory image with --memory to read it, or read in/fdt in the next kernel after kexec'),
            label,
          ),
        );
      }
    }
    findings.push(...root.findings.filter((f) => f.code !== 'KHO_FDT_CUT_SHORT'));
    out.root = {
      ...(root.compatible !== undefined ? { compatible: root.compatible } : {}),
      profile: root.profile.name,
      detected: root.detected,
      ...(root.memoryMap !== undefined ? { memoryMap: root.memoryMap } : {}),
      totalsize: root.blob.header.totalsize,
      have: given ?? root.blob.header.totalsize,
      ...(wholeAt !== undefined ? { wholeAt } : {}),
      subtrees: root.subtrees.map((s) => ({
        name: s.name,
        ...(s.phys !== undefined ? { phys: s.phys } : {}),
        ...(s.size !== undefined ? { size: s.size } : {}),
      })),
    };
  }
  if (preserved) out.preserved = preserved;

  // Sub-blobs: the root's sub-trees, then debugfs files the root does not list.
  const files = input.subBlobFiles ?? new Map<string, Uint8Array>();
  const names: { name: string; phys?: bigint; size?: bigint }[] = root
    ? root.subtrees.map((s) => ({
        name: s.name,
        ...(s.phys !== undefined ? { phys: s.phys } : {}),
        ...(s.size !== undefined ? { size: s.size } : {}),
      }))
    : [];
  for (const n of files.keys()) if (!names.some((x) => x.name === n)) names.push({ name: n });
  const dir = input.direction ? `${input.direction}/` : '';
  for (const st of names) {
    const where = `/${st.name}`;
    let bytes: Uint8Array | undefined;
    let source: SubBlob['source'] = 'none';
    if (input.memory && st.phys !== undefined) {
      try {
        bytes = readFromMemory(input.memory, st.phys, st.size, profile, findings, where);
      } catch (e) {
        findings.push(asFinding(e, where));
      }
      if (bytes) source = 'memory';
    }
    const file = files.get(st.name);
    if (!bytes && file) {
      bytes = file;
      source = 'debugfs';
      if (st.size !== undefined && BigInt(file.length) !== st.size) {
        findings.push(
          finding(
            'KHO_SUBBLOB_SIZE_MISMATCH',
            'warning',
            `${dir}sub_fdts/${st.name} holds ${file.length} bytes but blob-size is ${st.size}`,
            where,
            { expected: `${st.size} bytes` },
          ),
        );
      }
    } else if (bytes && file && Buffer.compare(Buffer.from(bytes), Buffer.from(file)) !== 0) {
      findings.push(
        finding(
          'KHO_SUBBLOB_DEBUGFS_DIFFERS',
          'warning',
          `${dir}sub_fdts/${st.name} differs from the blob in the memory image at ${hx(st.phys!)}; the memory image is used`,
          where,
        ),
      );
    }
    const sb: SubBlob = {
      name: st.name,
      ...(st.phys !== undefined ? { phys: st.phys } : {}),
      ...(st.size !== undefined ? { size: st.size } : {}),
      source,
      kind: 'raw',
      length: 0,
    };
    if (bytes) Object.assign(sb, decodeSubBlob(st.name, bytes, profile, findings, where, input.memory));
    if (preserved && st.phys !== undefined && !covered(preserved.ranges, st.phys, st.size ?? 1n)) {
      findings.push(
        finding(
          'KHO_SUBBLOB_NOT_PRESERVED',
          'error',
          `sub-blob '${st.name}' at ${hx(st.phys)} is not in preserved memory: the next kernel may overwrite it`,
          where,
        ),
      );
    }
    out.subBlobs.push(sb);
    if (sb.memblock) out.reserveMem.push(...sb.memblock.regions);
    if (sb.metadata && !out.metadata) out.metadata = sb.metadata;
  }
  if (input.scratchText) {
    try {
      out.scratch = scratchFromDebugfs(input.scratchText.phys, input.scratchText.len).map((e, i) => ({
        ...e,
        role: scratchRole(i),
      }));
    } catch (e) {
      findings.push(asFinding(e, `${dir}scratch_phys`));
    }
  }
  if (preserved) {
    let hasSet: Set<string> | undefined;
    const has = {
      has: (k: string): boolean => {
        if (!hasSet) hasSet = new Set(preserved!.list.map((b) => `${b.pa}:${b.order}`));
        return hasSet.has(k);
      },
    };
    for (const sb of out.subBlobs) {
      const fi = sb.khoTest?.foliosInfo;
      if (!fi || !input.memory || sb.khoTest?.nrFolios === undefined) continue;
      try {
        const opts = { pageSize: profile.pageSize, endian: profile.endian };
        const area = readVmallocData(input.memory, decodeVmalloc(input.memory, fi, opts), opts);
        const n = sb.khoTest.nrFolios;
        if (n * 8 > area.length) {
          findings.push(
            finding(
              'KHO_TEST_FOLIOS_SHORT',
              'error',
              `folios_info holds ${area.length / 8} entries, nr_folios is ${n}`,
              `/${sb.name}/data`,
            ),
          );
          continue;
        }
        const dv = new DataView(area.buffer, area.byteOffset, area.length);
        const folios: PreservedBlock[] = [];
        let missing = 0;
        for (let i = 0; i < n; i++) {
          const v = dv.getBigUint64(i * 8, profile.endian === 'little');
          const pageMask = BigInt(profile.pageSize - 1);
          const f = { pa: v & ~pageMask, order: Number(v & pageMask) };
          folios.push(f);
          if (!has.has(`${f.pa}:${f.order}`)) {
            missing++;
            if (missing <= 8) {
              findings.push(
                finding(
                  'KHO_TEST_FOLIO_NOT_PRESERVED',
                  'error',
                  `self-test folio ${i} at ${hx(f.pa)} (order ${f.order}) is not a preserved block of that order: its restore would fail`,
                  `/${sb.name}/data:folios_info[${i}]`,
                ),
              );
            }
          }
        }
        sb.khoTest.folios = folios;
        const bytesTotal = folios.reduce((a, f) => a + (BigInt(profile.pageSize) << BigInt(f.order)), 0n);
        if (
          missing === 0 &&
          bytesTotal <= BigInt(MAX_CSUM_BYTES) &&
          folios.every((f) => input.memory!.has(f.pa, BigInt(profile.pageSize) << BigInt(f.order)))
        ) {
          let sum = 0;
          for (const f of folios)
            sum = x86CsumPartial(input.memory.read(f.pa, profile.pageSize << f.order), sum);
          sb.khoTest.csumComputed = sum;
          if (sb.khoTest.csum !== undefined && sum !== sb.khoTest.csum) {
            findings.push(
              finding(
                'KHO_TEST_CSUM_MISMATCH',
                'warning',
                `the folios' checksum is ${hx(sum)}, the self-test recorded ${hx(sb.khoTest.csum)} (x86_64 csum_partial): its restore would fail`,
                `/${sb.name}/data:csum`,
              ),
            );
          }
        }
      } catch (e) {
        findings.push({ ...asFinding(e, `/${sb.name}/data:folios_info`), severity: 'warning' });
      }
    }
    if (out.scratch)
      findings.push(...validatePreservedOutsideScratch(preserved.list, out.scratch, profile.pageSize));
    if (wholeAt !== undefined && !covered(preserved.ranges, wholeAt, BigInt(profile.pageSize))) {
      findings.push(
        finding(
          'KHO_ROOT_NOT_PRESERVED',
          'error',
          `the root FDT page at ${hx(wholeAt)} is not preserved`,
          '/',
        ),
      );
    }
    for (const r of out.reserveMem) {
      if (!covered(preserved.ranges, r.start, r.size)) {
        findings.push(
          finding(
            'KHO_RESERVE_MEM_NOT_PRESERVED',
            'error',
            `reserve_mem region '${r.name}' [${hx(r.start)}, +${hx(r.size)}) is not wholly preserved`,
            `/memblock/${r.name}`,
          ),
        );
      }
    }
  }
  return out;
}

/** Options for loading from disk. */
export interface LoadOptions {
  memoryPath?: string;
  memory?: PhysMemory;
  profile?: ProfileName;
  pageSize?: number;
  /**
   * Read the root FDT from the memory image at this physical address (the previous kernel's
   * SETUP_KEXEC_KHO `fdt_addr` or `/chosen` `linux,kho-fdt`, or `wholeAt` of a cut-short out/fdt).
   */
  fdtAt?: bigint;
}

/** The root FDT at `pa` in a memory image: its header's totalsize, at most one page (what the kernel hands over). */
export function readRootFdtAt(mem: PhysMemory, pa: bigint, pageSize = 4096): Uint8Array {
  const head = mem.read(pa, 8);
  if (!isFdt(head)) {
    throw new KhoError(
      'FDT_ERR_BADMAGIC',
      `no FDT at ${hx(pa)} (it starts ${Buffer.from(head).toString('hex')})`,
      {
        path: `phys:${hx(pa)}`,
        expected: '0xd00dfeed',
      },
    );
  }
  const total = new DataView(head.buffer, head.byteOffset, 8).getUint32(4, false);
  return mem.read(pa, Math.max(Math.min(total, pageSize), 8));
}

/**
 * The file access `loadHandoverFiles` needs, so that one classification of a path (debugfs directory,
 * root FDT file, sub-blob file) serves both the host filesystem (`loadHandoverPath`) and the simulated
 * machine's VFS (`loadHandoverVfs` in src/sim/session/kho-cli.ts).
 */
export interface HandoverFiles {
  /** Whether `path` is a directory; throws a KhoError (`IO_*`) when it cannot be looked up. */
  isDir(path: string): boolean;
  exists(path: string): boolean;
  /** A directory's entry names, sorted. */
  list(dir: string): string[];
  /** A file's bytes. */
  read(path: string): Uint8Array;
  /** A file as latin1 text, or undefined when it is absent or unreadable. */
  readText(path: string): string | undefined;
  join(dir: string, name: string): string;
  /** The name of the directory holding `path` (`sub_fdts` for `out/sub_fdts/memblock`). */
  parentName(path: string): string;
  /** How a user of this file system names a memory image, for hints (`--memory`, `--memory /dev/mem`). */
  memoryHint: string;
}

/** Decoding options of `loadHandoverFiles`; `rootAt` is a root FDT already read from memory (`--fdt-at`). */
export interface LoadFilesOptions {
  memory?: PhysMemory;
  profile?: ProfileName;
  pageSize?: number;
  rootAt?: Uint8Array;
}

/**
 * Load and decode a handover from `path` through `files`: a debugfs directory (`out/` or `in/`), a root
 * FDT file, or a single sub-blob file (a file under `sub_fdts/`, or any blob that is not a KHO root).
 */
export function loadHandoverFiles(files: HandoverFiles, path: string, opts: LoadFilesOptions = {}): Handover {
  const { rootAt } = opts;
  const base = {
    ...(opts.memory ? { memory: opts.memory } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
  };
  if (files.isDir(path)) {
    const fdtPath = files.join(path, 'fdt');
    const subDir = files.join(path, 'sub_fdts');
    const blobs = new Map<string, Uint8Array>();
    if (files.exists(subDir)) {
      for (const n of files.list(subDir)) blobs.set(n, files.read(files.join(subDir, n)));
    }
    // Linux 7.4+ (kho-v4-bootmem) renamed the files to bootmem_phys / bootmem_len.
    const phys =
      files.readText(files.join(path, 'scratch_phys')) ?? files.readText(files.join(path, 'bootmem_phys'));
    const len =
      files.readText(files.join(path, 'scratch_len')) ?? files.readText(files.join(path, 'bootmem_len'));
    const name = basename(path.replace(/\/+$/, ''));
    const direction = name === 'in' || name === 'out' ? name : undefined;
    const hasFdt = rootAt !== undefined || files.exists(fdtPath);
    if (!hasFdt && blobs.size === 0 && phys === undefined) {
      const out = files.join(path, 'out');
      const inn = files.join(path, 'in');
      throw new KhoError(
        'KHO_NOT_A_HANDOVER_DIR',
        `${path} holds no fdt, sub_fdts/, scratch_* or bootmem_* files`,
        {
          path,
          expected: `a /sys/kernel/debug/kho/out or /in directory${
            files.exists(out) || files.exists(inn) ? ` (try ${out} or ${inn})` : ''
          }`,
        },
      );
    }
    const h = decodeHandover({
      ...base,
      ...(hasFdt ? { fdt: rootAt ?? files.read(fdtPath) } : {}),
      subBlobFiles: blobs,
      ...(phys !== undefined && len !== undefined ? { scratchText: { phys, len } } : {}),
      ...(direction ? { direction } : {}),
      label: direction ? `${direction}/fdt` : 'fdt',
    });
    h.source = { kind: 'debugfs-dir', path };
    if (!hasFdt) {
      h.findings.unshift(
        finding(
          'KHO_DEBUGFS_NO_FDT',
          'info',
          direction === 'in'
            ? 'no in/fdt: this kernel did not boot from a KHO handover'
            : 'no fdt file: after a KHO boot Linux 7.3 creates no out/fdt (only a cold boot does); the outgoing ' +
                `root FDT lives only in memory (inspect it with ${files.memoryHint}, or as in/fdt in the next kernel)`,
          direction ? `${direction}/fdt` : 'fdt',
        ),
      );
    }
    return h;
  }
  if (rootAt) {
    throw new KhoError('KHO_TWO_ROOTS', `${path} is a file, and an FDT address was given too`, {
      path,
      expected: 'a debugfs directory or no path with an FDT address',
    });
  }
  const bytes = files.read(path);
  const name = basename(path);
  const inSubFdts = files.parentName(path) === 'sub_fdts';
  let isRoot = !inSubFdts && isFdt(bytes);
  if (isRoot) {
    try {
      const blob = parseFdt(bytes, { allowTruncated: true });
      const cp = blob.root.props.find((p) => p.name === 'compatible');
      const compat = cp ? Buffer.from(cp.value).toString('latin1') : '';
      if (compat.startsWith(MEMBLOCK_KHO_NODE_COMPATIBLE) || compat.startsWith(KHO_TEST_COMPAT))
        isRoot = false;
    } catch {
      // decodeHandover reports it
    }
  }
  if (isRoot || (!inSubFdts && !isFdt(bytes) && ![KHO_METADATA_NODE_NAME, LUO_NODE_NAME].includes(name))) {
    const h = decodeHandover({ ...base, fdt: bytes, label: path });
    h.source = { kind: 'fdt', path };
    return h;
  }
  const h = decodeHandover({ ...base, subBlobFiles: new Map([[name, bytes]]), label: path });
  h.source = { kind: 'sub-blob', path };
  return h;
}

/** The host filesystem as `HandoverFiles`. */
const hostFiles: HandoverFiles = {
  isDir(path) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch (e) {
      throw new KhoError('IO_ENOENT', `cannot read ${path}: ${(e as Error).message}`, { path, cause: e });
    }
    return st.isDirectory();
  },
  exists: (path) => existsSync(path),
  list: (dir) => readdirSync(dir).sort(),
  read: (path) => readFileSync(path),
  readText: (path) => (existsSync(path) ? readFileSync(path, 'latin1') : undefined),
  join: (dir, name) => join(dir, name),
  parentName: (path) => basename(join(path, '..')),
  memoryHint: '--memory',
};

/**
 * Load and decode a handover from a path on the host: a debugfs directory (`out/` or `in/`), a root FDT
 * file, or a single sub-blob file (see `loadHandoverFiles`); or, with no path, the root FDT at
 * `opts.fdtAt` in the memory image. I/O errors throw (IO_* codes); content problems are findings.
 */
export function loadHandoverPath(path: string | undefined, opts: LoadOptions = {}): Handover {
  if (!opts.memory && opts.memoryPath) {
    const img = openMemoryImage(opts.memoryPath);
    try {
      return loadHandoverPath(path, { ...opts, memory: img, memoryPath: undefined });
    } finally {
      img.close();
    }
  }
  const memory = opts.memory;
  let rootAt: Uint8Array | undefined;
  if (opts.fdtAt !== undefined) {
    if (!memory) {
      throw new KhoError(
        'KHO_NEED_MEMORY',
        'reading the root FDT at a physical address needs a memory image',
        {
          expected: 'a memory image (--memory)',
        },
      );
    }
    rootAt = readRootFdtAt(memory, opts.fdtAt, opts.pageSize ?? 4096);
  }
  const load: LoadFilesOptions = {
    ...(memory ? { memory } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
  };
  if (path === undefined) {
    if (!rootAt) {
      throw new KhoError('KHO_NO_INPUT', 'nothing to decode', {
        expected: 'a path, or a memory image and an FDT address',
      });
    }
    const h = decodeHandover({ ...load, fdt: rootAt, label: `phys:0x${opts.fdtAt!.toString(16)}` });
    h.source = { kind: 'memory', path: `phys:0x${opts.fdtAt!.toString(16)}` };
    return h;
  }
  return loadHandoverFiles(hostFiles, path, { ...load, ...(rootAt ? { rootAt } : {}) });
}

/** Interval difference a \ b over merged, sorted ranges. */
export function subtractRanges(a: PhysRange[], b: PhysRange[]): PhysRange[] {
  const out: PhysRange[] = [];
  for (const r of a) {
    let pieces: PhysRange[] = [r];
    for (const s of b) {
      const next: PhysRange[] = [];
      for (const p of pieces) {
        const pe = p.start + p.size;
        const se = s.start + s.size;
        if (se <= p.start || s.start >= pe) {
          next.push(p);
          continue;
        }
        if (s.start > p.start) next.push({ start: p.start, size: s.start - p.start });
        if (se < pe) next.push({ start: se, size: pe - se });
      }
      pieces = next;
    }
    out.push(...pieces);
  }
  return out;
}

export interface HandoverDiff {
  root: { field: string; a?: unknown; b?: unknown }[];
  subBlobs: {
    added: SubBlob[];
    removed: SubBlob[];
    changed: { name: string; changes: { field: string; a?: unknown; b?: unknown }[] }[];
  };
  /** Undefined unless both sides have a decoded preserved-memory map. */
  preserved?: { gained: PhysRange[]; lost: PhysRange[] };
  metadata: { field: string; a?: unknown; b?: unknown }[];
  reserveMem: { added: ReserveMemRegion[]; removed: ReserveMemRegion[]; changed: string[] };
  /** Whether the two handovers differ at all in what was compared. */
  same: boolean;
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x));
}

/** What differs between two handovers (e.g. out/fdt before and in/fdt after a kexec). */
export function diffHandovers(a: Handover, b: Handover): HandoverDiff {
  const root: HandoverDiff['root'] = [];
  for (const field of ['compatible', 'profile', 'memoryMap'] as const) {
    const x = a.root?.[field];
    const y = b.root?.[field];
    if (stable(x) !== stable(y)) root.push({ field, a: x, b: y });
  }
  const byName = (h: Handover) => new Map(h.subBlobs.map((s) => [s.name, s]));
  const am = byName(a);
  const bm = byName(b);
  const added = b.subBlobs.filter((s) => !am.has(s.name));
  const removed = a.subBlobs.filter((s) => !bm.has(s.name));
  const changed: HandoverDiff['subBlobs']['changed'] = [];
  for (const s of a.subBlobs) {
    const t = bm.get(s.name);
    if (!t) continue;
    const changes: { field: string; a?: unknown; b?: unknown }[] = [];
    for (const f of ['phys', 'size'] as const) {
      // A side that does not know the address (a debugfs file the cut-short root does not list) is no change.
      if (s[f] !== undefined && t[f] !== undefined && s[f] !== t[f])
        changes.push({ field: f, a: s[f], b: t[f] });
    }
    if (s.source !== 'none' && t.source !== 'none' && s.kind !== t.kind) {
      changes.push({ field: 'kind', a: s.kind, b: t.kind });
    }
    const content = (x: SubBlob) =>
      stable([x.memblock?.regions, x.khoTest, x.metadata, x.luo, x.fdt, x.preview]);
    if (s.source !== 'none' && t.source !== 'none' && content(s) !== content(t)) {
      changes.push({
        field: 'content',
        a: s.metadata ?? s.luo ?? s.memblock?.regions ?? s.khoTest ?? s.preview,
        b: t.metadata ?? t.luo ?? t.memblock?.regions ?? t.khoTest ?? t.preview,
      });
    }
    if (changes.length) changed.push({ name: s.name, changes });
  }
  const metadata: HandoverDiff['metadata'] = [];
  for (const f of ['previousRelease', 'kexecCount', 'version'] as const) {
    if (stable(a.metadata?.[f]) !== stable(b.metadata?.[f])) {
      metadata.push({ field: f, a: a.metadata?.[f], b: b.metadata?.[f] });
    }
  }
  const rmA = new Map(a.reserveMem.map((r) => [r.name, r]));
  const rmB = new Map(b.reserveMem.map((r) => [r.name, r]));
  const reserveMem = {
    added: b.reserveMem.filter((r) => !rmA.has(r.name)),
    removed: a.reserveMem.filter((r) => !rmB.has(r.name)),
    changed: a.reserveMem
      .filter((r) => rmB.has(r.name) && stable(r) !== stable(rmB.get(r.name)))
      .map((r) => r.name),
  };
  const out: HandoverDiff = {
    root,
    subBlobs: { added, removed, changed },
    metadata,
    reserveMem,
    same: false,
  };
  if (a.preserved && b.preserved) {
    out.preserved = {
      gained: subtractRanges(b.preserved.ranges, a.preserved.ranges),
      lost: subtractRanges(a.preserved.ranges, b.preserved.ranges),
    };
  }
  out.same =
    root.length === 0 &&
    added.length === 0 &&
    removed.length === 0 &&
    changed.length === 0 &&
    metadata.length === 0 &&
    reserveMem.added.length + reserveMem.removed.length + reserveMem.changed.length === 0 &&
    (!out.preserved || out.preserved.gained.length + out.preserved.lost.length === 0);
  return out;
}
