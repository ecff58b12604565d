/**
 * The small tools: `echo`, `true`, `false`, `pwd`, `mkdir`, `rm`, `rmdir`, `cp`, `touch`.
 *
 * Contract: output and diagnostics as GNU coreutils 9 (and bash's builtin `echo`) print them in the C
 * locale; statuses as theirs (0 success, 1 failure of some operand, 1 or 2 for usage errors as each tool).
 * Mutations go through the VFS's user operations, so they succeed only in writable places (`/tmp`,
 * `/root`) and fail elsewhere with the errno a real system gives (EACCES, EROFS).
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { errorMessage, MemFile, type VStat, vfsErrno } from '../vfs.ts';
import { getopts, has, Out, quote, withUsage } from './util.ts';

/** The one-letter escapes of `echo -e` (printf's format strings add `\"`, `\'` and `\?`). */
export const ECHO_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  e: '\x1b',
  E: '\x1b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
};

/**
 * Interpret `echo -e` escapes; returns the text and whether `\c` stopped output. `bareOctal`: also `\NNN`
 * without the leading 0, as printf's `%b` reads them (bash shares the rest between the two).
 */
export function echoEscapes(s: string, opts: { bareOctal?: boolean } = {}): { out: string; stop: boolean } {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\' || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const d = s[++i];
    if (Object.hasOwn(ECHO_ESCAPES, d)) out += ECHO_ESCAPES[d];
    else if (d === 'c') return { out, stop: true };
    else if (d === '0' || (opts.bareOctal && d >= '1' && d <= '7')) {
      const from = d === '0' ? i + 1 : i;
      let j = from;
      let v = 0;
      while (j < s.length && j < from + 3 && s[j] >= '0' && s[j] <= '7') v = v * 8 + (s.charCodeAt(j++) - 48);
      out += String.fromCharCode(v & 0xff);
      i = j - 1;
    } else if (d === 'x' && /[0-9a-fA-F]/.test(s[i + 1] ?? '')) {
      let j = i + 1;
      let v = 0;
      while (j < s.length && j < i + 3 && /[0-9a-fA-F]/.test(s[j])) v = v * 16 + Number.parseInt(s[j++], 16);
      out += String.fromCharCode(v);
      i = j - 1;
    } else out += `\\${d}`;
  }
  return { out, stop: false };
}

/** bash's builtin echo: options -n, -e, -E (only leading words made wholly of those letters). */
export function echo(ctx: CommandContext): CommandResult {
  const args = ctx.argv.slice(1);
  let newline = true;
  let escapes = false;
  let k = 0;
  for (; k < args.length; k++) {
    const a = args[k];
    if (!/^-[neE]+$/.test(a)) break;
    for (const c of a.slice(1)) {
      if (c === 'n') newline = false;
      else if (c === 'e') escapes = true;
      else escapes = false;
    }
  }
  let out = '';
  const rest = args.slice(k);
  for (let i = 0; i < rest.length; i++) {
    let s = rest[i];
    if (escapes) {
      const r = echoEscapes(s);
      s = r.out;
      if (r.stop) return { stdout: out + (i > 0 ? ' ' : '') + s, status: 0 };
    }
    out += i > 0 ? ` ${s}` : s;
  }
  return { stdout: newline ? `${out}\n` : out, status: 0 };
}

export const trueCmd = (): CommandResult => ({ status: 0 });
export const falseCmd = (): CommandResult => ({ status: 1 });

export function pwd(ctx: CommandContext): CommandResult {
  return { stdout: `${ctx.vfs.cwd}\n`, status: 0 };
}

export function mkdir(ctx: CommandContext): CommandResult {
  return withUsage('mkdir', 1, () => {
    const p = getopts('mkdir', ctx.argv.slice(1), {
      flags: 'pv',
      withArg: 'm',
      long: { parents: 'p', verbose: 'v', 'mode=': 'm' },
    });
    const o = new Out();
    if (p.operands.length === 0) {
      return { stderr: "mkdir: missing operand\nTry 'mkdir --help' for more information.\n", status: 1 };
    }
    const modeArg = p.list.find(([k]) => k === 'm')?.[1];
    const perm =
      typeof modeArg === 'string' && /^[0-7]{1,4}$/.test(modeArg) ? Number.parseInt(modeArg, 8) : undefined;
    const make = (d: string): boolean => {
      try {
        ctx.vfs.mkdir(d, { perm });
        if (has(p, 'v')) o.out(`mkdir: created directory ${quote(d)}\n`);
        return true;
      } catch (e) {
        o.err(`mkdir: cannot create directory ${quote(d)}: ${errorMessage(e)}\n`);
        o.status = 1;
        return false;
      }
    };
    for (const d of p.operands) {
      if (!has(p, 'p')) {
        make(d);
        continue;
      }
      // -p: create each missing prefix; an existing non-directory prefix is ENOTDIR, a final one EEXIST.
      const parts = d.split('/');
      let prefix = '';
      for (let i = 0; i < parts.length; i++) {
        prefix = i === 0 ? parts[0] : `${prefix}/${parts[i]}`;
        if (parts[i] === '' || parts[i] === '.' || parts[i] === '..') continue;
        const last = parts.slice(i + 1).every((x) => x === '');
        let st: VStat | undefined;
        try {
          st = ctx.vfs.stat(prefix);
        } catch {
          st = undefined;
        }
        if (st?.type === 'dir') continue;
        if (st) {
          const what = last ? `${quote(d)}: File exists` : `${quote(prefix)}: Not a directory`;
          o.err(`mkdir: cannot create directory ${what}\n`);
          o.status = 1;
          break;
        }
        if (!make(prefix)) break;
      }
    }
    return o.result();
  });
}

function removeTree(ctx: CommandContext, path: string, o: Out, force: boolean): boolean {
  let st: VStat;
  try {
    st = ctx.vfs.lstat(path);
  } catch (e) {
    if (force && vfsErrno(e) === 'ENOENT') return true;
    o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
    return false;
  }
  if (st.type === 'dir') {
    let ok = true;
    let names: string[] = [];
    try {
      names = ctx.vfs.readdir(path);
    } catch (e) {
      o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
      return false;
    }
    for (const n of names) ok = removeTree(ctx, `${path.replace(/\/+$/, '')}/${n}`, o, force) && ok;
    if (!ok) return false;
    try {
      ctx.vfs.rmdir(path);
      return true;
    } catch (e) {
      o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
      return false;
    }
  }
  try {
    ctx.vfs.unlink(path);
    return true;
  } catch (e) {
    o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
    return false;
  }
}

export function rm(ctx: CommandContext): CommandResult {
  return withUsage('rm', 1, () => {
    const p = getopts('rm', ctx.argv.slice(1), {
      flags: 'rRfidv',
      long: { recursive: 'r', force: 'f', dir: 'd', verbose: 'v' },
    });
    const recursive = has(p, 'r') || has(p, 'R');
    const force = has(p, 'f');
    const o = new Out();
    if (p.operands.length === 0) {
      if (force) return { status: 0 };
      return { stderr: "rm: missing operand\nTry 'rm --help' for more information.\n", status: 1 };
    }
    for (const path of p.operands) {
      const base = path.replace(/\/+$/, '').split('/').pop();
      if (recursive && (base === '.' || base === '..')) {
        o.err(`rm: refusing to remove '.' or '..' directory: skipping ${quote(path)}\n`);
        o.status = 1;
        continue;
      }
      let st: VStat;
      try {
        st = ctx.vfs.lstat(path);
      } catch (e) {
        if (force && (vfsErrno(e) === 'ENOENT' || vfsErrno(e) === 'ENOTDIR')) continue;
        o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
        o.status = 1;
        continue;
      }
      if (st.type === 'dir') {
        if (recursive && ctx.vfs.realpath(path) === '/') {
          o.err(`rm: it is dangerous to operate recursively on ${quote(path)}\n`);
          o.err('rm: use --no-preserve-root to override this failsafe\n');
          o.status = 1;
          continue;
        }
        if (!recursive) {
          if (has(p, 'd')) {
            try {
              ctx.vfs.rmdir(path);
            } catch (e) {
              o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
              o.status = 1;
            }
            continue;
          }
          o.err(`rm: cannot remove ${quote(path)}: Is a directory\n`);
          o.status = 1;
          continue;
        }
        if (!removeTree(ctx, path, o, force)) o.status = 1;
        continue;
      }
      try {
        ctx.vfs.unlink(path);
        if (has(p, 'v')) o.out(`removed ${quote(path)}\n`);
      } catch (e) {
        o.err(`rm: cannot remove ${quote(path)}: ${errorMessage(e)}\n`);
        o.status = 1;
      }
    }
    return o.result();
  });
}

export function rmdir(ctx: CommandContext): CommandResult {
  return withUsage('rmdir', 1, () => {
    const p = getopts('rmdir', ctx.argv.slice(1), { flags: '' });
    const o = new Out();
    if (p.operands.length === 0)
      return { stderr: "rmdir: missing operand\nTry 'rmdir --help' for more information.\n", status: 1 };
    for (const d of p.operands) {
      try {
        ctx.vfs.rmdir(d);
      } catch (e) {
        o.err(`rmdir: failed to remove ${quote(d)}: ${errorMessage(e)}\n`);
        o.status = 1;
      }
    }
    return o.result();
  });
}

interface CopyTop {
  src: string;
  dst: string;
  /** Real path of the top-level destination directory once created. */
  dstReal?: string;
  /** Set when GNU would abandon the rest of this source's copy. */
  aborted?: boolean;
}

function copyInto(
  ctx: CommandContext,
  src: string,
  dst: string,
  recursive: boolean,
  o: Out,
  top?: CopyTop,
): void {
  let st: VStat;
  try {
    st = ctx.vfs.stat(src);
  } catch (e) {
    o.err(`cp: cannot stat ${quote(src)}: ${errorMessage(e)}\n`);
    o.status = 1;
    return;
  }
  if (st.type === 'dir') {
    const t: CopyTop = top ?? { src, dst };
    // GNU copies a directory into itself one level deep, refusing when it meets the copy being made.
    if (t.dstReal !== undefined && ctx.vfs.realpath(src) === t.dstReal) {
      o.err(`cp: cannot copy a directory, ${quote(t.src)}, into itself, ${quote(t.dst)}\n`);
      o.status = 1;
      t.aborted = true;
      return;
    }
    if (ctx.vfs.exists(dst) && ctx.vfs.realpath(dst) === ctx.vfs.realpath(src)) {
      o.err(`cp: ${quote(src)} and ${quote(dst)} are the same file\n`);
      o.status = 1;
      return;
    }
    try {
      if (!ctx.vfs.exists(dst)) ctx.vfs.mkdir(dst);
      else if (ctx.vfs.stat(dst).type !== 'dir') {
        o.err(`cp: cannot overwrite non-directory ${quote(dst)} with directory ${quote(src)}\n`);
        o.status = 1;
        return;
      }
    } catch (e) {
      o.err(`cp: cannot create directory ${quote(dst)}: ${errorMessage(e)}\n`);
      o.status = 1;
      return;
    }
    if (t.dstReal === undefined) t.dstReal = ctx.vfs.realpath(dst);
    for (const n of ctx.vfs.readdir(src)) {
      if (t.aborted) return;
      copyInto(ctx, `${src}/${n}`, `${dst}/${n}`, recursive, o, t);
    }
    return;
  }
  try {
    if (ctx.vfs.realpath(dst) === ctx.vfs.realpath(src)) {
      o.err(`cp: ${quote(src)} and ${quote(dst)} are the same file\n`);
      o.status = 1;
      return;
    }
  } catch {
    // The destination does not exist yet.
  }
  let data: Uint8Array;
  try {
    data = ctx.vfs.readFile(src);
  } catch (e) {
    o.err(`cp: cannot open ${quote(src)} for reading: ${errorMessage(e)}\n`);
    o.status = 1;
    return;
  }
  try {
    ctx.vfs.writeFile(dst, data);
  } catch (e) {
    o.err(`cp: cannot create regular file ${quote(dst)}: ${errorMessage(e)}\n`);
    o.status = 1;
  }
}

export function cp(ctx: CommandContext): CommandResult {
  return withUsage('cp', 1, () => {
    const p = getopts('cp', ctx.argv.slice(1), { flags: 'rRafv', long: { recursive: 'r', force: 'f' } });
    const recursive = has(p, 'r') || has(p, 'R') || has(p, 'a');
    const o = new Out();
    const ops = p.operands;
    if (ops.length === 0)
      return { stderr: "cp: missing file operand\nTry 'cp --help' for more information.\n", status: 1 };
    if (ops.length === 1)
      return {
        stderr: `cp: missing destination file operand after ${quote(ops[0])}\nTry 'cp --help' for more information.\n`,
        status: 1,
      };
    const dst = ops[ops.length - 1];
    const srcs = ops.slice(0, -1);
    let dstIsDir = false;
    let dstErr: string | undefined;
    try {
      dstIsDir = ctx.vfs.stat(dst).type === 'dir';
    } catch (e) {
      dstErr = vfsErrno(e);
    }
    if (srcs.length > 1 && !dstIsDir)
      return { stderr: `cp: target ${quote(dst)} is not a directory\n`, status: 1 };
    for (const s of srcs) {
      let st: VStat;
      try {
        st = ctx.vfs.stat(s);
      } catch (e) {
        o.err(`cp: cannot stat ${quote(s)}: ${errorMessage(e)}\n`);
        o.status = 1;
        continue;
      }
      if (st.type === 'dir' && !recursive) {
        o.err(`cp: -r not specified; omitting directory ${quote(s)}\n`);
        o.status = 1;
        continue;
      }
      if (dstErr === 'ENOTDIR' || (!dstIsDir && dst.endsWith('/') && st.type !== 'dir')) {
        // A trailing slash names a directory: a file there is ENOTDIR, a missing one cannot be created.
        o.err(
          dstErr === 'ENOTDIR'
            ? `cp: cannot stat ${quote(dst)}: Not a directory\n`
            : `cp: cannot create regular file ${quote(dst)}: Not a directory\n`,
        );
        o.status = 1;
        continue;
      }
      const base = s.replace(/\/+$/, '').split('/').pop() ?? s;
      const target = dstIsDir ? `${dst.replace(/\/+$/, '')}/${base}` : dst;
      copyInto(ctx, s, target, recursive, o);
    }
    return o.result();
  });
}

export function touch(ctx: CommandContext): CommandResult {
  return withUsage('touch', 1, () => {
    const p = getopts('touch', ctx.argv.slice(1), { flags: 'c', long: { 'no-create': 'c' } });
    const o = new Out();
    if (p.operands.length === 0)
      return { stderr: "touch: missing file operand\nTry 'touch --help' for more information.\n", status: 1 };
    for (const f of p.operands) {
      if (f.endsWith('/')) {
        // GNU: a trailing slash needs an existing directory; the error comes from setting the times.
        try {
          if (ctx.vfs.stat(f).type === 'dir') continue;
        } catch (e) {
          o.err(`touch: setting times of ${quote(f)}: ${errorMessage(e)}\n`);
          o.status = 1;
        }
        continue;
      }
      try {
        if (ctx.vfs.exists(f)) {
          const n = ctx.vfs.resolve(f).node;
          if (n instanceof MemFile) n.mtime = ctx.vfs.clock();
          continue;
        }
        if (has(p, 'c')) continue;
        ctx.vfs.writeFile(f, new Uint8Array(0));
      } catch (e) {
        o.err(`touch: cannot touch ${quote(f)}: ${errorMessage(e)}\n`);
        o.status = 1;
      }
    }
    return o.result();
  });
}
