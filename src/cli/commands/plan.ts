/**
 * `kho plan`: where the in-kernel kexec file loader (`kexec -s`) would put each segment of a kernel,
 * given the running kernel's KHO scratch areas (debugfs `scratch_phys` / `scratch_len`).
 *
 * Contract: reads the two debugfs files (or `--debugfs DIR`, which finds them in `DIR/out`,
 * `DIR/kho/out` or `DIR`), the kernel image (bzImage, arm64 Image or a simulated-kernel JSON
 * description), the initrd (only its size matters) and optionally the root KHO FDT and, on arm64,
 * the running DT; then runs the same placement engine as the simulator (`src/sim/kexec/placement.ts`)
 * and prints the segment list (human table, or `--json` with u64 values as `"0x..."` strings).
 * Exit status: 0 every segment placed; 1 unreadable/invalid input or a segment that does not fit
 * (-EADDRNOTAVAIL: the error names the segment, the largest usable hole and the shortfall); 2 usage.
 *
 * JSON (`--json`): `{ ok, arch, kho, image: {format, release, fileSize}, pageSize, regions: [{index,
 * label, start, size}], segments: [{index, name, start, end, memsz, bufsz, align, topDown, region,
 * regionLabel}], kernelEntry, cmdlineLen, handover: {kind, fdtAddr, fdtSize, scratchAddr, scratchSize},
 * khoFdt: {path, totalsize} | null, estimates: [string], notes: [string] }`; `end` is exclusive. On
 * failure `{ ok: false, error: {code, message, path?, segment?, needed?, largest?, shortBy?} }`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { type ScratchEntry, scratchFromDebugfs, validateScratch } from '../../abi/scratch.ts';
import { KhoError } from '../../errors.ts';
import { readHeader } from '../../fdt/header.ts';
import { type ImageArch, type KernelImage, loadKernelImage } from '../../sim/kexec/image.ts';
import { type KexecPlan, noFitDetails, planKexecLoad } from '../../sim/kexec/placement.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type Io, stdio } from './inspect.ts';

export interface PlanOptions {
  scratchPhys?: string;
  scratchLen?: string;
  debugfs?: string;
  image?: string;
  initrd?: string;
  fdt?: string;
  dtb?: string;
  cmdline?: string;
  arch?: string;
  pageSize?: string;
  purgatorySize?: string;
  json?: boolean;
}

/** Largest file read whole (a kernel image); larger inputs are refused, not truncated. */
export const MAX_IMAGE_BYTES = 512 * 1024 * 1024;
const MAX_TEXT_BYTES = 1 << 20;
/** The kernel's array has 2 + one per node entries; MAX_NUMNODES is at most 1024 (NODES_SHIFT 10). */
export const MAX_SCRATCH_ENTRIES = 1026;

const usage = (message: string, expected?: string): KhoError =>
  new KhoError('CLI_USAGE', message, expected === undefined ? {} : { expected });

function readLimited(path: string, limit: number): Uint8Array {
  const st = statSync(path);
  if (st.isDirectory()) throw new KhoError('IO_EISDIR', `${path} is a directory`, { path });
  if (st.size > limit)
    throw new KhoError('IO_TOO_LARGE', `${path} is ${st.size} bytes`, {
      path,
      expected: `at most ${limit} bytes`,
    });
  return new Uint8Array(readFileSync(path));
}
const readText = (p: string): string => new TextDecoder().decode(readLimited(p, MAX_TEXT_BYTES));

/** The scratch areas from the options: both files, or a debugfs tree. */
export function loadScratch(opts: PlanOptions): { entries: ScratchEntry[]; from: string } {
  let phys = opts.scratchPhys;
  let len = opts.scratchLen;
  if (opts.debugfs !== undefined) {
    if (phys !== undefined || len !== undefined)
      throw usage('give --debugfs or --scratch-phys/--scratch-len, not both');
    const dir = [join(opts.debugfs, 'out'), join(opts.debugfs, 'kho', 'out'), opts.debugfs].find((d) =>
      existsSync(join(d, 'scratch_phys')),
    );
    if (!dir)
      throw new KhoError(
        'IO_ENOENT',
        `no scratch_phys under ${opts.debugfs} (looked in out/, kho/out/ and the directory)`,
        {
          path: opts.debugfs,
          expected: 'a /sys/kernel/debug/kho tree',
        },
      );
    phys = join(dir, 'scratch_phys');
    len = join(dir, 'scratch_len');
  }
  if (phys === undefined || len === undefined)
    throw usage('the scratch areas are needed: --scratch-phys FILE and --scratch-len FILE, or --debugfs DIR');
  try {
    return { entries: scratchFromDebugfs(readText(phys), readText(len)), from: phys };
  } catch (e) {
    if (e instanceof KhoError && e.path !== undefined && !e.path.includes('/'))
      throw new KhoError(e.code, e.message, {
        path: e.path === 'scratch_len' ? len : phys,
        ...(e.offset !== undefined ? { offset: e.offset } : {}),
        ...(e.expected !== undefined ? { expected: e.expected } : {}),
      });
    throw e;
  }
}

const SIZE_RE = /^(?:0x([0-9a-fA-F]{1,16})|(\d{1,19})([KMG]?))$/;
function parseSizeOpt(name: string, v: string): bigint {
  const m = SIZE_RE.exec(v.trim());
  if (!m) throw usage(`${name} '${v}' is not a size`, 'e.g. 0x4000, 16K or 2M');
  if (m[1] !== undefined) return BigInt(`0x${m[1]}`);
  return BigInt(m[2]) << BigInt({ '': 0, K: 10, M: 20, G: 30 }[m[3] as '' | 'K' | 'M' | 'G']);
}

export interface PlanResult {
  plan: KexecPlan;
  image: KernelImage;
  khoFdt: { path: string; totalsize: number } | null;
}

/** Everything but printing: read the inputs and run the placement engine. Throws KhoError. */
export function computePlan(opts: PlanOptions): PlanResult {
  if (opts.image === undefined) throw usage('--image IMG is required');
  let arch: ImageArch | undefined;
  if (opts.arch !== undefined) {
    if (opts.arch !== 'x86_64' && opts.arch !== 'arm64')
      throw usage(`unknown arch '${opts.arch}'`, 'x86_64 or arm64');
    arch = opts.arch;
  }
  let pageSize = 4096n;
  if (opts.pageSize !== undefined) {
    pageSize = parseSizeOpt('--page-size', opts.pageSize);
    if (![4096n, 16384n, 65536n].includes(pageSize))
      throw usage(`page size '${opts.pageSize}'`, '4K, 16K or 64K');
  }
  const purgatory =
    opts.purgatorySize === undefined
      ? undefined
      : { memsz: parseSizeOpt('--purgatory-size', opts.purgatorySize), align: 4096n };
  const { entries, from } = loadScratch(opts);
  if (entries.length === 0)
    throw new KhoError('KHO_SCRATCH_TOO_FEW', 'no scratch areas: the files are empty (is KHO on?)', {
      path: from,
      expected: 'lowmem, global and one line per node',
    });
  if (entries.length > MAX_SCRATCH_ENTRIES)
    throw new KhoError('KHO_SCRATCH_TOO_MANY', `${entries.length} scratch areas`, {
      path: from,
      expected: `at most ${MAX_SCRATCH_ENTRIES} (2 + MAX_NUMNODES)`,
    });
  const findings = validateScratch(entries, { alignment: pageSize });
  const image = loadKernelImage(readLimited(opts.image, MAX_IMAGE_BYTES), { arch, path: opts.image });
  if (image.arch === 'x86_64' && pageSize !== 4096n) throw usage('x86_64 has 4 KiB pages only');
  const initrdSize = opts.initrd === undefined ? null : BigInt(statSync(opts.initrd).size);
  let khoFdt: PlanResult['khoFdt'] = null;
  if (opts.fdt !== undefined) {
    const h = readHeader(readLimited(opts.fdt, MAX_TEXT_BYTES * 16));
    khoFdt = { path: opts.fdt, totalsize: h.totalsize };
  }
  let dtbSize: bigint | undefined;
  if (opts.dtb !== undefined) {
    if (image.arch !== 'arm64') throw usage('--dtb is for arm64 (x86 passes no DTB to the next kernel here)');
    dtbSize = BigInt(readHeader(readLimited(opts.dtb, MAX_TEXT_BYTES * 16)).totalsize);
  }
  const plan = planKexecLoad({
    image,
    initrdSize,
    cmdline: opts.cmdline ?? '',
    scratch: entries,
    pageSize,
    ...(purgatory ? { purgatory } : {}),
    ...(dtbSize !== undefined ? { dtbSize } : {}),
  });
  for (const f of findings)
    plan.notes.push(`scratch ${f.severity}: ${f.path ? `${f.path}: ` : ''}${f.message}`);
  if (khoFdt && BigInt(khoFdt.totalsize) > pageSize)
    plan.notes.push(
      `the root KHO FDT is ${khoFdt.totalsize} bytes but the handover passes fdt_size = PAGE_SIZE (${pageSize}): the next kernel maps only the first page`,
    );
  return { plan, image, khoFdt };
}

const hx = (v: bigint): string => `0x${v.toString(16)}`;
/** `16 MiB`, `4 KiB`, `4.4 MiB`, `32.0 GiB`, `48 bytes`. */
export function humanSize(v: bigint): string {
  const exact = (shift: bigint): boolean => v >= 1n << shift && v % (1n << shift) === 0n;
  if (exact(40n)) return `${v >> 40n} TiB`;
  if (exact(30n)) return `${v >> 30n} GiB`;
  if (v >= 1n << 30n) return `${(Number(v) / 2 ** 30).toFixed(1)} GiB`;
  if (exact(20n)) return `${v >> 20n} MiB`;
  if (v >= 1n << 20n) return `${(Number(v) / 2 ** 20).toFixed(1)} MiB`;
  if (v >= 1n << 10n) return v % 1024n === 0n ? `${v >> 10n} KiB` : `${(Number(v) / 2 ** 10).toFixed(1)} KiB`;
  return `${v} bytes`;
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatPlan(r: PlanResult): string {
  const { plan, image } = r;
  const lines: string[] = [];
  const what =
    image.format === 'description'
      ? 'simulated kernel'
      : image.format === 'arm64-Image'
        ? 'Image'
        : 'bzImage';
  lines.push(
    `kexec_file_load plan: ${plan.arch} ${what}${image.release ? ` ${image.release}` : ''}, KHO on: every segment goes into a scratch area`,
  );
  lines.push('');
  lines.push('scratch areas (offered in this order, first fit wins):');
  lines.push(
    table(
      plan.regions.map((g) => [
        `  ${g.label}`,
        g.size === 0n ? `${hx(g.start)} (empty)` : `${hx(g.start)}-${hx(g.start + g.size - 1n)}`,
        humanSize(g.size),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    table([
      ['#', 'segment', 'address range', 'size', 'region'],
      ...plan.segments.map((s) => [
        String(s.index),
        s.name,
        `${hx(s.mem)}-${hx(s.mem + s.memsz - 1n)}`,
        `${humanSize(s.memsz)}${s.bufsz !== s.memsz ? ` (${s.bufsz} bytes of data)` : ''}`,
        s.regionLabel,
      ]),
    ]),
  );
  lines.push('');
  if (plan.handover) {
    const h = plan.handover;
    const rec =
      h.kind === 'setup_data'
        ? 'boot_params setup_data SETUP_KEXEC_KHO'
        : '/chosen linux,kho-fdt and linux,kho-scratch';
    lines.push(
      `handover (${rec}): fdt ${h.fdtAddr === null ? 'at the preserved root FDT page' : hx(h.fdtAddr)} (${h.fdtSize} bytes), scratch array copy at ${hx(h.scratchAddr)} (${h.scratchSize} bytes)`,
    );
  }
  if (r.khoFdt)
    lines.push(
      `root KHO FDT ${r.khoFdt.path}: ${r.khoFdt.totalsize} bytes, stays where it is (not a segment)`,
    );
  lines.push(
    `next kernel entry: ${hx(plan.kernelEntry)}; command line ${plan.cmdlineLen ? `${plan.cmdlineLen} bytes with the NUL` : 'empty'}`,
  );
  for (const e of plan.estimates) lines.push(`estimated: ${e}`);
  for (const n of plan.notes) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}

export function planJson(r: PlanResult): unknown {
  const { plan, image } = r;
  return {
    ok: true,
    arch: plan.arch,
    kho: plan.kho,
    image: { format: image.format, release: image.release, fileSize: image.fileSize },
    pageSize: plan.pageSize,
    regions: plan.regions.map((g, index) => ({ index, label: g.label, start: g.start, size: g.size })),
    segments: plan.segments.map((s) => ({
      index: s.index,
      name: s.name,
      start: s.mem,
      end: s.mem + s.memsz,
      memsz: s.memsz,
      bufsz: s.bufsz,
      align: s.align,
      topDown: s.topDown,
      region: s.region,
      regionLabel: s.regionLabel,
    })),
    kernelEntry: plan.kernelEntry,
    cmdlineLen: plan.cmdlineLen,
    handover: plan.handover,
    khoFdt: r.khoFdt,
    estimates: plan.estimates,
    notes: plan.notes,
  };
}

export function runPlan(opts: PlanOptions, io: Io = stdio): number {
  try {
    const r = computePlan(opts);
    io.out(opts.json ? `${toJson(planJson(r))}\n` : formatPlan(r));
    return EXIT_OK;
  } catch (e) {
    const isUsage = e instanceof KhoError && e.code.startsWith('CLI_');
    if (opts.json && e instanceof KhoError && !isUsage) {
      const d = noFitDetails(e);
      io.out(`${toJson({ ok: false, error: { ...e.toJSON(), ...(d ?? {}) } })}\n`);
    }
    reportError(undefined, e);
    return isUsage ? EXIT_USAGE : EXIT_INVALID;
  }
}

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('where the in-kernel kexec loader (kexec -s) would place each segment inside KHO scratch')
    .option('--scratch-phys <file>', 'debugfs kho/out/scratch_phys of the running kernel')
    .option('--scratch-len <file>', 'debugfs kho/out/scratch_len of the running kernel')
    .option('--debugfs <dir>', 'read out/scratch_phys and out/scratch_len from this kho debugfs tree')
    .option('--image <img>', 'next kernel: bzImage, arm64 Image, or a simulated-kernel JSON description')
    .option('--initrd <rd>', 'initrd file (only its size matters)')
    .option('--fdt <fdt>', 'root KHO FDT (debugfs out/fdt): reported, it is handed over in place')
    .option('--dtb <dtb>', 'arm64: the running kernel DT the loader copies (/sys/firmware/fdt)')
    .option('--cmdline <s>', "next kernel's command line (kexec --append); default empty")
    .option('--arch <arch>', 'x86_64 or arm64 (default: from the image)')
    .option('--page-size <size>', 'page size (arm64: 4K, 16K or 64K)')
    .option('--purgatory-size <size>', 'x86 purgatory memsz instead of the estimate (e.g. 0x4000)')
    .option('--json', 'JSON output (u64 values as "0x..." strings)')
    .addHelpText(
      'after',
      `
Exit status: 0 all segments placed, 1 invalid input or a segment does not fit (-EADDRNOTAVAIL), 2 usage.

Examples:
  kho plan --debugfs /sys/kernel/debug/kho --image /boot/vmlinuz --initrd /boot/initrd.img
  kho plan --scratch-phys scratch_phys --scratch-len scratch_len --image bzImage --json
  kho plan --debugfs export/kho --image Image --arch arm64 --dtb /sys/firmware/fdt --cmdline "console=ttyAMA0"`,
    )
    .action((opts: PlanOptions) => {
      process.exitCode = runPlan(opts);
    });
}
