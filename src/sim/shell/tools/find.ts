/**
 * `find PATH... [EXPR]`, GNU findutils' output for a subset of its expression language.
 *
 * Contract: starting points are the leading operands (default `.`); the expression is an AND of primaries,
 * each optionally negated by `!`/`-not`: `-type f|d|l|c`, `-name GLOB`, `-iname GLOB`, `-path GLOB`,
 * `-maxdepth N`, `-mindepth N`, `-empty`, `-print`, `-true`, `-false`, with `-a`/`-and` accepted. Symlinks are
 * not followed (`-P`). Paths print as `start/name...` (no doubled slash after a start ending in `/`) in
 * pre-order, entries of a directory in byte order (GNU prints in readdir order, which is unspecified).
 * Errors: `find: 'x': No such file or directory` (status 1), `find: unknown predicate '-foo'`.
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { fnmatch } from '../glob.ts';
import { errorMessage, type VStat } from '../vfs.ts';
import { Out } from './util.ts';

type Test = (path: string, name: string, st: VStat) => boolean;

export function find(ctx: CommandContext): CommandResult {
  const args = ctx.argv.slice(1);
  const starts: string[] = [];
  let i = 0;
  while (i < args.length && !args[i].startsWith('-') && args[i] !== '!' && args[i] !== '(')
    starts.push(args[i++]);
  if (starts.length === 0) starts.push('.');
  const tests: Test[] = [];
  let maxDepth = Number.POSITIVE_INFINITY;
  let minDepth = 0;
  let negate = false;
  const err = (m: string): CommandResult => ({ stderr: `find: ${m}\n`, status: 1 });
  while (i < args.length) {
    const a = args[i++];
    if (a === '!' || a === '-not') {
      negate = !negate;
      continue;
    }
    if (a === '-a' || a === '-and') continue;
    const arg = (): string | undefined => args[i++];
    let t: Test | undefined;
    switch (a) {
      case '-print':
      case '-true':
        t = () => true;
        break;
      case '-false':
        t = () => false;
        break;
      case '-type': {
        const v = arg();
        if (v === undefined) return err(`missing argument to \`${a}'`);
        const map: Record<string, VStat['type']> = { f: 'file', d: 'dir', l: 'symlink', c: 'chardev' };
        if (!Object.hasOwn(map, v)) return err(`Unknown argument to -type: ${v}`);
        const want = map[v];
        t = (_p, _n, st) => st.type === want;
        break;
      }
      case '-name':
      case '-iname': {
        const v = arg();
        if (v === undefined) return err(`missing argument to \`${a}'`);
        const fold = a === '-iname';
        t = (_p, n) => (fold ? fnmatch(v.toLowerCase(), n.toLowerCase()) : fnmatch(v, n));
        break;
      }
      case '-path': {
        const v = arg();
        if (v === undefined) return err(`missing argument to \`${a}'`);
        t = (p) => fnmatch(v, p);
        break;
      }
      case '-empty':
        t = (p, _n, st) =>
          st.type === 'dir' ? ctx.vfs.readdir(p).length === 0 : st.type === 'file' && st.size === 0;
        break;
      case '-maxdepth':
      case '-mindepth': {
        const v = arg();
        if (v === undefined) return err(`missing argument to \`${a}'`);
        if (!/^\d+$/.test(v))
          return err(`Expected a positive decimal integer argument to ${a}, but got ‘${v}’`);
        if (a === '-maxdepth') maxDepth = Number(v);
        else minDepth = Number(v);
        continue;
      }
      default:
        if (a.startsWith('-')) return err(`unknown predicate \`${a}'`);
        return err(`paths must precede expression: \`${a}'`);
    }
    const base = t;
    tests.push(negate ? (p, n, st) => !base(p, n, st) : base);
    negate = false;
  }
  const o = new Out();
  const visit = (path: string, name: string, depth: number) => {
    let st: VStat;
    try {
      st = ctx.vfs.lstat(path);
    } catch (e) {
      o.err(`find: '${path}': ${errorMessage(e)}\n`);
      o.status = 1;
      return;
    }
    if (depth >= minDepth && tests.every((t) => t(path, name, st))) o.out(`${path}\n`);
    if (st.type !== 'dir' || depth >= maxDepth) return;
    let names: string[];
    try {
      names = ctx.vfs.readdir(path);
    } catch (e) {
      o.err(`find: '${path}': ${errorMessage(e)}\n`);
      o.status = 1;
      return;
    }
    for (const n of names) visit(path.endsWith('/') ? path + n : `${path}/${n}`, n, depth + 1);
  };
  for (const s of starts) {
    const trimmed = s.replace(/\/+$/, '');
    const name = trimmed === '' ? '/' : trimmed.slice(trimmed.lastIndexOf('/') + 1);
    visit(s, name, 0);
  }
  return o.result();
}
