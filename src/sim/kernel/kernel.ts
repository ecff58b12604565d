/**
 * A simulated Linux kernel booting on a `Machine`, with KHO, following the 7.3 boot path (spec §3-§6):
 * cold boot, KHO boot after a kexec, `kexec_file_load` / `kexec_load`, `kexec -e`, and cold reboot.
 *
 * Contract:
 * - `Kernel.boot(machine, { image, cmdline, producers })` runs a whole boot and returns the running
 *   kernel. Order (as the vectors' dmesg shows it): `Linux version`, `Command line:`, the e820 map,
 *   `kho_populate` (KHO boot only: setup_data SETUP_KEXEC_KHO on x86 / `/chosen` on arm64 found in
 *   memory, root FDT checked against this kernel's profile: `KHO: found kexec handover data.` or the
 *   kernel's warning and `KHO: disabling KHO revival`), early parameters (`KHO: scratch areas: ...`,
 *   `Malformed early option '...'`), early reservations (documented below), `Kernel command line:`,
 *   `reserve_mem=` (revived from KHO at the same address), unknown parameters, `kho_memory_init`
 *   (cold: scratch reserved; KHO boot: scratch adopted, the preserved-memory map walked, every block
 *   reserved), `memblock_free_all` into the buddy allocator (preserved pages never handed out),
 *   `kho_init` at fs_initcall (outgoing tree, root FDT, kexec metadata `KHO: exec from: ...`, debugfs),
 *   producers at their initcall levels (kho_test at module_init, reserve_mem at late_initcall).
 * - KHO is on when `kho=` says so, else per CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT, which is *not set* in
 *   the vectors' kernel.config (and defaults to n in Kconfig): with an empty command line KHO is off.
 * - Early reservations (modelled, documented, plausible for QEMU x86_64; exact addresses need not
 *   match the vectors): page 0 and the first MiB; the kernel image (`_text`.._end`, 0x1ffd000 bytes, at
 *   16 MiB on a cold boot, where kexec put it on a KHO boot) as kernel memory; the initrd; then, by
 *   node, the memmap (64 bytes per page), and 6 MiB of page tables, percpu and node data; after NUMA
 *   setup, without a node, the dentry and inode hash tables (3.5 MiB on 2 GiB, scaled with memory). All
 *   allocations are memblock's (top-down; scratch-only on a KHO boot; a failure panics the kernel with
 *   `SIM_KERNEL_PANIC`). With these, the default scale on the vectors' 2 GiB machine gives their 164 MiB
 *   lowmem, 0 global and 140 MiB per-node scratch.
 * - `kexecLoad({ image, initrd, cmdline, fileLoad })`: with `fileLoad` (`-s`) and KHO on, every segment
 *   is placed in scratch by `planKexecLoad` (`SIM_KEXEC_NO_FIT` = -EADDRNOTAVAIL otherwise) and the
 *   handover is recorded; without `-s` the load works but `handover` is false and `message` says so.
 *   `kexecExec()` writes the handover into the segments (x86 boot_params + setup_data; arm64 DTB
 *   `/chosen`), clobbers the old kernel's non-preserved memory (resident pages of allocated blocks get
 *   0x6b; tracker pages survive until the next kernel has walked them, then they are free memory) and
 *   boots the next kernel on the same machine with exactly the given command line.
 *   `kexecExec({ fault })` runs `fault(oldKernel)` after the handover is written (fault injection);
 *   with `checkInvariants` every load and kexec of the chain goes through invariants.ts.
 *   The image segments' bytes are not copied into simulated memory (zeros stand for them); their
 *   ranges are, and so are boot_params/setup_data, the DTB and the scratch array copy.
 * - The x86 kexec'd kernel runs where kexec put its segment (the vectors' stage-2 iomem shows it inside
 *   global scratch); `/proc/iomem` follows.
 * - A scratch array naming memory that is not RAM is refused with a (simulator) warning instead of
 *   adding phantom memory as the real kernel would.
 * - Images: `imageSpecOf` maps helper I's parsed images to a `KernelImageSpec` (descriptions carry
 *   release, profile and Kconfig; a real bzImage's release picks the profile by `profileForRelease`, its
 *   Kconfig is assumed to be the running kernel's); `imageDescriptionJson` writes a kernel's own image.
 * - `reboot()` power-cycles the machine (memory lost) and cold-boots the first kernel's image and command
 *   line: the kexec count starts again from 0.
 */
import { decodeChosenKho, encodeChosenKho, encodeKhoSetupData, findKhoSetupData } from '../../abi/boot.ts';
import { decodeKhoRoot } from '../../abi/kho-fdt.ts';
import { hex } from '../../abi/memory/image.ts';
import { type AbiProfile, getProfile, PROFILES, type ProfileName } from '../../abi/profile.ts';
import { decodePreservedMemoryMap, decodeRadixTreePacked, mergeBlockRanges } from '../../abi/radix-tree.ts';
import { decodeScratchArray, encodeScratchArray } from '../../abi/scratch.ts';
import { fdtErrno, KhoError } from '../../errors.ts';
import { FdtSw } from '../../fdt/write-sw.ts';
import type { KernelImage } from '../kexec/image.ts';
import { type KexecPlan, planKexecLoad } from '../kexec/placement.ts';
import { formatE820 } from '../machine/firmware.ts';
import type { Machine } from '../machine/machine.ts';
import { BuddyAllocator } from './buddy.ts';
import { commandLineLogLines, type ParsedCommandLine, parseKernelCommandLine } from './cmdline.ts';
import { assertInvariants, kexecChecked } from './invariants.ts';
import { KhoCore, mergePackedRanges, setPackedBlocks } from './kho.ts';
import { type Memblock, memblockFromRam, NUMA_NO_NODE, ReserveMemTable } from './memblock.ts';
import { KernelLog } from './printk.ts';
import {
  BUILTIN_PRODUCERS,
  INITCALL_ORDER,
  type KernelConfig,
  type KhoProducer,
  kexecMetadataIn,
  kexecMetadataOut,
  type ProducerContext,
  reserveMemRevive,
  runProducer,
} from './producers.ts';
import { adoptScratch, type KhoScratchArea, reserveScratch, x86LowMemoryScratch } from './scratch.ts';

/** A simulated kernel build: release, ABI profile, Kconfig. */
export interface KernelImageSpec {
  release: string;
  profile: ProfileName;
  arch: 'x86_64' | 'arm64';
  config: KernelConfig;
  /** Memory the loaded kernel needs (kexec segment memsz). Default DEFAULT_KERNEL_MEMSZ (34 MiB). */
  memSize?: bigint;
}

/** The Kconfig of the vectors' kernel, as far as KHO goes. */
export const VECTOR_KERNEL_CONFIG: KernelConfig = {
  CONFIG_KEXEC_HANDOVER: true,
  CONFIG_KEXEC_HANDOVER_DEBUG: true,
  CONFIG_KEXEC_HANDOVER_DEBUGFS: true,
  CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT: false,
  CONFIG_TEST_KEXEC_HANDOVER: true,
  CONFIG_LIVEUPDATE: true,
  CONFIG_LIVEUPDATE_MEMFD: true,
};
export const VECTOR_RELEASE = '7.3.4-khovec';
export const DEFAULT_IMAGE: KernelImageSpec = {
  release: VECTOR_RELEASE,
  profile: 'kho-v4',
  arch: 'x86_64',
  config: VECTOR_KERNEL_CONFIG,
};
/** The `Linux version` banner of the vectors' kernel (release substituted). */
export const linuxBanner = (release: string): string =>
  `Linux version ${release} (root@vm) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Tue Nov 24 20:16:13 UTC 2026`;

/** Kernel image layout of the vectors' kernel (offsets from `_text`), for `/proc/iomem`. */
export const KERNEL_IMAGE_LAYOUT = {
  size: 0x1ffd000n,
  code: [0x0n, 0xe34e48n],
  rodata: [0x1000000n, 0x14dd000n],
  data: [0x1600000n, 0x188cb80n],
  bss: [0x1f6c000n, 0x1ffd000n],
} as const;
export const COLD_KERNEL_BASE = 0x1000000n;

/** Where a kexec left the next kernel's inputs. */
export interface KexecHandoff {
  arch: 'x86_64' | 'arm64';
  /** x86: physical address of boot_params (its `hdr.setup_data` heads the setup_data list). */
  bootParams?: bigint;
  /** arm64: the DTB segment. */
  dtb?: { addr: bigint; size: bigint };
  kernelAddr: bigint;
  initrd?: { addr: bigint; size: bigint };
  /** Filled in by the invariant checker before the exec. */
  snapshot?: PreservedSnapshot;
}

/** Every preserved range and its pages that hold data, before a kexec (see invariants.ts). */
export interface PreservedSnapshot {
  /**
   * `runs`: the pages holding data, `pfn` first, with their bytes then (arrays shared with memory,
   * which copies a shared page before changing it: see `PhysicalMemory.sharePages`).
   */
  ranges: { start: bigint; size: bigint; runs: { pfn: number; bytes: Uint8Array }[] }[];
  rootFdt: bigint;
}

export interface BootOptions {
  image?: KernelImageSpec;
  cmdline?: string;
  /** Producers besides the built-in ones (users' own), carried over kexec to the next kernel. */
  producers?: readonly KhoProducer[];
  handoff?: KexecHandoff;
  /** Seed of the kernel's random numbers (default: derived from the machine's history). */
  seed?: number;
  /** The image and command line a cold boot uses (default: this boot's). */
  coldBoot?: { image: KernelImageSpec; cmdline: string };
  /**
   * Run the invariant checker after each kexec load and around each kexec (`kexecChecked`), throwing
   * SIM_INVARIANT_*; carried over to the next kernels.
   */
  checkInvariants?: boolean;
  /** Hook run after memblock_free_all (before initcalls): used by the invariant checker. */
  afterMmInit?: (k: Kernel) => void;
}

export interface KexecLoadInput {
  /** A parsed image (helper I's `loadKernelImage`) or a simulated kernel spec. */
  image: KernelImage | KernelImageSpec;
  /** Initrd bytes or just its size. */
  initrd?: Uint8Array | bigint | null;
  /** The next kernel's command line (empty: none). */
  cmdline?: string;
  /** `-s`: the in-kernel file loader (kexec_file_load). */
  fileLoad: boolean;
}

export interface KexecLoadResult {
  plan: KexecPlan;
  /** Whether the KHO state will be handed over. */
  handover: boolean;
  message: string;
}

interface Loaded {
  plan: KexecPlan;
  spec: KernelImageSpec;
  cmdline: string;
  handover: boolean;
}

const M = 1n << 20n;
/** Page tables, percpu areas and node data per node (6 MiB - 64 KiB: see the module comment). */
export const PER_NODE_EARLY = 6n * M - 64n * 1024n;
/** init_size of the vectors' kernel: its kexec segment ends at the top of global scratch 34 MiB above `_text`. */
export const DEFAULT_KERNEL_MEMSZ = 0x2200000n;

/** Kernel panic during boot: the machine stops. */
export function kernelPanic(log: KernelLog, reason: string): KhoError {
  log.emerg(`Kernel panic - not syncing: ${reason}`);
  return new KhoError('SIM_KERNEL_PANIC', `Kernel panic - not syncing: ${reason}`, {
    expected: 'enough memory for the early allocations (on a KHO boot: enough scratch)',
  });
}

/** The ABI profile a release most likely speaks, from the profiles' release ranges. */
export function profileForRelease(release: string): ProfileName | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return undefined;
  const v = Number(m[1]) * 1000 + Number(m[2]);
  const parse = (s: string) => {
    const [a, b] = s.split('.').map(Number);
    return a * 1000 + b;
  };
  let best: ProfileName | undefined;
  for (const p of Object.values(PROFILES)) {
    const r = /^(\d+\.\d+)(?:-(\d+\.\d+))?(\+)?$/.exec(p.kernels);
    if (!r) continue;
    const lo = parse(r[1]);
    const hi = r[3] ? Number.POSITIVE_INFINITY : r[2] ? parse(r[2]) : lo;
    if (v >= lo && v <= hi) best = p.name;
  }
  return best;
}

/**
 * The simulated image file of a kernel (helper I's JSON description: `loadKernelImage` parses it and
 * `imageSpecOf` maps it back to the same spec), e.g. for a machine's `/boot/bzImage`.
 */
export function imageDescriptionJson(spec: KernelImageSpec): string {
  const config: Record<string, boolean | string | number> = { ...spec.config };
  return `${JSON.stringify(
    {
      kind: 'kho-simulated-kernel',
      release: spec.release,
      arch: spec.arch,
      profile: spec.profile,
      config,
      memSize: `0x${(spec.memSize ?? DEFAULT_KERNEL_MEMSZ).toString(16)}`,
    },
    null,
    2,
  )}\n`;
}

/** The simulated kernel a parsed image boots. */
export function imageSpecOf(img: KernelImage | KernelImageSpec, current: KernelImageSpec): KernelImageSpec {
  if (!('format' in img)) return img;
  const d = img.description;
  if (d) {
    return {
      release: d.release,
      profile: d.profile as ProfileName,
      arch: d.arch,
      config: {
        ...d.config,
        ...(d.producers.kho_test?.enabled === false ? { CONFIG_TEST_KEXEC_HANDOVER: false } : {}),
      },
      memSize: d.memSize,
    };
  }
  // A real image: its release says which KHO ABI it speaks (none before 6.16); its Kconfig is not in the
  // header, so the running kernel's is assumed.
  const release = img.release ?? current.release;
  if (release === current.release && img.arch === current.arch) return current;
  const profile = profileForRelease(release);
  return {
    release,
    profile: profile ?? current.profile,
    arch: img.arch,
    config: profile ? current.config : { ...current.config, CONFIG_KEXEC_HANDOVER: false },
  };
}

export class Kernel {
  readonly machine: Machine;
  readonly image: KernelImageSpec;
  readonly profile: AbiProfile;
  readonly cmdline: string;
  readonly parsed: ParsedCommandLine;
  readonly log: KernelLog;
  readonly memblock: Memblock;
  buddy!: BuddyAllocator;
  readonly kho: KhoCore;
  readonly reserveMem = new ReserveMemTable();
  readonly producers: readonly KhoProducer[];
  readonly userProducers: readonly KhoProducer[];
  readonly producerState = new Map<string, unknown>();
  /** Where `_text` is. */
  kernelBase = COLD_KERNEL_BASE;
  initrd: { addr: bigint; size: bigint } | undefined;
  /** Incoming kexec count (0 after a cold boot) as kexec-metadata said. */
  kexecCount = 0;
  /** Length of debugfs `out/fdt`, fixed when the file was created (cold boot only). */
  outFdtLen: number | null = null;
  /** Incoming sub-blobs exposed under debugfs `in/sub_fdts` (KHO boot). */
  inSubFdts: { name: string; phys: bigint; size: bigint }[] = [];
  /** debugfs `kho/` exists (KHO on and CONFIG_KEXEC_HANDOVER_DEBUGFS). */
  debugfsKho = false;
  /** Why the incoming handover was not used, when there was one. */
  handoverRejected: string | null = null;
  loaded: Loaded | null = null;
  readonly coldBoot: { image: KernelImageSpec; cmdline: string };
  readonly checkInvariants: boolean;
  /** Set once this kernel has kexec'd or rebooted: it no longer runs. */
  stopped = false;
  private rngState: number;

  private constructor(machine: Machine, opts: BootOptions) {
    this.machine = machine;
    this.image = opts.image ?? DEFAULT_IMAGE;
    if (this.image.arch !== machine.spec.arch)
      throw new KhoError(
        'SIM_BAD_IMAGE',
        `an ${this.image.arch} kernel cannot boot on an ${machine.spec.arch} machine`,
        {
          expected: machine.spec.arch,
        },
      );
    this.profile = getProfile(this.image.profile, { pageSize: machine.spec.pageSize });
    this.cmdline = opts.cmdline ?? '';
    this.parsed = parseKernelCommandLine(this.cmdline);
    this.log = new KernelLog();
    this.memblock = memblockFromRam(machine.ram, { pageSize: machine.spec.pageSize });
    this.kho = new KhoCore({
      machine,
      profile: this.profile,
      log: this.log,
      debugChecks: !!this.image.config.CONFIG_KEXEC_HANDOVER_DEBUG,
    });
    this.userProducers = opts.producers ?? [];
    this.producers = [...BUILTIN_PRODUCERS, ...this.userProducers];
    this.coldBoot = opts.coldBoot ?? { image: this.image, cmdline: this.cmdline };
    this.checkInvariants = opts.checkInvariants ?? false;
    this.rngState = (opts.seed ?? 0x9e3779b9 ^ (machine.powerCycles * 7919)) >>> 0 || 1;
  }

  /** Boot a kernel on `machine` (cold unless `opts.handoff` comes from a kexec). */
  static boot(machine: Machine, opts: BootOptions = {}): Kernel {
    const k = new Kernel(machine, opts);
    k.run(opts);
    return k;
  }

  get release(): string {
    return this.image.release;
  }
  get config(): KernelConfig {
    return this.image.config;
  }
  /** Deterministic xorshift32. */
  random(): number {
    let x = this.rngState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rngState = x >>> 0;
    return this.rngState;
  }
  /** `dmesg` text. */
  dmesg(): string {
    return this.log.dmesg();
  }
  /** Scratch areas (what debugfs `out/scratch_*` show and the next kexec uses). */
  get scratch(): readonly KhoScratchArea[] {
    return this.kho.scratch;
  }

  private allocEarly(size: bigint, align: bigint, nid: number, what: string): bigint {
    const pa = this.memblock.allocTryNid(size, align, 0n, 0n, nid);
    if (!pa)
      throw kernelPanic(
        this.log,
        `${what}: Failed to allocate ${size} bytes align=${hex(align)} nid=${nid}${this.memblock.khoScratchOnly ? ' (KHO scratch only)' : ''}`,
      );
    return pa;
  }

  private run(opts: BootOptions): void {
    const { machine, log } = this;
    const spec = machine.spec;
    const ps = BigInt(spec.pageSize);
    const cfg = this.image.config;
    const khoBuilt = !!cfg.CONFIG_KEXEC_HANDOVER;
    log.clock.enterStage('early');
    log.notice(linuxBanner(this.release));
    const cl = commandLineLogLines(this.cmdline);
    log.emit(cl.arch);
    if (spec.arch === 'x86_64') {
      log.info('BIOS-provided physical RAM map:');
      for (const l of formatE820(machine.layout.firmwareMap)) log.info(l);
    }
    // kho_populate (x86: parse_setup_data; arm64: early_init_dt_scan_nodes)
    if (opts.handoff && khoBuilt) this.populate(opts.handoff);
    // early parameters
    log.emit(...this.parsed.earlyLog);
    this.kho.enabled = khoBuilt && (this.parsed.kho ?? !!cfg.CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT);

    // early reservations (setup_arch)
    const mb = this.memblock;
    if (opts.handoff) {
      this.kernelBase = opts.handoff.kernelAddr;
      this.initrd = opts.handoff.initrd;
    }
    mb.reserveKern(this.kernelBase, KERNEL_IMAGE_LAYOUT.size);
    if (this.initrd) mb.reserve(this.initrd.addr, this.initrd.size);
    if (spec.arch === 'x86_64') {
      // the real-mode trampoline below 1 MiB; on a KHO boot the first MiB counts as scratch meanwhile
      const khoBoot = this.kho.incoming !== null;
      if (khoBoot) x86LowMemoryScratch(mb, true);
      this.allocEarlyRange(0x6000n, ps, 0n, 0x100000n, 'real-mode trampoline');
      if (khoBoot) x86LowMemoryScratch(mb, false);
      mb.reserve(0n, 0x100000n);
    }
    // NUMA setup gives the early reservations their nodes
    for (const n of machine.nodes) mb.setNode(n.start, n.end - n.start, 'reserved', n.nid);
    for (const n of machine.nodes) {
      const pages = n.ramBytes / ps;
      const memmap = ((pages * 64n + 2n * M - 1n) / (2n * M)) * 2n * M;
      this.allocEarly(memmap, 2n * M, n.nid, 'sparse_init');
      this.allocEarly(PER_NODE_EARLY, ps, n.nid, 'setup_per_cpu_areas');
    }
    log.clock.enterStage('cmdline');
    log.emit(...cl.kernel);
    // reserve_mem= (__setup handlers, after the early parameters)
    const cache: { fdt?: import('../../abi/memblock.ts').MemblockFdt | null } = {};
    for (const v of this.parsed.reserveMem) {
      const r = this.reserveMem.handle(v, mb, (name, size, align) =>
        reserveMemRevive(this.kho, log, cache, name, size, align),
      );
      log.emit(...r.log);
    }
    if (this.parsed.unknown.line) log.emit(this.parsed.unknown.line);
    // hash tables (vfs_caches_init_early): no node; entries = pages / 2 (dentry), / 4 (inode)
    const dentryEntries = pow2Floor(spec.memorySize / ps / 2n);
    const dentry = dentryEntries * 8n;
    const inode = dentry / 2n;
    log.info(
      `Dentry cache hash table entries: ${dentryEntries} (order: ${orderOf(dentry / ps)}, ${dentry} bytes, linear)`,
    );
    log.info(
      `Inode-cache hash table entries: ${dentryEntries / 2n} (order: ${orderOf(inode / ps)}, ${inode} bytes, linear)`,
    );
    this.allocEarly(dentry, ps, NUMA_NO_NODE, 'alloc_large_system_hash');
    this.allocEarly(inode, ps, NUMA_NO_NODE, 'alloc_large_system_hash');
    this.allocEarly(inode / 2n, ps, NUMA_NO_NODE, 'kmem_cache_init');

    // mm_core_init: kho_memory_init, memblock_free_all
    log.clock.enterStage('mm_init');
    this.khoMemoryInit();
    const { buddy } = BuddyAllocator.fromMemblock(mb, {
      maxOrder: spec.maxPageOrder,
      pageblockOrder: spec.pageblockOrder,
    });
    this.buddy = buddy;
    this.kho.buddy = buddy;
    const inc = this.kho.incoming;
    if (inc) {
      for (const a of inc.scratch) this.pfnRange(a.addr, a.size, (s, e) => buddy.setMigrateCma(s, e));
      for (const r of inc.ranges ?? mergeBlockRanges(inc.blocks, spec.pageSize))
        this.pfnRange(r.start, r.size, (s, e) => buddy.markPreserved(s, e - s));
    }
    const kb = (p: number) => `${(BigInt(p) * ps) / 1024n}K`;
    const total = Number(mb.memorySize() / ps);
    log.info(
      `Memory: ${kb(buddy.freePages)}/${kb(total)} available (14547K kernel code, 2610K rwdata, 4980K rodata, 2572K init, 580K bss, ${kb(total - buddy.freePages)} reserved, 0K cma-reserved)`,
    );
    opts.afterMmInit?.(this);

    // initcalls
    log.clock.enterStage('initcalls');
    const ctx = this.producerContext();
    this.khoInit();
    for (const level of INITCALL_ORDER) {
      if (level === 'late') log.clock.enterStage('late_initcalls');
      for (const p of this.producers) if ((p.level ?? 'device') === level) runProducer(p, ctx);
    }
    log.clock.enterStage('userspace');
    log.info(`Run /init as init process`);
  }

  private allocEarlyRange(size: bigint, align: bigint, start: bigint, end: bigint, what: string): bigint {
    const pa = this.memblock.physAllocRange(size, align, start, end);
    if (!pa) throw kernelPanic(this.log, `${what}: cannot allocate ${size} bytes below ${hex(end)}`);
    return pa;
  }

  private pfnRange(start: bigint, size: bigint, fn: (s: number, e: number) => void): void {
    const sh = BigInt(this.machine.spec.pageShift);
    const s = Number(start >> sh);
    const e = Number((start + size) >> sh);
    if (e > s) fn(s, e);
  }

  /** What producers see. */
  producerContext(): ProducerContext {
    return {
      kho: this.kho,
      log: this.log,
      release: this.release,
      config: this.config,
      reserveMem: this.reserveMem.entries,
      random: () => this.random(),
      state: this.producerState,
    };
  }

  /** `kho_populate()`: validate the handover in memory; adopt scratch. */
  private populate(h: KexecHandoff): boolean {
    const { log, machine } = this;
    // 6.18-7.0 (kho-v1) log the error number with the last line; later kernels do not
    const withErr = this.profile.name === 'kho-v1';
    const warn = (why: string, text: string, err = -22): false => {
      log.warn(`KHO: ${text}`);
      log.warn(withErr ? `KHO: disabling KHO revival: ${err}` : 'KHO: disabling KHO revival');
      this.handoverRejected = why;
      return false;
    };
    let desc: { fdtAddr: bigint; fdtSize: bigint; scratchAddr: bigint; scratchSize: bigint } | undefined;
    try {
      if (h.arch === 'x86_64' && h.bootParams !== undefined) {
        const head = machine.memory.read(h.bootParams + 0x250n, 8);
        desc = findKhoSetupData(this.kho.phys, new DataView(head.buffer).getBigUint64(0, true));
      } else if (h.dtb) desc = decodeChosenKho(machine.memory.read(h.dtb.addr, Number(h.dtb.size)));
    } catch (e) {
      if (!(e instanceof KhoError)) throw e;
      this.handoverRejected = `unreadable boot data: ${e.message}`;
      return false;
    }
    if (!desc) return false; // nothing handed over: a cold boot as far as KHO goes
    const fdtPhys = desc.fdtAddr;
    if (!this.kho.phys.has(fdtPhys, desc.fdtSize) || desc.fdtSize > 1n << 20n)
      return warn('unmappable FDT', `setup: failed to memremap FDT (${hex(fdtPhys)})`, -12);
    const bytes = machine.memory.read(fdtPhys, Number(desc.fdtSize));
    let root: ReturnType<typeof decodeKhoRoot>;
    try {
      root = decodeKhoRoot(bytes, { profile: this.profile });
      if (root.truncation) throw new KhoError('FDT_ERR_TRUNCATED', 'the FDT is longer than its page');
    } catch (e) {
      if (!(e instanceof KhoError)) throw e;
      const n = e.code.startsWith('FDT_ERR_') ? -fdtErrno(e.code as Parameters<typeof fdtErrno>[0]) : -1;
      return warn(`invalid FDT: ${e.message}`, `setup: handover FDT (${hex(fdtPhys)}) is invalid: ${n}`, n);
    }
    if (root.compatible !== this.profile.compatible)
      return warn(
        `incompatible: '${root.compatible ?? ''}' is not '${this.profile.compatible}'`,
        `setup: handover FDT (${hex(fdtPhys)}) is incompatible with '${this.profile.compatible}': ${root.compatible === undefined ? -fdtErrno('FDT_ERR_NOTFOUND') : 1}`,
        root.compatible === undefined ? -fdtErrno('FDT_ERR_NOTFOUND') : 1,
      );
    if (root.memoryMap === undefined || root.memoryMap === 0n)
      return warn('no preserved-memory-map', 'setup: failed to get preserved memory map', -2);
    const len = desc.scratchSize;
    if (len === 0n || len % 16n !== 0n || len > 1n << 16n || !this.kho.phys.has(desc.scratchAddr, len))
      return warn('bad scratch array', `setup: failed to memremap scratch (${hex(desc.scratchAddr)})`);
    const scratch = decodeScratchArray(
      machine.memory.read(desc.scratchAddr, Number(len)),
      this.profile.endian,
    ).map((e) => ({ addr: e.addr, size: e.size }));
    // The real kernel trusts these; one that is not RAM would make it add phantom memory and crash at
    // some later point. The simulator refuses the handover instead, saying why.
    const bad = scratch.find((a) => a.size !== 0n && !(a.addr >= 0n && machine.isRam(a.addr, a.size)));
    if (bad)
      return warn(
        `scratch area [${hex(bad.addr)}, +${hex(bad.size)}) is not RAM`,
        `setup: scratch area ${hex(bad.addr)} size ${hex(bad.size)} is not RAM (simulator check)`,
      );
    adoptScratch(this.memblock, scratch, desc.scratchAddr, len);
    this.kho.scratch = scratch;
    this.kho.incoming = {
      fdtPhys,
      root,
      scratchPhys: desc.scratchAddr,
      scratchLen: len,
      scratch,
      blocks: [],
      trackerPages: [],
    };
    log.info(
      this.profile.name === 'kho-v1-6.16'
        ? 'KHO: found kexec handover data. Will skip init for some devices'
        : 'KHO: found kexec handover data.',
    );
    return true;
  }

  /** `kho_memory_init()`. */
  private khoMemoryInit(): void {
    const { kho, memblock: mb, machine } = this;
    const inc = kho.incoming;
    if (inc) {
      try {
        if (this.profile.memoryMap === 'radix-tree') {
          // the packed walk: no per-block objects until someone asks for `inc.blocks`
          const map = decodeRadixTreePacked(kho.phys, inc.root.memoryMap!, this.profile);
          setPackedBlocks(inc, map.blocks, machine.spec.pageSize);
          inc.trackerPages = map.nodes.map((n) => n.pa);
        } else {
          const map = decodePreservedMemoryMap(kho.phys, inc.root.memoryMap!, this.profile);
          inc.blocks = map.blocks;
          inc.trackerPages = map.trackerPages;
        }
      } catch (e) {
        if (!(e instanceof KhoError)) throw e;
        this.log.warn(`KHO: failed to walk the preserved memory map: ${e.message}`);
        this.handoverRejected = `bad memory map: ${e.message}`;
        kho.incoming = null;
        return;
      }
      inc.ranges = inc.packed
        ? mergePackedRanges(inc.packed, machine.spec.pageSize)
        : mergeBlockRanges(inc.blocks, machine.spec.pageSize);
      for (const r of inc.ranges) {
        mb.reserve(r.start, r.size);
        mb.reservedMarkNoinit(r.start, r.size);
      }
      kho.adoptIncoming(inc);
      return;
    }
    if (!kho.enabled) return;
    const r = reserveScratch(mb, {
      config: this.parsed.khoScratch,
      alignment: machine.spec.cmaMinAlignment,
      archLowAddressLimit: machine.spec.archLowAddressLimit,
      pageSize: BigInt(machine.spec.pageSize),
      nodeIds: machine.nodes.filter((n) => n.ramBytes > 0n).map((n) => n.nid),
    });
    this.log.emit(...r.log);
    if (!r.ok) {
      kho.enabled = false;
      return;
    }
    kho.scratch = r.areas;
  }

  /** `kho_init()` (fs_initcall). */
  private khoInit(): void {
    const { kho, log } = this;
    if (!kho.enabled) return;
    try {
      kho.init();
    } catch (e) {
      if (!(e instanceof KhoError)) throw e;
      log.err(`KHO: failed to initialize: ${e.message}`);
      kho.enabled = false;
      return;
    }
    this.debugfsKho = !!this.config.CONFIG_KEXEC_HANDOVER_DEBUGFS;
    if (this.profile.hasKexecMetadata) {
      this.kexecCount = kexecMetadataIn(kho, log);
      try {
        kexecMetadataOut(kho, this.release, this.kexecCount + 1);
      } catch (e) {
        if (!(e instanceof KhoError)) throw e;
        log.warn(`KHO: failed to initialize kexec-metadata subtree: ${e.message}`);
        kho.enabled = false;
        this.debugfsKho = false;
        return;
      }
    }
    const inc = kho.incoming;
    if (inc) {
      for (const s of inc.root.subtrees) {
        if (s.phys === undefined) continue;
        if (this.profile.hasBlobSize && s.size === undefined) {
          log.warn(`KHO: broken KHO subnode '${s.name}': missing or invalid blob-size property`);
          continue;
        }
        this.inSubFdts.push({ name: s.name, phys: s.phys, size: s.size ?? kho.fdtTotalsizeAt(s.phys) });
      }
      return;
    }
    for (const a of kho.scratch) this.pfnRange(a.addr, a.size, (s, e) => this.buddy.initCmaReserved(s, e));
    // out/fdt: created now with the length the blob has now (6.16: only at finalize)
    if (kho.rootBuilt) this.outFdtLen = kho.rootFdt().length;
    else
      kho.onFinalize = () => {
        this.outFdtLen = kho.rootFdt().length;
      };
  }

  private requireRunning(): void {
    if (this.stopped)
      throw new KhoError('SIM_KERNEL_STOPPED', "this kernel is no longer running (it kexec'd or rebooted)", {
        expected: 'the kernel returned by kexecExec() or reboot()',
      });
  }

  /** `kexec -l IMAGE [--initrd RD] [--append ...] [-s]`. */
  kexecLoad(input: KexecLoadInput): KexecLoadResult {
    this.requireRunning();
    const spec = imageSpecOf(input.image, this.image);
    const img: KernelImage =
      'format' in input.image
        ? input.image
        : {
            arch: spec.arch,
            format: 'description',
            release: spec.release,
            fileSize: 12n * M,
            ...(spec.arch === 'x86_64'
              ? {
                  x86: {
                    payloadSize: 12n * M,
                    initSize: spec.memSize ?? DEFAULT_KERNEL_MEMSZ,
                    kernelAlignment: 2n * M,
                    prefAddress: 16n * M,
                    cmdlineSize: 2047,
                    xloadflags: 3,
                  },
                }
              : { arm64: { imageSize: spec.memSize ?? DEFAULT_KERNEL_MEMSZ, textOffset: 0n, flags: 0n } }),
          };
    if (img.arch !== this.machine.spec.arch)
      throw new KhoError(
        'SIM_ENOEXEC',
        `kexec: an ${img.arch} image cannot run on this ${this.machine.spec.arch} machine (-ENOEXEC)`,
      );
    const initrdSize =
      input.initrd === undefined || input.initrd === null
        ? null
        : typeof input.initrd === 'bigint'
          ? input.initrd
          : BigInt(input.initrd.length);
    const cmdline = input.cmdline ?? '';
    const handover = input.fileLoad && this.kho.enabled && this.kho.initialized;
    const free = this.memblock.memory.map((r) => ({ start: r.base, size: r.size }));
    const plan = planKexecLoad({
      image: img,
      initrdSize,
      cmdline,
      pageSize: BigInt(this.machine.spec.pageSize),
      khoConfigured: !!this.config.CONFIG_KEXEC_HANDOVER,
      ...(handover ? { scratch: this.kho.scratch, khoFdtAddr: this.kho.rootFdtPhys } : { ram: free }),
    });
    this.loaded = { plan, spec, cmdline, handover };
    if (this.checkInvariants) assertInvariants(this);
    const message = handover
      ? `loaded ${spec.release} with kexec_file_load: ${plan.segments.length} segments in KHO scratch; the KHO state (root FDT at ${hex(this.kho.rootFdtPhys)}) will be handed over`
      : !input.fileLoad
        ? 'loaded with the user-space loader (kexec_load, no -s): KHO state is NOT handed over; the next kernel boots without it and preserved memory may be overwritten. Use kexec -s to hand over.'
        : 'loaded with kexec_file_load, but KHO is not enabled in this kernel: nothing is handed over';
    return { plan, handover, message };
  }

  /** `kexec -u`. */
  kexecUnload(): void {
    this.requireRunning();
    this.loaded = null;
  }

  /** Write the handover into the loaded segments; returns the next kernel's handoff. */
  prepareHandoff(): KexecHandoff {
    const loaded = this.loaded;
    if (!loaded)
      throw new KhoError('SIM_EINVAL', 'kexec: no image loaded (-EINVAL)', { expected: 'kexec -l first' });
    const mem = this.machine.memory;
    const seg = (name: string) => loaded.plan.segments.find((s) => s.name === name);
    const kernelSeg = seg('kernel');
    const initrdSeg = seg('initrd');
    const h: KexecHandoff = {
      arch: loaded.plan.arch,
      kernelAddr: kernelSeg?.mem ?? COLD_KERNEL_BASE,
      ...(initrdSeg ? { initrd: { addr: initrdSeg.mem, size: initrdSeg.bufsz } } : {}),
    };
    // "copy" the image segments (zeros stand in for the image bytes)
    for (const s of loaded.plan.segments) mem.zero(s.mem, s.memsz);
    const scratchSeg = seg('kho-scratch');
    if (loaded.handover && scratchSeg)
      mem.write(
        scratchSeg.mem,
        encodeScratchArray(
          this.kho.scratch.map((a) => ({ ...a })),
          this.profile.endian,
        ),
      );
    const desc =
      loaded.handover && scratchSeg && loaded.plan.handover
        ? {
            fdtAddr: this.kho.rootFdtPhys,
            fdtSize: BigInt(this.machine.spec.pageSize),
            scratchAddr: scratchSeg.mem,
            scratchSize: scratchSeg.bufsz,
          }
        : undefined;
    if (loaded.plan.arch === 'x86_64') {
      const bp = seg('boot-params');
      if (bp) {
        h.bootParams = bp.mem;
        if (desc) {
          const sd = bp.mem + bp.bufsz - 48n;
          mem.write(sd, encodeKhoSetupData(desc));
          const p = new Uint8Array(8);
          new DataView(p.buffer).setBigUint64(0, sd, true);
          mem.write(bp.mem + 0x250n, p);
        }
      }
    } else {
      const dtbSeg = seg('dtb');
      if (dtbSeg) {
        const sw = FdtSw.create(Number(dtbSeg.memsz));
        sw.finishReservemap();
        sw.beginNode('');
        const cells = (n: number) => new Uint8Array([0, 0, 0, n]);
        sw.property('#address-cells', cells(2));
        sw.property('#size-cells', cells(2));
        sw.beginNode('chosen');
        sw.propertyString('bootargs', loaded.cmdline);
        if (desc) {
          const c = encodeChosenKho(desc, 2, 2);
          sw.property('linux,kho-fdt', c['linux,kho-fdt']);
          sw.property('linux,kho-scratch', c['linux,kho-scratch']);
        }
        sw.endNode();
        sw.endNode();
        sw.finish();
        const dtb = sw.blob();
        mem.write(dtbSeg.mem, dtb);
        h.dtb = { addr: dtbSeg.mem, size: BigInt(dtb.length) };
      }
    }
    return h;
  }

  /** The old kernel's memory that was not preserved is reused: resident pages get 0x6b. */
  private clobberUnpreserved(): void {
    const ps = BigInt(this.machine.spec.pageSize);
    const keep = new Set<bigint>(this.kho.trackerPages);
    const preserved = this.kho.preservedPfns();
    const segs = this.loaded?.plan.segments ?? [];
    const mem = this.machine.memory;
    // blocks in any order: each page's fate depends only on the page
    this.buddy.forEachAllocated((head, order) => {
      if (preserved.has(head)) return;
      const pa = BigInt(head) * ps;
      const size = ps << BigInt(order);
      for (const pfn of mem.residentPfnsIn(pa, size)) {
        const p = BigInt(pfn) * ps;
        if (keep.has(p) || segs.some((s) => p >= s.mem && p < s.mem + s.memsz)) continue;
        if (this.isPreservedPfn(pfn, preserved)) continue;
        mem.fill(p, ps, 0x6b);
      }
    });
  }

  private isPreservedPfn(pfn: number, preserved: ReadonlyMap<number, number>): boolean {
    for (let o = 0; o <= 20; o++) {
      const head = pfn - (pfn % 2 ** o);
      const ord = preserved.get(head);
      if (ord !== undefined && pfn < head + 2 ** ord) return true;
    }
    return false;
  }

  /**
   * `kexec -e`: hand over and boot the loaded kernel on the same machine. Returns the new kernel.
   * With `checkInvariants`, preserved memory is hashed before and compared after (SIM_INVARIANT_*).
   */
  kexecExec(
    opts: {
      snapshot?: (k: Kernel) => PreservedSnapshot;
      verify?: (next: Kernel, s: PreservedSnapshot) => void;
      /** Runs after the handover is prepared, before the next kernel starts (fault injection). */
      fault?: (k: Kernel) => void;
    } = {},
  ): Kernel {
    this.requireRunning();
    const loaded = this.loaded;
    if (!loaded)
      throw new KhoError('SIM_EINVAL', 'kexec: no image loaded (-EINVAL)', { expected: 'kexec -l first' });
    if (this.checkInvariants && !opts.snapshot)
      return kexecChecked(this, opts.fault ? { fault: opts.fault } : {}).next;
    const snap = opts.snapshot?.(this);
    const h = this.prepareHandoff();
    opts.fault?.(this);
    this.clobberUnpreserved();
    this.stopped = true;
    return Kernel.boot(this.machine, {
      image: loaded.spec,
      cmdline: loaded.cmdline,
      producers: this.userProducers,
      handoff: h,
      coldBoot: this.coldBoot,
      checkInvariants: this.checkInvariants,
      seed: this.random(),
      ...(snap && opts.verify ? { afterMmInit: (k: Kernel) => opts.verify!(k, snap) } : {}),
    });
  }

  /** `reboot`: power cycle and cold boot (the first kernel's image and command line unless given). */
  reboot(opts: { image?: KernelImageSpec; cmdline?: string } = {}): Kernel {
    this.requireRunning();
    this.stopped = true;
    this.machine.powerCycle();
    return Kernel.boot(this.machine, {
      image: opts.image ?? this.coldBoot.image,
      cmdline: opts.cmdline ?? this.coldBoot.cmdline,
      producers: this.userProducers,
      checkInvariants: this.checkInvariants,
    });
  }
}

function pow2Floor(v: bigint): bigint {
  let p = 1n;
  while (p * 2n <= v) p *= 2n;
  return p;
}
function orderOf(pages: bigint): number {
  let o = 0;
  while (1n << BigInt(o) < pages) o++;
  return o;
}
