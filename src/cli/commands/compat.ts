/**
 * `kho compat A B [--a-config FILE] [--b-config FILE] [--json]`: can kernel A hand over to kernel B?
 *
 * Contract: A and B are each a simulated-kernel JSON description, a bzImage / arm64 Image, or a KHO
 * blob (root FDT, debugfs `out/` or `in/` dir, or a dir holding `out/`); `--a-config` / `--b-config`
 * give a kernel `.config` for a side whose Kconfig the file does not carry. The answer comes from
 * `checkCompat()` in src/tools/compat.ts (ABI verdict, per producer kept / dropped / refused / unknown).
 * Exit status: 0 compatible, 1 not (incompatible, degraded, unknown, or unreadable input), 2 usage.
 * JSON: docs/json-schema.md (`kho compat --json`), u64-free; versions are strings.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KhoError } from '../../errors.ts';
import {
  checkCompat,
  compatJson,
  describeKernel,
  formatCompat,
  type Kconfig,
  parseKconfig,
} from '../../tools/compat.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type Io, stdio } from './inspect.ts';

export interface CompatOptions {
  aConfig?: string;
  bConfig?: string;
  json?: boolean;
}

function readConfig(path: string | undefined): Kconfig | undefined {
  if (path === undefined) return undefined;
  const text = readFileSync(path, 'latin1');
  const c = parseKconfig(text);
  if (Object.keys(c).length === 0)
    throw new KhoError('KHO_COMPAT_BAD_CONFIG', `${path} has no CONFIG_ lines`, {
      path,
      expected: 'a kernel .config (CONFIG_X=y, # CONFIG_X is not set)',
    });
  return c;
}

export function runCompat(
  a: string | undefined,
  b: string | undefined,
  opts: CompatOptions,
  io: Io = stdio,
): number {
  if (a === undefined || b === undefined) {
    reportError(
      undefined,
      new KhoError('CLI_USAGE', 'kho compat needs two kernels, A and B', { expected: 'kho compat A B' }),
    );
    return EXIT_USAGE;
  }
  let current = a;
  try {
    const ac = readConfig(opts.aConfig);
    const bc = readConfig(opts.bConfig);
    const sa = describeKernel(a, { ...(ac ? { config: ac } : {}), role: 'A' });
    current = b;
    const sb = describeKernel(b, { ...(bc ? { config: bc } : {}), role: 'B' });
    const r = checkCompat(sa, sb);
    io.out(opts.json ? `${toJson(compatJson(r))}\n` : formatCompat(r));
    return r.verdict === 'compatible' ? EXIT_OK : EXIT_INVALID;
  } catch (e) {
    reportError(current, e);
    return EXIT_INVALID;
  }
}

export function registerCompat(program: Command): void {
  program
    .command('compat')
    .description('whether kernel A can hand its KHO state over to kernel B, producer by producer')
    .argument(
      '[A]',
      'the running / outgoing kernel: description JSON, bzImage, Image, root FDT or debugfs dir',
    )
    .argument('[B]', 'the next kernel: same kinds')
    .option('--a-config <file>', "A's kernel .config (for a bzImage, or to override a description)")
    .option('--b-config <file>', "B's kernel .config")
    .option('--json', 'JSON output (schema in docs/json-schema.md)')
    .addHelpText(
      'after',
      `
A kernel accepts a handover only when the root compatible equals its own; otherwise it logs
"KHO: setup: handover FDT (0x...) is incompatible with '<its ABI>': 1" and boots without KHO.
Per producer (kexec-metadata, memblock, kho_test, LUO, ...): kept, dropped (B lacks the producer's
Kconfig option or era), refused (B rejects A's version; LUO panics), or unknown.
Exit status: 0 compatible, 1 incompatible / degraded / unknown / unreadable input, 2 usage.

Examples:
  kho compat a.json b.json                                  # two simulated-kernel descriptions
  kho compat /sys/kernel/debug/kho/out /boot/vmlinuz-7.4.1 --b-config /boot/config-7.4.1
  kho compat stage1/out/fdt next-kernel.json --json`,
    )
    .action((a: string | undefined, b: string | undefined, opts: CompatOptions) => {
      process.exitCode = runCompat(a, b, opts);
    });
}
