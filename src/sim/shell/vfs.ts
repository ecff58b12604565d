/**
 * The shell's virtual filesystem: a small, read-mostly Unix namespace.
 *
 * Contract:
 * - Nodes are directories, regular files, symlinks and character devices (`/dev/null`). A file's content
 *   is produced when it is read (`DynFile`: a function returning bytes, for procfs and debugfs files computed
 *   from kernel state at read time) or held in RAM (`MemFile`, in writable directories such as `/tmp`).
 * - Names and paths are *binary strings* (one JavaScript character per byte, latin1), like the FDT model,
 *   so any byte sequence a user types or a host directory holds survives unchanged.
 * - Path resolution follows POSIX: `.`/`..` (physical: `..` of a directory reached through a symlink is the
 *   parent of the symlink's target; `..` at `/` stays at `/`), symlinks (at most 40 per lookup, else ELOOP),
 *   a trailing slash requires a directory, components over 255 bytes and paths over 4095 bytes fail with
 *   ENAMETOOLONG, NUL bytes with ENOENT.
 * - Mounts: `mount(path, dir)` hides the directory at `path` behind another tree until `unmount(path)`
 *   (debugfs appears and disappears with the kernel). `mountHost(path, hostDir)` shows a host directory
 *   read-only. Host access never leaves the host root: each component is looked up by `lstat` in its
 *   parent (so `..` and symlinks are resolved by this VFS inside the virtual namespace, never by the host),
 *   files are opened with O_NOFOLLOW and the opened descriptor's real path is checked against the root;
 *   FIFOs, sockets and devices in the host directory are invisible.
 * - Two kinds of mutation: *user* operations (`writeFile`, `mkdir`, `unlink`, `rmdir`, `symlink`) obey the
 *   permissions a shell user sees (only `userWritable` directories and writable files; host mounts are
 *   read-only, EROFS); *provider* operations (`addFile`, `addDir`, `mkdirp`, `removeEntry`, `mount`) are the
 *   kernel's and bypass them.
 * - Every failure is a `KhoError` with code `SIM_<ERRNO>` (`SIM_ENOENT`, ...), `path` the path as given, and
 *   the C library's message (`No such file or directory`), so tools print `cat: /x: No such file or directory`.
 */

import type { BigIntStats } from 'node:fs';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
} from 'node:fs';
import { KhoError } from '../../errors.ts';

export type FileType = 'file' | 'dir' | 'symlink' | 'chardev';

export interface VStat {
  type: FileType;
  /** Permission bits only (`0o644`). */
  perm: number;
  size: number;
  nlink: number;
  mtime: Date;
  /** Modification time in nanoseconds since the epoch, where known more precisely than `mtime`. */
  mtimeNs?: bigint;
  /** Allocated 512-byte blocks (what `ls -s` and `ls -l`'s `total` count). */
  blocks: number;
  ino: number;
  /** Device major/minor for character devices. */
  rdev?: [number, number];
}

/** Messages as strerror(3) gives them. */
export const ERRNO_MESSAGES = {
  ENOENT: 'No such file or directory',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EEXIST: 'File exists',
  ENOTEMPTY: 'Directory not empty',
  EROFS: 'Read-only file system',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  EINVAL: 'Invalid argument',
  EBUSY: 'Device or resource busy',
  EIO: 'Input/output error',
  EFBIG: 'File too large',
} as const;
export type Errno = keyof typeof ERRNO_MESSAGES;

export function vfsError(errno: Errno, path: string): KhoError {
  return new KhoError(`SIM_${errno}`, ERRNO_MESSAGES[errno], { path });
}

/** The errno of a VFS error (`ENOENT`), or undefined for other errors. */
export function vfsErrno(e: unknown): Errno | undefined {
  if (e instanceof KhoError && e.code.startsWith('SIM_')) {
    const k = e.code.slice(4);
    if (k in ERRNO_MESSAGES) return k as Errno;
  }
  return undefined;
}

/**
 * Former name of `vfsErrno`, kept for modules importing it from this file. Not re-exported by the shell's
 * index: the kernel model exports its own `errnoOf`.
 */
export const errnoOf = vfsErrno;

/** The message a tool prints for an error: strerror for VFS errors, the message otherwise. */
export function errorMessage(e: unknown): string {
  if (e instanceof KhoError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export const NAME_MAX = 255;
export const PATH_MAX = 4096;
export const SYMLOOP_MAX = 40;
/** Largest host file the VFS reads (1 GiB). */
export const MAX_HOST_READ = 1 << 30;

let nextIno = 1;
const allocIno = (): number => nextIno++;

export interface NodeBase {
  readonly type: FileType;
  stat(): VStat;
}
export interface DirNode extends NodeBase {
  readonly type: 'dir';
  /** May a shell user create and remove entries here? */
  readonly userWritable: boolean;
  /** Entry names, any order (the VFS sorts). */
  list(): string[];
  lookup(name: string): VNode | undefined;
  /** Present on directories that hold their own entries (not host mounts). */
  add?(name: string, node: VNode): void;
  delete?(name: string): boolean;
}
export interface FileNode extends NodeBase {
  readonly type: 'file' | 'chardev';
  read(): Uint8Array;
  /** Absent when the file cannot be written. */
  write?(data: Uint8Array, append: boolean): void;
}
export interface LinkNode extends NodeBase {
  readonly type: 'symlink';
  readonly target: string;
}
export type VNode = DirNode | FileNode | LinkNode;

export type Clock = () => Date;
const wallClock: Clock = () => new Date();

export class MemDir implements DirNode {
  readonly type = 'dir' as const;
  readonly ino = allocIno();
  private entries = new Map<string, VNode>();
  perm: number;
  mtime: Date;
  userWritable: boolean;
  constructor(opts: { perm?: number; userWritable?: boolean; mtime?: Date } = {}) {
    this.perm = opts.perm ?? 0o755;
    this.userWritable = opts.userWritable ?? false;
    this.mtime = opts.mtime ?? new Date();
  }
  list(): string[] {
    return [...this.entries.keys()];
  }
  lookup(name: string): VNode | undefined {
    return this.entries.get(name);
  }
  add(name: string, node: VNode): void {
    this.entries.set(name, node);
  }
  delete(name: string): boolean {
    return this.entries.delete(name);
  }
  stat(): VStat {
    let subdirs = 0;
    for (const n of this.entries.values()) if (n.type === 'dir') subdirs++;
    return {
      type: 'dir',
      perm: this.perm,
      size: 0,
      nlink: 2 + subdirs,
      mtime: this.mtime,
      blocks: 0,
      ino: this.ino,
    };
  }
}

/** A RAM-backed regular file (tmpfs-like: blocks are counted in 4 KiB pages). */
export class MemFile implements FileNode {
  readonly type = 'file' as const;
  readonly ino = allocIno();
  data: Uint8Array;
  perm: number;
  mtime: Date;
  writable: boolean;
  private clock: Clock;
  constructor(
    data: Uint8Array = new Uint8Array(0),
    opts: { perm?: number; writable?: boolean; mtime?: Date; clock?: Clock } = {},
  ) {
    this.data = data;
    this.perm = opts.perm ?? 0o644;
    this.writable = opts.writable ?? true;
    this.clock = opts.clock ?? wallClock;
    this.mtime = opts.mtime ?? this.clock();
  }
  read(): Uint8Array {
    return this.data;
  }
  write(data: Uint8Array, append: boolean): void {
    if (!this.writable) throw vfsError('EACCES', '');
    if (append) {
      const out = new Uint8Array(this.data.length + data.length);
      out.set(this.data, 0);
      out.set(data, this.data.length);
      this.data = out;
    } else {
      this.data = data.slice();
    }
    this.mtime = this.clock();
  }
  stat(): VStat {
    return {
      type: 'file',
      perm: this.perm,
      size: this.data.length,
      nlink: 1,
      mtime: this.mtime,
      blocks: Math.ceil(this.data.length / 4096) * 8,
      ino: this.ino,
    };
  }
}

export interface DynFileSpec {
  /** Produces the content at read time. */
  read: () => Uint8Array | string;
  /** Accepts a write (`echo 1 > file`); absent: the file is read-only. Strings are binary strings. */
  write?: (data: Uint8Array, append: boolean) => void;
  /**
   * The size `stat` and `ls -l` show. Default: the content length (debugfs blobs); procfs and debugfs
   * seq files show 0, so pass `() => 0` for them.
   */
  size?: () => number;
  perm?: number;
  mtime?: Date;
}

/** A file computed on read (procfs, debugfs). */
export class DynFile implements FileNode {
  readonly type = 'file' as const;
  readonly ino = allocIno();
  readonly spec: DynFileSpec;
  write?: (data: Uint8Array, append: boolean) => void;
  private mtime: Date;
  constructor(spec: DynFileSpec) {
    this.spec = spec;
    this.mtime = spec.mtime ?? new Date();
    if (spec.write) this.write = spec.write;
  }
  read(): Uint8Array {
    const v = this.spec.read();
    return typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
  }
  stat(): VStat {
    const size = this.spec.size ? this.spec.size() : this.read().length;
    return {
      type: 'file',
      perm: this.spec.perm ?? (this.spec.write ? 0o644 : 0o444),
      size,
      nlink: 1,
      mtime: this.mtime,
      blocks: 0,
      ino: this.ino,
    };
  }
}

export class MemLink implements LinkNode {
  readonly type = 'symlink' as const;
  readonly ino = allocIno();
  readonly target: string;
  mtime: Date;
  constructor(target: string, mtime: Date = new Date()) {
    this.target = target;
    this.mtime = mtime;
  }
  stat(): VStat {
    return {
      type: 'symlink',
      perm: 0o777,
      size: this.target.length,
      nlink: 1,
      mtime: this.mtime,
      blocks: 0,
      ino: this.ino,
    };
  }
}

/** `/dev/null`: reads are empty, writes vanish. */
export class NullDevice implements FileNode {
  readonly type = 'chardev' as const;
  readonly ino = allocIno();
  private mtime: Date;
  constructor(mtime: Date = new Date()) {
    this.mtime = mtime;
  }
  read(): Uint8Array {
    return new Uint8Array(0);
  }
  write(): void {}
  stat(): VStat {
    return {
      type: 'chardev',
      perm: 0o666,
      size: 0,
      nlink: 1,
      mtime: this.mtime,
      blocks: 0,
      ino: this.ino,
      rdev: [1, 3],
    };
  }
}

// ---------------------------------------------------------------------------------------------------
// Host mounts

const hostPathBuf = (p: string): Buffer => Buffer.from(p, 'latin1');
const within = (root: string, p: string): boolean =>
  p === root || p.startsWith(root === '/' ? '/' : `${root}/`);

function hostStat(st: BigIntStats, type: FileType): VStat {
  return {
    type,
    perm: Number(st.mode & 0o7777n),
    size: Number(st.size),
    nlink: Number(st.nlink),
    mtime: new Date(Number(st.mtimeMs)),
    mtimeNs: st.mtimeNs,
    blocks: Number(st.blocks),
    ino: Number(st.ino),
  };
}

function hostNode(root: string, path: string): VNode | undefined {
  let st: BigIntStats;
  try {
    st = lstatSync(hostPathBuf(path), { bigint: true });
  } catch {
    return undefined;
  }
  if (st.isDirectory()) return new HostDir(root, path, st);
  if (st.isFile()) return new HostFile(root, path, st);
  if (st.isSymbolicLink()) {
    try {
      const target = (readlinkSync(hostPathBuf(path), { encoding: 'buffer' }) as Buffer).toString('latin1');
      return new HostLink(target, st);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

const validHostName = (name: string): boolean =>
  name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');

/** A host directory, read-only. `root` is the real path of the mounted host directory. */
export class HostDir implements DirNode {
  readonly type = 'dir' as const;
  readonly userWritable = false;
  readonly root: string;
  readonly hostPath: string;
  private st: BigIntStats;
  constructor(root: string, hostPath: string, st: BigIntStats) {
    this.root = root;
    this.hostPath = hostPath;
    this.st = st;
  }
  private checkInside(): boolean {
    try {
      const real = (realpathSync(hostPathBuf(this.hostPath), { encoding: 'buffer' }) as Buffer).toString(
        'latin1',
      );
      return within(this.root, real);
    } catch {
      return false;
    }
  }
  list(): string[] {
    if (!this.checkInside()) return [];
    try {
      const ents = readdirSync(hostPathBuf(this.hostPath), { withFileTypes: true, encoding: 'buffer' });
      const out: string[] = [];
      for (const d of ents) {
        if (d.isFile() || d.isDirectory() || d.isSymbolicLink())
          out.push((d.name as unknown as Buffer).toString('latin1'));
      }
      return out;
    } catch {
      return [];
    }
  }
  lookup(name: string): VNode | undefined {
    if (!validHostName(name)) return undefined;
    if (!this.checkInside()) return undefined;
    const child = this.hostPath === '/' ? `/${name}` : `${this.hostPath}/${name}`;
    return hostNode(this.root, child);
  }
  stat(): VStat {
    return hostStat(this.st, 'dir');
  }
}

export class HostFile implements FileNode {
  readonly type = 'file' as const;
  readonly root: string;
  readonly hostPath: string;
  private st: BigIntStats;
  constructor(root: string, hostPath: string, st: BigIntStats) {
    this.root = root;
    this.hostPath = hostPath;
    this.st = st;
  }
  read(): Uint8Array {
    let fd: number;
    try {
      fd = openSync(
        hostPathBuf(this.hostPath),
        constants.O_RDONLY | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0),
      );
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw vfsError(code === 'EACCES' ? 'EACCES' : code === 'ELOOP' ? 'ELOOP' : 'ENOENT', this.hostPath);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw vfsError('EACCES', this.hostPath);
      let real: string | undefined;
      try {
        real = (readlinkSync(`/proc/self/fd/${fd}`, { encoding: 'buffer' }) as Buffer).toString('latin1');
      } catch {
        real = undefined;
      }
      if (real !== undefined && !within(this.root, real)) throw vfsError('EACCES', this.hostPath);
      if (st.size > MAX_HOST_READ) throw vfsError('EFBIG', this.hostPath);
      const out = Buffer.alloc(Number(st.size));
      let off = 0;
      while (off < out.length) {
        const n = readSync(fd, out, off, out.length - off, off);
        if (n <= 0) break;
        off += n;
      }
      return out.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  }
  stat(): VStat {
    return hostStat(this.st, 'file');
  }
}

export class HostLink implements LinkNode {
  readonly type = 'symlink' as const;
  readonly target: string;
  private st: BigIntStats;
  constructor(target: string, st: BigIntStats) {
    this.target = target;
    this.st = st;
  }
  stat(): VStat {
    return hostStat(this.st, 'symlink');
  }
}

// ---------------------------------------------------------------------------------------------------
// The namespace

interface Resolved {
  node: VNode;
  /** Canonical absolute path of the node. */
  path: string;
}

export class Vfs {
  readonly root: MemDir;
  private mounts = new Map<string, DirNode>();
  private cwdPath = '/';
  readonly clock: Clock;

  constructor(opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? wallClock;
    this.root = new MemDir({ mtime: this.clock() });
  }

  /** Current directory (canonical absolute path). */
  get cwd(): string {
    return this.cwdPath;
  }

  chdir(path: string): void {
    const r = this.resolve(path, true);
    if (r.node.type !== 'dir') throw vfsError('ENOTDIR', path);
    this.cwdPath = r.path;
  }

  /** The absolute form of a path, lexically (no lookup): for display and for building child paths. */
  absolute(path: string): string {
    return path.startsWith('/') ? path : this.cwdPath === '/' ? `/${path}` : `${this.cwdPath}/${path}`;
  }

  private lookupChild(dir: DirNode, dirPath: string, name: string): VNode | undefined {
    const childPath = dirPath === '/' ? `/${name}` : `${dirPath}/${name}`;
    const m = this.mounts.get(childPath);
    if (m) return dir.lookup(name) ? m : undefined;
    return dir.lookup(name);
  }

  /**
   * Resolve `path` to a node. `followLast`: follow a symlink in the last component (stat vs lstat).
   * Throws SIM_ENOENT, SIM_ENOTDIR, SIM_ELOOP, SIM_ENAMETOOLONG.
   */
  resolve(path: string, followLast = true): Resolved {
    if (path.includes('\0') || path === '') throw vfsError('ENOENT', path);
    if (path.length >= PATH_MAX) throw vfsError('ENAMETOOLONG', path);
    const stack: { name: string; node: VNode }[] = [{ name: '', node: this.root }];
    const queue: string[] = [];
    const trailingSlash = path.endsWith('/');
    const pushComponents = (p: string, front: boolean) => {
      const parts = p.split('/').filter((c) => c !== '' && c !== '.');
      if (front) queue.unshift(...parts);
      else queue.push(...parts);
    };
    if (!path.startsWith('/')) pushComponents(this.cwdPath, false);
    pushComponents(path, false);
    let links = 0;
    while (queue.length > 0) {
      const comp = queue.shift()!;
      if (comp === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const top = stack[stack.length - 1];
      if (top.node.type !== 'dir') throw vfsError('ENOTDIR', path);
      if (comp.length > NAME_MAX) throw vfsError('ENAMETOOLONG', path);
      const dirPath = stack.length === 1 ? '/' : stack.map((s) => s.name).join('/');
      const child = this.lookupChild(top.node, dirPath, comp);
      if (!child) throw vfsError('ENOENT', path);
      if (child.type === 'symlink' && (queue.length > 0 || followLast || trailingSlash)) {
        if (++links > SYMLOOP_MAX) throw vfsError('ELOOP', path);
        const target = child.target;
        if (target === '' || target.includes('\0')) throw vfsError('ENOENT', path);
        if (target.startsWith('/')) stack.length = 1;
        pushComponents(target, true);
        continue;
      }
      stack.push({ name: comp, node: child });
    }
    const node = stack[stack.length - 1].node;
    if (trailingSlash && node.type !== 'dir') throw vfsError('ENOTDIR', path);
    const canon = stack.length === 1 ? '/' : stack.map((s) => s.name).join('/');
    return { node, path: canon };
  }

  /** Resolve the directory that holds `path`'s last component, and that component's name. */
  private resolveParent(path: string): { dir: DirNode; dirPath: string; name: string } {
    if (path.includes('\0') || path === '') throw vfsError('ENOENT', path);
    const trimmed = path.replace(/\/+$/, '');
    if (trimmed === '') throw vfsError('EBUSY', path);
    const slash = trimmed.lastIndexOf('/');
    const parent = slash < 0 ? '.' : slash === 0 ? '/' : trimmed.slice(0, slash);
    const name = trimmed.slice(slash + 1);
    if (name.length > NAME_MAX) throw vfsError('ENAMETOOLONG', path);
    const r = this.resolve(parent, true);
    if (r.node.type !== 'dir') throw vfsError('ENOTDIR', path);
    return { dir: r.node, dirPath: r.path, name };
  }

  exists(path: string): boolean {
    try {
      this.resolve(path, true);
      return true;
    } catch {
      return false;
    }
  }

  stat(path: string): VStat {
    return this.resolve(path, true).node.stat();
  }

  lstat(path: string): VStat {
    return this.resolve(path, false).node.stat();
  }

  /** Canonical absolute path (like `realpath`). */
  realpath(path: string): string {
    return this.resolve(path, true).path;
  }

  readlink(path: string): string {
    const n = this.resolve(path, false).node;
    if (n.type !== 'symlink') throw vfsError('EINVAL', path);
    return n.target;
  }

  /** Directory entries sorted by byte value (`ls` in the C locale), without `.` and `..`. */
  readdir(path: string): string[] {
    const r = this.resolve(path, true);
    if (r.node.type !== 'dir') throw vfsError('ENOTDIR', path);
    return r.node.list().sort(compareBytes);
  }

  readFile(path: string): Uint8Array {
    const r = this.resolve(path, true);
    if (r.node.type === 'dir') throw vfsError('EISDIR', path);
    if (r.node.type === 'symlink') throw vfsError('ELOOP', path);
    try {
      return r.node.read();
    } catch (e) {
      if (vfsErrno(e)) throw vfsError(vfsErrno(e)!, path);
      throw e;
    }
  }

  // ------------------------------------------------------------------ user operations

  /** Write (create, truncate or append) as a shell user may. */
  writeFile(path: string, data: Uint8Array | string, opts: { append?: boolean } = {}): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    let target: Resolved | undefined;
    try {
      target = this.resolve(path, true);
    } catch (e) {
      if (vfsErrno(e) !== 'ENOENT') throw e;
    }
    if (target) {
      const n = target.node;
      if (n.type === 'dir') throw vfsError('EISDIR', path);
      if (n instanceof HostFile) throw vfsError('EROFS', path);
      if (n.type === 'symlink' || !n.write || (n instanceof MemFile && !n.writable))
        throw vfsError('EACCES', path);
      n.write(bytes, opts.append ?? false);
      return;
    }
    if (path.endsWith('/')) throw vfsError('ENOTDIR', path);
    const { dir, name } = this.resolveParent(this.danglingTarget(path));
    this.checkUserWritable(dir, path);
    dir.add!(name, new MemFile(bytes.slice(), { clock: this.clock }));
  }

  /**
   * Open for writing as a redirection does, before the command runs: check permissions, create a missing
   * file in a writable directory, truncate a RAM file unless appending. Files with a write handler
   * (debugfs knobs) are not called until data arrives, so they see each write once.
   */
  openWrite(path: string, opts: { append?: boolean } = {}): void {
    let target: Resolved | undefined;
    try {
      target = this.resolve(path, true);
    } catch (e) {
      if (vfsErrno(e) !== 'ENOENT') throw e;
    }
    if (!target) {
      this.writeFile(path, new Uint8Array(0));
      return;
    }
    const n = target.node;
    if (n.type === 'dir') throw vfsError('EISDIR', path);
    if (n instanceof HostFile) throw vfsError('EROFS', path);
    if (n.type === 'symlink' || !n.write || (n instanceof MemFile && !n.writable))
      throw vfsError('EACCES', path);
    if (n instanceof MemFile && !opts.append) n.write(new Uint8Array(0), false);
  }

  /** A path whose last component is a dangling symlink writes through to the link's target. */
  private danglingTarget(path: string): string {
    for (let i = 0; i < SYMLOOP_MAX; i++) {
      let r: Resolved;
      try {
        r = this.resolve(path, false);
      } catch {
        return path;
      }
      if (r.node.type !== 'symlink') return path;
      const t = r.node.target;
      path = t.startsWith('/') ? t : `${r.path.slice(0, r.path.lastIndexOf('/')) || ''}/${t}`;
    }
    throw vfsError('ELOOP', path);
  }

  private checkUserWritable(dir: DirNode, path: string): void {
    if (dir instanceof HostDir) throw vfsError('EROFS', path);
    if (!dir.userWritable || !dir.add) throw vfsError('EACCES', path);
  }

  mkdir(path: string, opts: { parents?: boolean; perm?: number } = {}): void {
    if (opts.parents) {
      const abs = this.absolute(path);
      const parts = abs.split('/').filter((c) => c !== '');
      let cur = '';
      for (const p of parts) {
        cur += `/${p}`;
        if (p === '.' || p === '..') continue;
        let st: VStat | undefined;
        try {
          st = this.stat(cur);
        } catch (e) {
          if (vfsErrno(e) !== 'ENOENT') throw e;
        }
        if (st) {
          if (st.type !== 'dir') throw vfsError('ENOTDIR', path);
          continue;
        }
        this.mkdir(cur, { perm: opts.perm });
      }
      return;
    }
    const { dir, name } = this.resolveParent(path);
    if (name === '.' || name === '..' || dir.lookup(name)) throw vfsError('EEXIST', path);
    this.checkUserWritable(dir, path);
    dir.add!(name, new MemDir({ perm: opts.perm ?? 0o755, userWritable: true, mtime: this.clock() }));
  }

  /** Remove a non-directory entry. */
  unlink(path: string): void {
    const { dir, dirPath, name } = this.resolveParent(path);
    if (name === '.' || name === '..') throw vfsError('EINVAL', path);
    const node = this.lookupChild(dir, dirPath, name);
    if (!node) throw vfsError('ENOENT', path);
    if (node.type === 'dir') throw vfsError('EISDIR', path);
    this.checkUserWritable(dir, path);
    dir.delete!(name);
  }

  /** Remove an empty directory. */
  rmdir(path: string): void {
    const { dir, dirPath, name } = this.resolveParent(path);
    if (name === '.' || name === '..') throw vfsError('EINVAL', path);
    const node = this.lookupChild(dir, dirPath, name);
    if (!node) throw vfsError('ENOENT', path);
    if (node.type !== 'dir') throw vfsError('ENOTDIR', path);
    const childPath = dirPath === '/' ? `/${name}` : `${dirPath}/${name}`;
    if (this.mounts.has(childPath) || this.isMountAncestor(childPath)) throw vfsError('EBUSY', path);
    if (node.list().length > 0) throw vfsError('ENOTEMPTY', path);
    this.checkUserWritable(dir, path);
    dir.delete!(name);
  }

  symlink(target: string, path: string): void {
    const { dir, name } = this.resolveParent(path);
    if (name === '.' || name === '..' || dir.lookup(name)) throw vfsError('EEXIST', path);
    this.checkUserWritable(dir, path);
    dir.add!(name, new MemLink(target, this.clock()));
  }

  private isMountAncestor(p: string): boolean {
    for (const m of this.mounts.keys()) if (m.startsWith(`${p}/`)) return true;
    return false;
  }

  // ------------------------------------------------------------------ provider (kernel) operations

  /** Create every missing directory of `path` (provider operation). Returns the directory. */
  mkdirp(path: string, opts: { perm?: number; userWritable?: boolean } = {}): DirNode {
    const parts = path.split('/').filter((c) => c !== '' && c !== '.');
    let cur: DirNode = this.root;
    let curPath = '/';
    for (const p of parts) {
      if (p === '..') throw vfsError('EINVAL', path);
      const next = this.lookupChild(cur, curPath, p);
      curPath = curPath === '/' ? `/${p}` : `${curPath}/${p}`;
      if (next) {
        const r = next.type === 'symlink' ? this.resolve(curPath, true).node : next;
        if (r.type !== 'dir') throw vfsError('ENOTDIR', path);
        cur = r;
        continue;
      }
      if (!cur.add) throw vfsError('EROFS', path);
      const d = new MemDir({
        perm: opts.perm ?? 0o755,
        userWritable: opts.userWritable,
        mtime: this.clock(),
      });
      cur.add(p, d);
      cur = d;
    }
    return cur;
  }

  /** Add (or replace) an entry (provider operation): a `DynFile`, `MemFile`, `MemDir`, link or device. */
  addNode(path: string, node: VNode): void {
    const { dir, name } = this.resolveParent(path);
    if (name === '.' || name === '..') throw vfsError('EINVAL', path);
    if (!dir.add) throw vfsError('EROFS', path);
    dir.add(name, node);
  }

  /** Add a file computed on read (creating missing parent directories). */
  addFile(path: string, spec: DynFileSpec | Uint8Array | string): DynFile | MemFile {
    const slash = path.lastIndexOf('/');
    if (slash > 0) this.mkdirp(path.slice(0, slash));
    const node =
      typeof spec === 'string' || spec instanceof Uint8Array
        ? new MemFile(typeof spec === 'string' ? Buffer.from(spec, 'latin1') : spec, {
            writable: false,
            perm: 0o444,
            clock: this.clock,
          })
        : new DynFile({ mtime: this.clock(), ...spec });
    this.addNode(path, node);
    return node;
  }

  /** Remove an entry and everything under it (provider operation: `in/` goes away). No error if absent. */
  removeEntry(path: string): boolean {
    let parent: { dir: DirNode; dirPath: string; name: string };
    try {
      parent = this.resolveParent(path);
    } catch (e) {
      if (vfsErrno(e) === 'ENOENT') return false;
      throw e;
    }
    const { dir, dirPath, name } = parent;
    const childPath = dirPath === '/' ? `/${name}` : `${dirPath}/${name}`;
    if (this.mounts.has(childPath) || this.isMountAncestor(childPath)) throw vfsError('EBUSY', path);
    if (!dir.delete) throw vfsError('EROFS', path);
    // A shell whose cwd was removed keeps the path; lookups from it fail with ENOENT, as on Linux.
    return dir.delete(name);
  }

  /** Mount `dir` over the existing directory `path`. Returns `dir`. */
  mount<T extends DirNode>(path: string, dir: T): T {
    const r = this.resolve(path, true);
    if (r.node.type !== 'dir') throw vfsError('ENOTDIR', path);
    if (this.mounts.has(r.path)) throw vfsError('EBUSY', path);
    this.mounts.set(r.path, dir);
    return dir;
  }

  /** Mount a host directory read-only at `path`. The host directory is the boundary no lookup leaves. */
  mountHost(path: string, hostDir: string): HostDir {
    let real: string;
    let st: BigIntStats;
    try {
      real = (realpathSync(hostPathBuf(hostDir), { encoding: 'buffer' }) as Buffer).toString('latin1');
      st = lstatSync(hostPathBuf(real), { bigint: true });
    } catch {
      throw vfsError('ENOENT', hostDir);
    }
    if (!st.isDirectory()) throw vfsError('ENOTDIR', hostDir);
    return this.mount(path, new HostDir(real, real, st));
  }

  unmount(path: string): void {
    const abs = this.mounts.has(path) ? path : this.resolve(path, true).path;
    if (!this.mounts.has(abs)) throw vfsError('EINVAL', path);
    if (this.isMountAncestor(abs)) throw vfsError('EBUSY', path);
    this.mounts.delete(abs);
  }

  isMounted(path: string): boolean {
    return this.mounts.has(path);
  }

  mountPoints(): string[] {
    return [...this.mounts.keys()].sort(compareBytes);
  }
}

/** Byte order (strcmp in the C locale) of binary strings. */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The base layout of a simulated machine: `/boot`, `/dev/null`, `/proc`, `/sys/kernel`, `/root` and `/tmp`
 * (user-writable, RAM-backed), `/etc`. Providers fill `/proc` and mount debugfs.
 */
export function createBaseVfs(opts: { clock?: Clock } = {}): Vfs {
  const vfs = new Vfs(opts);
  const now = vfs.clock();
  vfs.mkdirp('/boot');
  vfs.mkdirp('/dev');
  vfs.addNode('/dev/null', new NullDevice(now));
  vfs.mkdirp('/etc');
  vfs.mkdirp('/proc', { perm: 0o555 });
  vfs.mkdirp('/sys/kernel', { perm: 0o555 });
  vfs.root.add('tmp', new MemDir({ perm: 0o1777, userWritable: true, mtime: now }));
  vfs.root.add('root', new MemDir({ perm: 0o700, userWritable: true, mtime: now }));
  vfs.chdir('/root');
  return vfs;
}
