/**
 * Line-filtering tools: `sort`, `uniq`, `cut`, `tr`, as GNU coreutils 9.1 in the C locale.
 *
 * Contract:
 * - `sort` [-r -n -u -f -s -b] [-t SEP] [-k F1[.C1][OPTS][,F2[.C2][OPTS]]]...: byte order; `-n` compares the
 *   leading decimal number (blanks, `-`, digits, `.`; none is 0); ties are broken by a whole-line byte
 *   comparison unless -s or -u; `-u` keeps the first of each run of equal keys.
 * - `uniq` [-c -d -u -i] [INPUT]: adjacent duplicates; `-c` prefixes `%7d `.
 * - `cut` -b|-c|-f LIST [-d DELIM] [-s] [--output-delimiter=S]: LIST is `N`, `N-`, `-M`, `N-M`, comma-separated.
 * - `tr` [-c -d -s] SET1 [SET2]: ranges, `\\n`-style and octal escapes, `[:class:]`, SET2 padded with its last
 *   byte.
 * Input lines lacking a final newline get one on output, as GNU's tools do.
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { charClass } from '../glob.ts';
import { errorMessage, vfsErrno } from '../vfs.ts';
import {
  fileError,
  getopts,
  has,
  lastValue,
  Out,
  quote,
  readOperand,
  text,
  UsageError,
  withUsage,
} from './util.ts';

/** Read every operand as one text; `fmt` words a failure (default `tool: name: message`). */
function readAll(
  tool: string,
  ctx: CommandContext,
  names: string[],
  o: Out,
  opts: { fmt?: (name: string, e: unknown) => string; stopOnError?: boolean } = {},
): string {
  let s = '';
  for (const n of names.length ? names : ['-']) {
    try {
      let t = text(readOperand(ctx, n));
      if (t !== '' && !t.endsWith('\n')) t += '\n';
      s += t;
    } catch (e) {
      o.err(opts.fmt ? opts.fmt(n, e) : fileError(tool, n, e));
      o.status = 2;
      if (opts.stopOnError) break;
    }
  }
  return s;
}

/** sort: `cannot read: NAME: msg` when opening fails, `read failed: NAME: msg` for a directory; it stops. */
const sortReadError = (n: string, e: unknown): string =>
  `sort: ${vfsErrno(e) === 'EISDIR' ? 'read failed' : 'cannot read'}: ${n}: ${errorMessage(e)}\n`;

/** uniq: a directory is `error reading 'NAME'`. */
const uniqReadError = (n: string, e: unknown): string =>
  vfsErrno(e) === 'EISDIR' ? `uniq: error reading ${quote(n)}\n` : fileError('uniq', n, e);

const toLines = (s: string): string[] => (s === '' ? [] : s.slice(0, -1).split('\n'));

/** GNU numcompare in the C locale: compare the leading numbers of two strings. */
export function numCompare(a: string, b: string): number {
  const parse = (s: string) => {
    const m = /^[ \t]*(-?)(\d*)(?:\.(\d*))?/.exec(s)!;
    let int = m[2].replace(/^0+/, '');
    let frac = (m[3] ?? '').replace(/0+$/, '');
    if (m[2] === '' && (m[3] === undefined || m[3] === '')) {
      int = '';
      frac = '';
    }
    const zero = int === '' && frac === '';
    return { neg: m[1] === '-' && !zero, int, frac };
  };
  const x = parse(a);
  const y = parse(b);
  if (x.neg !== y.neg) return x.neg ? -1 : 1;
  let c = x.int.length - y.int.length;
  if (c === 0) c = x.int < y.int ? -1 : x.int > y.int ? 1 : 0;
  if (c === 0) c = x.frac < y.frac ? -1 : x.frac > y.frac ? 1 : 0;
  c = Math.sign(c);
  return x.neg ? -c : c;
}

interface KeySpec {
  f1: number;
  c1: number;
  f2: number;
  c2: number;
  numeric: boolean;
  reverse: boolean;
  fold: boolean;
  blanks: boolean;
  blanksEnd: boolean;
}

function parseKey(
  s: string,
  g: { numeric: boolean; reverse: boolean; fold: boolean; blanks: boolean },
): KeySpec {
  const m = /^(\d+)(?:\.(\d+))?([bfnr]*)(?:,(\d+)(?:\.(\d+))?([bfnr]*))?$/.exec(s);
  if (!m || Number(m[1]) === 0)
    throw new UsageError(`sort: invalid number at field start: invalid count at start of '${s}'`);
  const o1 = m[3];
  const o2 = m[6] ?? '';
  const any = (o1 + o2).length > 0;
  return {
    f1: Number(m[1]),
    c1: m[2] ? Number(m[2]) : 1,
    f2: m[4] ? Number(m[4]) : Number.POSITIVE_INFINITY,
    c2: m[5] ? Number(m[5]) : 0,
    numeric: any ? (o1 + o2).includes('n') : g.numeric,
    reverse: any ? (o1 + o2).includes('r') : g.reverse,
    fold: any ? (o1 + o2).includes('f') : g.fold,
    blanks: any ? o1.includes('b') : g.blanks,
    blanksEnd: any ? o2.includes('b') : g.blanks,
  };
}

/** Extract a key as GNU sort does (fields separated by `sep`, or blank-to-nonblank transitions). */
function keyText(line: string, k: KeySpec, sep: string | undefined): string {
  // Field start offsets.
  const fieldStart = (n: number): number => {
    let pos = 0;
    for (let f = 1; f < n; f++) {
      if (sep !== undefined) {
        const j = line.indexOf(sep, pos);
        if (j < 0) return line.length;
        pos = j + 1;
      } else {
        while (pos < line.length && (line[pos] === ' ' || line[pos] === '\t')) pos++;
        while (pos < line.length && line[pos] !== ' ' && line[pos] !== '\t') pos++;
      }
    }
    return pos;
  };
  let start = fieldStart(k.f1);
  if (k.blanks) while (start < line.length && (line[start] === ' ' || line[start] === '\t')) start++;
  start = Math.min(line.length, start + k.c1 - 1);
  let end: number;
  if (k.f2 === Number.POSITIVE_INFINITY) end = line.length;
  else if (k.c2 === 0) {
    // End of field f2.
    let pos = fieldStart(k.f2);
    if (sep !== undefined) {
      const j = line.indexOf(sep, pos);
      pos = j < 0 ? line.length : j;
    } else {
      while (pos < line.length && (line[pos] === ' ' || line[pos] === '\t')) pos++;
      while (pos < line.length && line[pos] !== ' ' && line[pos] !== '\t') pos++;
    }
    end = pos;
  } else {
    let pos = fieldStart(k.f2);
    if (k.blanksEnd) while (pos < line.length && (line[pos] === ' ' || line[pos] === '\t')) pos++;
    end = Math.min(line.length, pos + k.c2);
  }
  return end > start ? line.slice(start, end) : '';
}

export function sort(ctx: CommandContext): CommandResult {
  return withUsage(
    'sort',
    2,
    () => {
      const p = getopts('sort', ctx.argv.slice(1), {
        flags: 'rnufsb',
        withArg: 'kto',
        long: {
          reverse: 'r',
          'numeric-sort': 'n',
          unique: 'u',
          'ignore-case': 'f',
          stable: 's',
          'ignore-leading-blanks': 'b',
          'key=': 'k',
          'field-separator=': 't',
        },
      });
      const g = { numeric: has(p, 'n'), reverse: has(p, 'r'), fold: has(p, 'f'), blanks: has(p, 'b') };
      const sep = lastValue(p, 't');
      if (sep !== undefined && sep.length !== 1) throw new UsageError('sort: multi-character tab');
      const keys = p.list.filter(([k]) => k === 'k').map(([, v]) => parseKey(v as string, g));
      const unique = has(p, 'u');
      const stable = has(p, 's') || unique;
      const o = new Out();
      const lines = toLines(readAll('sort', ctx, p.operands, o, { fmt: sortReadError, stopOnError: true }));
      const cmpText = (a: string, b: string, k: { numeric: boolean; fold: boolean; blanks: boolean }) => {
        if (k.numeric) return numCompare(a, b);
        if (k.blanks) {
          a = a.replace(/^[ \t]+/, '');
          b = b.replace(/^[ \t]+/, '');
        }
        if (k.fold) {
          a = a.toUpperCase();
          b = b.toUpperCase();
        }
        return a < b ? -1 : a > b ? 1 : 0;
      };
      const keyCmp = (a: string, b: string): number => {
        if (keys.length === 0) {
          const c = cmpText(a, b, g);
          return g.reverse ? -c : c;
        }
        for (const k of keys) {
          const c = cmpText(keyText(a, k, sep), keyText(b, k, sep), k);
          if (c !== 0) return k.reverse ? -c : c;
        }
        return 0;
      };
      const full = (a: string, b: string) => {
        const c = keyCmp(a, b);
        if (c !== 0 || stable) return c;
        const d = a < b ? -1 : a > b ? 1 : 0;
        return g.reverse ? -d : d;
      };
      const sorted = lines.map((l, i) => ({ l, i })).sort((x, y) => full(x.l, y.l) || x.i - y.i);
      const out: string[] = [];
      for (const { l } of sorted) {
        if (unique && out.length > 0 && keyCmp(out[out.length - 1], l) === 0) continue;
        out.push(l);
      }
      if (o.status) return { stdout: '', stderr: o.stderr.join(''), status: 2 };
      return { stdout: out.map((l) => `${l}\n`).join(''), status: 0 };
    },
    "Try 'sort --help' for more information.",
  );
}

export function uniq(ctx: CommandContext): CommandResult {
  return withUsage('uniq', 1, () => {
    const p = getopts('uniq', ctx.argv.slice(1), {
      flags: 'cdui',
      long: { count: 'c', repeated: 'd', unique: 'u', 'ignore-case': 'i' },
    });
    const o = new Out();
    if (p.operands.length > 2) throw new UsageError(`uniq: extra operand '${p.operands[2]}'`);
    const lines = toLines(readAll('uniq', ctx, p.operands.slice(0, 1), o, { fmt: uniqReadError }));
    if (o.status) return { stderr: o.stderr.join(''), status: 1 };
    const fold = has(p, 'i');
    const eq = (a: string, b: string) => (fold ? a.toLowerCase() === b.toLowerCase() : a === b);
    const out: string[] = [];
    for (let i = 0; i < lines.length; ) {
      let j = i + 1;
      while (j < lines.length && eq(lines[i], lines[j])) j++;
      const n = j - i;
      const keep = (!has(p, 'd') || n > 1) && (!has(p, 'u') || n === 1);
      if (keep) out.push(has(p, 'c') ? `${String(n).padStart(7)} ${lines[i]}\n` : `${lines[i]}\n`);
      i = j;
    }
    return { stdout: out.join(''), status: 0 };
  });
}

/** Parse a cut LIST into a membership test over 1-based positions. */
function parseList(s: string, what: string): (n: number) => boolean {
  const ranges: [number, number][] = [];
  for (const part of s.split(/[ ,]/)) {
    const m = /^(\d*)(-?)(\d*)$/.exec(part);
    if (!m || (m[1] === '' && m[3] === '') || part === '')
      throw new UsageError(
        part === '-' || part === ''
          ? `cut: invalid range with no endpoint: -`
          : `cut: invalid ${what} value ${`'${part}'`}`,
      );
    const lo = m[1] === '' ? 1 : Number(m[1]);
    const hi = m[2] === '' ? lo : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
    if (lo === 0) throw new UsageError(`cut: ${what}s are numbered from 1`);
    if (hi < lo) throw new UsageError('cut: invalid decreasing range');
    ranges.push([lo, hi]);
  }
  return (n) => ranges.some(([lo, hi]) => n >= lo && n <= hi);
}

export function cut(ctx: CommandContext): CommandResult {
  return withUsage('cut', 1, () => {
    const p = getopts('cut', ctx.argv.slice(1), {
      flags: 'sn',
      withArg: 'bcfd',
      long: {
        'bytes=': 'b',
        'characters=': 'c',
        'fields=': 'f',
        'delimiter=': 'd',
        'only-delimited': 's',
        'output-delimiter=': 'O',
      },
    });
    const b = lastValue(p, 'b') ?? lastValue(p, 'c');
    const f = lastValue(p, 'f');
    if ((b !== undefined) === (f !== undefined)) {
      if (b === undefined)
        throw new UsageError('cut: you must specify a list of bytes, characters, or fields');
      throw new UsageError('cut: only one type of list may be specified');
    }
    const d = lastValue(p, 'd');
    if (d !== undefined && d.length !== 1)
      throw new UsageError('cut: the delimiter must be a single character');
    if (d !== undefined && f === undefined)
      throw new UsageError('cut: an input delimiter may be specified only when operating on fields');
    const o = new Out();
    const lines = toLines(readAll('cut', ctx, p.operands, o));
    const out: string[] = [];
    if (f !== undefined) {
      const sel = parseList(f, 'field');
      const delim = d ?? '\t';
      const od = lastValue(p, 'O') ?? delim;
      for (const l of lines) {
        if (!l.includes(delim)) {
          if (!has(p, 's')) out.push(`${l}\n`);
          continue;
        }
        out.push(
          `${l
            .split(delim)
            .filter((_, i) => sel(i + 1))
            .join(od)}\n`,
        );
      }
    } else {
      const sel = parseList(b!, 'byte/character');
      const od = lastValue(p, 'O');
      for (const l of lines) {
        if (od === undefined) {
          let s = '';
          for (let i = 0; i < l.length; i++) if (sel(i + 1)) s += l[i];
          out.push(`${s}\n`);
        } else {
          const runs: string[] = [];
          let cur = '';
          for (let i = 0; i < l.length; i++) {
            if (sel(i + 1)) cur += l[i];
            else if (cur !== '') {
              runs.push(cur);
              cur = '';
            }
          }
          if (cur !== '') runs.push(cur);
          out.push(`${runs.join(od)}\n`);
        }
      }
    }
    return { stdout: out.join(''), stderr: o.stderr.join(''), status: o.status ? 1 : 0 };
  });
}

/** Expand a tr SET into a list of byte codes. */
export function expandTrSet(s: string): number[] {
  const out: number[] = [];
  const unesc = (i: number): [number, number] => {
    if (s[i] !== '\\' || i + 1 >= s.length) return [s.charCodeAt(i), i + 1];
    const d = s[i + 1];
    const map: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92 };
    if (Object.hasOwn(map, d)) return [map[d], i + 2];
    if (d >= '0' && d <= '7') {
      let j = i + 1;
      let v = 0;
      while (j < s.length && j < i + 4 && s[j] >= '0' && s[j] <= '7') v = v * 8 + (s.charCodeAt(j++) - 48);
      return [v & 0xff, j];
    }
    return [s.charCodeAt(i + 1), i + 2];
  };
  let i = 0;
  while (i < s.length) {
    if (s[i] === '[' && s[i + 1] === ':') {
      const end = s.indexOf(':]', i + 2);
      const cls = end > 0 ? charClass(s.slice(i + 2, end)) : undefined;
      if (cls) {
        for (let c = 0; c < 256; c++) if (cls(c)) out.push(c);
        i = end + 2;
        continue;
      }
    }
    const [lo, next] = unesc(i);
    if (s[next] === '-' && next + 1 < s.length) {
      const [hi, after] = unesc(next + 1);
      if (hi < lo)
        throw new UsageError(
          `tr: range-endpoints of '${s.slice(i, after)}' are in reverse collating sequence order`,
        );
      for (let c = lo; c <= hi; c++) out.push(c);
      i = after;
      continue;
    }
    out.push(lo);
    i = next;
  }
  return out;
}

export function tr(ctx: CommandContext): CommandResult {
  return withUsage('tr', 1, () => {
    const p = getopts('tr', ctx.argv.slice(1), {
      flags: 'cCds',
      long: { complement: 'c', delete: 'd', 'squeeze-repeats': 's' },
    });
    const del = has(p, 'd');
    const squeeze = has(p, 's');
    const ops = p.operands;
    if (ops.length === 0) throw new UsageError('tr: missing operand');
    const need = del && squeeze ? 2 : del ? 1 : squeeze ? 1 : 2;
    if (ops.length < need) throw new UsageError(`tr: missing operand after '${ops[ops.length - 1]}'`);
    if (ops.length > need && !(squeeze && !del && ops.length === 2))
      throw new UsageError(`tr: extra operand '${ops[need]}'`);
    let set1 = expandTrSet(ops[0]);
    if (has(p, 'c') || has(p, 'C')) {
      const inSet = new Set(set1);
      set1 = [];
      for (let c = 0; c < 256; c++) if (!inSet.has(c)) set1.push(c);
    }
    if (ops.length > 1 && !del) {
      const classes = ops[1].match(/\[:[a-z]+:\]/g) ?? [];
      if (classes.some((c) => c !== '[:upper:]' && c !== '[:lower:]'))
        throw new UsageError(
          "tr: when translating, the only character classes that may appear in\nstring2 are 'upper' and 'lower'",
          true,
        );
    }
    const set2 = ops.length > 1 ? expandTrSet(ops[1]) : [];
    const inSet1 = new Array<boolean>(256).fill(false);
    for (const c of set1) inSet1[c] = true;
    const map = new Array<number>(256);
    for (let c = 0; c < 256; c++) map[c] = c;
    const translating = !del && set2.length > 0;
    if (translating) {
      for (let k = 0; k < set1.length; k++) map[set1[k]] = set2[Math.min(k, set2.length - 1)];
    }
    const squeezeSet = new Array<boolean>(256).fill(false);
    for (const c of translating || del ? set2 : set1) squeezeSet[c] = true;
    const input = ctx.stdin;
    const out: number[] = [];
    let last = -1;
    for (const b of input) {
      if (del && inSet1[b]) continue;
      const c = map[b];
      if (squeeze && c === last && squeezeSet[c]) continue;
      out.push(c);
      last = c;
    }
    return { stdout: Uint8Array.from(out), status: 0 };
  });
}
