/**
 * `kho inspect|validate|diff` inside the simulated shell: kho's own tools run in-process on the machine's
 * files, reading the bytes through the VFS (never the host filesystem).
 *
 * Contract:
 * - `loadHandoverVfs(vfs, path, opts)` is `loadHandoverPath` (src/abi/handover.ts) over a VFS: a debugfs
 *   directory (`.../kho/out`, `.../kho/in`: `fdt`, `sub_fdts/*`, `scratch_*` or `bootmem_*`), a root FDT
 *   file, or one sub-blob file, classified by the same rules, decoded with `decodeHandover` from bytes.
 *   `opts.memory` (the machine's physical memory, `--memory /dev/mem`) lets the decoder walk the
 *   preserved-memory map and read whole blobs, as `--memory IMAGE` does on a real machine's dump.
 * - `khoCliCommand(ctx)` is the shell command. Output is the CLI's (`formatHandover`, `findingLine`,
 *   `formatDiff`, `toJson`); exit statuses are the CLI's: inspect/diff 0 decoded, 1 unreadable; validate 0
 *   valid, 1 invalid; 2 usage. Errors are the CLI's one line, `kho: PATH: CODE: message`.
 */
import { basename } from 'node:path';
import { decodeHandover, diffHandovers, type Handover, type LoadOptions } from '../../abi/handover.ts';
import { KHO_METADATA_NODE_NAME } from '../../abi/kexec-metadata.ts';
import { KHO_TEST_COMPAT } from '../../abi/kho-test.ts';
import { MEMBLOCK_KHO_NODE_COMPATIBLE } from '../../abi/memblock.ts';
import type { PhysMemory } from '../../abi/memory/image.ts';
import { PROFILE_NAMES, type ProfileName } from '../../abi/profile.ts';
import { findingLine, formatDiff, formatHandover } from '../../cli/commands/inspect-format.ts';
import { toJson } from '../../cli/common.ts';
import { type Finding, KhoError } from '../../errors.ts';
import { parseFdt } from '../../fdt/reader.ts';
import type { CommandHandler, CommandResult } from '../shell/engine.ts';
import { errnoOf, type Vfs } from '../shell/vfs.ts';

const isFdt = (b: Uint8Array) =>
  b.length >= 4 && b[0] === 0xd0 && b[1] === 0x0d && b[2] === 0xfe && b[3] === 0xed;
const join = (dir: string, name: string) => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);

function readText(vfs: Vfs, p: string): string | undefined {
  try {
    return Buffer.from(vfs.readFile(p)).toString('latin1');
  } catch {
    return undefined;
  }
}

function ioError(path: string, e: unknown): KhoError {
  const errno = errnoOf(e);
  const msg = e instanceof Error ? e.message : String(e);
  return new KhoError(`IO_${errno ?? 'EIO'}`, `cannot read ${path}: ${msg}`, { path });
}

/** `loadHandoverPath` over the shell's VFS (see the module contract). */
export function loadHandoverVfs(
  vfs: Vfs,
  path: string,
  opts: { memory?: PhysMemory; profile?: ProfileName; pageSize?: number } = {},
): Handover {
  const base: Pick<LoadOptions, 'profile' | 'pageSize'> & { memory?: PhysMemory } = {
    ...(opts.memory ? { memory: opts.memory } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
  };
  let type: string;
  try {
    type = vfs.stat(path).type;
  } catch (e) {
    throw ioError(path, e);
  }
  if (type === 'dir') {
    const files = new Map<string, Uint8Array>();
    const subDir = join(path, 'sub_fdts');
    if (vfs.exists(subDir)) for (const n of vfs.readdir(subDir)) files.set(n, vfs.readFile(join(subDir, n)));
    const phys = readText(vfs, join(path, 'scratch_phys')) ?? readText(vfs, join(path, 'bootmem_phys'));
    const len = readText(vfs, join(path, 'scratch_len')) ?? readText(vfs, join(path, 'bootmem_len'));
    const name = basename(path.replace(/\/+$/, ''));
    const direction = name === 'in' || name === 'out' ? name : undefined;
    const fdtPath = join(path, 'fdt');
    const hasFdt = vfs.exists(fdtPath);
    if (!hasFdt && files.size === 0 && phys === undefined)
      throw new KhoError(
        'KHO_NOT_A_HANDOVER_DIR',
        `${path} holds no fdt, sub_fdts/, scratch_* or bootmem_* files`,
        {
          path,
          expected: `a /sys/kernel/debug/kho/out or /in directory${
            vfs.exists(join(path, 'out')) || vfs.exists(join(path, 'in'))
              ? ` (try ${join(path, 'out')} or ${join(path, 'in')})`
              : ''
          }`,
        },
      );
    const h = decodeHandover({
      ...base,
      ...(hasFdt ? { fdt: vfs.readFile(fdtPath) } : {}),
      subBlobFiles: files,
      ...(phys !== undefined && len !== undefined ? { scratchText: { phys, len } } : {}),
      ...(direction ? { direction } : {}),
      label: direction ? `${direction}/fdt` : 'fdt',
    });
    h.source = { kind: 'debugfs-dir', path };
    if (!hasFdt) {
      const f: Finding = {
        code: 'KHO_DEBUGFS_NO_FDT',
        severity: 'info',
        message:
          direction === 'in'
            ? 'no in/fdt: this kernel did not boot from a KHO handover'
            : 'no fdt file: after a KHO boot Linux 7.3 creates no out/fdt (only a cold boot does); the outgoing ' +
              'root FDT lives only in memory (inspect it with --memory /dev/mem, or as in/fdt in the next kernel)',
        path: direction ? `${direction}/fdt` : 'fdt',
      };
      h.findings.unshift(f);
    }
    return h;
  }
  let bytes: Uint8Array;
  try {
    bytes = vfs.readFile(path);
  } catch (e) {
    throw ioError(path, e);
  }
  const name = basename(path);
  const inSubFdts = basename(vfs.absolute(path).replace(/\/[^/]*$/, '')) === 'sub_fdts';
  let isRoot = !inSubFdts && isFdt(bytes);
  if (isRoot) {
    try {
      const blob = parseFdt(bytes, { allowTruncated: true });
      const cp = blob.root.props.find((p) => p.name === 'compatible');
      const compat = cp ? Buffer.from(cp.value).toString('latin1') : '';
      if (compat.startsWith(MEMBLOCK_KHO_NODE_COMPATIBLE) || compat.startsWith(KHO_TEST_COMPAT))
        isRoot = false;
    } catch {
      // decodeHandover reports it
    }
  }
  if (isRoot || (!inSubFdts && !isFdt(bytes) && ![KHO_METADATA_NODE_NAME, 'LUO'].includes(name))) {
    const h = decodeHandover({ ...base, fdt: bytes, label: path });
    h.source = { kind: 'fdt', path };
    return h;
  }
  const h = decodeHandover({ ...base, subBlobFiles: new Map([[name, bytes]]), label: path });
  h.source = { kind: 'sub-blob', path };
  return h;
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
        findings = [
          {
            code: e.code,
            severity: 'error',
            message: e.message,
            ...(e.path !== undefined ? { path: e.path } : {}),
            ...(e.offset !== undefined ? { offset: e.offset } : {}),
            ...(e.expected !== undefined ? { expected: e.expected } : {}),
          },
        ];
      }
      const errors = findings.filter((f) => f.severity === 'error').length;
      const warnings = findings.filter((f) => f.severity === 'warning').length;
      const valid = errors === 0;
      const out = p.json
        ? `${toJson({ path, valid, errors, warnings, findings })}\n`
        : `${findings.map((f) => `${path}: ${findingLine(f)}\n`).join('')}${path}: ${valid ? 'valid' : 'INVALID'} (${errors} errors, ${warnings} warnings, ${findings.length - errors - warnings} notes)\n`;
      return { stdout: out, status: valid ? 0 : 1 };
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
