/**
 * `kho debugfs mount DIR`: a `DebugfsTree` as a read-only FUSE filesystem (optional: fuse-native).
 *
 * Contract:
 * - `loadFuse()` returns fuse-native's `Fuse` class, or throws `KhoError('KHO_FUSE_UNAVAILABLE')` with
 *   what is missing: `/dev/fuse` (no FUSE in this kernel or container), the `fuse-native` module (an
 *   optional dependency: `npm install fuse-native@2.2.6`), or `libfuse.so.2` (Debian: `apt-get
 *   install libfuse2`). `KHO_FUSE_DEVICE` names another device node to probe (tests use it).
 * - `mountTree(tree, dir)` mounts the tree at `dir` (an existing, empty, real directory:
 *   `KHO_MOUNT_NOT_A_DIR`, `KHO_MOUNT_NOT_EMPTY` otherwise). File names are made safe exactly as the
 *   export does (`safeNames()`, per directory), so a producer's name never creates a path outside the
 *   mount; the mount is read-only (files 0400, directories 0700, owned by the caller; nothing
 *   implements write, create, unlink, rename, symlink or chmod). File content is read from the tree
 *   when a file is opened (live for a simulated kernel) and served from that snapshot until release.
 * - The FUSE callbacks run on this process's event loop: this process must not read the mount itself
 *   synchronously (it would deadlock); read it from another process.
 * - `unmount()` unmounts; call it on SIGINT/SIGTERM.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { KhoError } from '../errors.ts';
import { buildNodes, MAX_EXPORT_DEPTH } from './debugfs-export.ts';
import { type DebugfsTree, type Renaming, readContent, safeNames } from './debugfs-tree.ts';

interface FuseStat {
  mode: number;
  size: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: Date;
  atime: Date;
  ctime: Date;
}
type Cb = (code: number, ...rest: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err?: Error | null) => void): void;
  unmount(cb: (err?: Error | null) => void): void;
}
export type FuseCtor = (new (
  mnt: string,
  ops: Record<string, (...args: never[]) => void>,
  opts?: Record<string, unknown>,
) => FuseInstance) & { ENOENT: number; EACCES: number; EROFS?: number; EBADF: number };

/** The first of these on PATH unmounts a FUSE mount: fusermount (fuse), fusermount3 (fuse3), umount (root). */
const UNMOUNTERS: [string, string[]][] = [
  ['fusermount', ['-uz']],
  ['fusermount3', ['-uz']],
  ['umount', ['-l']],
];

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => d !== '' && existsSync(`${d}/${cmd}`));
}

/**
 * fuse-native unmounts with `fusermount -uz`, which Debian ships in the `fuse` package, not in
 * `libfuse2`; fall back to fusermount3 or (as root) `umount -l`.
 */
function patchUnmount(Fuse: FuseCtor): void {
  const F = Fuse as unknown as { unmount: (mnt: string, cb: (err: Error | null) => void) => void };
  const found = UNMOUNTERS.find(([c]) => onPath(c));
  if (!found || found[0] === 'fusermount') return;
  F.unmount = (mnt, cb) =>
    execFile(found[0], [...found[1], mnt], (err) =>
      cb(err ? new Error(`${found[0]} ${mnt}: ${err.message}`) : null),
    );
}

/** fuse-native, or why not (see the module contract). */
export function loadFuse(): FuseCtor {
  const dev = process.env.KHO_FUSE_DEVICE || '/dev/fuse';
  if (!existsSync(dev))
    throw new KhoError('KHO_FUSE_UNAVAILABLE', `FUSE is not available: ${dev} does not exist`, {
      expected:
        'a kernel with FUSE (modprobe fuse; in a container: --device /dev/fuse); or use kho debugfs export',
    });
  try {
    const Fuse = createRequire(import.meta.url)('fuse-native') as FuseCtor;
    patchUnmount(Fuse);
    return Fuse;
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && /fuse-native/.test(msg))
      throw new KhoError(
        'KHO_FUSE_UNAVAILABLE',
        'FUSE support is not installed: the optional fuse-native module is missing',
        {
          expected: 'npm install fuse-native@2.2.6 (and libfuse2); or use kho debugfs export',
        },
      );
    if (/libfuse/.test(msg))
      throw new KhoError('KHO_FUSE_UNAVAILABLE', `FUSE library missing: ${msg.split('\n')[0]}`, {
        expected: 'libfuse 2 (Debian: apt-get install libfuse2); or use kho debugfs export',
      });
    throw new KhoError('KHO_FUSE_UNAVAILABLE', `fuse-native does not load: ${msg.split('\n')[0]}`, {
      expected: 'a working fuse-native 2.2.6 with libfuse2; or use kho debugfs export',
    });
  }
}

interface MNode {
  kind: 'file' | 'dir';
  read?: () => Uint8Array;
  mode: number;
  children: Map<string, MNode>;
}

/** The tree indexed by safe names (the same names `exportTree` writes). */
export function safeIndex(tree: DebugfsTree): { root: MNode; renamings: (Renaming & { dir: string })[] } {
  const renamings: (Renaming & { dir: string })[] = [];
  const conv = (n: ReturnType<typeof buildNodes>, shown: string, depth: number): MNode => {
    const out: MNode = {
      kind: n.kind,
      mode: n.entry?.mode ?? (n.kind === 'dir' ? 0o700 : 0o400),
      children: new Map(),
      ...(n.kind === 'file' ? { read: () => readContent(n.entry?.content) } : {}),
    };
    // Deeper directories are left empty, as the export refuses them.
    const raws = depth >= MAX_EXPORT_DEPTH ? [] : [...n.children.keys()];
    const { names, renamings: r } = safeNames(raws);
    for (const x of r) renamings.push({ ...x, dir: shown || '.' });
    raws.forEach((raw, i) => {
      out.children.set(
        names[i],
        conv(
          n.children.get(raw) as ReturnType<typeof buildNodes>,
          shown ? `${shown}/${names[i]}` : names[i],
          depth + 1,
        ),
      );
    });
    return out;
  };
  return { root: conv(buildNodes(tree), '', 0), renamings };
}

export interface Mounted {
  dir: string;
  renamings: (Renaming & { dir: string })[];
  unmount(): Promise<void>;
}

/** Mount `tree` read-only at `dir` (see the module contract). */
export async function mountTree(
  tree: DebugfsTree,
  dir: string,
  Fuse: FuseCtor = loadFuse(),
): Promise<Mounted> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    throw new KhoError('KHO_MOUNT_NOT_A_DIR', `${dir} does not exist`, {
      path: dir,
      expected: 'an empty directory',
    });
  }
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new KhoError('KHO_MOUNT_NOT_A_DIR', `${dir} is not a directory`, {
      path: dir,
      expected: 'an empty directory (not a symbolic link)',
    });
  if (readdirSync(dir).length > 0)
    throw new KhoError('KHO_MOUNT_NOT_EMPTY', `${dir} is not empty`, {
      path: dir,
      expected: 'an empty directory',
    });
  const { root, renamings } = safeIndex(tree);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const now = new Date();
  const lookup = (p: string): MNode | undefined => {
    let n: MNode | undefined = root;
    for (const seg of p.split('/')) {
      if (seg === '') continue;
      n = n?.children.get(seg);
      if (!n) return undefined;
    }
    return n;
  };
  const stat = (n: MNode, size: number): FuseStat => ({
    mode: (n.kind === 'dir' ? 0o040000 : 0o100000) | n.mode,
    size,
    uid,
    gid,
    nlink: n.kind === 'dir' ? 2 : 1,
    mtime: now,
    atime: now,
    ctime: now,
  });
  const open = new Map<number, Uint8Array>();
  let nextFd = 10;
  const ops = {
    getattr(path: string, cb: Cb) {
      const n = lookup(path);
      if (!n) return cb(Fuse.ENOENT);
      let size = 0;
      try {
        size = n.kind === 'file' && n.read ? n.read().length : 0;
      } catch {
        size = 0;
      }
      return cb(0, stat(n, size));
    },
    readdir(path: string, cb: Cb) {
      const n = lookup(path);
      if (!n) return cb(Fuse.ENOENT);
      if (n.kind !== 'dir') return cb(-20); // ENOTDIR
      return cb(0, [...n.children.keys()]);
    },
    open(path: string, flags: number, cb: Cb) {
      const n = lookup(path);
      if (!n) return cb(Fuse.ENOENT);
      if ((flags & 3) !== 0) return cb(-30); // EROFS: read-only
      if (n.kind !== 'file' || !n.read) return cb(-21); // EISDIR
      let data: Uint8Array;
      try {
        data = n.read();
      } catch {
        return cb(-5); // EIO
      }
      const fd = nextFd++;
      open.set(fd, data);
      return cb(0, fd);
    },
    read(_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      const data = open.get(fd);
      if (!data) return cb(Fuse.EBADF);
      if (pos >= data.length) return cb(0);
      const part = data.subarray(pos, Math.min(data.length, pos + len));
      buf.set(part);
      return cb(part.length);
    },
    release(_path: string, fd: number, cb: Cb) {
      open.delete(fd);
      return cb(0);
    },
  };
  const fuse = new Fuse(dir, ops as unknown as Record<string, (...args: never[]) => void>, {
    fsname: 'kho-debugfs',
    autoCache: false,
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) =>
      err
        ? reject(
            new KhoError('KHO_FUSE_MOUNT_FAILED', `mounting ${dir} failed: ${err.message}`, {
              path: dir,
              cause: err,
            }),
          )
        : resolve(),
    ),
  );
  return {
    dir,
    renamings,
    unmount: () =>
      new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve()))),
  };
}
