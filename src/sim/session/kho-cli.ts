/**
 * `kho inspect|validate|diff` inside the simulated shell: kho's own tools run in-process on the machine's
 * files, reading the bytes through the VFS (never the host filesystem).
 *
 * Contract:
 * - `loadHandoverVfs(vfs, path, opts)` is `loadHandoverPath` (src/abi/handover.ts) over a VFS: a debugfs
 *   directory (`.../kho/out`, `.../kho/in`: `fdt`, `sub_fdts/*`, `scratch_*` or `bootmem_*`), a root FDT
 *   file, or one sub-blob file: `loadHandoverFiles` (the CLI's classification and decoding) reading the VFS.
 *   `opts.memory` (the machine's physical memory, `--memory /dev/mem`) lets the decoder walk the
 *   preserved-memory map and read whole blobs, as `--memory IMAGE` does on a real machine's dump.
 * - `khoCliCommand(ctx)` is the shell command. Output is the CLI's (`formatHandover`, `findingLine`,
 *   `formatDiff`, `toJson`); exit statuses are the CLI's: inspect/diff 0 decoded, 1 unreadable; validate 0
 *   valid, 1 invalid; 2 usage. Errors are the CLI's one line, `kho: PATH: CODE: message`.
 */
import { basename } from 'node:path';
import { diffHandovers, type Handover, type HandoverFiles, loadHandoverFiles } from '../../abi/handover.ts';
import type { PhysMemory } from '../../abi/memory/image.ts';
import { PROFILE_NAMES, type ProfileName } from '../../abi/profile.ts';
import { formatDiff, formatHandover } from '../../cli/commands/inspect-format.ts';
import { formatValidation, validationOf } from '../../cli/commands/validate.ts';
import { toJson } from '../../cli/common.ts';
import { type Finding, findingFromError, KhoError } from '../../errors.ts';
import type { CommandHandler, CommandResult } from '../shell/engine.ts';
import { errnoOf, type Vfs } from '../shell/vfs.ts';

const join = (dir: string, name: string) => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);

function ioError(path: string, e: unknown): KhoError {
  const errno = errnoOf(e);
  const msg = e instanceof Error ? e.message : String(e);
  return new KhoError(`IO_${errno ?? 'EIO'}`, `cannot read ${path}: ${msg}`, { path });
}

/** The shell's VFS as the `HandoverFiles` that `loadHandoverFiles` reads through. */
function vfsFiles(vfs: Vfs): HandoverFiles {
  return {
    isDir(path) {
      try {
        return vfs.stat(path).type === 'dir';
      } catch (e) {
        throw ioError(path, e);
      }
    },
    exists: (path) => vfs.exists(path),
    list: (dir) => vfs.readdir(dir),
    read(path) {
      try {
        return vfs.readFile(path);
      } catch (e) {
        throw ioError(path, e);
      }
    },
    readText(path) {
      try {
        return Buffer.from(vfs.readFile(path)).toString('latin1');
      } catch {
        return undefined;
      }
    },
    join,
    parentName: (path) => basename(vfs.absolute(path).replace(/\/[^/]*$/, '')),
    memoryHint: '--memory /dev/mem',
  };
}

/** `loadHandoverPath` over the shell's VFS (see the module contract). */
export function loadHandoverVfs(
  vfs: Vfs,
  path: string,
  opts: { memory?: PhysMemory; profile?: ProfileName; pageSize?: number } = {},
): Handover {
  return loadHandoverFiles(vfsFiles(vfs), path, opts);
}

export const KHO_SHELL_USAGE = `usage: kho inspect PATH [--memory /dev/mem] [--profile P] [--json]
       kho validate PATH [--memory /dev/mem] [--profile P] [--json]
       kho diff A B [--profile P] [--json]
PATH: a debugfs directory (/sys/kernel/debug/kho/out or /in), a root FDT file (out/fdt, in/fdt) or a
sub-blob file (sub_fdts/NAME). --memory /dev/mem reads the machine's physical memory (the preserved-memory
map, whole blobs). The other kho commands run outside the simulated machine.
`;

export interface KhoCliContext {
  vfs: Vfs;
  memory: () => PhysMemory;
  pageSize: () => number;
}

interface Parsed {
  args: string[];
  json: boolean;
  profile?: ProfileName;
  memory: boolean;
}

function parseArgs(argv: string[]): Parsed | string {
  const out: Parsed = { args: [], json: false, memory: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (flag: string): string | undefined => {
      if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
      if (a === flag) return argv[++i];
      return undefined;
    };
    if (a === '--json') out.json = true;
    else if (a === '-p' || a.startsWith('--profile')) {
      const v = a === '-p' ? argv[++i] : value('--profile');
      if (v === undefined || !(PROFILE_NAMES as string[]).includes(v))
        return `kho: CLI_BAD_PROFILE: unknown profile '${v ?? ''}' (expected ${PROFILE_NAMES.join(', ')})`;
      out.profile = v as ProfileName;
    } else if (a === '-m' || a.startsWith('--memory')) {
      const v = a === '-m' ? argv[++i] : value('--memory');
      if (v !== '/dev/mem')
        return `kho: CLI_USAGE: --memory '${v ?? ''}': inside the simulated machine only /dev/mem (its physical memory) is a memory image`;
      out.memory = true;
    } else if (a.startsWith('-') && a !== '-') return `kho: CLI_USAGE: unknown option '${a}'`;
    else out.args.push(a);
  }
  return out;
}

const errLine = (path: string | undefined, e: unknown): string => {
  const prefix = path === undefined ? 'kho: ' : `kho: ${path}: `;
  if (e instanceof KhoError) return `${prefix}${e.describe()}\n`;
  return `${prefix}KHO_INTERNAL: ${e instanceof Error ? e.message : String(e)}\n`;
};

/** The `kho` command of the simulated shell (see the module contract). */
export function khoCliCommand(c: KhoCliContext): CommandHandler {
  return ({ argv }): CommandResult => {
    const sub = argv[1];
    if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h')
      return sub === undefined ? { stderr: KHO_SHELL_USAGE, status: 2 } : { stdout: KHO_SHELL_USAGE };
    if (!['inspect', 'validate', 'diff'].includes(sub))
      return {
        stderr: `kho: '${sub}' does not run inside the simulated machine (here: inspect, validate, diff)\n${KHO_SHELL_USAGE}`,
        status: 2,
      };
    const p = parseArgs(argv.slice(2));
    if (typeof p === 'string') return { stderr: `${p}\n`, status: 2 };
    const want = sub === 'diff' ? 2 : 1;
    if (p.args.length !== want)
      return {
        stderr: `kho ${sub}: expected ${want} path${want > 1 ? 's' : ''}\n${KHO_SHELL_USAGE}`,
        status: 2,
      };
    const load = (path: string) =>
      loadHandoverVfs(c.vfs, path, {
        ...(p.memory ? { memory: c.memory() } : {}),
        ...(p.profile ? { profile: p.profile } : {}),
        pageSize: c.pageSize(),
      });
    if (sub === 'inspect') {
      try {
        const h = load(p.args[0]);
        return { stdout: p.json ? `${toJson(h)}\n` : formatHandover(h) };
      } catch (e) {
        return { stderr: errLine(p.args[0], e), status: 1 };
      }
    }
    if (sub === 'validate') {
      const path = p.args[0];
      let findings: Finding[];
      try {
        findings = load(path).findings;
      } catch (e) {
        if (!(e instanceof KhoError)) return { stderr: errLine(path, e), status: 1 };
        findings = [findingFromError(e)];
      }
      const res = validationOf(path, findings);
      return { stdout: formatValidation(res, p.json), status: res.valid ? 0 : 1 };
    }
    const [a, b] = p.args;
    let ha: Handover;
    let hb: Handover;
    try {
      ha = load(a);
    } catch (e) {
      return { stderr: errLine(a, e), status: 1 };
    }
    try {
      hb = load(b);
    } catch (e) {
      return { stderr: errLine(b, e), status: 1 };
    }
    const d = diffHandovers(ha, hb);
    return { stdout: p.json ? `${toJson({ a, b, ...d })}\n` : formatDiff(d, a, b) };
  };
}
