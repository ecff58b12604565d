/**
 * `kho compat`: can kernel A hand its KHO state over to kernel B?
 *
 * Contract:
 * - `describeKernel(path, opts)` reads one side: a simulated-kernel description (JSON, the zod schema of
 *   `src/sim/kexec/image.ts`: release, profile, config, producers), a real bzImage or arm64 Image (the
 *   release from its version string, mapped to a profile through the profiles' `kernels` ranges and
 *   marked inferred; its Kconfig is unknown unless a `.config` is given), or a blob (a root KHO FDT, a
 *   debugfs `out/` or `in/` directory, or a directory holding `out/`): the root compatible gives the
 *   profile (several eras share `kho-v1` and `kho-v4`, and the answer says so), each sub-blob's
 *   compatible or version gives what that producer speaks, and the outgoing kexec-metadata names the
 *   release that wrote it. Unreadable or unrecognised input throws `KhoError` (`KHO_COMPAT_*`, `IO_*`,
 *   `SIM_BAD_IMAGE*`).
 * - `checkCompat(a, b)` is pure. The ABI verdict follows the kernel: B accepts a handover only when the
 *   root compatible equals its own (`fdt_node_check_compatible`); on a mismatch B logs
 *   `KHO: setup: handover FDT (0x…) is incompatible with '<B>': 1` and `KHO: disabling KHO revival` and
 *   boots without KHO, so every producer's data is dropped. With the ABI accepted, each producer A
 *   writes is `kept` (B consumes the same version), `dropped` (B lacks the producer's Kconfig option,
 *   its era has no such producer, or nothing in B knows the name: the preserved memory stays reserved
 *   and unused), `refused` (B's producer rejects A's version, with the kernel's message where known;
 *   LUO panics), or `unknown` (B's config or version cannot be known from its input).
 * - The overall verdict is `incompatible` (different architectures, ABI rejected, or a refusal that
 *   panics B), `degraded` (ABI accepted but something dropped or refused), `unknown` (the ABI of a
 *   side cannot be told), else `compatible` (with any `unknown` producers listed as caveats).
 *   Only `compatible` is success (exit 0 in the CLI).
 * - `parseKconfig(text)` reads a kernel `.config` (`CONFIG_X=y|m|n|"str"|num`, `# CONFIG_X is not set`).
 * - `profilesForRelease(release)` maps a `uname -r` release to the profiles whose `kernels` range
 *   holds it (`a-b` inclusive, `a` exact, `a+` open-ended); none before 6.16 (no KHO).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Handover, loadHandoverPath } from '../abi/handover.ts';
import { KHO_KEXEC_METADATA_VERSION, KHO_METADATA_NODE_NAME } from '../abi/kexec-metadata.ts';
import { KHO_TEST_COMPAT, KHO_TEST_FDT } from '../abi/kho-test.ts';
import { LUO_ABI_COMPATIBLE, LUO_KHO_ENTRY_NAME } from '../abi/luo.ts';
import { MEMBLOCK_KHO_FDT, MEMBLOCK_KHO_NODE_COMPATIBLE } from '../abi/memblock.ts';
import { PROFILES, type ProfileName, profilesForCompatible } from '../abi/profile.ts';
import { KhoError } from '../errors.ts';
import {
  type ImageArch,
  type ImageDescription,
  type KernelImage,
  loadKernelImage,
  looksLikeArm64Image,
  looksLikeBzImage,
} from '../sim/kexec/image.ts';

export type KconfigValue = boolean | string | number;
export type Kconfig = Record<string, KconfigValue>;

export type SideKind = 'description' | 'bzImage' | 'arm64-Image' | 'handover';
export type ProfileSource = 'declared' | 'inferred-from-release' | 'blob-compatible' | 'unknown';

/** What one side writes or reads for one producer. */
export interface SideProducer {
  name: string;
  /** The format version it speaks (`memblock-v1`, `kho-test-v1`, `1`, `luo-v5`); null when unknown. */
  version: string | null;
  /** Whether the kernel has the producer: true, false, or null when its config cannot be known. */
  present: boolean | null;
  /** How we know (for humans). */
  how: string;
  /** Runtime condition for the producer to write anything (`reserve_mem=` on the command line). */
  when?: string;
}

export interface KernelSide {
  /** The path given. */
  path: string;
  kind: SideKind;
  arch: ImageArch | null;
  release: string | null;
  /** Candidate profiles, most likely first (several eras share one compatible). */
  profiles: ProfileName[];
  /** The root compatible this kernel writes and accepts; null when unknown. */
  compatible: string | null;
  profileSource: ProfileSource;
  /** CONFIG_KEXEC_HANDOVER: built in, not, or unknown. */
  khoBuilt: boolean | null;
  /** Kconfig, when known (description, or a `.config` given). */
  config: Kconfig | null;
  /** Producers this kernel has / wrote, by sub-tree name. */
  producers: SideProducer[];
  notes: string[];
}

export type ProducerStatus = 'kept' | 'dropped' | 'refused' | 'unknown';

export interface ProducerVerdict {
  name: string;
  aVersion: string | null;
  bVersion: string | null;
  status: ProducerStatus;
  reason: string;
  /** The line B's kernel logs, where known. */
  kernelMessage?: string;
  /** What happens to the data. */
  consequence?: string;
  /** B panics (LUO). */
  panics?: boolean;
  /** Runtime condition on A for the sub-blob to exist at all. */
  when?: string;
}

export type AbiVerdict = 'accepted' | 'rejected' | 'unknown';
export type Verdict = 'compatible' | 'degraded' | 'incompatible' | 'unknown';

export interface CompatResult {
  a: KernelSide;
  b: KernelSide;
  abi: {
    verdict: AbiVerdict;
    /** What A writes and what B accepts. */
    aCompatible: string | null;
    bCompatible: string | null;
    message: string;
    /** What B logs when it rejects the handover. */
    kernelLog?: string[];
  };
  producers: ProducerVerdict[];
  dropped: string[];
  refused: string[];
  uncertain: string[];
  verdict: Verdict;
  notes: string[];
}

// ---------------------------------------------------------------------------------------------
// Knowledge of the producers (spec §5, §6, §8.1, §9; the 7.3.4 vectors for LUO).

/** A producer's version per era: a version, `null` (the era has no such producer) or `'?'` (not known). */
type EraVersions = Record<ProfileName, string | null>;
const UNKNOWN_VERSION = '?';

interface ProducerDef {
  name: string;
  title: string;
  /** Kconfig option the producer needs besides CONFIG_KEXEC_HANDOVER; null for KHO core and memblock. */
  config: string | null;
  when?: string;
  versions: EraVersions;
  /** How B reacts to another version. */
  refusal: (a: string, b: string) => { message?: string; consequence: string; panics?: boolean };
  /** What is lost when B does not consume the sub-blob. */
  lost: string;
}

const allEras = (v: string | null): EraVersions =>
  Object.fromEntries(Object.keys(PROFILES).map((p) => [p, v])) as EraVersions;

export const PRODUCERS: readonly ProducerDef[] = [
  {
    name: KHO_METADATA_NODE_NAME,
    title: 'kexec metadata (KHO core)',
    config: null,
    versions: {
      ...allEras(null),
      'kho-v3': String(KHO_KEXEC_METADATA_VERSION),
      'kho-v4': String(KHO_KEXEC_METADATA_VERSION),
      'kho-v4-bootmem': String(KHO_KEXEC_METADATA_VERSION),
    },
    refusal: (a, b) => ({
      message: `kexec-metadata version ${a} not supported (expected ${b})`,
      consequence: 'B ignores the metadata: no "KHO: exec from:" line, and the kexec count restarts at 1',
    }),
    lost: 'the previous release and kexec count (the count restarts at 1)',
  },
  {
    name: MEMBLOCK_KHO_FDT,
    title: 'reserve_mem= regions (mm/memblock.c)',
    config: null,
    when: 'A has reserve_mem= on its command line',
    versions: allEras(MEMBLOCK_KHO_NODE_COMPATIBLE),
    refusal: () => ({
      consequence: `B's reserve_mem= handler finds no '${MEMBLOCK_KHO_NODE_COMPATIBLE}' FDT: every region is allocated afresh and its contents are lost`,
    }),
    lost: 'the reserve_mem= regions (allocated afresh unless B has the same reserve_mem= names and sizes)',
  },
  {
    name: KHO_TEST_FDT,
    title: 'KHO self-test (lib/test_kho.c)',
    config: 'CONFIG_TEST_KEXEC_HANDOVER',
    versions: allEras(KHO_TEST_COMPAT),
    refusal: () => ({ message: 'test_kho: KHO restore failed', consequence: 'the self-test fails in B' }),
    lost: "the self-test's folios (no restore check runs)",
  },
  {
    name: LUO_KHO_ENTRY_NAME,
    title: 'Live Update Orchestrator (sessions, memfds)',
    config: 'CONFIG_LIVEUPDATE',
    when: 'A booted with liveupdate=on',
    versions: {
      ...allEras(UNKNOWN_VERSION),
      'kho-v1-6.16': null,
      'kho-v4': LUO_ABI_COMPATIBLE,
      'kho-v4-bootmem': LUO_ABI_COMPATIBLE,
    },
    refusal: (a, b) => ({
      message: `Kernel panic - not syncing (luo_restore_fail: LUO compatible '${a}' is not '${b}')`,
      consequence: 'B panics at early_initcall: an incompatible LUO blob is fatal by design',
      panics: true,
    }),
    lost: 'every live-update session and its preserved files (B needs CONFIG_LIVEUPDATE and liveupdate=on)',
  },
];

const defOf = (name: string): ProducerDef | undefined => PRODUCERS.find((p) => p.name === name);

// ---------------------------------------------------------------------------------------------
// Releases, profiles, Kconfig.

function versionKey(s: string): number | undefined {
  const m = /^(\d{1,4})\.(\d{1,4})/.exec(s);
  return m ? Number(m[1]) * 10000 + Number(m[2]) : undefined;
}

/** Profiles whose `kernels` range holds `release` (see the module contract). */
export function profilesForRelease(release: string): ProfileName[] {
  const v = versionKey(release);
  if (v === undefined) return [];
  const out: ProfileName[] = [];
  for (const p of Object.values(PROFILES)) {
    const m = /^(\d+\.\d+)(?:(\+)|-(\d+\.\d+))?$/.exec(p.kernels.trim());
    if (!m) continue;
    const lo = versionKey(m[1]) as number;
    const hi = m[2] ? Number.POSITIVE_INFINITY : m[3] ? (versionKey(m[3]) as number) : lo;
    if (v >= lo && v <= hi) out.push(p.name);
  }
  return out;
}

/** A kernel `.config`: `CONFIG_X=y` → true, `=m` → 'm', `=n` / `is not set` → false, strings, numbers. */
export function parseKconfig(text: string): Kconfig {
  const out: Kconfig = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const off = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (off) {
      out[off[1]] = false;
      continue;
    }
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2];
    if (v === 'y') out[m[1]] = true;
    else if (v === 'n') out[m[1]] = false;
    else if (v === 'm') out[m[1]] = 'm';
    else if (/^".*"$/.test(v)) out[m[1]] = v.slice(1, -1);
    else if (/^-?\d+$/.test(v)) out[m[1]] = Number(v);
    else out[m[1]] = v;
  }
  return out;
}

const configOn = (c: Kconfig, k: string): boolean => c[k] === true || c[k] === 'y';

// ---------------------------------------------------------------------------------------------
// Reading a side.

/** Largest kernel file read (bzImages are tens of MiB). */
export const MAX_KERNEL_FILE = 512 << 20;

export interface DescribeOptions {
  /** A kernel `.config` for this side (bzImage / Image, or to override a description's config). */
  config?: Kconfig;
  /** The side's role, for messages. */
  role?: 'A' | 'B';
}

const FDT_MAGIC = [0xd0, 0x0d, 0xfe, 0xed];

/** Read one side from a path (see the module contract). */
export function describeKernel(path: string, opts: DescribeOptions = {}): KernelSide {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new KhoError('IO_ENOENT', `cannot read ${path}: ${(e as Error).message}`, { path, cause: e });
  }
  if (st.isDirectory()) return fromHandover(path, loadHandover(path), opts);
  if (st.size > MAX_KERNEL_FILE)
    throw new KhoError('KHO_COMPAT_TOO_LARGE', `${path} is ${st.size} bytes`, {
      path,
      expected: `at most ${MAX_KERNEL_FILE} bytes`,
    });
  const bytes = readFileSync(path);
  if (bytes.length >= 4 && FDT_MAGIC.every((x, i) => bytes[i] === x))
    return fromHandover(path, loadHandoverPath(path), opts);
  const first = bytes.subarray(0, 4096).toString('latin1').trimStart();
  if (first.startsWith('{') || looksLikeBzImage(bytes) || looksLikeArm64Image(bytes))
    return fromImage(path, loadKernelImage(bytes, { path }), opts);
  throw new KhoError('KHO_COMPAT_UNKNOWN_INPUT', `${path} is not a kernel image, description or KHO blob`, {
    path,
    expected:
      'a bzImage, an arm64 Image, a simulated-kernel JSON description, a root KHO FDT or a debugfs dir',
  });
}

/** A debugfs dir: `out/` or `in/` itself, or a directory holding `out/` (what that kernel writes). */
function loadHandover(path: string): Handover {
  let target = path;
  try {
    if (statSync(join(path, 'out')).isDirectory()) target = join(path, 'out');
  } catch {
    // not a parent of out/
  }
  return loadHandoverPath(target);
}

function fromImage(path: string, img: KernelImage, opts: DescribeOptions): KernelSide {
  const notes: string[] = [];
  const d: ImageDescription | undefined = img.description;
  let profiles: ProfileName[] = [];
  let profileSource: ProfileSource = 'unknown';
  let config: Kconfig | null = opts.config ?? null;
  if (d) {
    if (!(d.profile in PROFILES))
      throw new KhoError('KHO_UNKNOWN_PROFILE', `unknown ABI profile '${d.profile}'`, {
        path: `${path}:profile`,
        expected: Object.keys(PROFILES).join(', '),
      });
    profiles = [d.profile as ProfileName];
    profileSource = 'declared';
    config = { ...d.config, ...(opts.config ?? {}) };
  } else if (img.release) {
    profiles = profilesForRelease(img.release);
    profileSource = profiles.length ? 'inferred-from-release' : 'unknown';
    notes.push(
      profiles.length
        ? `profile inferred from release ${img.release} (${profiles.map((p) => `${p}: ${PROFILES[p].kernels}`).join('; ')}); a vendor kernel may carry another ABI`
        : `release ${img.release} is in no profile's range: KHO appeared in 6.16`,
    );
  } else {
    notes.push(`${img.format} carries no release string: its ABI profile cannot be told`);
  }
  if (!d && !opts.config)
    notes.push('Kconfig unknown (pass a .config for this side): producers needing an option are uncertain');
  const compatible = profiles.length ? PROFILES[profiles[0]].compatible : null;
  const khoBuilt = config ? configOn(config, 'CONFIG_KEXEC_HANDOVER') : null;
  const producers: SideProducer[] = [];
  const era = profiles[0];
  for (const p of PRODUCERS) {
    const version = era ? p.versions[era] : UNKNOWN_VERSION;
    if (version === null) {
      producers.push({ name: p.name, version: null, present: false, how: `${era} has no ${p.name}` });
      continue;
    }
    const opt = d?.producers[p.name];
    // KHO core and memblock come with CONFIG_KEXEC_HANDOVER itself.
    let present: boolean | null = khoBuilt !== false;
    let how = khoBuilt === false ? 'CONFIG_KEXEC_HANDOVER is not set' : 'part of KHO';
    if (present !== false && p.config) {
      present = config ? configOn(config, p.config) : null;
      how = config ? `${p.config}=${configOn(config, p.config) ? 'y' : 'n'}` : `${p.config} unknown`;
    }
    if (opt?.enabled === false) {
      present = false;
      how = 'disabled in the description';
    }
    const given = typeof opt?.compatible === 'string' ? opt.compatible : opt?.version;
    producers.push({
      name: p.name,
      version: given !== undefined ? String(given) : version === UNKNOWN_VERSION ? null : version,
      present,
      how: given !== undefined ? `${how}; version from the description` : how,
      ...(p.when ? { when: p.when } : {}),
    });
  }
  // Producers of a description that kho does not know (users' own drivers).
  for (const [name, o] of Object.entries(d?.producers ?? {})) {
    if (defOf(name)) continue;
    const v = o.compatible ?? o.version;
    producers.push({
      name,
      version: v === undefined ? null : String(v),
      present: o.enabled !== false && khoBuilt !== false,
      how: 'declared in the description',
    });
  }
  return {
    path,
    kind: img.format,
    arch: img.arch,
    release: img.release,
    profiles,
    compatible,
    profileSource,
    khoBuilt,
    config,
    producers,
    notes,
  };
}

function fromHandover(path: string, h: Handover, opts: DescribeOptions): KernelSide {
  const notes: string[] = [];
  const compatible = h.root?.compatible ?? null;
  let profiles: ProfileName[] = h.root?.detected ?? [];
  let profileSource: ProfileSource = compatible ? 'blob-compatible' : 'unknown';
  if (compatible && profiles.length === 0)
    notes.push(`root compatible '${compatible}' is not a known KHO ABI`);
  if (profiles.length > 1)
    notes.push(
      `'${compatible}' is shared by ${profiles.map((p) => `${p} (${PROFILES[p].kernels})`).join(' and ')}: the blob alone cannot tell them apart`,
    );
  const meta = h.subBlobs.find((s) => s.kind === 'kexec-metadata')?.metadata;
  const release = meta?.previousRelease ?? null;
  if (!compatible) {
    if (h.root) notes.push('the root FDT has no compatible');
    else notes.push('no root FDT (a KHO boot creates no out/fdt in Linux 7.3): ABI taken from the sub-blobs');
    // A 7.3 KHO-boot out/ has no fdt: the metadata's release still tells the era.
    if (release) {
      profiles = profilesForRelease(release);
      if (profiles.length) {
        profileSource = 'inferred-from-release';
        notes.push(`profile inferred from the kexec-metadata release ${release}`);
      }
    }
  }
  const producers: SideProducer[] = [];
  for (const s of h.subBlobs) {
    let version: string | null = null;
    if (s.memblock) version = s.memblock.compatible ?? null;
    else if (s.khoTest) version = s.khoTest.compatible ?? null;
    else if (s.metadata) version = String(s.metadata.version);
    else if (s.luo) version = s.luo.compatible;
    else if (s.fdt?.compatible) version = s.fdt.compatible;
    let how = `sub-blob (${s.source})`;
    if (version === null) {
      // Bytes unavailable (a lone root FDT) or unreadable: assume the era's version where known.
      const eraVersion = profiles[0] ? defOf(s.name)?.versions[profiles[0]] : undefined;
      if (eraVersion && eraVersion !== UNKNOWN_VERSION) {
        version = eraVersion;
        how = `sub-blob listed; version assumed from ${profiles[0]}`;
      }
      const stale = h.findings.find((f) => f.code === 'KHO_SUBBLOB_STALE' && f.path === `/${s.name}`);
      const what =
        s.source === 'none'
          ? 'its bytes were not available'
          : stale
            ? 'its debugfs file shows a reused page (the previous kernel consumed it)'
            : 'its bytes did not decode';
      notes.push(`sub-blob '${s.name}': ${what}${version ? `; assuming ${profiles[0]}'s ${version}` : ''}`);
    }
    producers.push({ name: s.name, version, present: true, how });
  }
  for (const f of h.findings)
    if (f.severity === 'error') notes.push(`blob: ${f.code}: ${f.message}${f.path ? ` (${f.path})` : ''}`);
  if (/(^|\/)in\/?$/.test(path))
    notes.push(
      'an in/ directory holds what the previous kernel handed over, not what this kernel will write',
    );
  return {
    path,
    kind: 'handover',
    arch: null,
    release,
    profiles,
    compatible: compatible ?? (profiles.length ? PROFILES[profiles[0]].compatible : null),
    profileSource,
    khoBuilt: true,
    config: opts.config ?? null,
    producers,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------
// The verdict.

/** What B knows of a producer A wrote. */
function bKnows(
  b: KernelSide,
  name: string,
): { present: boolean | null; version: string | null; how: string } {
  const own = b.producers.find((p) => p.name === name);
  if (own) return { present: own.present, version: own.version, how: own.how };
  const def = defOf(name);
  const era = b.profiles[0];
  if (b.kind === 'handover') {
    // A blob only shows what B wrote: a producer B did not use may still be built in.
    if (def && era) {
      const v = def.versions[era];
      if (v === null) return { present: false, version: null, how: `${era} has no ${name}` };
      if (def.config === null)
        return {
          present: true,
          version: v === UNKNOWN_VERSION ? null : v,
          how: `built into every ${era} kernel with KHO (B's blob has no '${name}' because B did not use it)`,
        };
      const cfg = b.config ? configOn(b.config, def.config) : null;
      if (cfg === false) return { present: false, version: null, how: `${def.config} is not set` };
      return {
        present: cfg,
        version: v === UNKNOWN_VERSION ? null : v,
        how: `B's blob has no '${name}' (B may lack ${def.config ?? 'the producer'} or not use it)`,
      };
    }
    return { present: null, version: null, how: `B's blob has no '${name}'` };
  }
  return { present: false, version: null, how: `nothing in B consumes '${name}'` };
}

function judgeProducer(b: KernelSide, p: SideProducer, abi: AbiVerdict): ProducerVerdict {
  const def = defOf(p.name);
  const k = bKnows(b, p.name);
  const base = {
    name: p.name,
    aVersion: p.version,
    bVersion: k.version,
    ...(p.when ? { when: p.when } : {}),
  };
  if (abi === 'rejected')
    return {
      ...base,
      status: 'dropped',
      reason: 'B boots without KHO',
      consequence: def?.lost ?? 'its data',
    };
  if (b.khoBuilt === false)
    return {
      ...base,
      status: 'dropped',
      reason: 'B is built without CONFIG_KEXEC_HANDOVER',
      consequence: def?.lost ?? 'its data',
    };
  if (k.present === false)
    return {
      ...base,
      status: 'dropped',
      reason: k.how,
      consequence: def
        ? `${def.lost}; the sub-blob and its preserved memory stay reserved and unused in B`
        : 'the sub-blob and its preserved memory stay reserved and unused in B',
    };
  if (abi === 'unknown') return { ...base, status: 'unknown', reason: "B's ABI is unknown" };
  if (p.version === null || k.version === null)
    return {
      ...base,
      status: 'unknown',
      reason: p.version === null ? "A's version of it is unknown" : `B's version is unknown (${k.how})`,
    };
  if (p.version !== k.version) {
    const r = def?.refusal(p.version, k.version) ?? {
      consequence: `B's '${p.name}' expects ${k.version}`,
    };
    return {
      ...base,
      status: 'refused',
      reason: `A writes ${p.version}, B expects ${k.version}`,
      ...(r.message ? { kernelMessage: r.message } : {}),
      consequence: r.consequence,
      ...(r.panics ? { panics: true } : {}),
    };
  }
  if (k.present === null)
    return { ...base, status: 'unknown', reason: `same version ${p.version}, but ${k.how}` };
  return { ...base, status: 'kept', reason: `both speak ${p.version}` };
}

/** Can `a` hand over to `b`? (see the module contract) */
export function checkCompat(a: KernelSide, b: KernelSide): CompatResult {
  const notes: string[] = [];
  let abi: CompatResult['abi'];
  const ac = a.compatible;
  const bc = b.compatible;
  const archClash = a.arch !== null && b.arch !== null && a.arch !== b.arch;
  if (a.khoBuilt === false) {
    abi = {
      verdict: 'rejected',
      aCompatible: ac,
      bCompatible: bc,
      message: 'A is built without CONFIG_KEXEC_HANDOVER: it hands nothing over',
    };
  } else if (b.khoBuilt === false) {
    abi = {
      verdict: 'rejected',
      aCompatible: ac,
      bCompatible: bc,
      message: 'B is built without CONFIG_KEXEC_HANDOVER: it ignores the handover and boots cold',
    };
  } else if (ac === null || bc === null) {
    abi = {
      verdict: 'unknown',
      aCompatible: ac,
      bCompatible: bc,
      message: `the ABI of ${ac === null ? 'A' : 'B'} cannot be told`,
    };
  } else if (ac !== bc) {
    abi = {
      verdict: 'rejected',
      aCompatible: ac,
      bCompatible: bc,
      message: `B accepts only '${bc}', A writes '${ac}': B boots without KHO (a cold boot; preserved memory may be overwritten)`,
      kernelLog: [
        `KHO: setup: handover FDT (0x…) is incompatible with '${bc}': 1`,
        'KHO: disabling KHO revival',
      ],
    };
  } else {
    const shared = profilesForCompatible(ac).map((p) => p.name);
    const assumed = [a, b].filter((s) => s.khoBuilt === null).map((s) => (s === a ? 'A' : 'B'));
    abi = {
      verdict: 'accepted',
      aCompatible: ac,
      bCompatible: bc,
      message: `both speak '${ac}'${shared.length > 1 ? ` (shared by ${shared.join(', ')})` : ''}${
        assumed.length
          ? `, assuming ${assumed.join(' and ')} ${assumed.length > 1 ? 'are' : 'is'} built with CONFIG_KEXEC_HANDOVER`
          : ''
      }`,
    };
  }
  if (archClash)
    notes.push(`A is ${a.arch}, B is ${b.arch}: kexec refuses another architecture's image (-ENOEXEC)`);
  const producers = a.producers
    .filter((p) => p.present !== false)
    .map((p) => judgeProducer(b, p, abi.verdict));
  const aEra = a.profiles[0];
  const bEra = b.profiles[0];
  if (aEra && bEra && aEra !== bEra && abi.verdict === 'accepted')
    notes.push(
      `A is ${aEra} (${PROFILES[aEra].kernels}), B is ${bEra} (${PROFILES[bEra].kernels}): same root ABI`,
    );
  if (aEra && bEra && PROFILES[aEra].scratchName !== PROFILES[bEra].scratchName)
    notes.push(
      `B names scratch '${PROFILES[bEra].scratchName}' (kho_${PROFILES[bEra].scratchName}= and debugfs ${PROFILES[bEra].scratchName}_phys/_len), A '${PROFILES[aEra].scratchName}'`,
    );
  if (aEra === 'kho-v1-6.16')
    notes.push(
      'A (6.16) builds the FDT only at finalize: write 1 to debugfs kho/out/finalize before kexec -e',
    );
  else if (aEra === 'kho-v1')
    notes.push(
      "A (6.18-7.0) serializes its memory map only at finalize (debugfs kho/out/finalize or LUO's reboot): without it B disables KHO revival",
    );
  if (b.khoBuilt !== false && abi.verdict !== 'rejected')
    notes.push(
      'B must be loaded with kexec_file_load (kexec -s) for the state to be passed; B needs kho=on (or CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT=y) to hand over again',
    );
  const dropped = producers.filter((p) => p.status === 'dropped').map((p) => p.name);
  const refused = producers.filter((p) => p.status === 'refused').map((p) => p.name);
  const uncertain = producers.filter((p) => p.status === 'unknown').map((p) => p.name);
  let verdict: Verdict;
  if (archClash || abi.verdict === 'rejected' || producers.some((p) => p.panics)) verdict = 'incompatible';
  else if (abi.verdict === 'unknown') verdict = 'unknown';
  else if (dropped.length || refused.length) verdict = 'degraded';
  else verdict = 'compatible';
  return { a, b, abi, producers, dropped, refused, uncertain, verdict, notes };
}

// ---------------------------------------------------------------------------------------------
// Output.

function sideLine(s: KernelSide): string {
  const what =
    s.kind === 'handover' ? 'KHO blob' : s.kind === 'description' ? 'simulated kernel description' : s.kind;
  const parts = [
    s.release ? `release ${s.release}` : 'release unknown',
    s.profiles.length
      ? `profile ${s.profiles.join(' or ')}${s.profileSource === 'inferred-from-release' ? ' (inferred from the release)' : s.profileSource === 'blob-compatible' ? ' (from the root compatible)' : ''}`
      : 'profile unknown',
    s.compatible ? `compatible '${s.compatible}'` : 'compatible unknown',
  ];
  if (s.arch) parts.push(s.arch);
  return `${s.path}: ${what}; ${parts.join(', ')}`;
}

const VERDICT_TEXT: Record<Verdict, string> = {
  compatible: 'compatible: B takes over everything A hands over',
  degraded: 'degraded: B accepts the handover but loses some of it',
  incompatible: 'incompatible',
  unknown: 'unknown: not enough is known about A or B',
};

/** Human-readable report. */
export function formatCompat(r: CompatResult): string {
  const L: string[] = [];
  L.push(`A ${sideLine(r.a)}`);
  for (const n of r.a.notes) L.push(`  note: ${n}`);
  L.push(`B ${sideLine(r.b)}`);
  for (const n of r.b.notes) L.push(`  note: ${n}`);
  L.push('');
  L.push(`ABI: ${r.abi.verdict}: ${r.abi.message}`);
  for (const l of r.abi.kernelLog ?? []) L.push(`  B logs: ${l}`);
  if (r.producers.length) {
    L.push('Producers:');
    const w = Math.max(...r.producers.map((p) => p.name.length));
    for (const p of r.producers) {
      const ver = `${p.aVersion ?? '?'} -> ${p.bVersion ?? '?'}`;
      L.push(
        `  ${p.name.padEnd(w)}  ${p.status.padEnd(7)}  ${ver}: ${p.reason}${p.when ? ` [only if ${p.when}]` : ''}`,
      );
      if (p.kernelMessage) L.push(`  ${' '.repeat(w)}  B logs: ${p.kernelMessage}`);
      if (p.consequence && p.status !== 'kept') L.push(`  ${' '.repeat(w)}  lost: ${p.consequence}`);
    }
  } else {
    L.push('Producers: none written by A');
  }
  if (r.dropped.length) L.push(`B drops: ${r.dropped.join(', ')}`);
  if (r.refused.length) L.push(`B refuses: ${r.refused.join(', ')}`);
  if (r.uncertain.length) L.push(`uncertain: ${r.uncertain.join(', ')}`);
  for (const n of r.notes) L.push(`note: ${n}`);
  L.push(`verdict: ${VERDICT_TEXT[r.verdict]}`);
  return `${L.join('\n')}\n`;
}

/** The `--json` document (docs/json-schema.md, `kho compat`). */
export function compatJson(r: CompatResult): unknown {
  const side = (s: KernelSide) => ({
    path: s.path,
    kind: s.kind,
    arch: s.arch,
    release: s.release,
    profiles: s.profiles,
    profileSource: s.profileSource,
    compatible: s.compatible,
    khoBuilt: s.khoBuilt,
    producers: s.producers,
    notes: s.notes,
  });
  return {
    a: side(r.a),
    b: side(r.b),
    abi: r.abi,
    producers: r.producers,
    dropped: r.dropped,
    refused: r.refused,
    uncertain: r.uncertain,
    notes: r.notes,
    verdict: r.verdict,
    compatible: r.verdict === 'compatible',
  };
}
