/**
 * `kho map [PATH] [--memory IMAGE] [--iomem FILE] [--dmesg FILE] [--svg FILE | --html FILE] [--json]`:
 * a picture of physical memory: scratch areas per kind and node, preserved ranges by producer,
 * reserve_mem regions, the preserved-memory map's own pages, kexec segments, RAM and reserved ranges.
 *
 * Sources: a real handover (PATH is what `kho inspect` takes: a debugfs `out/`/`in/` directory or a
 * root FDT file; `--memory` adds the preserved blocks, `--iomem` the `/proc/iomem` ranges, `--dmesg`
 * the NUMA node ranges), or a simulated machine (`--sim-memory SIZE [--sim-numa N] [--sim-cmdline
 * STR] [--sim-kexec]`: boots the simulated kernel, optionally loads a kexec image to show its
 * segments). Output: a text table by default; `--svg FILE` (static, two axes), `--html FILE`
 * (self-contained, zoomable), `--json` (the model; u64 values as "0x..." strings; schema below).
 * Exit status: 0 ok, 1 unreadable or invalid input, 2 usage.
 *
 * JSON schema (`--json`): `{ source, pageSize, start, end, nodes: [{nid, start, end}], lanes: [{name,
 * regions: [{start, end, kind, label, producer?, node?}]}], summary: {regions, preservedBlocks,
 * preservedBytes, unattributedBlocks, byProducer: {NAME: {blocks, bytes}}}, notes: [string] }`, with
 * `end` exclusive and every address and byte count a hex string.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadHandoverPath } from '../../abi/handover.ts';
import { openMemoryImage } from '../../abi/memory/open.ts';
import type { FileMemory } from '../../abi/memory/raw.ts';
import { KhoError } from '../../errors.ts';
import { renderHtml } from '../../map/html.ts';
import { allRegions, buildMemoryMap, formatBytes, type MapInput, type MemoryMap } from '../../map/model.ts';
import { mapInputFromHandover, mapInputFromKernel } from '../../map/sources.ts';
import { renderSvg } from '../../map/svg.ts';
import { DEFAULT_IMAGE, Kernel } from '../../sim/kernel/kernel.ts';
import { Machine } from '../../sim/machine/machine.ts';
import { color, EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';

export interface MapOptions {
  memory?: string;
  iomem?: string;
  dmesg?: string;
  svg?: string;
  html?: string;
  json?: boolean;
  width?: string;
  pageSize?: string;
  simMemory?: string;
  simNuma?: string;
  simCmdline?: string;
  simKexec?: boolean;
}

export interface MapIo {
  out(s: string): void;
  /** Progress lines (stderr). */
  progress?(s: string): void;
}
const stdio: MapIo = {
  out: (s) => process.stdout.write(s),
  progress: (s) => {
    if (process.stderr.isTTY) process.stderr.write(`${s}\n`);
  },
};

const usage = (m: string, expected?: string): KhoError =>
  new KhoError('CLI_USAGE', m, expected === undefined ? {} : { expected });

/** Simulated machines from this size on take a second or more to boot: say so. */
const PROGRESS_FROM = 64n << 30n;

/** Build the map the options ask for. Throws KhoError (CLI_* for usage) or Node I/O errors. */
export function mapFromOptions(path: string | undefined, opts: MapOptions, io: MapIo = stdio): MemoryMap {
  if (opts.svg !== undefined && opts.html !== undefined) throw usage('give --svg or --html, not both');
  let pageSize: number | undefined;
  if (opts.pageSize !== undefined) {
    pageSize = Number(opts.pageSize);
    if (![4096, 16384, 65536].includes(pageSize))
      throw usage(`page size '${opts.pageSize}' is not supported`, '4096, 16384 or 65536');
  }
  if (opts.simMemory !== undefined) {
    if (
      path !== undefined ||
      opts.memory !== undefined ||
      opts.iomem !== undefined ||
      opts.dmesg !== undefined
    )
      throw usage('--sim-memory builds a simulated machine: give no PATH, --memory, --iomem or --dmesg');
    let numa = 1;
    if (opts.simNuma !== undefined) {
      if (!/^\d{1,2}$/.test(opts.simNuma))
        throw usage(`--sim-numa '${opts.simNuma}' is not a node count`, '1 to 64');
      numa = Number(opts.simNuma);
    }
    let machine: Machine;
    try {
      machine = Machine.create({
        memory: opts.simMemory,
        numa,
        ...(pageSize !== undefined ? { pageSize, arch: pageSize === 4096 ? 'x86_64' : 'arm64' } : {}),
      });
    } catch (e) {
      if (e instanceof KhoError) throw usage(e.message, e.expected);
      throw e;
    }
    if (machine.spec.memorySize >= PROGRESS_FROM)
      io.progress?.(`booting a simulated ${formatBytes(machine.spec.memorySize)} machine...`);
    const cmdline = opts.simCmdline ?? 'kho=on';
    // The vectors' kernel, built for the machine's architecture.
    const k = Kernel.boot(machine, { cmdline, image: { ...DEFAULT_IMAGE, arch: machine.spec.arch } });
    if (opts.simKexec) k.kexecLoad({ image: k.image, cmdline, fileLoad: true });
    return buildMemoryMap(mapInputFromKernel(k));
  }
  if (path === undefined)
    throw usage('give a PATH (debugfs kho/out or kho/in, or a root FDT), or --sim-memory SIZE');
  let mem: FileMemory | undefined;
  try {
    if (opts.memory !== undefined) {
      io.progress?.(`reading the memory image ${opts.memory}...`);
      mem = openMemoryImage(opts.memory);
    }
    const h = loadHandoverPath(path, {
      ...(mem ? { memory: mem } : {}),
      ...(pageSize !== undefined ? { pageSize } : {}),
    });
    const input: MapInput = mapInputFromHandover(h, {
      ...(mem ? { memory: mem } : {}),
      ...(opts.iomem !== undefined ? { iomem: readFileSync(opts.iomem, 'latin1') } : {}),
      ...(opts.dmesg !== undefined ? { dmesg: readFileSync(opts.dmesg, 'latin1') } : {}),
      ...(pageSize !== undefined ? { pageSize } : {}),
    });
    return buildMemoryMap(input);
  } finally {
    mem?.close();
  }
}

const hx = (v: bigint) => `0x${v.toString(16)}`;

/** The text summary: the map's header, producers, then every region lane by lane. */
export function formatMapText(map: MemoryMap): string {
  const out: string[] = [];
  const s = map.summary;
  out.push(color.bold(`Memory map of ${map.source}`));
  out.push(
    `  ${hx(map.start)}-${hx(map.end)} (${formatBytes(map.end - map.start)}), ${s.regions} regions in ${map.lanes.length} lanes, page size ${map.pageSize}`,
  );
  if (map.nodes.length)
    out.push(`  nodes: ${map.nodes.map((n) => `${n.nid} [${hx(n.start)}, ${hx(n.end)})`).join(', ')}`);
  out.push(
    `  preserved: ${s.preservedBlocks} blocks, ${formatBytes(s.preservedBytes)}${s.unattributedBlocks ? `, ${s.unattributedBlocks} of unknown producer` : ''}`,
  );
  for (const [p, v] of Object.entries(s.byProducer).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    out.push(`    ${p.padEnd(16)} ${String(v.blocks).padStart(6)} blocks  ${formatBytes(v.bytes)}`);
  const rows = allRegions(map);
  const w = Math.max(18, ...rows.map((r) => hx(r.end).length + 2));
  out.push('');
  out.push(
    color.bold(
      `${'lane'.padEnd(14)} ${'start'.padEnd(w)} ${'end'.padEnd(w)} ${'size'.padStart(10)}  ${'kind'.padEnd(14)} ${'producer'.padEnd(14)} label`,
    ),
  );
  for (const r of rows)
    out.push(
      `${r.lane.padEnd(14)} ${hx(r.start).padEnd(w)} ${hx(r.end).padEnd(w)} ${formatBytes(r.end - r.start).padStart(10)}  ${r.kind.padEnd(14)} ${(r.producer ?? '-').padEnd(14)} ${JSON.stringify(r.label).slice(1, -1)}${r.node !== undefined && r.kind !== 'node' ? ` (node ${r.node})` : ''}`,
    );
  for (const n of map.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}

export function runMap(path: string | undefined, opts: MapOptions, io: MapIo = stdio): number {
  let map: MemoryMap;
  let width: number | undefined;
  try {
    if (opts.width !== undefined) {
      if (!/^\d{3,5}$/.test(opts.width))
        throw usage(`--width '${opts.width}' is not a pixel width`, '400 to 20000');
      width = Number(opts.width);
    }
    map = mapFromOptions(path, opts, io);
  } catch (e) {
    reportError(path, e);
    return e instanceof KhoError && e.code.startsWith('CLI_') ? EXIT_USAGE : EXIT_INVALID;
  }
  try {
    if (opts.svg !== undefined) {
      writeFileSync(opts.svg, renderSvg(map, width !== undefined ? { width } : {}));
      if (!opts.json) io.out(`wrote ${opts.svg}: ${map.summary.regions} regions\n`);
    }
    if (opts.html !== undefined) {
      writeFileSync(opts.html, renderHtml(map));
      if (!opts.json) io.out(`wrote ${opts.html}: ${map.summary.regions} regions\n`);
    }
  } catch (e) {
    reportError(opts.svg ?? opts.html, e);
    return EXIT_INVALID;
  }
  if (opts.json) io.out(`${toJson(map)}\n`);
  else if (opts.svg === undefined && opts.html === undefined) io.out(formatMapText(map));
  return EXIT_OK;
}

export function registerMap(program: Command): void {
  program
    .command('map')
    .description(
      'a picture of physical memory: scratch, preserved ranges by producer, reserve_mem, kexec segments (text, SVG, zoomable HTML)',
    )
    .argument('[path]', 'debugfs directory (kho/out or kho/in) or root FDT file, as kho inspect takes them')
    .option('-m, --memory <image>', 'physical memory: raw file, ELF core, or directory of <16 hex>.bin files')
    .option('--iomem <file>', "the machine's /proc/iomem (RAM, reserved and kernel ranges)")
    .option('--dmesg <file>', 'the kernel log (NUMA node ranges from "Initmem setup node N")')
    .option('--svg <file>', 'write a static SVG (linear per-node overview and a compressed axis)')
    .option('--html <file>', 'write a self-contained zoomable HTML page')
    .option('--json', 'the map model as JSON (u64 values as "0x..." strings; schema below)')
    .option('--width <px>', 'SVG width in pixels (default 1200)')
    .option('--page-size <bytes>', 'page size: 4096 (default), 16384 or 65536')
    .option('--sim-memory <size>', 'map a simulated machine of this size instead (e.g. 2G, 1T)')
    .option('--sim-numa <n>', 'NUMA nodes of the simulated machine (default 1)')
    .option('--sim-cmdline <str>', 'kernel command line of the simulated kernel (default "kho=on")')
    .option('--sim-kexec', 'load a kexec image (kexec -s) in the simulated kernel to show its segments')
    .addHelpText(
      'after',
      `
Examples:
  kho map /sys/kernel/debug/kho/out --iomem /proc/iomem            # text table
  kho map out/ --memory mem/ --iomem iomem --html map.html           # zoomable page, preserved blocks by producer
  kho map out/ --memory dump.elf --iomem iomem --dmesg dmesg --svg map.svg
  kho map out/ --memory mem/ --json > map.json
  kho map --sim-memory 1T --sim-numa 4 --sim-cmdline 'kho=on reserve_mem=8M:2M:trace_buf' --sim-kexec --html sim.html

JSON (--json): { source, pageSize, start, end, nodes: [{nid, start, end}],
  lanes: [{name, regions: [{start, end, kind, label, producer?, node?}]}],
  summary: {regions, preservedBlocks, preservedBytes, unattributedBlocks, byProducer: {NAME: {blocks, bytes}}},
  notes: [string] }   -- end is exclusive; addresses and byte counts are "0x..." strings.
  kind: ram reserved kernel io node scratch-lowmem scratch-global scratch-node reserve_mem preserved
        kho-fdt radix kexec-segment free

Exit status: 0 ok, 1 unreadable or invalid input (or an output file that cannot be written), 2 usage.`,
    )
    .action((path: string | undefined, opts: MapOptions) => {
      process.exitCode = runMap(path, opts);
    });
}
