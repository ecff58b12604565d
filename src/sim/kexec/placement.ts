/**
 * Where `kexec_file_load` puts each segment: the kernel's hole search, and the segment list each
 * architecture's loader builds. One implementation for the simulator's `kexec -l ... -s` and for
 * `kho plan`.
 *
 * Contract (Linux 7.3 `kernel/kexec_file.c`, `kernel/liveupdate/kexec_handover.c`,
 * `arch/x86/kernel/kexec-bzimage64.c`, `arch/arm64/kernel/kexec_image.c` + `machine_kexec_file.c`):
 * - `kexecAddBuffer(ctx, kbuf)` is `kexec_add_buffer()`: memsz is rounded up to the page size and the
 *   alignment raised to at least a page; then `kexec_locate_mem_hole()`. With KHO on (not a crash
 *   image) the candidate regions are the scratch areas in array order (lowmem, global, nodes), first
 *   fit wins, and nothing else is tried (`-EADDRNOTAVAIL`). With KHO off they are the RAM ranges the
 *   caller gives, walked from the top when searching top-down and from the bottom otherwise.
 *   Inside a region, `locate_mem_hole_top_down/bottom_up()`: start from the top (`min(end, buf_max)`)
 *   or bottom (`max(start, buf_min)`), align (mask arithmetic as the kernel's ALIGN/ALIGN_DOWN), and
 *   step past every already placed segment that overlaps. For power-of-two alignments the page-by-page
 *   stepping is replaced by a jump straight past the overlapping segment, which lands on the same
 *   address; other alignments are stepped as the kernel does, at most `MAX_STEPS` times.
 *   Where the kernel's unsigned arithmetic would wrap below 0 or above 2^64 (a search reaching address
 *   0, or a `buf_max` inside a region too small for the buffer), this model reports "no fit" in that
 *   region instead of the wrapped address that the kernel's later sanity check would refuse.
 * - A failure is `KhoError('SIM_KEXEC_NO_FIT')` (the kernel's -EADDRNOTAVAIL) naming the segment, its
 *   size and alignment, the largest hole an aligned buffer could use in the candidate regions (after
 *   what is already placed and within buf_min/buf_max), and by how much the segment falls short.
 * - `planKexecLoad(input)` builds the whole segment list in the kernel's order and returns it with
 *   addresses. With KHO on, `kho_fill_kimage()` runs first (before the image loader): it adds ONE
 *   segment, a copy of the scratch array (`16 * count` bytes, 64 KiB aligned, top-down); the root KHO
 *   FDT is not a segment (its preserved page is read in place; x86 hands `fdt_size = PAGE_SIZE` in
 *   `setup_data` SETUP_KEXEC_KHO, arm64 in `/chosen/linux,kho-fdt`). Then
 *   x86_64: purgatory (top-down, buf_min 0x3000), boot_params + command line + setup_data (align 16,
 *   buf_min 0x3000), kernel (memsz PAGE_ALIGN(init_size), align kernel_alignment, buf_min
 *   max(pref_address, 1 MiB)), initrd (page aligned, buf_min 16 MiB), all top-down;
 *   arm64: kernel (bottom-up, 2 MiB aligned, memsz image_size + text_offset, then the segment is moved
 *   up by text_offset), initrd (bottom-up above the kernel, below round_down(kernel, 1 GiB) + 32 GiB),
 *   DTB (2 MiB aligned, top-down, above the kernel).
 * - Sizes the files do not give are estimates and are listed in `plan.estimates`: the x86 purgatory
 *   (default `DEFAULT_X86_PURGATORY`, from the layout of arch/x86/purgatory: text + a 4 KiB-aligned
 *   4 KiB stack in .data) and the arm64 DTB the kernel builds from the running one.
 */
import { KHO_DATA_SIZE } from '../../abi/boot.ts';
import type { ScratchEntry } from '../../abi/scratch.ts';
import { KhoError } from '../../errors.ts';
import type { ImageArch, KernelImage } from './image.ts';

const U64_MAX = (1n << 64n) - 1n;
export const ULONG_MAX = U64_MAX;
/** Bounds the literal page stepping used for non-power-of-two alignments. */
export const MAX_STEPS = 1 << 20;

/** `struct kexec_buf` as far as placement goes. */
export interface KexecBuf {
  name: string;
  bufsz: bigint;
  memsz: bigint;
  bufAlign: bigint;
  bufMin: bigint;
  bufMax: bigint;
  topDown: boolean;
}

/** A candidate memory region, `[start, start + size)`, with a label for humans. */
export interface HoleRegion {
  start: bigint;
  size: bigint;
  label: string;
}

export interface PlacedSegment {
  index: number;
  name: string;
  /** Physical address (`segment->mem`). */
  mem: bigint;
  /** Bytes reserved (`segment->memsz`, page-aligned). */
  memsz: bigint;
  /** Bytes copied from the file/buffer (`segment->bufsz`). */
  bufsz: bigint;
  /** Alignment used in the search (at least a page). */
  align: bigint;
  topDown: boolean;
  /** Index in the candidate region list, and its label. */
  region: number;
  regionLabel: string;
}

export interface KexecContext {
  /** Candidate regions: scratch areas in array order (KHO), or RAM ranges (no KHO). */
  regions: HoleRegion[];
  /** 'kho': array order, first fit; 'ram': descending for top-down, ascending for bottom-up. */
  mode: 'kho' | 'ram';
  pageSize: bigint;
  segments: PlacedSegment[];
}

const maxB = (a: bigint, b: bigint): bigint => (a < b ? b : a);
const minB = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const isPow2 = (a: bigint): boolean => a > 0n && (a & (a - 1n)) === 0n;
/** The kernel's ALIGN_DOWN / ALIGN (mask arithmetic on unsigned long). */
export function alignDown(x: bigint, a: bigint): bigint {
  if (a === 0n) return x;
  return BigInt.asUintN(64, x & ~(a - 1n));
}
export function alignUp(x: bigint, a: bigint): bigint {
  if (a === 0n) return x;
  return BigInt.asUintN(64, (x + a - 1n) & ~(a - 1n));
}

/** First placed segment overlapping `[s, e]` (inclusive), as `kimage_is_destination_range()`. */
function overlapping(
  segs: readonly PlacedSegment[],
  s: bigint,
  e: bigint,
  lowest: boolean,
): PlacedSegment | undefined {
  let hit: PlacedSegment | undefined;
  for (const g of segs) {
    const gEnd = BigInt.asUintN(64, g.mem + g.memsz - 1n);
    if (e >= g.mem && s <= gEnd) {
      if (!hit || (lowest ? g.mem < hit.mem : g.mem > hit.mem)) hit = g;
    }
  }
  return hit;
}

function tooLong(kbuf: KexecBuf): KhoError {
  return new KhoError('SIM_KEXEC_SEARCH_LIMIT', `hole search for ${kbuf.name} exceeded ${MAX_STEPS} steps`, {
    path: kbuf.name,
    expected: 'a power-of-two alignment',
  });
}

/** `locate_mem_hole_top_down()` within `[start, end]`; the address or null. */
export function locateTopDown(
  start: bigint,
  end: bigint,
  kbuf: KexecBuf,
  segs: readonly PlacedSegment[],
  pageSize: bigint,
): bigint | null {
  const tempEnd = minB(end, kbuf.bufMax);
  if (tempEnd + 1n < kbuf.memsz) return null; // the kernel's subtraction would wrap
  let t = tempEnd - kbuf.memsz + 1n;
  const pow2 = isPow2(kbuf.bufAlign);
  for (let steps = 0; ; steps++) {
    if (steps > MAX_STEPS) throw tooLong(kbuf);
    t = alignDown(t, kbuf.bufAlign);
    if (t < start || t < kbuf.bufMin) return null;
    const e = BigInt.asUintN(64, t + kbuf.memsz - 1n);
    const hit = overlapping(segs, t, e, true);
    if (!hit) return t;
    if (pow2) {
      if (hit.mem < kbuf.memsz) return null;
      t = hit.mem - kbuf.memsz;
    } else {
      if (t < pageSize) return null;
      t -= pageSize;
    }
  }
}

/** `locate_mem_hole_bottom_up()` within `[start, end]`; the address or null. */
export function locateBottomUp(
  start: bigint,
  end: bigint,
  kbuf: KexecBuf,
  segs: readonly PlacedSegment[],
  pageSize: bigint,
): bigint | null {
  let t = maxB(start, kbuf.bufMin);
  const pow2 = isPow2(kbuf.bufAlign);
  for (let steps = 0; ; steps++) {
    if (steps > MAX_STEPS) throw tooLong(kbuf);
    const aligned = alignUp(t, kbuf.bufAlign);
    if (aligned < t) return null; // wrapped past 2^64
    t = aligned;
    const e = t + kbuf.memsz - 1n;
    if (e > U64_MAX || e > end || e > kbuf.bufMax) return null;
    const hit = overlapping(segs, t, e, false);
    if (!hit) return t;
    t = pow2 ? hit.mem + hit.memsz : t + pageSize;
  }
}

/** `locate_mem_hole_callback()` for one region; the address or null. */
export function locateInRegion(
  region: HoleRegion,
  kbuf: KexecBuf,
  segs: readonly PlacedSegment[],
  pageSize: bigint,
): bigint | null {
  const start = region.start;
  const end = BigInt.asUintN(64, region.start + region.size - 1n);
  const sz = BigInt.asUintN(64, end - start + 1n);
  if (sz < kbuf.memsz) return null;
  if (end < kbuf.bufMin || start > kbuf.bufMax) return null;
  return kbuf.topDown
    ? locateTopDown(start, end, kbuf, segs, pageSize)
    : locateBottomUp(start, end, kbuf, segs, pageSize);
}

/** Regions in the order the kernel offers them for this buffer. */
function walkOrder(ctx: KexecContext, topDown: boolean): number[] {
  const idx = ctx.regions.map((_, i) => i);
  if (ctx.mode === 'kho') return idx;
  idx.sort((a, b) =>
    ctx.regions[a].start < ctx.regions[b].start ? -1 : ctx.regions[a].start > ctx.regions[b].start ? 1 : 0,
  );
  return topDown ? idx.reverse() : idx;
}

export interface LargestHole {
  /** Bytes an aligned buffer could use in the best hole (0 when there is none). */
  usable: bigint;
  start: bigint;
  region: number;
  regionLabel: string;
}

/** The largest hole (within buf_min/buf_max, between placed segments) an aligned buffer could use. */
export function largestHole(ctx: KexecContext, kbuf: KexecBuf): LargestHole | null {
  let best: LargestHole | null = null;
  ctx.regions.forEach((r, i) => {
    if (r.size === 0n) return;
    let lo = maxB(r.start, kbuf.bufMin);
    const rEnd = r.start + r.size - 1n;
    const hi = minB(rEnd, kbuf.bufMax);
    if (lo > hi) return;
    const inside = ctx.segments
      .filter((g) => g.memsz > 0n && g.mem <= hi && g.mem + g.memsz - 1n >= lo)
      .sort((a, b) => (a.mem < b.mem ? -1 : 1));
    const gaps: [bigint, bigint][] = [];
    for (const g of inside) {
      if (g.mem > lo) gaps.push([lo, g.mem - 1n]);
      if (g.mem + g.memsz > lo) lo = g.mem + g.memsz;
    }
    if (lo <= hi) gaps.push([lo, hi]);
    for (const [gs, ge] of gaps) {
      const a = alignUp(gs, kbuf.bufAlign);
      if (a < gs) continue;
      const usable = a <= ge ? ge + 1n - a : 0n;
      if (!best || usable > best.usable) best = { usable, start: a, region: i, regionLabel: r.label };
    }
  });
  return best;
}

const hx = (v: bigint): string => `0x${v.toString(16)}`;

/** `kexec_add_buffer()`: place `kbuf` and append it to the segment list, or throw SIM_KEXEC_NO_FIT. */
export function kexecAddBuffer(ctx: KexecContext, input: KexecBuf): PlacedSegment {
  const page = ctx.pageSize;
  const kbuf: KexecBuf = {
    ...input,
    memsz: alignUp(input.memsz, page),
    bufAlign: maxB(input.bufAlign, page),
  };
  if (kbuf.memsz < input.memsz)
    throw new KhoError(
      'SIM_KEXEC_NO_FIT',
      `${kbuf.name} of ${hx(input.memsz)} bytes does not fit in 64 bits`,
      {
        path: kbuf.name,
      },
    );
  for (const i of walkOrder(ctx, kbuf.topDown)) {
    const r = ctx.regions[i];
    const mem = locateInRegion(r, kbuf, ctx.segments, page);
    if (mem === null) continue;
    const seg: PlacedSegment = {
      index: ctx.segments.length,
      name: kbuf.name,
      mem,
      memsz: kbuf.memsz,
      bufsz: kbuf.bufsz,
      align: kbuf.bufAlign,
      topDown: kbuf.topDown,
      region: i,
      regionLabel: r.label,
    };
    ctx.segments.push(seg);
    return seg;
  }
  const best = largestHole(ctx, kbuf);
  const where = ctx.mode === 'kho' ? 'scratch region' : 'memory range';
  const bestText = best
    ? `the largest usable hole is ${hx(best.usable)} bytes at ${hx(best.start)} in ${best.regionLabel}, ${hx(kbuf.memsz - best.usable)} bytes short`
    : `no ${where} lies within [${hx(kbuf.bufMin)}, ${hx(kbuf.bufMax)}]`;
  const err = new KhoError(
    'SIM_KEXEC_NO_FIT',
    `no ${where} fits ${kbuf.name} (${hx(kbuf.memsz)} bytes, ${hx(kbuf.bufAlign)}-aligned): ${bestText} (-EADDRNOTAVAIL)`,
    { path: kbuf.name, expected: `a free ${hx(kbuf.memsz)}-byte hole in a ${where}` },
  );
  Object.assign(err, {
    segment: kbuf.name,
    needed: kbuf.memsz,
    largest: best?.usable ?? 0n,
    shortBy: kbuf.memsz - (best?.usable ?? 0n),
  });
  throw err;
}

/** Extra fields on a SIM_KEXEC_NO_FIT error. */
export interface NoFitDetails {
  segment: string;
  needed: bigint;
  largest: bigint;
  shortBy: bigint;
}
export function noFitDetails(e: unknown): NoFitDetails | null {
  if (!(e instanceof KhoError) || e.code !== 'SIM_KEXEC_NO_FIT') return null;
  const d = e as unknown as Partial<NoFitDetails>;
  return d.segment !== undefined &&
    d.needed !== undefined &&
    d.largest !== undefined &&
    d.shortBy !== undefined
    ? { segment: d.segment, needed: d.needed, largest: d.largest, shortBy: d.shortBy }
    : null;
}

// ---------------------------------------------------------------------------------------------
// The architectures' segment lists.

/** x86 bzImage64 loader constants (kexec-bzimage64.c). */
export const MIN_PURGATORY_ADDR = 0x3000n;
export const MIN_BOOTPARAM_ADDR = 0x3000n;
export const MIN_KERNEL_LOAD_ADDR = 0x100000n;
export const MIN_INITRD_LOAD_ADDR = 0x1000000n;
export const MAX_ELFCOREHDR_STR_LEN = 30;
/** sizeof(struct boot_params), struct setup_data, struct efi_setup_data, RNG seed, ima_setup_data (kho_data: abi/boot.ts). */
export const X86_BOOT_PARAMS_SIZE = 4096n;
export const SETUP_DATA_HEADER = 16n;
export const EFI_SETUP_DATA_SIZE = 96n;
export const RNG_SEED_LENGTH = 32n;
export const IMA_SETUP_DATA_SIZE = 16n;
/** Estimated in-kernel x86_64 purgatory: memsz and alignment (the .data stack is 4 KiB aligned). */
export const DEFAULT_X86_PURGATORY = { memsz: 0x4000n, align: 0x1000n } as const;
/** arm64 MIN_KIMG_ALIGN and the DTB alignment (not across a 2 MiB boundary). */
export const ARM64_KIMG_ALIGN = 0x200000n;
export const ARM64_DTB_ALIGN = 0x200000n;
/** Scratch array segment alignment (`SZ_64K` in kho_fill_kimage). */
export const KHO_SCRATCH_SEGMENT_ALIGN = 0x10000n;
/** Estimated growth of the running DT when the kernel adds /chosen properties (bootargs excluded). */
export const ARM64_DTB_EXTRA_ESTIMATE = 512n;
/** Default size of the running kernel's DT when none is given (an estimate). */
export const DEFAULT_ARM64_DTB_SIZE = 0x2000n;

export interface PlanInput {
  image: KernelImage;
  /** Initrd size in bytes; absent or null for none. */
  initrdSize?: bigint | null;
  /** Next kernel's command line (without the NUL); empty or absent: none passed (cmdline_len 0). */
  cmdline?: string;
  /** KHO scratch areas (debugfs scratch_phys/scratch_len): KHO on. */
  scratch?: readonly ScratchEntry[];
  /** Without KHO: the RAM the loader may use (x86: System RAM; arm64: memblock free ranges). */
  ram?: readonly { start: bigint; size: bigint }[];
  /** Physical address of the root KHO FDT (for the handover record), when known. */
  khoFdtAddr?: bigint;
  pageSize?: bigint;
  /** The running kernel is built with CONFIG_KEXEC_HANDOVER (x86 reserves the setup_data room). Default true. */
  khoConfigured?: boolean;
  /** x86: CONFIG_IMA_KEXEC (default false, as the 7.3.4 vectors' kernel), EFI memory map size (default 0). */
  imaKexec?: boolean;
  efiMapSize?: bigint;
  /** x86 purgatory size and alignment (estimate by default). */
  purgatory?: { memsz: bigint; align: bigint };
  /** arm64: size of the running kernel's DT (the DTB segment is built from it). */
  dtbSize?: bigint;
}

export interface HandoverRecord {
  /** x86: setup_data SETUP_KEXEC_KHO payload; arm64: /chosen linux,kho-fdt and linux,kho-scratch. */
  kind: 'setup_data' | 'chosen';
  fdtAddr: bigint | null;
  fdtSize: bigint;
  scratchAddr: bigint;
  scratchSize: bigint;
}

export interface KexecPlan {
  arch: ImageArch;
  kho: boolean;
  pageSize: bigint;
  regions: HoleRegion[];
  segments: PlacedSegment[];
  /** The kernel's entry (x86: kernel + 0x200 is where purgatory jumps; arm64: the kernel segment). */
  kernelEntry: bigint;
  /** cmdline_len as passed by kexec-tools (strlen + 1, or 0). */
  cmdlineLen: number;
  handover: HandoverRecord | null;
  /** What was estimated rather than read from the inputs. */
  estimates: string[];
  notes: string[];
}

const bytesOf = (s: string): number => new TextEncoder().encode(s).length;

/** Regions for a plan: scratch areas labelled by role, or RAM ranges. */
export function scratchRegions(scratch: readonly ScratchEntry[]): HoleRegion[] {
  return scratch.map((e, i) => ({
    start: e.addr,
    size: e.size,
    label: i === 0 ? 'scratch[0] lowmem' : i === 1 ? 'scratch[1] global' : `scratch[${i}] node${i - 2}`,
  }));
}

/** The x86 boot_params segment size (bufsz) for a command line of `cmdlineLen` bytes. */
export function x86BootParamsSize(
  cmdlineLen: number,
  o: { efiMapSize?: bigint; imaKexec?: boolean; khoConfigured?: boolean } = {},
): bigint {
  const paramsCmdline = alignUp(
    X86_BOOT_PARAMS_SIZE + BigInt(cmdlineLen) + BigInt(MAX_ELFCOREHDR_STR_LEN),
    16n,
  );
  let sz =
    paramsCmdline +
    alignUp(o.efiMapSize ?? 0n, 16n) +
    SETUP_DATA_HEADER +
    EFI_SETUP_DATA_SIZE +
    SETUP_DATA_HEADER +
    RNG_SEED_LENGTH;
  if (o.imaKexec) sz += SETUP_DATA_HEADER + IMA_SETUP_DATA_SIZE;
  if (o.khoConfigured ?? true) sz += SETUP_DATA_HEADER + BigInt(KHO_DATA_SIZE);
  return sz;
}

/** Place every segment of a `kexec_file_load` of `input.image` (see the module comment). */
export function planKexecLoad(input: PlanInput): KexecPlan {
  const img = input.image;
  const page = input.pageSize ?? 4096n;
  const kho = input.scratch !== undefined;
  if (!kho && input.ram === undefined)
    throw new KhoError('SIM_KEXEC_NO_MEMORY', 'neither scratch areas (KHO) nor RAM ranges were given', {
      expected: 'scratch or ram',
    });
  const regions = kho
    ? scratchRegions(input.scratch ?? [])
    : (input.ram ?? []).map((r, i) => ({ start: r.start, size: r.size, label: `ram[${i}]` }));
  const ctx: KexecContext = { regions, mode: kho ? 'kho' : 'ram', pageSize: page, segments: [] };
  const estimates: string[] = [];
  const notes: string[] = [];
  const cmdline = input.cmdline ?? '';
  const cmdlineLen = cmdline === '' ? 0 : bytesOf(cmdline) + 1;
  let scratchSeg: PlacedSegment | null = null;

  const addScratchArray = (): void => {
    if (!kho) return;
    const size = BigInt((input.scratch ?? []).length) * 16n;
    scratchSeg = kexecAddBuffer(ctx, {
      name: 'kho-scratch',
      bufsz: size,
      memsz: size,
      bufAlign: KHO_SCRATCH_SEGMENT_ALIGN,
      bufMin: 0n,
      bufMax: ULONG_MAX,
      topDown: true,
    });
  };

  let kernelEntry = 0n;
  if (img.arch === 'x86_64') {
    const x = img.x86;
    if (!x) throw new KhoError('SIM_BAD_IMAGE', 'x86_64 image without a setup header', { path: 'image' });
    if (cmdlineLen > x.cmdlineSize)
      throw new KhoError('SIM_KEXEC_CMDLINE_TOO_LONG', 'Kernel command line too long', {
        path: 'cmdline',
        expected: `at most ${x.cmdlineSize} bytes including the NUL (cmdline_size)`,
      });
    if (cmdlineLen + MAX_ELFCOREHDR_STR_LEN > x.cmdlineSize)
      throw new KhoError(
        'SIM_KEXEC_CMDLINE_TOO_LONG',
        'Appending elfcorehdr=<addr> to command line exceeds maximum allowed length',
        {
          path: 'cmdline',
          expected: `at most ${x.cmdlineSize - MAX_ELFCOREHDR_STR_LEN} bytes including the NUL`,
        },
      );
    addScratchArray();
    const purg = input.purgatory ?? DEFAULT_X86_PURGATORY;
    if (!input.purgatory)
      estimates.push(
        `purgatory: ${hx(purg.memsz)} bytes, ${hx(purg.align)}-aligned (estimated; the size of the running kernel's purgatory.ro is not in its files)`,
      );
    kexecAddBuffer(ctx, {
      name: 'purgatory',
      bufsz: purg.memsz,
      memsz: purg.memsz,
      bufAlign: purg.align,
      bufMin: MIN_PURGATORY_ADDR,
      bufMax: ULONG_MAX,
      topDown: true,
    });
    const bp = x86BootParamsSize(cmdlineLen, input);
    kexecAddBuffer(ctx, {
      name: 'boot-params',
      bufsz: bp,
      memsz: bp,
      bufAlign: 16n,
      bufMin: MIN_BOOTPARAM_ADDR,
      bufMax: ULONG_MAX,
      topDown: true,
    });
    const kernel = kexecAddBuffer(ctx, {
      name: 'kernel',
      bufsz: x.payloadSize,
      memsz: alignUp(x.initSize, page),
      bufAlign: x.kernelAlignment,
      bufMin: x.prefAddress < MIN_KERNEL_LOAD_ADDR ? MIN_KERNEL_LOAD_ADDR : x.prefAddress,
      bufMax: ULONG_MAX,
      topDown: true,
    });
    kernelEntry = kernel.mem + 0x200n;
    if (input.initrdSize !== undefined && input.initrdSize !== null)
      kexecAddBuffer(ctx, {
        name: 'initrd',
        bufsz: input.initrdSize,
        memsz: input.initrdSize,
        bufAlign: page,
        bufMin: MIN_INITRD_LOAD_ADDR,
        bufMax: ULONG_MAX,
        topDown: true,
      });
  } else {
    const a = img.arm64;
    if (!a) throw new KhoError('SIM_BAD_IMAGE', 'arm64 image without an Image header', { path: 'image' });
    addScratchArray();
    const kernel = kexecAddBuffer(ctx, {
      name: 'kernel',
      bufsz: img.fileSize,
      memsz: a.imageSize + a.textOffset,
      bufAlign: ARM64_KIMG_ALIGN,
      bufMin: 0n,
      bufMax: ULONG_MAX,
      topDown: false,
    });
    // image_load(): the segment starts text_offset into the hole it was given.
    kernel.mem += a.textOffset;
    kernel.memsz -= a.textOffset;
    kernelEntry = kernel.mem;
    const above = kernel.mem + kernel.memsz;
    if (input.initrdSize !== undefined && input.initrdSize !== null) {
      kexecAddBuffer(ctx, {
        name: 'initrd',
        bufsz: input.initrdSize,
        memsz: input.initrdSize,
        bufAlign: 0n,
        bufMin: above,
        bufMax: alignDown(kernel.mem, 1n << 30n) + (32n << 30n),
        topDown: false,
      });
    }
    const dtbBase = input.dtbSize ?? DEFAULT_ARM64_DTB_SIZE;
    const dtb = dtbBase + ARM64_DTB_EXTRA_ESTIMATE + BigInt(cmdlineLen);
    estimates.push(
      `dtb: ${hx(dtb)} bytes (estimated: the ${input.dtbSize !== undefined ? 'given' : 'assumed'} ${hx(dtbBase)}-byte running DT, the command line and about ${ARM64_DTB_EXTRA_ESTIMATE} bytes of /chosen properties, packed)`,
    );
    kexecAddBuffer(ctx, {
      name: 'dtb',
      bufsz: dtb,
      memsz: dtb,
      bufAlign: ARM64_DTB_ALIGN,
      bufMin: above,
      bufMax: ULONG_MAX,
      topDown: true,
    });
  }
  for (const s of ctx.segments) {
    if (s.mem % page !== 0n || (s.mem + s.memsz) % page !== 0n)
      throw new KhoError(
        'SIM_KEXEC_BAD_SEGMENT',
        `${s.name} at ${hx(s.mem)} is not page-aligned (-EADDRNOTAVAIL)`,
        {
          path: s.name,
          expected: 'page-aligned segments (sanity_check_segment_list)',
        },
      );
  }
  let handover: HandoverRecord | null = null;
  const sc = scratchSeg as PlacedSegment | null;
  if (sc) {
    handover = {
      kind: img.arch === 'x86_64' ? 'setup_data' : 'chosen',
      fdtAddr: input.khoFdtAddr ?? null,
      fdtSize: page,
      scratchAddr: sc.mem,
      scratchSize: sc.bufsz,
    };
    notes.push(
      'the root KHO FDT is not a segment: the next kernel reads its preserved page in place (fdt_size = PAGE_SIZE in the handover record)',
    );
  }
  if (!kho) notes.push('KHO off: segments may go anywhere in the given RAM; nothing is handed over');
  return {
    arch: img.arch,
    kho,
    pageSize: page,
    regions,
    segments: ctx.segments,
    kernelEntry,
    cmdlineLen,
    handover,
    estimates,
    notes,
  };
}
