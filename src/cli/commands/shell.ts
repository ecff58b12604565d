/**
 * `kho shell [--mem 8G] [--numa N] [--page-size 4K] [--arch A] [--image FILE] [--cmdline "..."] [--host DIR]`:
 * a shell on a simulated machine where the user guide's commands work as written.
 *
 * On a terminal it is interactive (prompt, history, Tab completion); otherwise it reads commands from
 * stdin, one per line, and prints only their output, so it can be scripted (`kho shell < script`).
 * Exit status: the last command's status (or `exit N`); 2 for bad options (a machine that cannot be
 * built, an image that cannot be read).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KhoError } from '../../errors.ts';
import type { Arch } from '../../sim/machine/spec.ts';
import {
  DEFAULT_CMDLINE,
  DEFAULT_MEM,
  imageSpecFromFile,
  Session,
  type SessionOptions,
} from '../../sim/session/session.ts';
import { runRepl } from '../../sim/shell/repl.ts';
import { EXIT_USAGE, reportError } from '../common.ts';

export interface ShellCliOptions {
  mem?: string;
  numa?: string;
  pageSize?: string;
  arch?: string;
  image?: string;
  cmdline?: string;
  host?: string;
}

/** Session options from the CLI's (usage errors are KhoError `CLI_USAGE`/`SIM_BAD_SPEC`). */
export function sessionOptions(o: ShellCliOptions): SessionOptions {
  const so: SessionOptions = { mem: o.mem ?? DEFAULT_MEM };
  if (o.numa !== undefined) {
    if (!/^\d{1,2}$/.test(o.numa))
      throw new KhoError('CLI_USAGE', `--numa '${o.numa}' is not a node count`, { expected: '1 to 64' });
    so.numa = Number(o.numa);
  }
  if (o.pageSize !== undefined) so.pageSize = o.pageSize;
  if (o.arch !== undefined) {
    if (o.arch !== 'x86_64' && o.arch !== 'arm64')
      throw new KhoError('CLI_USAGE', `--arch '${o.arch}' is not supported`, { expected: 'x86_64 or arm64' });
    so.arch = o.arch as Arch;
  }
  if (o.cmdline !== undefined) so.cmdline = o.cmdline;
  if (o.host !== undefined) so.host = o.host;
  if (o.image !== undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(o.image);
    } catch (e) {
      throw new KhoError('IO_ENOENT', `cannot read ${o.image}: ${(e as Error).message}`, { path: o.image });
    }
    so.image = imageSpecFromFile(bytes, o.image, so.arch ?? 'x86_64');
  }
  return so;
}

export async function runShell(o: ShellCliOptions): Promise<number> {
  let s: Session;
  try {
    s = new Session(sessionOptions(o));
  } catch (e) {
    reportError(o.image, e);
    return EXIT_USAGE;
  }
  const spec = s.machine.spec;
  const banner =
    `kho shell: simulated ${s.kernel.release} on ${Number(spec.memorySize >> 20n) / 1024}G, ${spec.numaNodes} node(s), ${spec.arch}\n` +
    `command line: ${s.kernel.cmdline}\n` +
    "Type `help` for the user guide's commands, `exit` or Ctrl-D to leave.\n";
  return runRepl(s.shell, { banner });
}

export function registerShell(program: Command): void {
  program
    .command('shell')
    .description(
      'a shell on a simulated machine: the KHO user guide, command by command (scriptable on stdin)',
    )
    .option('--mem <size>', 'installed memory', DEFAULT_MEM)
    .option('--numa <n>', 'NUMA nodes (memory split evenly)', '1')
    .option('--page-size <size>', 'page size: 4K (16K, 64K on arm64)')
    .option('--arch <arch>', 'x86_64 (default) or arm64')
    .option(
      '--image <file>',
      'first kernel: a bzImage, arm64 Image or simulated-image JSON description (host file)',
    )
    .option('--cmdline <line>', `kernel command line (default: "${DEFAULT_CMDLINE}")`)
    .option('--host <dir>', 'show a host directory read-only at /host (real images to kexec -l)')
    .addHelpText(
      'after',
      `
Inside: the guide's commands as written (kexec -l /boot/bzImage --initrd /boot/initrd -s, kexec -e,
cat /sys/kernel/debug/kho/out/scratch_len, dmesg | grep KHO, uname -r, cat /proc/cmdline, reboot),
small tools (ls, find, cat, grep, head, tail, wc, xxd, sha256sum, pipes), kho inspect|validate|diff on
the machine's files, khoctl to preserve your own memory, memdump/memwrite for reserve_mem regions.
Type help inside for the list.

Examples:
  kho shell
  kho shell --mem 2G --cmdline "kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:khovec_region"
  kho shell --numa 2 --mem 16G
  printf 'kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline -s\\nkexec -e\\ndmesg | grep KHO\\n' | kho shell
  kho shell --host ./images     # then: kexec -l /host/bzImage --reuse-cmdline -s`,
    )
    .action(async (o: ShellCliOptions) => {
      process.exitCode = await runShell(o);
    });
}
