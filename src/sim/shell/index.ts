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
export * from './vfs.ts';

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
