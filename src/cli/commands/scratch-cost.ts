/**
 * `kho scratch-cost --mem SIZE [--numa N] [--kho-scratch SPEC] [--json]`: the scratch reservation the
 * kernel would make at a cold boot of such a machine, per region and in total, and its share of memory.
 *
 * Contract: the sizes come from `computeScratchSizes()` in src/sim/kernel/scratch.ts, the one
 * implementation the simulator's boot uses (spec §3.3). With explicit sizes (`L,G,P`) the result is
 * exact: lowmem and global as given, each node round_up(P, CMA_MIN_ALIGNMENT_BYTES). With a scale
 * (`N%`, or the default 200 % when the option is absent or malformed, as the kernel does) the sizes
 * depend on the kernel's early memblock reservations, which no file on a machine-to-be states:
 * `estimateKernelReservations()` models them (kernel image and fixed early data on node 0, the
 * memmap per node, node-less reservations and `reserve_mem=` near the top of RAM), calibrated on the
 * Linux 7.3.4 vectors (2 GiB QEMU x86_64: lowmem 164 MiB with reserve_mem=8M, 148 MiB without, node
 * 140 MiB). Scaled figures are printed as estimates, and `--json` carries `estimate: true`.
 * A malformed `--kho-scratch` is reported as the kernel reports it (`Malformed early option
 * 'kho_scratch'`), the default scale is shown, and the exit status is 1.
 * Exit status: 0 ok, 1 malformed --kho-scratch / --reserve-mem, 2 usage (bad --mem, --numa, ...).
 *
 * JSON: `{ machine: {arch, memory, numa, pageSize, alignment}, kernelLog, config: {kind:
 * 'scale'|'sizes', scale?, lowmem?, global?, pernode?}, valid, regions: [{kind, nid?, size, share,
 * why}], total, share, count, arrayBytes, estimate, reservations?: {kernLow, kernAll, nodes, parts} }`;
 * sizes are `"0x..."` strings, shares are percentages of installed memory (numbers).
 */
import type { Command } from 'commander';
import { KhoError } from '../../errors.ts';
import { type KhoScratchConfig, parseKhoScratch, parseReserveMem } from '../../sim/kernel/cmdline.ts';
import { computeScratchSizes, type ScratchSizes } from '../../sim/kernel/scratch.ts';
import { buildLayout } from '../../sim/machine/firmware.ts';
import { type Arch, type MachineSpec, resolveMachineSpec } from '../../sim/machine/spec.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type Io, stdio } from './inspect.ts';
import { humanSize } from './plan.ts';

const MiB = 1n << 20n;

/** `sizeof(struct page)` on 64-bit kernels without debug options. */
export const STRUCT_PAGE_BYTES = 64n;
/** Kernel image and fixed early allocations, on node 0 below 4 GiB (calibrated: 37.5 MiB). */
export const FIXED_KERNEL_RESERVATIONS = (75n * MiB) / 2n;
/** Early reservations made without a node (before or outside NUMA setup), near the top of RAM. */
export const NODELESS_RESERVATIONS = 4n * MiB;

export interface KernelReservations {
  kernLow: bigint;
  kernAll: bigint;
  nodes: { nid: number; kern: bigint }[];
  /** What the model counted, for humans. */
  parts: string[];
}

/** The part of `[start, end)` below `limit` (exclusive). */
const below = (start: bigint, end: bigint, limit: bigint): bigint =>
  end <= limit ? end - start : start >= limit ? 0n : limit - start;

/**
 * An estimate of `memblock_reserved_kern_size()` at `kho_reserve_scratch()` time for a machine (see
 * the module comment). `reserveMem` is the total of the command line's `reserve_mem=` regions.
 */
export function estimateKernelReservations(spec: MachineSpec, reserveMem = 0n): KernelReservations {
  const layout = buildLayout(spec);
  const low = spec.archLowAddressLimit + 1n;
  const pages = (b: bigint): bigint => b / BigInt(spec.pageSize);
  const parts: string[] = [];
  let kernLow = 0n;
  let kernAll = 0n;
  const nodes = layout.nodes
    .filter((n) => n.ramBytes > 0n)
    .map((n) => {
      const ranges = layout.ram.filter((r) => r.nid === n.nid);
      const ram = ranges.reduce((a, r) => a + (r.end - r.start), 0n);
      const top = ranges.length ? ranges[ranges.length - 1].end : 0n; // ram is sorted ascending
      const memmap = pages(ram) * STRUCT_PAGE_BYTES;
      let kern = memmap;
      kernLow += below(top - memmap, top, low);
      if (n.nid === layout.nodes[0].nid) {
        kern += FIXED_KERNEL_RESERVATIONS;
        kernLow += FIXED_KERNEL_RESERVATIONS;
      }
      kernAll += kern;
      parts.push(
        `node ${n.nid}: memmap ${humanSize(memmap)}${n.nid === layout.nodes[0].nid ? ` + kernel image and early data ${humanSize(FIXED_KERNEL_RESERVATIONS)}` : ''}`,
      );
      return { nid: n.nid, kern };
    });
  const nodeless = NODELESS_RESERVATIONS + reserveMem;
  kernAll += nodeless;
  kernLow += below(layout.ramTop - nodeless, layout.ramTop, low);
  parts.push(
    `no node: early allocations ${humanSize(NODELESS_RESERVATIONS)}${reserveMem ? ` + reserve_mem ${humanSize(reserveMem)}` : ''}, at the top of RAM`,
  );
  return { kernLow, kernAll, nodes, parts };
}

export interface ScratchCostOptions {
  mem?: string;
  numa?: string;
  khoScratch?: string;
  reserveMem?: string[];
  arch?: string;
  pageSize?: string;
  json?: boolean;
}

export interface ScratchCost {
  spec: MachineSpec;
  config: KhoScratchConfig;
  /** The kernel's log line for the option, or its complaint. */
  log: string | null;
  valid: boolean;
  sizes: ScratchSizes;
  estimate: boolean;
  reservations: KernelReservations | null;
}

const usage = (m: string, expected?: string): KhoError =>
  new KhoError('CLI_USAGE', m, expected === undefined ? {} : { expected });

export function computeScratchCost(opts: ScratchCostOptions): ScratchCost {
  if (opts.mem === undefined) throw usage('--mem SIZE is required', 'e.g. --mem 64G');
  let numa = 1;
  if (opts.numa !== undefined) {
    if (!/^\d{1,3}$/.test(opts.numa)) throw usage(`--numa '${opts.numa}' is not a node count`, '1 to 64');
    numa = Number(opts.numa);
  }
  if (opts.arch !== undefined && opts.arch !== 'x86_64' && opts.arch !== 'arm64')
    throw usage(`unknown arch '${opts.arch}'`, 'x86_64 or arm64');
  let spec: MachineSpec;
  try {
    spec = resolveMachineSpec({
      memory: opts.mem,
      numa,
      arch: (opts.arch ?? 'x86_64') as Arch,
      ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
    });
  } catch (e) {
    if (e instanceof KhoError)
      throw new KhoError('CLI_USAGE', e.message, { ...(e.expected ? { expected: e.expected } : {}) });
    throw e;
  }
  let config: KhoScratchConfig = { scale: 200, lowmem: 0n, global: 0n, pernode: 0n };
  let log: string | null = null;
  let valid = true;
  if (opts.khoScratch !== undefined) {
    const p = parseKhoScratch(opts.khoScratch);
    if (!p.ok) {
      valid = false;
      log = `Malformed early option 'kho_scratch' (${p.reason}): the kernel keeps the default scale of 200%`;
    } else if (p.kind === 'scale') {
      config = { scale: p.scale, lowmem: 0n, global: 0n, pernode: 0n };
      log = p.log.text;
    } else {
      config = { scale: 0, lowmem: p.lowmem, global: p.global, pernode: p.pernode };
      log = p.log.text;
    }
  }
  let reserveMem = 0n;
  for (const r of opts.reserveMem ?? []) {
    const p = parseReserveMem(r);
    if (!p.ok) {
      valid = false;
      log = `${log ? `${log}; ` : ''}reserve_mem=${r}: ${p.log.text}`;
      continue;
    }
    reserveMem += p.size;
  }
  const estimate = config.scale !== 0;
  const reservations = estimate ? estimateKernelReservations(spec, reserveMem) : null;
  const layout = buildLayout(spec);
  const sizes = computeScratchSizes({
    config,
    alignment: spec.cmaMinAlignment,
    kernLow: reservations?.kernLow ?? 0n,
    kernAll: reservations?.kernAll ?? 0n,
    nodes:
      reservations?.nodes ??
      layout.nodes.filter((n) => n.ramBytes > 0n).map((n) => ({ nid: n.nid, kern: 0n })),
  });
  return { spec, config, log, valid, sizes, estimate, reservations };
}

const pct = (part: bigint, whole: bigint): number => Math.round((Number(part) / Number(whole)) * 10000) / 100;

export function formatScratchCost(c: ScratchCost): string {
  const s = c.spec;
  const lines: string[] = [];
  const how = c.config.scale === 0 ? 'explicit sizes' : `scale ${c.config.scale}%`;
  lines.push(
    `KHO scratch at a cold boot of a ${humanSize(s.memorySize)} ${s.arch} machine, ${s.numaNodes} NUMA node${s.numaNodes === 1 ? '' : 's'}, ${s.pageSize / 1024} KiB pages (${how}):`,
  );
  if (c.log) lines.push(`  kernel: ${c.log}`);
  const rows = c.sizes.regions.map((r) => [
    r.kind === 'node' ? `node ${r.nid}` : r.kind,
    `${humanSize(r.size)}${c.estimate ? ' (est.)' : ''}`,
    `${pct(r.size, s.memorySize).toFixed(2)}%`,
    r.why,
  ]);
  rows.unshift(['region', 'size', 'of memory', 'how']);
  rows.push([
    'total',
    `${humanSize(c.sizes.total)}${c.estimate ? ' (est.)' : ''}`,
    `${pct(c.sizes.total, s.memorySize).toFixed(2)}%`,
    '',
  ]);
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows)
    lines.push(
      `  ${r
        .map((x, i) => (i === r.length - 1 ? x : x.padEnd(w[i])))
        .join('  ')
        .trimEnd()}`,
    );
  lines.push(
    `  scratch array: ${c.sizes.count} entries, ${c.sizes.arrayBytes} bytes; regions aligned to ${humanSize(s.cmaMinAlignment)}`,
  );
  if (c.estimate && c.reservations) {
    lines.push(
      `estimate: with a scale the sizes follow the kernel's early memblock reservations, which kho models (${c.reservations.parts.join('; ')}), calibrated on Linux 7.3.4 under QEMU; a real kernel's config, firmware and command line move them. Use explicit sizes (--kho-scratch L,G,P) for exact figures.`,
    );
  }
  lines.push(
    'note: scratch stays usable for movable allocations (it is handed to the page allocator as CMA); it is memory the kernel cannot use for unmovable data.',
  );
  return `${lines.join('\n')}\n`;
}

export function scratchCostJson(c: ScratchCost): unknown {
  const s = c.spec;
  return {
    machine: {
      arch: s.arch,
      memory: s.memorySize,
      numa: s.numaNodes,
      pageSize: s.pageSize,
      alignment: s.cmaMinAlignment,
    },
    config:
      c.config.scale === 0
        ? { kind: 'sizes', lowmem: c.config.lowmem, global: c.config.global, pernode: c.config.pernode }
        : { kind: 'scale', scale: c.config.scale },
    kernelLog: c.log,
    valid: c.valid,
    regions: c.sizes.regions.map((r) => ({
      kind: r.kind,
      ...(r.nid !== undefined ? { nid: r.nid } : {}),
      size: r.size,
      share: pct(r.size, s.memorySize),
      why: r.why,
    })),
    total: c.sizes.total,
    share: pct(c.sizes.total, s.memorySize),
    count: c.sizes.count,
    arrayBytes: c.sizes.arrayBytes,
    estimate: c.estimate,
    ...(c.reservations
      ? {
          reservations: {
            kernLow: c.reservations.kernLow,
            kernAll: c.reservations.kernAll,
            nodes: c.reservations.nodes,
            parts: c.reservations.parts,
          },
        }
      : {}),
  };
}

export function runScratchCost(opts: ScratchCostOptions, io: Io = stdio): number {
  try {
    const c = computeScratchCost(opts);
    io.out(opts.json ? `${toJson(scratchCostJson(c))}\n` : formatScratchCost(c));
    if (!c.valid) {
      process.stderr.write(`kho: ${c.log}\n`);
      return EXIT_INVALID;
    }
    return EXIT_OK;
  } catch (e) {
    reportError(undefined, e);
    return e instanceof KhoError && e.code.startsWith('CLI_') ? EXIT_USAGE : EXIT_INVALID;
  }
}

export function registerScratchCost(program: Command): void {
  program
    .command('scratch-cost')
    .description('the KHO scratch memory the kernel would reserve for a machine and kho_scratch= value')
    .option('--mem <size>', 'installed memory, e.g. 2G, 512G, 1T')
    .option('--numa <n>', 'NUMA nodes with memory (default 1)')
    .option('--kho-scratch <spec>', 'the kho_scratch= value: L,G,P sizes or N% (default: 200%)')
    .option('--reserve-mem <spec...>', 'reserve_mem= values (size:align:name) on the command line')
    .option('--arch <arch>', 'x86_64 (default) or arm64')
    .option('--page-size <size>', 'page size (arm64: 4K, 16K, 64K)')
    .option('--json', 'JSON output (sizes as "0x..." strings)')
    .addHelpText(
      'after',
      `
Explicit sizes are exact; scaled sizes (N%, or the default) are estimates from a model of the kernel's
early reservations.
Exit status: 0 ok, 1 malformed --kho-scratch or --reserve-mem (shown as the kernel treats it), 2 usage.

Examples:
  kho scratch-cost --mem 2G --kho-scratch 16M,64M,32M
  kho scratch-cost --mem 512G --numa 4 --kho-scratch 16M,512M,256M --json
  kho scratch-cost --mem 2G --reserve-mem 8M:2M:trace_buf      # default scale, estimated`,
    )
    .action((opts: ScratchCostOptions) => {
      process.exitCode = runScratchCost(opts);
    });
}
