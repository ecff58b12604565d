/**
 * `kho inspect FDT|DIR [--memory IMAGE] [--profile P] [--json]`: the whole handover, decoded and named.
 *
 * Accepts a root FDT file (debugfs `out/fdt` or `in/fdt`, cut-short ones included), a single sub-blob
 * file (`sub_fdts/<name>`), or a debugfs directory (`/sys/kernel/debug/kho/out` or `/in`). With
 * `--memory` (raw image, ELF core such as QEMU's dump-guest-memory or /proc/vmcore, or a directory of
 * `<16 hex>.bin` pieces) the preserved-memory map and the sub-blobs are read from physical memory.
 * Exit status: 0 decoded (findings or not), 1 unreadable input, 2 usage. The JSON form is documented
 * in docs/json-schema.md.
 */
import type { Command } from 'commander';
import { type Handover, loadHandoverPath } from '../../abi/handover.ts';
import { PROFILE_NAMES, type ProfileName } from '../../abi/profile.ts';
import { KhoError } from '../../errors.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { formatHandover } from './inspect-format.ts';

export interface Io {
  out(s: string): void;
}
export const stdio: Io = { out: (s) => process.stdout.write(s) };

export interface InspectOptions {
  memory?: string;
  profile?: string;
  pageSize?: string;
  fdtAt?: string;
  json?: boolean;
}

export function checkProfile(p: string | undefined): ProfileName | undefined {
  if (p === undefined) return undefined;
  if (!(PROFILE_NAMES as string[]).includes(p)) {
    throw new KhoError('CLI_BAD_PROFILE', `unknown profile '${p}'`, { expected: PROFILE_NAMES.join(', ') });
  }
  return p as ProfileName;
}

export function isUsageError(e: unknown): boolean {
  return e instanceof KhoError && e.code.startsWith('CLI_');
}

/** Load for the CLI: profile and memory options applied. Throws KhoError / Node I/O errors. */
export function loadForCli(path: string | undefined, opts: InspectOptions): Handover {
  const profile = checkProfile(opts.profile);
  let pageSize: number | undefined;
  if (opts.pageSize !== undefined) {
    pageSize = Number(opts.pageSize);
    if (![4096, 16384, 65536].includes(pageSize)) {
      throw new KhoError('CLI_BAD_PAGE_SIZE', `page size '${opts.pageSize}' is not supported`, {
        expected: '4096, 16384 or 65536',
      });
    }
  }
  let fdtAt: bigint | undefined;
  if (opts.fdtAt !== undefined) {
    if (!/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(opts.fdtAt)) {
      throw new KhoError('CLI_BAD_ADDRESS', `'${opts.fdtAt}' is not a physical address`, {
        expected: 'a hex (0x...) or decimal u64',
      });
    }
    fdtAt = BigInt(opts.fdtAt);
  }
  if (path === undefined && fdtAt === undefined) {
    throw new KhoError('CLI_NO_INPUT', 'give a path, or --memory and --fdt-at', {
      expected: 'a root FDT file, sub-blob file or debugfs directory',
    });
  }
  return loadHandoverPath(path, {
    ...(opts.memory !== undefined ? { memoryPath: opts.memory } : {}),
    ...(profile ? { profile } : {}),
    ...(pageSize !== undefined ? { pageSize } : {}),
    ...(fdtAt !== undefined ? { fdtAt } : {}),
  });
}

/** Serializable form of a handover for --json: the preserved block list is included. */
export function handoverJson(h: Handover): unknown {
  return h;
}

export function runInspect(path: string | undefined, opts: InspectOptions, io: Io = stdio): number {
  let h: Handover;
  try {
    h = loadForCli(path, opts);
  } catch (e) {
    reportError(path, e);
    return isUsageError(e) ? EXIT_USAGE : EXIT_INVALID;
  }
  io.out(opts.json ? `${toJson(handoverJson(h))}\n` : formatHandover(h));
  return EXIT_OK;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description(
      'decode a KHO handover: root FDT, sub-blobs by kind, preserved memory, reserve_mem, metadata',
    )
    .argument('[path]', 'root FDT file, sub-blob file, or debugfs directory (kho/out or kho/in)')
    .option('-m, --memory <image>', 'physical memory: raw file, ELF core, or directory of <16 hex>.bin files')
    .option('--fdt-at <addr>', 'read the root FDT from the memory image at this physical address')
    .option(
      '-p, --profile <profile>',
      `ABI profile (${PROFILE_NAMES.join(', ')}); default: from the compatible`,
    )
    .option('--page-size <bytes>', 'page size of the machine: 4096 (default), 16384 or 65536')
    .option('--json', 'JSON output (u64 values as "0x..." strings; see docs/json-schema.md)')
    .addHelpText(
      'after',
      `
Examples:
  kho inspect /sys/kernel/debug/kho/out
  kho inspect /sys/kernel/debug/kho/in/fdt --json
  kho inspect out/fdt --memory dump.elf          # finds the whole blob when out/fdt is cut short
  kho inspect out/sub_fdts/memblock
  kho inspect --memory vmcore --fdt-at 0x3c1f000   # the root FDT straight from memory
  kho inspect fdt --profile kho-v3`,
    )
    .action((path: string | undefined, opts: InspectOptions) => {
      process.exitCode = runInspect(path, opts);
    });
}
