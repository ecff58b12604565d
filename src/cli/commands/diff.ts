/**
 * `kho diff A B [--memory-a IMAGE] [--memory-b IMAGE] [--profile P] [--json]`: what differs between two
 * handovers (each a root FDT file, sub-blob file or debugfs directory): sub-blobs added, removed,
 * changed; preserved ranges gained and lost (when both maps are decoded from images); root, metadata
 * and reserve_mem changes. Exit status: 0 (whether or not they differ), 1 unreadable input, 2 usage.
 */
import type { Command } from 'commander';
import { diffHandovers, type Handover } from '../../abi/handover.ts';
import { PROFILE_NAMES } from '../../abi/profile.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type Io, isUsageError, loadForCli, stdio } from './inspect.ts';
import { formatDiff } from './inspect-format.ts';

export interface DiffOptions {
  memoryA?: string;
  memoryB?: string;
  profile?: string;
  json?: boolean;
}

export function runDiff(a: string, b: string, opts: DiffOptions, io: Io = stdio): number {
  const load = (p: string, mem: string | undefined): Handover =>
    loadForCli(p, {
      ...(mem !== undefined ? { memory: mem } : {}),
      ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
    });
  let ha: Handover;
  let hb: Handover;
  try {
    ha = load(a, opts.memoryA);
  } catch (e) {
    reportError(a, e);
    return isUsageError(e) ? EXIT_USAGE : EXIT_INVALID;
  }
  try {
    hb = load(b, opts.memoryB);
  } catch (e) {
    reportError(b, e);
    return EXIT_INVALID;
  }
  const d = diffHandovers(ha, hb);
  io.out(opts.json ? `${toJson({ a, b, ...d })}\n` : formatDiff(d, a, b));
  return EXIT_OK;
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('compare two KHO handovers (e.g. out/fdt before and in/fdt after a kexec)')
    .argument('<a>', 'first handover: root FDT file, sub-blob file, or debugfs directory')
    .argument('<b>', 'second handover')
    .option('--memory-a <image>', 'physical memory image for A')
    .option('--memory-b <image>', 'physical memory image for B')
    .option('-p, --profile <profile>', `ABI profile for both (${PROFILE_NAMES.join(', ')})`)
    .option(
      '--json',
      'JSON output: { a, b, root[], subBlobs{added,removed,changed}, preserved{gained,lost}, metadata[], reserveMem, same }',
    )
    .addHelpText(
      'after',
      `
Examples:
  kho diff stage1/out stage2/in
  kho diff stage1/out/fdt.whole stage2/in/fdt --memory-a stage1/mem --json`,
    )
    .action((a: string, b: string, opts: DiffOptions) => {
      process.exitCode = runDiff(a, b, opts);
    });
}
