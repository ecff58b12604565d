/**
 * More small tools: `cat` with its options, `tee`, `seq`, `basename`, `dirname`.
 *
 * Contract: as GNU coreutils 9.1 in the C locale.
 * - `cat` [-n -b -s -E -T -v -A -e -t] FILE...: numbering (`%6d\t`) and squeezing run over all inputs as one
 *   stream, as GNU's does; -v shows control bytes as `^X`, DEL as `^?`, high bytes as `M-`.
 * - `tee` [-a] FILE...: copies stdin to stdout and to each file (writable places only).
 * - `seq` [-s SEP] [-w] [FIRST [INCR]] LAST: integers, or decimals with as many fraction digits as FIRST and
 *   INCR have (exact decimal arithmetic). Output is capped at 16 MiB (`seq: write error: File too large`).
 * - `basename NAME [SUFFIX]` (also -a, -s SUFFIX), `dirname NAME...`.
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { errorMessage } from '../vfs.ts';
import {
  fileError,
  getopts,
  has,
  lastValue,
  Out,
  quote,
  quotef,
  readOperand,
  UsageError,
  withUsage,
} from './util.ts';

function showNonprinting(b: number): string {
  let prefix = '';
  if (b >= 128) {
    prefix = 'M-';
    b -= 128;
  }
  if (b < 32) return `${prefix}^${String.fromCharCode(b + 64)}`;
  if (b === 127) return `${prefix}^?`;
  return prefix + String.fromCharCode(b);
}

export function cat(ctx: CommandContext): CommandResult {
  return withUsage('cat', 1, () => {
    const p = getopts('cat', ctx.argv.slice(1), {
      flags: 'nbsETvAetu',
      long: {
        number: 'n',
        'number-nonblank': 'b',
        'squeeze-blank': 's',
        'show-ends': 'E',
        'show-tabs': 'T',
        'show-nonprinting': 'v',
        'show-all': 'A',
      },
    });
    const o = new Out();
    const chunks: Uint8Array[] = [];
    for (const n of p.operands.length ? p.operands : ['-']) {
      try {
        chunks.push(readOperand(ctx, n));
      } catch (e) {
        o.err(fileError('cat', n, e));
        o.status = 1;
      }
    }
    const data = Buffer.concat(chunks);
    const A = has(p, 'A');
    const nonblank = has(p, 'b');
    const number = has(p, 'n') || nonblank;
    const squeeze = has(p, 's');
    const ends = A || has(p, 'E') || has(p, 'e');
    const tabs = A || has(p, 'T') || has(p, 't');
    const nonprint = A || has(p, 'v') || has(p, 'e') || has(p, 't');
    if (!number && !squeeze && !ends && !tabs && !nonprint)
      return { stdout: data, stderr: o.stderr.join(''), status: o.status };
    const out: string[] = [];
    let lineNo = 0;
    let blankRun = 0;
    let atLineStart = true;
    for (let i = 0; i < data.length; i++) {
      const b = data[i];
      if (atLineStart) {
        if (b === 10) {
          blankRun++;
          if (squeeze && blankRun > 1) continue;
          if (number && !nonblank) out.push(`${String(++lineNo).padStart(6)}\t`);
          out.push(ends ? '$\n' : '\n');
          continue;
        }
        blankRun = 0;
        if (number) out.push(`${String(++lineNo).padStart(6)}\t`);
        atLineStart = false;
      }
      if (b === 10) {
        out.push(ends ? '$\n' : '\n');
        atLineStart = true;
        blankRun = 0;
      } else if (b === 9) out.push(tabs ? '^I' : '\t');
      else if (nonprint && (b < 32 || b >= 127)) out.push(showNonprinting(b));
      else out.push(String.fromCharCode(b));
    }
    return { stdout: out.join(''), stderr: o.stderr.join(''), status: o.status };
  });
}

export function tee(ctx: CommandContext): CommandResult {
  return withUsage('tee', 1, () => {
    const p = getopts('tee', ctx.argv.slice(1), { flags: 'ai', long: { append: 'a' } });
    const o = new Out();
    for (const f of p.operands) {
      try {
        ctx.vfs.writeFile(f, ctx.stdin, { append: has(p, 'a') });
      } catch (e) {
        o.err(`tee: ${quotef(f)}: ${errorMessage(e)}\n`);
        o.status = 1;
      }
    }
    return { stdout: ctx.stdin, stderr: o.stderr.join(''), status: o.status };
  });
}

const SEQ_MAX_OUTPUT = 16 << 20;

/** A decimal as an integer scaled by 10^frac. */
function parseDecimal(s: string): { v: bigint; frac: number } | undefined {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  const frac = (m[3] ?? '').length;
  const v = BigInt((m[2] || '0') + (m[3] ?? ''));
  return { v: m[1] === '-' ? -v : v, frac };
}

export function seq(ctx: CommandContext): CommandResult {
  return withUsage('seq', 1, () => {
    // Negative numbers are operands, not options.
    const args = ctx.argv.slice(1);
    const optArgs: string[] = [];
    const nums: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (nums.length === 0 && /^-[sw]/.test(a) && !/^-\d/.test(a)) {
        optArgs.push(a);
        if ((a === '-s' || a === '--separator') && i + 1 < args.length) optArgs.push(args[++i]);
      } else nums.push(a);
    }
    const p = getopts('seq', optArgs, {
      flags: 'w',
      withArg: 's',
      long: { 'separator=': 's', 'equal-width': 'w' },
    });
    const sep = lastValue(p, 's') ?? '\n';
    if (nums.length === 0) throw new UsageError('seq: missing operand');
    if (nums.length > 3) throw new UsageError(`seq: extra operand ${quote(nums[3])}`);
    const parsed = nums.map((n) => {
      const d = parseDecimal(n);
      if (!d) throw new UsageError(`seq: invalid floating point argument: ${quote(n)}`);
      return d;
    });
    const [first, incr, last] =
      parsed.length === 1
        ? [{ v: 1n, frac: 0 }, { v: 1n, frac: 0 }, parsed[0]]
        : parsed.length === 2
          ? [parsed[0], { v: 1n, frac: 0 }, parsed[1]]
          : [parsed[0], parsed[1], parsed[2]];
    if (incr.v === 0n) throw new UsageError(`seq: invalid Zero increment value: ${quote(nums[1])}`);
    const frac = Math.max(first.frac, incr.frac);
    const scaleTo = (d: { v: bigint; frac: number }, f: number) => d.v * 10n ** BigInt(f - d.frac);
    // LAST may have more digits: compare at the finest scale.
    const cmpFrac = Math.max(frac, last.frac);
    const lastS = scaleTo(last, cmpFrac);
    const fmt = (x: bigint): string => {
      const neg = x < 0n;
      let s = (neg ? -x : x).toString().padStart(frac + 1, '0');
      if (frac > 0) s = `${s.slice(0, -frac)}.${s.slice(-frac)}`;
      return (neg ? '-' : '') + s;
    };
    const values: string[] = [];
    let size = 0;
    const step = scaleTo(incr, frac);
    for (let x = scaleTo(first, frac); ; x += step) {
      const xs = x * 10n ** BigInt(cmpFrac - frac);
      if (step > 0n ? xs > lastS : xs < lastS) break;
      const s = fmt(x);
      size += s.length + sep.length;
      if (size > SEQ_MAX_OUTPUT) return { stderr: 'seq: write error: File too large\n', status: 1 };
      values.push(s);
    }
    if (has(p, 'w')) {
      // GNU: the width of FIRST and of LAST printed with the output precision (rounded half to even).
      let lastAtFrac: bigint;
      if (last.frac <= frac) lastAtFrac = scaleTo(last, frac);
      else {
        const d = 10n ** BigInt(last.frac - frac);
        const a = last.v < 0n ? -last.v : last.v;
        let q = a / d;
        const r2 = (a % d) * 2n;
        if (r2 > d || (r2 === d && q % 2n === 1n)) q += 1n;
        lastAtFrac = last.v < 0n ? -q : q;
      }
      const width = Math.max(fmt(scaleTo(first, frac)).length, fmt(lastAtFrac).length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        values[i] = v.startsWith('-') ? `-${v.slice(1).padStart(width - 1, '0')}` : v.padStart(width, '0');
      }
    }
    return { stdout: values.length ? `${values.join(sep)}\n` : '', status: 0 };
  });
}

export function basename(ctx: CommandContext): CommandResult {
  return withUsage('basename', 1, () => {
    const p = getopts('basename', ctx.argv.slice(1), {
      flags: 'az',
      withArg: 's',
      long: { multiple: 'a', 'suffix=': 's' },
    });
    const suffixOpt = lastValue(p, 's');
    const multiple = has(p, 'a') || suffixOpt !== undefined;
    const ops = p.operands;
    if (ops.length === 0) throw new UsageError('basename: missing operand');
    if (!multiple && ops.length > 2) throw new UsageError(`basename: extra operand ${quote(ops[2])}`);
    const names = multiple ? ops : [ops[0]];
    const suffix = multiple ? suffixOpt : ops[1];
    const end = has(p, 'z') ? '\0' : '\n';
    return {
      stdout: names
        .map((n) => {
          let b = n.replace(/\/+$/, '');
          if (b === '') return n === '' ? end : `/${end}`;
          b = b.slice(b.lastIndexOf('/') + 1);
          if (suffix && b !== suffix && b.endsWith(suffix)) b = b.slice(0, -suffix.length);
          return b + end;
        })
        .join(''),
      status: 0,
    };
  });
}

export function dirname(ctx: CommandContext): CommandResult {
  return withUsage('dirname', 1, () => {
    const p = getopts('dirname', ctx.argv.slice(1), { flags: 'z' });
    if (p.operands.length === 0) throw new UsageError('dirname: missing operand');
    const end = has(p, 'z') ? '\0' : '\n';
    return {
      stdout: p.operands
        .map((n) => {
          const t = n.replace(/\/+$/, '');
          if (t === '') return n.startsWith('/') ? `/${end}` : `.${end}`;
          const i = t.lastIndexOf('/');
          if (i < 0) return `.${end}`;
          const d = t.slice(0, i).replace(/\/+$/, '');
          return (d === '' ? '/' : d) + end;
        })
        .join(''),
      status: 0,
    };
  });
}
