/**
 * The `kho shell` engine: public API.
 *
 * `createShell()` gives a shell on a fresh base VFS with the core tools registered; the kernel, kexec and
 * debugfs plug in through `shell.register(...)` and the VFS's provider operations (`addFile`, `mkdirp`,
 * `mount`, `unmount`, `removeEntry`, `mountHost`).
 */
import { Shell, type ShellOptions } from './engine.ts';
import { registerCoreTools } from './tools/index.ts';
import { type Clock, createBaseVfs, type Vfs } from './vfs.ts';

export * from './engine.ts';
export { fnmatch, globExpand } from './glob.ts';
export { parse, type Script } from './parse.ts';
export { type ReplOptions, runRepl } from './repl.ts';
export { CORE_TOOLS, registerCoreTools } from './tools/index.ts';
export {
  type Clock,
  compareBytes,
  createBaseVfs,
  type DirNode,
  DynFile,
  type DynFileSpec,
  ERRNO_MESSAGES,
  type Errno,
  errorMessage,
  type FileNode,
  type FileType,
  HostDir,
  HostFile,
  HostLink,
  type LinkNode,
  MAX_HOST_READ,
  MemDir,
  MemFile,
  MemLink,
  NAME_MAX,
  type NodeBase,
  NullDevice,
  PATH_MAX,
  SYMLOOP_MAX,
  Vfs,
  type VNode,
  type VStat,
  vfsErrno,
  vfsError,
} from './vfs.ts';

export interface CreateShellOptions {
  /** Use this VFS instead of a fresh `createBaseVfs()`. */
  vfs?: Vfs;
  clock?: Clock;
  env?: Record<string, string>;
  /** Register the core tools (default true). */
  tools?: boolean;
  name?: string;
}

export function createShell(opts: CreateShellOptions = {}): Shell {
  const vfs = opts.vfs ?? createBaseVfs({ clock: opts.clock });
  const so: ShellOptions = { vfs, env: opts.env, name: opts.name };
  const shell = new Shell(so);
  if (opts.tools ?? true) registerCoreTools(shell);
  return shell;
}
