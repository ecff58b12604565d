/**
 * The shell's core tools and their registration.
 *
 * Contract: `registerCoreTools(shell)` registers every tool below with a one-line description (what
 * `help` shows); `CORE_TOOLS` lists them for callers that pick a subset. Each tool is a pure function of
 * its `CommandContext` (argv, stdin, env, VFS) and writes only through the VFS's user operations.
 */
import type { CommandHandler, Shell } from '../engine.ts';
import { cp, echo, falseCmd, mkdir, pwd, rm, rmdir, touch, trueCmd } from './basic.ts';
import { head, sha256sum, tail, wc, xxd } from './bytes.ts';
import { find } from './find.ts';
import { grep } from './grep.ts';
import { ls } from './ls.ts';
import { basename, cat, dirname, seq, tee } from './more.ts';
import { printf } from './printf.ts';
import { stat } from './stat.ts';
import { cut, sort, tr, uniq } from './text.ts';

export const CORE_TOOLS: { name: string; handler: CommandHandler; description: string }[] = [
  { name: 'basename', handler: basename, description: 'strip directories (and a suffix) from names' },
  { name: 'cat', handler: cat, description: 'print files (-n -b -s -A -v -E -T)' },
  { name: 'cp', handler: cp, description: 'copy files (into /tmp or /root)' },
  { name: 'cut', handler: cut, description: 'print selected fields, bytes or characters of lines' },
  { name: 'dirname', handler: dirname, description: 'strip the last component from names' },
  { name: 'echo', handler: echo, description: 'print arguments' },
  { name: 'false', handler: falseCmd, description: 'fail (status 1)' },
  { name: 'find', handler: find, description: 'list files below directories (-type, -name, -maxdepth)' },
  { name: 'grep', handler: grep, description: 'print lines matching a pattern' },
  { name: 'head', handler: head, description: 'print the first lines or bytes' },
  { name: 'ls', handler: ls, description: 'list directory contents' },
  { name: 'mkdir', handler: mkdir, description: 'make directories' },
  { name: 'printf', handler: printf, description: 'format and print arguments' },
  { name: 'pwd', handler: pwd, description: 'print the current directory' },
  { name: 'rm', handler: rm, description: 'remove files (in /tmp or /root)' },
  { name: 'rmdir', handler: rmdir, description: 'remove empty directories' },
  { name: 'seq', handler: seq, description: 'print a sequence of numbers' },
  { name: 'sha256sum', handler: sha256sum, description: 'print SHA-256 checksums' },
  { name: 'sort', handler: sort, description: 'sort lines' },
  { name: 'stat', handler: stat, description: 'show file status' },
  { name: 'tail', handler: tail, description: 'print the last lines or bytes' },
  { name: 'tee', handler: tee, description: 'copy stdin to stdout and files' },
  { name: 'touch', handler: touch, description: 'create empty files' },
  { name: 'tr', handler: tr, description: 'translate or delete bytes' },
  { name: 'true', handler: trueCmd, description: 'succeed (status 0)' },
  { name: 'uniq', handler: uniq, description: 'drop repeated adjacent lines' },
  { name: 'wc', handler: wc, description: 'count lines, words and bytes' },
  { name: 'xxd', handler: xxd, description: 'hex dump' },
];

export function registerCoreTools(shell: Shell): void {
  for (const t of CORE_TOOLS) shell.register(t.name, t.handler, t.description);
}
