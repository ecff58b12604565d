/**
 * `kho debugfs export DIR` and `kho debugfs mount DIR`: a KHO debugfs tree as real files, or mounted
 * read-only with FUSE.
 *
 * Contract: the tree comes from `--from SRC` (a captured `/sys/kernel/debug/kho` copy, or a capture
 * holding `out/` and `in/`, as the vectors' `stage<N>/`) or from `--sim` (a simulated machine booted
 * with `--sim-cmdline`, kexec'd `--sim-kexec` times; `--sim-subtree NAME` adds user producers, to try
 * names). Names are made safe as src/tools/debugfs-tree.ts documents; every rename is reported.
 * Exit status: 0 ok; 1 a DIR that is not empty (without --force), an entry refused (symlink or file in
 * the way), an unreadable source, or FUSE unavailable; 2 usage.
 * JSON (`export --json`): docs/json-schema.md (`kho debugfs export --json`).
 */
import type { Command } from 'commander';
import { KhoError } from '../../errors.ts';
import { exportTree, RENAMES_FILE } from '../../tools/debugfs-export.ts';
import { mountTree } from '../../tools/debugfs-mount.ts';
import { type DebugfsTree, nameBytes, simulatedTree, treeFromDir } from '../../tools/debugfs-tree.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type Io, stdio } from './inspect.ts';

export interface DebugfsSourceOptions {
  from?: string;
  sim?: boolean;
  simMem?: string;
  simNuma?: string;
  simCmdline?: string;
  simKexec?: string;
  simSubtree?: string[];
}

export interface DebugfsExportOptions extends DebugfsSourceOptions {
  force?: boolean;
  json?: boolean;
}

const usage = (m: string, expected?: string) =>
  new KhoError('CLI_USAGE', m, expected === undefined ? {} : { expected });

/** The tree the options name (usage errors are `CLI_USAGE`). */
export function sourceTree(o: DebugfsSourceOptions): DebugfsTree {
  if (!!o.from === !!o.sim) throw usage('give exactly one source: --from DIR or --sim', '--from DIR | --sim');
  if (o.from) return treeFromDir(o.from);
  let kexecs = 1;
  if (o.simKexec !== undefined) {
    if (!/^\d{1,2}$/.test(o.simKexec)) throw usage(`--sim-kexec '${o.simKexec}' is not a count`, '0 to 99');
    kexecs = Number(o.simKexec);
  }
  let numa = 1;
  if (o.simNuma !== undefined) {
    if (!/^\d{1,2}$/.test(o.simNuma)) throw usage(`--sim-numa '${o.simNuma}' is not a node count`, '1 to 64');
    numa = Number(o.simNuma);
  }
  return simulatedTree({
    ...(o.simMem ? { memory: o.simMem } : {}),
    numa,
    ...(o.simCmdline !== undefined ? { cmdline: o.simCmdline } : {}),
    kexecs,
    ...(o.simSubtree ? { extraSubtrees: o.simSubtree } : {}),
    // Progress on a terminal only (a big machine or several kexecs take seconds).
    onStep: (m) => {
      if (process.stderr.isTTY) process.stderr.write(`kho: ${m}\n`);
    },
  }).tree;
}

const isUsage = (e: unknown) => e instanceof KhoError && e.code.startsWith('CLI_');

/**
 * DIR and the source tree for `kho debugfs VERB DIR`, or the exit status after reporting why there is none:
 * no DIR (usage), or a source that cannot be read.
 */
function treeFor(
  verb: 'export' | 'mount',
  dir: string | undefined,
  o: DebugfsSourceOptions,
): { dir: string; tree: DebugfsTree } | number {
  if (!dir) {
    reportError(
      undefined,
      usage(`kho debugfs ${verb} needs a directory`, `kho debugfs ${verb} DIR --from SRC | --sim`),
    );
    return EXIT_USAGE;
  }
  try {
    return { dir, tree: sourceTree(o) };
  } catch (e) {
    reportError(o.from, e);
    return isUsage(e) ? EXIT_USAGE : EXIT_INVALID;
  }
}

export function runDebugfsExport(
  dirArg: string | undefined,
  o: DebugfsExportOptions,
  io: Io = stdio,
): number {
  const src = treeFor('export', dirArg, o);
  if (typeof src === 'number') return src;
  const { dir, tree } = src;
  try {
    const r = exportTree(tree, dir, { force: !!o.force });
    if (o.json) {
      io.out(
        `${toJson({
          source: tree.source ?? null,
          dir: r.dir,
          files: r.files,
          dirs: r.dirs,
          bytes: r.bytes,
          renamings: r.renamings.map((x) => ({
            ...x,
            rawHex: Buffer.from(nameBytes(x.raw)).toString('hex'),
          })),
          refused: r.refused,
          skipped: r.skipped,
          ok: r.ok,
        })}\n`,
      );
    } else {
      const L = [
        `exported ${tree.source ?? 'tree'} to ${r.dir}: ${r.files} files, ${r.dirs} directories, ${r.bytes} bytes`,
      ];
      for (const x of r.renamings)
        L.push(`renamed ${x.dir}/${JSON.stringify(x.raw)} -> ${x.name} (${x.why})`);
      if (r.renamings.length) L.push(`the renames are listed in ${r.dir}/${RENAMES_FILE}`);
      for (const x of r.skipped) L.push(`skipped ${x.path}: ${x.why}`);
      if (r.files === 0 && r.dirs === 0)
        L.push(
          'the source has no kho/ tree: KHO is off in that kernel (kho=off, or not kho=on without CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT), or CONFIG_KEXEC_HANDOVER_DEBUGFS is unset',
        );
      io.out(`${L.join('\n')}\n`);
    }
    for (const x of r.refused) process.stderr.write(`kho: ${dir}: KHO_EXPORT_REFUSED: ${x.path}: ${x.why}\n`);
    return r.ok ? EXIT_OK : EXIT_INVALID;
  } catch (e) {
    reportError(dir, e);
    return EXIT_INVALID;
  }
}

export async function runDebugfsMount(
  dirArg: string | undefined,
  o: DebugfsSourceOptions,
  io: Io = stdio,
): Promise<number> {
  const src = treeFor('mount', dirArg, o);
  if (typeof src === 'number') return src;
  const { dir, tree } = src;
  try {
    const m = await mountTree(tree, dir);
    for (const x of m.renamings)
      io.out(`renamed ${x.dir}/${JSON.stringify(x.raw)} -> ${x.name} (${x.why})\n`);
    io.out(
      `mounted ${tree.source ?? 'tree'} at ${dir} (read-only); interrupt (Ctrl-C) or SIGTERM to unmount\n`,
    );
    await new Promise<void>((resolve) => {
      const done = () => {
        process.off('SIGINT', done);
        process.off('SIGTERM', done);
        resolve();
      };
      process.on('SIGINT', done);
      process.on('SIGTERM', done);
    });
    try {
      await m.unmount();
    } catch (e) {
      reportError(
        dir,
        new KhoError('KHO_FUSE_UNMOUNT_FAILED', `${(e as Error).message}`, {
          path: dir,
          expected: `umount ${dir} by hand`,
        }),
      );
      // The FUSE thread keeps the process alive while mounted: leave now.
      process.exit(EXIT_INVALID);
    }
    io.out(`unmounted ${dir}\n`);
    return EXIT_OK;
  } catch (e) {
    reportError(dir, e);
    return EXIT_INVALID;
  }
}

function sourceOptions(c: Command): Command {
  return c
    .option('--from <dir>', 'a captured tree: a /sys/kernel/debug/kho copy, or a directory with out/ and in/')
    .option('--sim', 'boot a simulated machine and take its tree')
    .option('--sim-mem <size>', 'simulated memory (default 2G)')
    .option('--sim-numa <n>', 'simulated NUMA nodes (default 1)')
    .option(
      '--sim-cmdline <cmdline>',
      'kernel command line (default: kho=on kho_scratch=16M,64M,32M reserve_mem=...)',
    )
    .option('--sim-kexec <n>', 'kexecs before the tree is taken (default 1)')
    .option(
      '--sim-subtree <names...>',
      "extra user producers' sub-tree names (to see how names are written)",
    );
}

export function registerDebugfs(program: Command): void {
  const g = program
    .command('debugfs')
    .description('a KHO debugfs tree (/sys/kernel/debug/kho) as files or a FUSE mount');
  sourceOptions(
    g
      .command('export')
      .description('write a debugfs tree as real files under DIR (names made safe, never outside DIR)')
      .argument('[dir]', 'the directory to write (created if missing; must be empty unless --force)'),
  )
    .option('--force', 'write into a directory that is not empty (files replaced, symlinks never followed)')
    .option('--json', 'JSON report (schema in docs/json-schema.md)')
    .addHelpText(
      'after',
      `
Names come from producers: anything but A-Z a-z 0-9 - _ . , + = @ ~ is written as %XX (so '/', '..',
NUL and control characters cannot leave DIR); '.' and '..' become %2E and %2E%2E; names over 200 bytes
are cut and end in %~ and a hash; names equal but for case get %~2, %~3. Every rename is printed and
listed in DIR/${RENAMES_FILE}.
Exit status: 0 ok, 1 DIR not empty / an entry refused / unreadable source, 2 usage.

Examples:
  kho debugfs export /tmp/kho --sim                          # a simulated machine after one kexec
  kho debugfs export /tmp/kho --sim --sim-kexec 0 --sim-cmdline 'kho=on'
  kho debugfs export /tmp/kho --from test/vectors/linux-7.3.4/flat-explicit/stage1 --json
  kho inspect /tmp/kho/kho/out                               # then read it like a real one`,
    )
    .action((dir: string | undefined, o: DebugfsExportOptions) => {
      process.exitCode = runDebugfsExport(dir, o);
    });
  sourceOptions(
    g
      .command('mount')
      .description('mount a debugfs tree read-only at DIR with FUSE (optional: fuse-native + libfuse2)')
      .argument('[dir]', 'an empty directory to mount on'),
  )
    .addHelpText(
      'after',
      `
Runs until interrupted (Ctrl-C or SIGTERM), then unmounts. Needs /dev/fuse, the optional npm package
fuse-native@2.2.6 and libfuse 2 (Debian: apt-get install libfuse2); without them it says which is
missing and exits 1 (kho debugfs export works everywhere). Names are written as by export.
Exit status: 0 unmounted cleanly, 1 FUSE unavailable / DIR not an empty directory / unreadable source,
2 usage.

Examples:
  kho debugfs mount /mnt/kho --sim &  ls -l /mnt/kho/kho/in/sub_fdts; kill %1
  kho debugfs mount /mnt/kho --from test/vectors/linux-7.3.4/luo-memfd/stage2`,
    )
    .action(async (dir: string | undefined, o: DebugfsSourceOptions) => {
      process.exitCode = await runDebugfsMount(dir, o);
    });
}
