/**
 * A debugfs tree as plain data, where it comes from, and how its names become safe file names.
 *
 * Contract:
 * - `DebugfsTree` is a list of entries: path segments (each one raw name, as a producer chose it; a
 *   segment may hold `/`, `..`, NUL or anything) → file bytes (or a reader) or a directory. Paths are
 *   relative to `/sys/kernel/debug` (`['kho', 'out', 'sub_fdts', 'memblock']`). Parents need not be
 *   listed: they are implied.
 * - `treeFromSimKernel(k)` takes a simulated kernel's `debugfsKhoTree` (helper J's model): every file
 *   under `kho/{in,out}/sub_fdts/` is one segment after that prefix (the producer's name, whatever it
 *   holds); other paths split on `/`. Readers stay live (read when written or read through FUSE).
 * - `simulatedTree(opts)` boots a default simulated machine (2 GiB, one node, the vectors' kernel),
 *   kexecs it `kexecs` times and returns the last kernel's tree; `extraSubtrees` adds a user producer
 *   per name that preserves a small blob under that name (to exercise hostile names end to end).
 * - `treeFromDir(dir)` reads a captured tree: a `/sys/kernel/debug/kho` copy, or a capture holding
 *   `out/` and `in/` (as the vectors' `stage<N>/`); it maps to `kho/out/...`, `kho/in/...`. Symlinks
 *   are never followed (skipped, and listed in `skipped`); at most `MAX_TREE_ENTRIES` entries,
 *   `MAX_TREE_DEPTH` levels and `MAX_TREE_BYTES` bytes in all (`KHO_TREE_TOO_LARGE` beyond).
 * - Names: `encodeName(raw)` maps a raw segment to a safe file name, reversibly (`decodeName`):
 *   bytes `A-Z a-z 0-9 - _ . , + = @ ~` stay (a name made only of dots is fully encoded); every other byte (`/`, `%`,
 *   NUL, control characters, space, non-ASCII: the name's UTF-8 bytes, or its latin1 bytes when every
 *   character is below 0x100) becomes `%XX` (uppercase hex); `.` and `..` become `%2E` and `%2E%2E`;
 *   the empty name is `%`. Every `%` the encoding writes is followed by two hex digits (or is the
 *   whole empty name), so names with `%` and a non-hex letter never come from it: kho's own files use
 *   them (`%tmp-…`, `%kho-renames.json`). `safeNames(rawNames)` then makes the names of one directory
 *   unique and short: an encoded name over `MAX_NAME_BYTES` is cut and ends in `%~` and 16 hex
 *   digits of its SHA-256; names equal but for case get `%~2`, `%~3`, ... Each such rename is
 *   reported (`Renaming`), so the mapping is recoverable.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KhoError } from '../errors.ts';
import { debugfsKhoTree } from '../sim/kernel/debugfs.ts';
import { Kernel } from '../sim/kernel/kernel.ts';
import type { KhoProducer } from '../sim/kernel/producers.ts';
import { Machine } from '../sim/machine/machine.ts';

export type FileContent = Uint8Array | (() => Uint8Array);

export interface DebugfsEntry {
  /** Raw path segments, relative to `/sys/kernel/debug`. */
  path: string[];
  kind: 'file' | 'dir';
  /** File content (file entries). */
  content?: FileContent;
  /** Permission bits as debugfs shows them (files 0400, dirs 0700 unless given). */
  mode?: number;
}

export interface DebugfsTree {
  entries: DebugfsEntry[];
  /** What the source left out (symlinks, special files). */
  skipped?: { path: string; why: string }[];
  /** Where the tree came from, for messages. */
  source?: string;
}

export const MAX_NAME_BYTES = 200;
export const MAX_TREE_ENTRIES = 100_000;
export const MAX_TREE_DEPTH = 16;
export const MAX_TREE_BYTES = 1 << 30;

const SAFE = /^[A-Za-z0-9\-_.,+=@~]$/;
const hex2 = (b: number) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`;

/** The bytes of a raw name: latin1 when every character fits a byte (FDT names are bytes), else UTF-8. */
export function nameBytes(raw: string): Uint8Array {
  for (let i = 0; i < raw.length; i++) if (raw.charCodeAt(i) > 0xff) return new TextEncoder().encode(raw);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** Reversible percent-encoding of one raw name (see the module contract). */
export function encodeName(raw: string): string {
  if (raw === '') return '%';
  const bytes = nameBytes(raw);
  if (/^\.+$/.test(raw)) return Array.from(bytes, hex2).join('');
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && SAFE.test(c) ? c : hex2(b);
  }
  return out;
}

/** Inverse of `encodeName` (latin1 string of the bytes); undefined when `name` is not an encoding. */
export function decodeName(name: string): string | undefined {
  if (name === '%') return '';
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c !== '%') {
      if (!SAFE.test(c)) return undefined;
      out += c;
      continue;
    }
    const h = name.slice(i + 1, i + 3);
    if (!/^[0-9A-F]{2}$/.test(h)) return undefined;
    out += String.fromCharCode(Number.parseInt(h, 16));
    i += 2;
  }
  return out;
}

export interface Renaming {
  /** The raw name (JSON-escaped when printed). */
  raw: string;
  /** The file name written. */
  name: string;
  why: string;
}

/** Safe, unique names for the raw names of one directory (see the module contract), in input order. */
export function safeNames(raws: readonly string[]): { names: string[]; renamings: Renaming[] } {
  const taken = new Set<string>();
  const names: string[] = [];
  const renamings: Renaming[] = [];
  for (const raw of raws) {
    let name = encodeName(raw);
    const whys: string[] = [];
    if (name !== raw) whys.push('unsafe characters or a reserved name, percent-encoded');
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
      const digest = createHash('sha256').update(nameBytes(raw)).digest('hex').slice(0, 16);
      let cut = name.slice(0, MAX_NAME_BYTES - 18);
      cut = cut.replace(/%[0-9A-F]?$/, ''); // never split an escape
      name = `${cut}%~${digest}`;
      whys.push(`longer than ${MAX_NAME_BYTES} bytes once encoded, cut and hashed`);
    }
    if (taken.has(name.toLowerCase())) {
      let n = 2;
      while (taken.has(`${name}%~${n}`.toLowerCase())) n++;
      name = `${name}%~${n}`;
      whys.push('another name in the directory differs only in case');
    }
    taken.add(name.toLowerCase());
    names.push(name);
    if (whys.length) renamings.push({ raw, name, why: whys.join('; ') });
  }
  return { names, renamings };
}

// ---------------------------------------------------------------------------------------------
// Sources.

const SUB_FDTS = /^(kho\/(?:in|out)\/sub_fdts)\/(.*)$/s;

/** Split a simulated kernel's debugfs path: sub-blob names are one segment, whatever they hold. */
export function splitSimPath(p: string): string[] {
  const m = SUB_FDTS.exec(p);
  if (m) return [...m[1].split('/'), m[2]];
  return p.split('/');
}

/** The debugfs tree of a simulated kernel (live readers). */
export function treeFromSimKernel(k: Kernel): DebugfsTree {
  const t = debugfsKhoTree(k);
  const entries: DebugfsEntry[] = t.dirs.map((d) => ({ path: d.split('/'), kind: 'dir', mode: 0o700 }));
  for (const [p, read] of t.files)
    entries.push({ path: splitSimPath(p), kind: 'file', content: read, mode: 0o400 });
  return { entries, source: `simulated kernel ${k.release}` };
}

export interface SimTreeOptions {
  memory?: string;
  numa?: number;
  cmdline?: string;
  /** Number of kexecs before the tree is taken (default 1). */
  kexecs?: number;
  /** Sub-tree names for extra user producers (each preserves a 16-byte blob). */
  extraSubtrees?: string[];
  /** Called before each step (boot, each kexec), for progress output. */
  onStep?(message: string): void;
}

export const DEFAULT_SIM_CMDLINE = 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:khovec_region';

/** Boot a simulated machine, kexec it, and return the last kernel's tree (see the module contract). */
export function simulatedTree(opts: SimTreeOptions = {}): { tree: DebugfsTree; kernel: Kernel } {
  const cmdline = opts.cmdline ?? DEFAULT_SIM_CMDLINE;
  const machine = Machine.create({ memory: opts.memory ?? '2G', numa: opts.numa ?? 1 });
  const producers: KhoProducer[] = (opts.extraSubtrees ?? []).map((name, i) => ({
    name,
    onBoot(ctx) {
      const pa = ctx.kho.allocPreserve(16);
      ctx.kho.writer().write(pa, new TextEncoder().encode(`user producer ${i}\n`.padEnd(16, '.')));
      ctx.kho.addSubtree(name, pa, 16n);
    },
    onRestore(ctx, sub) {
      ctx.kho.restorePages(sub.phys, 1);
      this.onBoot?.(ctx);
    },
  }));
  const kexecs = opts.kexecs ?? 1;
  opts.onStep?.(`booting a simulated ${opts.memory ?? '2G'} machine...`);
  let k = Kernel.boot(machine, { cmdline, producers });
  for (let i = 0; i < kexecs; i++) {
    opts.onStep?.(`kexec ${i + 1} of ${kexecs}...`);
    k.kexecLoad({ image: k.image, cmdline, fileLoad: true });
    k = k.kexecExec();
  }
  const tree = treeFromSimKernel(k);
  tree.source = `simulated ${opts.memory ?? '2G'} machine after ${kexecs} kexec${kexecs === 1 ? '' : 's'} (${cmdline})`;
  return { tree, kernel: k };
}

/** Read a captured tree from disk (see the module contract). */
export function treeFromDir(dir: string): DebugfsTree {
  const entries: DebugfsEntry[] = [];
  const skipped: { path: string; why: string }[] = [];
  let bytes = 0;
  const st = lstatSync(dir);
  if (!st.isDirectory())
    throw new KhoError('KHO_NOT_A_DIR', `${dir} is not a directory`, {
      path: dir,
      expected: 'a /sys/kernel/debug/kho copy or a capture with out/ and in/',
    });
  const has = (n: string) => {
    try {
      return lstatSync(join(dir, n)).isDirectory();
    } catch {
      return false;
    }
  };
  // Roots: <dir>/kho, else <dir>/{out,in} as kho/{out,in}, else <dir> itself as kho/.
  const roots: { disk: string; path: string[] }[] = has('kho')
    ? [{ disk: join(dir, 'kho'), path: ['kho'] }]
    : has('out') || has('in')
      ? ['out', 'in'].filter(has).map((n) => ({ disk: join(dir, n), path: ['kho', n] }))
      : [{ disk: dir, path: ['kho'] }];
  const walk = (disk: string, path: string[], depth: number): void => {
    if (depth > MAX_TREE_DEPTH)
      throw new KhoError('KHO_TREE_TOO_LARGE', `${disk} is nested deeper than ${MAX_TREE_DEPTH} levels`, {
        path: disk,
      });
    entries.push({ path, kind: 'dir', mode: 0o700 });
    for (const name of readdirSync(disk).sort()) {
      if (entries.length >= MAX_TREE_ENTRIES)
        throw new KhoError('KHO_TREE_TOO_LARGE', `${dir} has more than ${MAX_TREE_ENTRIES} entries`, {
          path: dir,
        });
      const p = join(disk, name);
      const s = lstatSync(p);
      if (s.isSymbolicLink()) skipped.push({ path: p, why: 'symbolic link (not followed)' });
      else if (s.isDirectory()) walk(p, [...path, name], depth + 1);
      else if (s.isFile()) {
        bytes += s.size;
        if (bytes > MAX_TREE_BYTES)
          throw new KhoError('KHO_TREE_TOO_LARGE', `${dir} holds more than ${MAX_TREE_BYTES} bytes`, {
            path: dir,
          });
        entries.push({ path: [...path, name], kind: 'file', content: () => readFileSync(p), mode: 0o400 });
      } else skipped.push({ path: p, why: 'not a regular file or directory' });
    }
  };
  for (const r of roots) walk(r.disk, r.path, 1);
  return { entries, skipped, source: dir };
}

/** The content of a file entry, read now. */
export function readContent(c: FileContent | undefined): Uint8Array {
  if (c === undefined) return new Uint8Array(0);
  return typeof c === 'function' ? c() : c;
}
