/**
 * `kho debugfs export DIR`: write a `DebugfsTree` as real files under DIR, never anywhere else.
 *
 * Contract (`exportTree(tree, dir, { force })`):
 * - Names are made safe per directory with `safeNames()` (src/tools/debugfs-tree.ts: reversible
 *   percent-encoding, cut-and-hash for long names, `%~N` for names equal but for case); each rename is
 *   in `renamings` and, when there is any, in `DIR/%kho-renames.json` (written file name → raw name as
 *   JSON and as hex bytes), a name the encoding never produces.
 * - DIR is created (mode 0700) when missing; an existing DIR must be a real directory (not a symlink)
 *   and empty, unless `force`. Each directory below it is created with mkdir (which never follows a
 *   symlink); an existing entry is used only when lstat says it is a real directory. A file is written
 *   to a fresh temporary (`%tmp-<random>`, opened O_CREAT|O_EXCL|O_NOFOLLOW) in its directory, then
 *   renamed over the final name, so an existing symlink there is replaced, never followed. An entry
 *   that would need to pass through a symlink or a non-directory is not written: it is listed in
 *   `refused` and the export's `ok` is false, as is a file whose reader throws and a directory nested
 *   deeper than `MAX_EXPORT_DEPTH`. Every final path is checked to lie under DIR.
 * - Files get the tree's mode (0400 for debugfs files), directories 0700.
 * - Errors with DIR itself (exists as a file or symlink, not empty) throw `KhoError`
 *   (`KHO_EXPORT_NOT_EMPTY`, `KHO_EXPORT_NOT_A_DIR`); I/O errors are `IO_*`.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { KhoError } from '../errors.ts';
import {
  type DebugfsEntry,
  type DebugfsTree,
  nameBytes,
  type Renaming,
  readContent,
  safeNames,
} from './debugfs-tree.ts';

export const RENAMES_FILE = '%kho-renames.json';
/** Deepest directory written (debugfs kho/ is 4 levels deep). */
export const MAX_EXPORT_DEPTH = 32;

export interface ExportOptions {
  /** Write into a DIR that is not empty. */
  force?: boolean;
}

export interface ExportResult {
  dir: string;
  files: number;
  dirs: number;
  bytes: number;
  /** Every name written differently from the producer's (with the directory it is in). */
  renamings: (Renaming & { dir: string })[];
  /** Entries not written, and why. */
  refused: { path: string; why: string }[];
  /** What the source skipped (symlinks in a captured tree). */
  skipped: { path: string; why: string }[];
  ok: boolean;
}

interface Node {
  kind: 'file' | 'dir';
  entry?: DebugfsEntry;
  children: Map<string, Node>;
}

/** The tree as nested nodes keyed by raw name (implied parents become directories). */
export function buildNodes(tree: DebugfsTree): Node {
  const root: Node = { kind: 'dir', children: new Map() };
  for (const e of tree.entries) {
    let n = root;
    for (let i = 0; i < e.path.length; i++) {
      const seg = e.path[i];
      const last = i === e.path.length - 1;
      let c = n.children.get(seg);
      if (!c) {
        c = { kind: last ? e.kind : 'dir', children: new Map() };
        n.children.set(seg, c);
      }
      if (last) {
        c.kind = e.kind;
        c.entry = e;
      }
      n = c;
    }
  }
  return root;
}

/** A printable form of a raw path (JSON string escapes for control characters). */
export function showPath(segs: readonly string[]): string {
  return segs.map((s) => JSON.stringify(s).slice(1, -1).replace(/\//g, '\\/')).join('/');
}

const noFollow = constants.O_NOFOLLOW ?? 0;

function ensureDir(path: string): 'ok' | string {
  try {
    mkdirSync(path, { mode: 0o700 });
    return 'ok';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return 'a symbolic link is in the way (not followed)';
  if (!st.isDirectory()) return 'a file is in the way of a directory';
  return 'ok';
}

function writeFileSafely(dirPath: string, name: string, data: Uint8Array, mode: number): 'ok' | string {
  const final = join(dirPath, name);
  try {
    const st = lstatSync(final);
    if (st.isDirectory()) return 'a directory is in the way of a file';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = join(dirPath, `%tmp-${randomBytes(8).toString('hex')}`);
  const fd = openSync(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | noFollow, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  chmodSync(tmp, mode);
  renameSync(tmp, final);
  return 'ok';
}

/** Prepare DIR (see the module contract); returns its resolved path. */
function prepareRoot(dir: string, force: boolean): string {
  let st: ReturnType<typeof lstatSync> | undefined;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (!st) mkdirSync(dir, { mode: 0o700 });
  else if (st.isSymbolicLink())
    throw new KhoError('KHO_EXPORT_NOT_A_DIR', `${dir} is a symbolic link; refusing to follow it`, {
      path: dir,
      expected: 'a real directory, or a path that does not exist yet',
    });
  else if (!st.isDirectory())
    throw new KhoError('KHO_EXPORT_NOT_A_DIR', `${dir} exists and is not a directory`, {
      path: dir,
      expected: 'a directory',
    });
  else if (!force && readdirSync(dir).length > 0)
    throw new KhoError('KHO_EXPORT_NOT_EMPTY', `${dir} is not empty`, {
      path: dir,
      expected: 'an empty or new directory (or --force)',
    });
  return resolve(dir);
}

/** Write `tree` under `dir` (see the module contract). */
export function exportTree(tree: DebugfsTree, dir: string, opts: ExportOptions = {}): ExportResult {
  const root = prepareRoot(dir, !!opts.force);
  const res: ExportResult = {
    dir: root,
    files: 0,
    dirs: 0,
    bytes: 0,
    renamings: [],
    refused: [],
    skipped: [...(tree.skipped ?? [])],
    ok: true,
  };
  const inside = (p: string) => resolve(p).startsWith(root + sep);
  const visit = (n: Node, diskDir: string, raw: string[], shown: string): void => {
    const raws = [...n.children.keys()];
    const { names, renamings } = safeNames(raws);
    for (const r of renamings) res.renamings.push({ ...r, dir: shown || '.' });
    raws.forEach((rawName, i) => {
      const c = n.children.get(rawName) as Node;
      const disk = join(diskDir, names[i]);
      const rawPath = [...raw, rawName];
      if (!inside(disk)) {
        // Unreachable with safeNames(); kept as the last line of defence.
        res.refused.push({ path: showPath(rawPath), why: 'would leave the export directory' });
        return;
      }
      const rel = shown ? `${shown}/${names[i]}` : names[i];
      if (c.kind === 'dir') {
        if (rawPath.length > MAX_EXPORT_DEPTH) {
          res.refused.push({ path: rel, why: `nested deeper than ${MAX_EXPORT_DEPTH} levels` });
          return;
        }
        const r = ensureDir(disk);
        if (r !== 'ok') {
          res.refused.push({ path: rel, why: r });
          return;
        }
        res.dirs++;
        visit(c, disk, rawPath, rel);
        return;
      }
      let data: Uint8Array;
      try {
        data = readContent(c.entry?.content);
      } catch (e) {
        res.refused.push({ path: rel, why: `cannot read it: ${(e as Error).message}` });
        return;
      }
      const r = writeFileSafely(diskDir, names[i], data, c.entry?.mode ?? 0o400);
      if (r !== 'ok') {
        res.refused.push({ path: rel, why: r });
        return;
      }
      res.files++;
      res.bytes += data.length;
    });
  };
  visit(buildNodes(tree), root, [], '');
  if (res.renamings.length) {
    const doc = res.renamings.map((r) => ({
      dir: r.dir,
      name: r.name,
      raw: r.raw,
      rawHex: Buffer.from(nameBytes(r.raw)).toString('hex'),
      why: r.why,
    }));
    const w = writeFileSafely(
      root,
      RENAMES_FILE,
      new TextEncoder().encode(`${JSON.stringify(doc, null, 2)}\n`),
      0o400,
    );
    if (w !== 'ok') res.refused.push({ path: RENAMES_FILE, why: w });
  }
  res.ok = res.refused.length === 0;
  return res;
}
