/**
 * `ls`, as GNU coreutils 9 prints in the C locale with TZ=UTC.
 *
 * Contract: options -l -a -A -1 -C -R -d -r -t -S -h -n (numeric ids: the same here, everything is
 * root:root) -w COLS. Output to a pipe is one name per line; to an interactive terminal (or with -C) in
 * GNU's vertical columns (tabs every 8 columns, width $COLUMNS or 80). `-l` columns: mode, links, owner,
 * group, size (or `major, minor` for devices), date (`Mmm dd HH:MM` within the past six months,
 * `Mmm dd  YYYY` otherwise), name (`-> target` for symlinks); `total N` counts 1 KiB blocks. Names sort by
 * bytes. Operands: files first, then directories with `name:` headers when more than one operand or -R.
 * `ls: cannot access 'x': No such file or directory` makes the status 2. Names print unquoted (GNU's
 * literal style for non-terminal output).
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { compareBytes, errorMessage, type VStat, vfsErrno } from '../vfs.ts';
import { getopts, has, lastValue, Out, quote, withUsage } from './util.ts';

interface Entry {
  name: string;
  /** Path used for stat/readlink. */
  path: string;
  st: VStat;
  target?: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function modeString(st: VStat): string {
  const t = st.type === 'dir' ? 'd' : st.type === 'symlink' ? 'l' : st.type === 'chardev' ? 'c' : '-';
  const p = st.perm;
  const rwx = (shift: number, special: boolean, ch: string) => {
    const r = p & (4 << shift) ? 'r' : '-';
    const w = p & (2 << shift) ? 'w' : '-';
    const x = p & (1 << shift);
    const xs = special ? (x ? ch : ch.toUpperCase()) : x ? 'x' : '-';
    return r + w + xs;
  };
  return (
    t + rwx(6, (p & 0o4000) !== 0, 's') + rwx(3, (p & 0o2000) !== 0, 's') + rwx(0, (p & 0o1000) !== 0, 't')
  );
}

/** GNU ls's long-format date. */
export function lsDate(mtime: Date, now: Date): string {
  const sixMonths = (31556952 / 2) * 1000;
  const t = mtime.getTime();
  const recent = t > now.getTime() - sixMonths && t <= now.getTime();
  const mon = MONTHS[mtime.getUTCMonth()];
  const day = String(mtime.getUTCDate()).padStart(2, ' ');
  if (recent) {
    const hh = String(mtime.getUTCHours()).padStart(2, '0');
    const mm = String(mtime.getUTCMinutes()).padStart(2, '0');
    return `${mon} ${day} ${hh}:${mm}`;
  }
  return `${mon} ${day}  ${mtime.getUTCFullYear()}`;
}

/** GNU ls -h: powers of 1024, rounded up; one decimal below 10 (`1.1K`, `10K`, `1.0M`). */
export function humanSize(n: number): string {
  if (n < 1024) return String(n);
  const units = 'KMGTPE';
  let e = 0;
  let div = 1024n;
  const big = BigInt(n);
  while (big >= div * 1024n && e < units.length - 1) {
    div *= 1024n;
    e++;
  }
  const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;
  const tenths = ceilDiv(big * 10n, div);
  if (tenths < 100n) return `${tenths / 10n}.${tenths % 10n}${units[e]}`;
  const whole = ceilDiv(big, div);
  if (whole >= 1024n && e < units.length - 1) return `1.0${units[e + 1]}`;
  return `${whole}${units[e]}`;
}

/** GNU's indent(): pad from column `from` to `to` with tabs (tab size 8) where possible, then spaces. */
function indent(from: number, to: number): string {
  let s = '';
  while (from < to) {
    if (Math.floor(to / 8) > Math.floor((from + 1) / 8)) {
      s += '\t';
      from += 8 - (from % 8);
    } else {
      s += ' ';
      from++;
    }
  }
  return s;
}

/** GNU ls -C: vertical columns fitting `width`. */
export function columns(names: string[], width: number): string {
  const n = names.length;
  if (n === 0) return '';
  // GNU: width / 3 columns at most, one more for a remainder (the last column has no separator).
  const maxIdx = Math.max(1, Math.floor(width / 3) + (width % 3 !== 0 ? 1 : 0));
  const maxCols = Math.min(maxIdx, n);
  const info = Array.from({ length: maxCols }, (_, i) => ({
    valid: true,
    lineLen: (i + 1) * 3,
    cols: new Array<number>(i + 1).fill(3),
  }));
  for (let f = 0; f < n; f++) {
    const len = names[f].length;
    for (let i = 0; i < maxCols; i++) {
      const ci = info[i];
      if (!ci.valid) continue;
      const idx = Math.floor(f / Math.floor((n + i) / (i + 1)));
      const real = len + (idx === i ? 0 : 2);
      if (ci.cols[idx] < real) {
        ci.lineLen += real - ci.cols[idx];
        ci.cols[idx] = real;
        ci.valid = ci.lineLen < width;
      }
    }
  }
  let cols = maxCols;
  while (cols > 1 && !info[cols - 1].valid) cols--;
  const colw = info[cols - 1].cols;
  const rows = Math.floor(n / cols) + (n % cols !== 0 ? 1 : 0);
  let out = '';
  for (let row = 0; row < rows; row++) {
    let col = 0;
    let f = row;
    let pos = 0;
    while (true) {
      const name = names[f];
      out += name;
      const maxw = colw[col];
      f += rows;
      if (f >= n) break;
      out += indent(pos + name.length, pos + maxw);
      pos += maxw;
      col++;
    }
    out += '\n';
  }
  return out;
}

/** `-l` lines; column widths cover `widthOf` (GNU sizes the operand files' columns over every operand). */
function longLines(entries: Entry[], now: Date, widthOf: Entry[] = entries, human = false): string[] {
  const sizeText = (e: Entry) => (human ? humanSize(e.st.size) : String(e.st.size));
  const nlinkW = Math.max(...widthOf.map((e) => String(e.st.nlink).length));
  let majW = 0;
  let minW = 0;
  for (const e of widthOf)
    if (e.st.rdev) {
      majW = Math.max(majW, String(e.st.rdev[0]).length);
      minW = Math.max(minW, String(e.st.rdev[1]).length);
    }
  let sizeW = Math.max(...widthOf.map((e) => (e.st.rdev ? 0 : sizeText(e).length)));
  if (majW > 0) sizeW = Math.max(sizeW, majW + 2 + minW);
  return entries.map((e) => {
    const size = e.st.rdev
      ? `${String(e.st.rdev[0]).padStart(majW)}, ${String(e.st.rdev[1]).padStart(minW)}`.padStart(sizeW)
      : sizeText(e).padStart(sizeW);
    const name = e.target !== undefined ? `${e.name} -> ${e.target}` : e.name;
    return `${modeString(e.st)} ${String(e.st.nlink).padStart(nlinkW)} root root ${size} ${lsDate(e.st.mtime, now)} ${name}`;
  });
}

const joinPath = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);

export function ls(ctx: CommandContext): CommandResult {
  return withUsage('ls', 2, () => {
    const p = getopts('ls', ctx.argv.slice(1), {
      flags: 'laA1CRdrtSnxh',
      withArg: 'w',
      long: {
        all: 'a',
        'almost-all': 'A',
        recursive: 'R',
        directory: 'd',
        reverse: 'r',
        'width=': 'w',
        'human-readable': 'h',
      },
    });
    let format: 'one' | 'long' | 'cols' = ctx.isTTY ? 'cols' : 'one';
    for (const [k] of p.list) {
      if (k === 'l' || k === 'n') format = 'long';
      else if (k === '1') format = 'one';
      else if (k === 'C' || k === 'x') format = 'cols';
    }
    // The last of -a/-A wins.
    const hidden = p.list.filter(([k]) => k === 'a' || k === 'A').pop()?.[0];
    const all = hidden === 'a';
    const almostAll = hidden === 'A';
    const recursive = has(p, 'R');
    const dirAsFile = has(p, 'd');
    const human = has(p, 'h');
    const reverse = has(p, 'r');
    // The last of -t/-S wins, as in GNU ls.
    const sortKey = p.list.filter(([k]) => k === 't' || k === 'S').pop()?.[0];
    const byTime = sortKey === 't';
    const bySize = sortKey === 'S';
    const wArg = lastValue(p, 'w');
    let width = Number(ctx.env.COLUMNS) > 0 ? Number(ctx.env.COLUMNS) : 80;
    if (wArg !== undefined) {
      if (!/^\d+$/.test(wArg)) return { stderr: `ls: invalid line width: ${quote(wArg)}\n`, status: 2 };
      width = Number(wArg) || Number.MAX_SAFE_INTEGER;
    }
    const now = ctx.vfs.clock();
    const o = new Out();

    const sortEntries = (es: Entry[]) => {
      es.sort((a, b) => {
        let c = 0;
        if (bySize) c = b.st.size - a.st.size;
        else if (byTime) {
          const ta = a.st.mtimeNs ?? BigInt(a.st.mtime.getTime()) * 1000000n;
          const tb = b.st.mtimeNs ?? BigInt(b.st.mtime.getTime()) * 1000000n;
          c = tb > ta ? 1 : tb < ta ? -1 : 0;
        }
        if (c === 0) c = compareBytes(a.name, b.name);
        return reverse ? -c : c;
      });
      return es;
    };
    const render = (es: Entry[], widthOf: Entry[] = es) => {
      if (es.length === 0) return '';
      if (format === 'long') return `${longLines(es, now, widthOf, human).join('\n')}\n`;
      if (format === 'cols')
        return columns(
          es.map((e) => e.name),
          width,
        );
      return es.map((e) => `${e.name}\n`).join('');
    };
    const statEntry = (name: string, path: string, follow: boolean): Entry => {
      const st = follow ? ctx.vfs.stat(path) : ctx.vfs.lstat(path);
      const e: Entry = { name, path, st };
      if (st.type === 'symlink' && format === 'long') e.target = ctx.vfs.readlink(path);
      return e;
    };

    const operands = p.operands.length ? p.operands : ['.'];
    const files: Entry[] = [];
    const dirs: Entry[] = [];
    for (const op of operands) {
      try {
        let e: Entry;
        if (format === 'long' || dirAsFile) {
          e = statEntry(op, op, false);
          if (e.st.type === 'symlink' && !dirAsFile && format !== 'long') e = statEntry(op, op, true);
        } else {
          // GNU follows a command-line symlink only to a directory; a dangling one is listed as itself
          // (a loop is an error, as observed with GNU ls 9.1).
          try {
            e = statEntry(op, op, true);
            if (e.st.type !== 'dir') e = statEntry(op, op, false);
          } catch (err) {
            if (vfsErrno(err) !== 'ENOENT') throw err;
            e = statEntry(op, op, false);
          }
        }
        if (e.st.type === 'dir' && !dirAsFile) dirs.push(e);
        else files.push(e);
      } catch (err) {
        o.err(`ls: cannot access ${quote(op)}: ${errorMessage(err)}\n`);
        o.status = 2;
      }
    }
    let first = true;
    if (files.length > 0) {
      o.out(render(sortEntries(files), [...files, ...dirs]));
      first = false;
    }
    const showHeaders = operands.length > 1 || recursive;
    let queue = sortEntries(dirs).map((d) => d.path);
    while (queue.length > 0) {
      const dir = queue.shift()!;
      let names: string[];
      try {
        names = ctx.vfs.readdir(dir);
      } catch (err) {
        o.err(`ls: cannot open directory ${quote(dir)}: ${errorMessage(err)}\n`);
        o.status = o.status || 2;
        continue;
      }
      const es: Entry[] = [];
      if (all) {
        es.push(statEntry('.', dir, true));
        es.push(statEntry('..', joinPath(dir, '..'), true));
      }
      for (const n of names) {
        if (n.startsWith('.') && !all && !almostAll) continue;
        try {
          es.push(statEntry(n, joinPath(dir, n), false));
        } catch (err) {
          o.err(`ls: cannot access ${quote(joinPath(dir, n))}: ${errorMessage(err)}\n`);
          o.status = 1;
        }
      }
      sortEntries(es);
      if (showHeaders) o.out(`${first ? '' : '\n'}${dir}:\n`);
      first = false;
      if (format === 'long') {
        const blocks = es.reduce((s, e) => s + e.st.blocks, 0);
        o.out(`total ${human ? humanSize(blocks * 512) : Math.ceil(blocks / 2)}\n`);
      }
      o.out(render(es));
      if (recursive) {
        const sub = es
          .filter((e) => e.st.type === 'dir' && e.name !== '.' && e.name !== '..')
          .map((e) => joinPath(dir, e.name));
        queue = sub.concat(queue);
      }
    }
    return o.result();
  });
}
