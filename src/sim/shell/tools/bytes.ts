/**
 * Byte- and line-oriented tools: `head`, `tail`, `wc`, `xxd`, `sha256sum`.
 *
 * Contract: output byte-identical to GNU coreutils 9.1 (`head`, `tail`, `wc`, `sha256sum`) and xxd
 * 2022-01-14 in the C locale, for the options documented on each function; diagnostics in their wording.
 * `wc` pads counts as GNU does: to the digits of the total size of the regular files counted, at least 7
 * when reading a pipe (stdin), unpadded for one count of one operand.
 */
import { createHash } from 'node:crypto';
import type { CommandContext, CommandResult } from '../engine.ts';
import { errorMessage, vfsErrno } from '../vfs.ts';
import {
  fileError,
  getopts,
  has,
  Out,
  parseCount,
  quote,
  quotef,
  readOperand,
  UsageError,
  withUsage,
} from './util.ts';

/** Rewrite the obsolete `-NUM` first option into `-n NUM`. */
function obsoleteCount(args: string[]): string[] {
  if (args.length > 0 && /^-\d+$/.test(args[0])) return ['-n', args[0].slice(1), ...args.slice(1)];
  return args;
}

/** Byte offset just past the n-th newline, or data.length. */
function afterLines(data: Uint8Array, n: number): number {
  if (n <= 0) return 0;
  let seen = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 10 && ++seen === n) return i + 1;
  return data.length;
}

/** Offset where the last n lines start (a final unterminated line counts as a line). */
function lastLinesStart(data: Uint8Array, n: number): number {
  if (n <= 0) return data.length;
  let i = data.length;
  if (i > 0 && data[i - 1] === 10) i--;
  let seen = 0;
  while (i > 0) {
    if (data[i - 1] === 10) {
      if (++seen === n) return i;
    }
    i--;
  }
  return 0;
}

function headerLoop(
  tool: string,
  ctx: CommandContext,
  names: string[],
  showHeaders: boolean,
  each: (data: Uint8Array) => Uint8Array,
): CommandResult {
  const chunks: Uint8Array[] = [];
  const o = new Out();
  let first = true;
  for (const n of names) {
    let data: Uint8Array;
    try {
      data = readOperand(ctx, n);
    } catch (e) {
      o.status = 1;
      if (vfsErrno(e) !== 'EISDIR') {
        o.err(`${tool}: cannot open ${quote(n)} for reading: ${errorMessage(e)}\n`);
        continue;
      }
      // GNU opens a directory fine and fails to read it, after printing its header.
      if (showHeaders) chunks.push(Buffer.from(`${first ? '' : '\n'}==> ${n} <==\n`, 'latin1'));
      first = false;
      o.err(`${tool}: error reading ${quote(n)}: ${errorMessage(e)}\n`);
      continue;
    }
    if (showHeaders) {
      chunks.push(Buffer.from(`${first ? '' : '\n'}==> ${n === '-' ? 'standard input' : n} <==\n`, 'latin1'));
    }
    first = false;
    chunks.push(each(data));
  }
  return { stdout: Buffer.concat(chunks), stderr: o.stderr.join(''), status: o.status };
}

/** head: -n [-]N, -c [-]N, -NUM, -q, -v. */
export function head(ctx: CommandContext): CommandResult {
  return withUsage(
    'head',
    1,
    () => {
      const p = getopts('head', obsoleteCount(ctx.argv.slice(1)), {
        flags: 'qv',
        withArg: 'nc',
        long: { 'lines=': 'n', 'bytes=': 'c', quiet: 'q', silent: 'q', verbose: 'v' },
      });
      let mode: 'n' | 'c' = 'n';
      let count = 10;
      let allBut = false;
      for (const [k, v] of p.list) {
        if (k !== 'n' && k !== 'c') continue;
        const s = v as string;
        allBut = s.startsWith('-');
        const n = parseCount(s.replace(/^[-+]/, ''));
        if (n === undefined)
          throw new UsageError(`head: invalid number of ${k === 'n' ? 'lines' : 'bytes'}: ${quote(s)}`, true);
        mode = k;
        count = n;
      }
      const names = p.operands.length ? p.operands : ['-'];
      const headers = has(p, 'v') || (names.length > 1 && !has(p, 'q'));
      return headerLoop('head', ctx, names, headers, (d) => {
        if (mode === 'c') return allBut ? d.subarray(0, Math.max(0, d.length - count)) : d.subarray(0, count);
        if (allBut) return d.subarray(0, lastLinesStart(d, count));
        return d.subarray(0, afterLines(d, count));
      });
    },
    "Try 'head --help' for more information.",
  );
}

/** tail: -n [+]N, -c [+]N, -NUM, -q, -v. */
export function tail(ctx: CommandContext): CommandResult {
  return withUsage('tail', 1, () => {
    const p = getopts('tail', obsoleteCount(ctx.argv.slice(1)), {
      flags: 'qv',
      withArg: 'nc',
      long: { 'lines=': 'n', 'bytes=': 'c', quiet: 'q', silent: 'q', verbose: 'v' },
    });
    let mode: 'n' | 'c' = 'n';
    let count = 10;
    let fromStart = false;
    for (const [k, v] of p.list) {
      if (k !== 'n' && k !== 'c') continue;
      const s = v as string;
      fromStart = s.startsWith('+');
      const n = parseCount(s.replace(/^[-+]/, ''));
      if (n === undefined)
        throw new UsageError(`tail: invalid number of ${k === 'n' ? 'lines' : 'bytes'}: ${quote(s)}`, true);
      mode = k;
      count = n;
    }
    const names = p.operands.length ? p.operands : ['-'];
    const headers = has(p, 'v') || (names.length > 1 && !has(p, 'q'));
    return headerLoop('tail', ctx, names, headers, (d) => {
      if (mode === 'c')
        return fromStart ? d.subarray(Math.max(0, count - 1)) : d.subarray(Math.max(0, d.length - count));
      if (fromStart) return d.subarray(afterLines(d, count - 1));
      return d.subarray(lastLinesStart(d, count));
    });
  });
}

interface WcCounts {
  lines: number;
  words: number;
  bytes: number;
  maxLine: number;
}

/** GNU wc's counting in the C locale (single-byte path of coreutils 9.1). */
export function wcCount(d: Uint8Array): WcCounts {
  let lines = 0;
  let words = 0;
  let inWord = false;
  let linepos = 0;
  let maxLine = 0;
  for (let i = 0; i < d.length; i++) {
    const c = d[i];
    switch (c) {
      case 10:
      case 13:
      case 12:
        if (c === 10) lines++;
        if (linepos > maxLine) maxLine = linepos;
        linepos = 0;
        words += inWord ? 1 : 0;
        inWord = false;
        break;
      case 9:
        linepos += 8 - (linepos % 8);
        words += inWord ? 1 : 0;
        inWord = false;
        break;
      case 32:
        linepos++;
        words += inWord ? 1 : 0;
        inWord = false;
        break;
      case 11:
        words += inWord ? 1 : 0;
        inWord = false;
        break;
      default:
        if (c > 32 && c < 127) {
          linepos++;
          inWord = true;
        }
    }
  }
  if (linepos > maxLine) maxLine = linepos;
  words += inWord ? 1 : 0;
  return { lines, words, bytes: d.length, maxLine };
}

/** wc: -l -w -c -m -L (default -lwc). */
export function wc(ctx: CommandContext): CommandResult {
  return withUsage('wc', 1, () => {
    const p = getopts('wc', ctx.argv.slice(1), {
      flags: 'lwcmL',
      long: { lines: 'l', words: 'w', bytes: 'c', chars: 'm', 'max-line-length': 'L' },
    });
    let want = { l: has(p, 'l'), w: has(p, 'w'), m: has(p, 'm'), c: has(p, 'c'), L: has(p, 'L') };
    if (!Object.values(want).some(Boolean)) want = { l: true, w: true, m: false, c: true, L: false };
    const nCounts = Object.values(want).filter(Boolean).length;
    const names = p.operands.length ? p.operands : [];
    const inputs = names.length ? names : ['-'];
    const o = new Out();
    // GNU: stat the inputs (unless one count of one input) and pad to the digits of the regular files'
    // total size, at least 7 if any input is not a regular file (inputs that fail to stat do not count).
    let width = 1;
    if (!(inputs.length === 1 && nCounts === 1)) {
      let minWidth = 1;
      let regularTotal = 0;
      inputs.forEach((n) => {
        if (n === '-') {
          minWidth = 7;
          return;
        }
        try {
          const st = ctx.vfs.stat(n);
          if (st.type === 'file') regularTotal += st.size;
          else minWidth = 7;
        } catch {
          // Reported when read.
        }
      });
      width = Math.max(String(regularTotal).length, minWidth);
    }
    const results: { name: string | undefined; c: WcCounts }[] = [];
    for (const n of inputs) {
      let data: Uint8Array;
      try {
        data = readOperand(ctx, n);
      } catch (e) {
        o.err(fileError('wc', n, e));
        o.status = 1;
        // A directory opens but cannot be read: GNU still prints its (zero) counts.
        if (vfsErrno(e) === 'EISDIR') results.push({ name: n, c: wcCount(new Uint8Array(0)) });
        continue;
      }
      results.push({ name: names.length ? n : undefined, c: wcCount(data) });
    }
    const fmt = (c: WcCounts, name: string | undefined) => {
      const f: number[] = [];
      if (want.l) f.push(c.lines);
      if (want.w) f.push(c.words);
      if (want.m) f.push(c.bytes);
      if (want.c) f.push(c.bytes);
      if (want.L) f.push(c.maxLine);
      return `${f.map((x) => String(x).padStart(width)).join(' ')}${name !== undefined ? ` ${name}` : ''}\n`;
    };
    for (const r of results) o.out(fmt(r.c, r.name));
    if (inputs.length > 1) {
      const t = results.reduce(
        (a, r) => ({
          lines: a.lines + r.c.lines,
          words: a.words + r.c.words,
          bytes: a.bytes + r.c.bytes,
          maxLine: Math.max(a.maxLine, r.c.maxLine),
        }),
        { lines: 0, words: 0, bytes: 0, maxLine: 0 },
      );
      o.out(fmt(t, 'total'));
    }
    return o.result();
  });
}

/** strtol(s, 0)-style number: decimal, 0x hex, 0 octal. */
function cNumber(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const body = m[2];
  const v = /^0[xX]/.test(body)
    ? Number.parseInt(body.slice(2), 16)
    : body.length > 1 && body[0] === '0'
      ? Number.parseInt(body, 8)
      : Number(body);
  return m[1] === '-' ? -v : v;
}

/** xxd: default dump, -p, -u, -l LEN, -s [+-]OFF, -g N, -c N. */
export function xxd(ctx: CommandContext): CommandResult {
  const args = ctx.argv.slice(1);
  let cols: number | undefined;
  let group: number | undefined;
  let len: number | undefined;
  let seek = 0;
  let seekFromEnd = false;
  let plain = false;
  let upper = false;
  const files: string[] = [];
  const usage = (msg: string): CommandResult => ({ stderr: `xxd: ${msg}\n`, status: 1 });
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const val = (flag: string): string | undefined => {
      if (a.length > flag.length && a.startsWith(flag)) return a.slice(flag.length);
      return args[++i];
    };
    if (a === '-p' || a === '-ps' || a === '-postscript' || a === '-plain') plain = true;
    else if (a === '-u') upper = true;
    else if (a.startsWith('-l')) {
      const v = val('-l');
      const n = v === undefined ? undefined : cNumber(v);
      if (n === undefined) return usage(`invalid length: ${v ?? ''}`);
      len = n;
    } else if (a.startsWith('-s')) {
      const v = val('-s');
      if (v === undefined) return usage('option -s requires an argument');
      const fromEnd = v.startsWith('-');
      const n = cNumber(v.replace(/^[+-]/, ''));
      if (n === undefined) return usage(`invalid seek: ${v}`);
      seek = n;
      seekFromEnd = fromEnd;
    } else if (a.startsWith('-g')) {
      const v = val('-g');
      const n = v === undefined ? undefined : cNumber(v);
      if (n === undefined) return usage('invalid group size');
      group = n;
    } else if (a.startsWith('-c')) {
      const v = val('-c');
      const n = v === undefined ? undefined : cNumber(v);
      if (n === undefined) return usage('invalid number of columns');
      cols = n;
    } else if (a === '-') files.push(a);
    else if (a.startsWith('-') && a.length > 1) return usage(`unknown option ${a}`);
    else files.push(a);
  }
  if (files.length > 2) return usage('too many arguments');
  let data: Uint8Array;
  const name = files[0] ?? '-';
  try {
    data = readOperand(ctx, name);
  } catch (e) {
    // xxd reports a read error (a directory) without the name, an open error with it.
    if (vfsErrno(e) === 'EISDIR') return { stderr: `xxd: ${errorMessage(e)}\n`, status: 2 };
    return { stderr: `xxd: ${name}: ${errorMessage(e)}\n`, status: 2 };
  }
  if (plain) cols ??= 30;
  else cols ??= 16;
  if (cols === 0) cols = plain ? 30 : 16;
  if (!plain && cols > 256) return usage('invalid number of columns (max. 256).');
  group ??= 2;
  if (group < 1 || group > cols) group = cols;
  // On a pipe xxd skips by reading: seeking past the end fails.
  if (name === '-' && !seekFromEnd && seek > data.length)
    return { stderr: 'xxd: Sorry, cannot seek.\n', status: 4 };
  let start = seekFromEnd ? Math.max(0, data.length - seek) : seek;
  if (start > data.length) start = data.length;
  let end = data.length;
  if (len !== undefined && len >= 0) end = Math.min(end, start + len);
  const hexd = Buffer.from(upper ? '0123456789ABCDEF' : '0123456789abcdef', 'latin1');
  if (plain) {
    const n = end - start;
    const lines = Math.ceil(n / cols);
    const out = Buffer.alloc(n * 2 + lines);
    let o = 0;
    for (let off = start; off < end; off += cols) {
      const stop = Math.min(end, off + cols);
      for (let i = off; i < stop; i++) {
        out[o++] = hexd[data[i] >> 4];
        out[o++] = hexd[data[i] & 15];
      }
      out[o++] = 10;
    }
    return { stdout: out, status: 0 };
  }
  // Each line: 8+ hex digit address, ": ", the hex groups padded to a fixed width, the ASCII column.
  const grplen = group * 2 + 1;
  const asciiAt = 10 + Math.floor((grplen * cols - 1) / group) + 2;
  // Offsets stay below 2^32 (files are at most 1 GiB), so every address has 8 digits.
  const out = Buffer.alloc(Math.ceil((end - start) / cols) * (asciiAt + cols + 1), 0x20);
  let o = 0;
  for (let off = start; off < end; off += cols) {
    const n = Math.min(cols, end - off);
    for (let d = 0; d < 8; d++) out[o + d] = hexd[(off >>> ((7 - d) * 4)) & 15];
    out[o + 8] = 0x3a;
    for (let p = 0; p < n; p++) {
      const b = data[off + p];
      const col = o + 10 + Math.floor((grplen * p) / group);
      out[col] = hexd[b >> 4];
      out[col + 1] = hexd[b & 15];
      out[o + asciiAt + p] = b >= 0x20 && b <= 0x7e ? b : 0x2e;
    }
    o += asciiAt + n;
    out[o++] = 10;
  }
  return { stdout: out.subarray(0, o), status: 0 };
}

/** sha256sum FILE... (`-` or no operand: stdin), GNU's escaping of names with `\` or newline. */
export function sha256sum(ctx: CommandContext): CommandResult {
  return withUsage('sha256sum', 1, () => {
    const p = getopts('sha256sum', ctx.argv.slice(1), { flags: 'bt', long: { binary: 'b', text: 't' } });
    const names = p.operands.length ? p.operands : ['-'];
    const o = new Out();
    for (const n of names) {
      let data: Uint8Array;
      try {
        data = readOperand(ctx, n);
      } catch (e) {
        o.err(`sha256sum: ${quotef(n)}: ${errorMessage(e)}\n`);
        o.status = 1;
        continue;
      }
      const hex = createHash('sha256').update(data).digest('hex');
      const needsEscape = /[\\\n\r]/.test(n);
      const shown = needsEscape ? n.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : n;
      o.out(`${needsEscape ? '\\' : ''}${hex}  ${shown}\n`);
    }
    return o.result();
  });
}
