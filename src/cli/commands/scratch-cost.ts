/**
 * `kho scratch-cost --mem SIZE [--numa N] [--kho-scratch SPEC] [--json]`: the scratch reservation the
 * kernel would make at a cold boot of such a machine, per region and in total, and its share of memory.
 *
 * Contract: the figures are the simulator's own: a simulated machine of that shape cold-boots the
 * default simulated kernel (the vectors' 7.3.4 configuration) with `kho=on`, the given `kho_scratch=`
 * and `reserve_mem=` values, and its `kho_reserve_scratch()` (src/sim/kernel/scratch.ts,
 * `computeScratchSizes` + `reserveScratch`) decides. With explicit sizes (`L,G,P`) that is exact:
 * lowmem and global as given, each node round_up(P, CMA_MIN_ALIGNMENT_BYTES). With a scale (`N%`, or
 * the default 200 % when the option is absent or malformed, as the kernel does) the sizes follow the
 * simulated kernel's early memblock reservations (kernel image, memmap, per-node data, hash tables,
 * reserve_mem), which match the Linux 7.3.4 vectors on their 2 GiB machine but are a model elsewhere:
 * they are printed as estimates and `--json` carries `estimate: true`.
 * When the kernel cannot reserve scratch (too little memory) its log lines say why and the exit
 * status is 1. A malformed `--kho-scratch` is shown as the kernel treats it (`Malformed early option
 * 'kho_scratch'`, default scale) and also exits 1.
 * Exit status: 0 ok, 1 malformed --kho-scratch / --reserve-mem or scratch not reservable, 2 usage.
 * Booting machines of several TiB takes seconds; a progress line goes to stderr from 2 TiB on.
 *
 * JSON: `{ machine: {arch, memory, numa, pageSize, alignment}, config: {kind: 'scale'|'sizes', scale?,
 * lowmem?, global?, pernode?}, kernelLog: [string], valid, reserved, khoEnabled, regions: [{kind, nid?, size,
 * share, why}], total, share, count, arrayBytes, estimate }`; sizes are `"0x..."` strings, shares are
 * percentages of installed memory (numbers).
 */
import type { Command } from 'commander';
import { KhoError } from '../../errors.ts';
import { type KhoScratchConfig, parseKhoScratch, parseReserveMem } from '../../sim/kernel/cmdline.ts';
import { DEFAULT_IMAGE, Kernel } from '../../sim/kernel/kernel.ts';
import { computeScratchSizes, type ScratchRegionSize } from '../../sim/kernel/scratch.ts';
import { Machine } from '../../sim/machine/machine.ts';
import type { Arch, MachineSpec } from '../../sim/machine/spec.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type Io, stdio } from './inspect.ts';
import { humanSize } from './plan.ts';

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
  /** The simulated kernel's command line. */
  cmdline: string;
  /** Its KHO, kho_scratch and reserve_mem log lines. */
  kernelLog: string[];
  /** False for a malformed --kho-scratch or --reserve-mem. */
  valid: boolean;
  /** Did the kernel reserve scratch? */
  reserved: boolean;
  /** Is KHO still on at the end of boot (kho_init can fail after the reservation)? */
  khoEnabled: boolean;
  regions: ScratchRegionSize[];
  total: bigint;
  count: number;
  arrayBytes: bigint;
  estimate: boolean;
}

const usage = (m: string, expected?: string): KhoError =>
  new KhoError('CLI_USAGE', m, expected === undefined ? {} : { expected });

/** Machines from this size on take a second or more to boot: say so on stderr. */
export const PROGRESS_FROM = 2n << 40n;

export function computeScratchCost(opts: ScratchCostOptions, progress?: (s: string) => void): ScratchCost {
  if (opts.mem === undefined) throw usage('--mem SIZE is required', 'e.g. --mem 64G');
  let numa = 1;
  if (opts.numa !== undefined) {
    if (!/^\d{1,3}$/.test(opts.numa)) throw usage(`--numa '${opts.numa}' is not a node count`, '1 to 64');
    numa = Number(opts.numa);
  }
  if (opts.arch !== undefined && opts.arch !== 'x86_64' && opts.arch !== 'arm64')
    throw usage(`unknown arch '${opts.arch}'`, 'x86_64 or arm64');
  for (const v of [opts.khoScratch, ...(opts.reserveMem ?? [])])
    if (v !== undefined && (v === '' || /[\s"]/.test(v)))
      throw usage(`'${v}' is not one kernel parameter value`, 'no spaces or quotes');
  let machine: Machine;
  try {
    machine = Machine.create({
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
  const spec = machine.spec;
  let config: KhoScratchConfig = { scale: 200, lowmem: 0n, global: 0n, pernode: 0n };
  let valid = true;
  if (opts.khoScratch !== undefined) {
    const p = parseKhoScratch(opts.khoScratch);
    if (!p.ok) valid = false;
    else if (p.kind === 'scale') config = { scale: p.scale, lowmem: 0n, global: 0n, pernode: 0n };
    else config = { scale: 0, lowmem: p.lowmem, global: p.global, pernode: p.pernode };
  }
  for (const r of opts.reserveMem ?? []) if (!parseReserveMem(r).ok) valid = false;
  const cmdline = [
    'kho=on',
    ...(opts.khoScratch !== undefined ? [`kho_scratch=${opts.khoScratch}`] : []),
    ...(opts.reserveMem ?? []).map((r) => `reserve_mem=${r}`),
  ].join(' ');
  if (spec.memorySize >= PROGRESS_FROM && progress)
    progress(`booting a simulated ${humanSize(spec.memorySize)} machine to see its scratch reservation...`);
  // the vectors' kernel configuration, built for the machine's architecture
  const k = Kernel.boot(machine, { cmdline, image: { ...DEFAULT_IMAGE, arch: spec.arch } });
  const kernelLog = k.log
    .messages()
    .filter((l) => /^KHO: |^Malformed early option 'kho_scratch'|^reserve_mem/.test(l));
  const nodeIds = machine.nodes.filter((n) => n.ramBytes > 0n).map((n) => n.nid);
  // The size rules' own explanations (explicit sizes need no reservation figures).
  const rules = computeScratchSizes({
    config,
    alignment: spec.cmaMinAlignment,
    kernLow: 0n,
    kernAll: 0n,
    nodes: nodeIds.map((nid) => ({ nid, kern: 0n })),
  }).regions;
  // kho_reserve_scratch() result; KHO may still be disabled later in boot (kho_init), which the log says
  const areas = k.kho.scratch;
  const reserved = areas.length > 0;
  const A = humanSize(spec.cmaMinAlignment);
  const regions: ScratchRegionSize[] = reserved
    ? areas.map((a, i) => ({
        ...(rules[i] ?? { kind: 'node' as const }),
        size: a.size,
        why:
          config.scale === 0
            ? (rules[i]?.why ?? '')
            : `${config.scale}% of the kernel's early reservations${i === 0 ? ' below the low limit' : i === 1 ? ' minus lowmem' : ` on node ${rules[i]?.nid}`}, rounded up to ${A}${i === 1 && a.size === 0n ? ' (0: lowmem already covers them)' : ''}`,
      }))
    : [];
  const total = regions.reduce((s, r) => s + r.size, 0n);
  return {
    spec,
    config,
    cmdline,
    kernelLog,
    valid,
    reserved,
    khoEnabled: k.kho.enabled,
    regions,
    total,
    count: regions.length,
    arrayBytes: BigInt(regions.length) * 16n,
    estimate: config.scale !== 0,
  };
}

const pct = (part: bigint, whole: bigint): number => Math.round((Number(part) / Number(whole)) * 10000) / 100;

export function formatScratchCost(c: ScratchCost): string {
  const s = c.spec;
  const lines: string[] = [];
  const how = c.config.scale === 0 ? 'explicit sizes' : `scale ${c.config.scale}%`;
  lines.push(
    `KHO scratch at a cold boot of a ${humanSize(s.memorySize)} ${s.arch} machine, ${s.numaNodes} NUMA node${s.numaNodes === 1 ? '' : 's'}, ${s.pageSize / 1024} KiB pages (${how}):`,
  );
  for (const l of c.kernelLog) lines.push(`  kernel: ${l}`);
  if (!c.reserved) {
    lines.push(
      '  the kernel reserves no scratch on this machine: KHO is disabled at boot (see its log above)',
    );
  } else {
    const est = c.estimate ? ' (est.)' : '';
    const rows = c.regions.map((r) => [
      r.kind === 'node' ? `node ${r.nid}` : r.kind,
      `${humanSize(r.size)}${est}`,
      `${pct(r.size, s.memorySize).toFixed(2)}%`,
      r.why,
    ]);
    rows.unshift(['region', 'size', 'of memory', 'how']);
    rows.push(['total', `${humanSize(c.total)}${est}`, `${pct(c.total, s.memorySize).toFixed(2)}%`, '']);
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows)
      lines.push(
        `  ${r
          .map((x, i) => (i === r.length - 1 ? x : x.padEnd(w[i])))
          .join('  ')
          .trimEnd()}`,
      );
    lines.push(
      `  scratch array: ${c.count} entries, ${c.arrayBytes} bytes; regions aligned to ${humanSize(s.cmaMinAlignment)}`,
    );
  }
  if (c.reserved && !c.khoEnabled)
    lines.push('note: this kernel reserved scratch but then disabled KHO later in boot (see its log above)');
  if (c.estimate)
    lines.push(
      "estimate: scaled sizes follow the kernel's early memblock reservations; these are the simulated kernel's (kernel image, memmap, per-node data, hash tables, reserve_mem), which reproduce Linux 7.3.4 on the vectors' 2 GiB QEMU machine. A real kernel's config, firmware and command line move them: use explicit sizes (--kho-scratch L,G,P) for exact figures.",
    );
  if (c.reserved)
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
    kernelLog: c.kernelLog,
    valid: c.valid,
    reserved: c.reserved,
    khoEnabled: c.khoEnabled,
    regions: c.regions.map((r) => ({
      kind: r.kind,
      ...(r.nid !== undefined ? { nid: r.nid } : {}),
      size: r.size,
      share: pct(r.size, s.memorySize),
      why: r.why,
    })),
    total: c.total,
    share: pct(c.total, s.memorySize),
    count: c.count,
    arrayBytes: c.arrayBytes,
    estimate: c.estimate,
  };
}

export function runScratchCost(opts: ScratchCostOptions, io: Io = stdio): number {
  try {
    const c = computeScratchCost(opts, (m) => process.stderr.write(`kho: ${m}\n`));
    io.out(opts.json ? `${toJson(scratchCostJson(c))}\n` : formatScratchCost(c));
    if (!c.valid || !c.reserved) {
      const why = !c.valid
        ? (c.kernelLog.find((l) => /Malformed|reserve_mem/.test(l)) ??
          `kho_scratch=${opts.khoScratch ?? ''} or a reserve_mem= value is malformed`)
        : 'the kernel could not reserve scratch on this machine';
      process.stderr.write(`kho: ${why}\n`);
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
The figures come from cold-booting a simulated machine of that shape. Explicit sizes are exact;
scaled sizes (N%, or the default) are estimates: they follow the simulated kernel's early reservations.
Exit status: 0 ok, 1 malformed --kho-scratch or --reserve-mem (shown as the kernel treats it) or no
scratch reservable, 2 usage.

Examples:
  kho scratch-cost --mem 2G --kho-scratch 16M,64M,32M
  kho scratch-cost --mem 512G --numa 4 --kho-scratch 16M,512M,256M --json
  kho scratch-cost --mem 2G --reserve-mem 8M:2M:trace_buf      # default scale, estimated`,
    )
    .action((opts: ScratchCostOptions) => {
      process.exitCode = runScratchCost(opts);
    });
}
