/**
 * `printf FORMAT [ARG]...`, as bash's builtin prints it in the C locale.
 *
 * Contract: the format's escapes (`\n`, `\t`, `\\`, `\NNN` octal, `\xHH`, ...) and conversions
 * `%[-+ #0][width][.prec]` with `d i o u x X c s b e E f F g G %` (width and precision may be `*`). The
 * format is reused while arguments remain; missing arguments are empty or 0. Numeric arguments accept
 * decimal, `0x` hex, `0` octal and `'c` (a character's code); an invalid one prints what parsed, the
 * message `sh: printf: ARG: invalid number` and makes the status 1. `%b` expands echo-style escapes and
 * its `\c` stops all output. Integers are 64-bit (bash's intmax_t).
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { ECHO_ESCAPES, echoEscapes } from './basic.ts';

const MAX = (1n << 63n) - 1n;
const MIN = -(1n << 63n);

/** One-letter escapes of a printf format string: echo's plus `\"`, `\'`, `\?`. */
const FORMAT_ESCAPES: Readonly<Record<string, string>> = { ...ECHO_ESCAPES, '"': '"', "'": "'", '?': '?' };

/** Format-string escapes (bash's printf: `\NNN` takes up to 3 octal digits, `\xHH` up to 2 hex digits). */
function formatEscape(s: string, i: number): [string, number] {
  const d = s[i + 1];
  if (d !== undefined && Object.hasOwn(FORMAT_ESCAPES, d)) return [FORMAT_ESCAPES[d]!, i + 2];
  if (d !== undefined && d >= '0' && d <= '7') {
    let j = i + 1;
    let v = 0;
    while (j < s.length && j < i + 4 && s[j] >= '0' && s[j] <= '7') v = v * 8 + (s.charCodeAt(j++) - 48);
    return [String.fromCharCode(v & 0xff), j];
  }
  if (d === 'x' && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
    let j = i + 2;
    let v = 0;
    while (j < s.length && j < i + 4 && /[0-9a-fA-F]/.test(s[j])) v = v * 16 + Number.parseInt(s[j++], 16);
    return [String.fromCharCode(v), j];
  }
  return ['\\', i + 1];
}

/** `%b` escapes: echo -e's (`\0NNN`) and `\NNN` octal; `\c` stops. */
const bEscapes = (s: string) => echoEscapes(s, { bareOctal: true });

interface NumResult {
  value: bigint;
  error: boolean;
  /** Clamped to the 64-bit range. */
  range?: boolean;
}

/** Widths and precisions beyond this are clamped, so a hostile format cannot exhaust memory. */
const MAX_FIELD = 1 << 20;

/** strtoimax-style parse (strtoumax for `unsigned`: negatives wrap) with bash's `'c` form. */
function parseInteger(arg: string, unsigned = false): NumResult {
  if (arg === '') return { value: 0n, error: false };
  if (arg[0] === "'" || arg[0] === '"')
    return { value: BigInt(arg.length > 1 ? arg.charCodeAt(1) : 0), error: false };
  const m = /^[ \t\n]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(arg);
  if (!m) return { value: 0n, error: true };
  const body = m[2];
  let v = /^0[xX]/.test(body)
    ? BigInt(body)
    : body.length > 1 && body[0] === '0'
      ? BigInt(`0o${body.slice(1)}`)
      : BigInt(body);
  const error = m[0].length !== arg.length;
  if (unsigned) {
    const UMAX = (1n << 64n) - 1n;
    if (v > UMAX) return { value: UMAX, error, range: true };
    return { value: m[1] === '-' && v !== 0n ? (1n << 64n) - v : v, error };
  }
  if (m[1] === '-') v = -v;
  const range = v > MAX || v < MIN;
  if (v > MAX) v = MAX;
  if (v < MIN) v = MIN;
  return { value: v, error, range };
}

/** A float argument as bash holds it (an x86 long double: 64-bit mantissa), exactly n / 10^k. */
interface LongDouble {
  neg: boolean;
  kind: 'num' | 'inf' | 'nan';
  n: bigint;
  k: number;
}

const bitLength = (x: bigint): number => (x === 0n ? 0 : x.toString(2).length);

/** Round the positive rational num/den to a 64-bit mantissa (half to even) and expand it exactly. */
function toLongDouble(neg: boolean, num: bigint, den: bigint): LongDouble {
  if (num === 0n) return { neg, kind: 'num', n: 0n, k: 0 };
  let e = bitLength(num) - bitLength(den) - 64;
  const scaled = (ee: number): [bigint, bigint] =>
    ee >= 0 ? [num, den << BigInt(ee)] : [num << BigInt(-ee), den];
  let [a, b] = scaled(e);
  while (a / b >= 1n << 64n) [a, b] = scaled(++e);
  while (a / b < 1n << 63n) [a, b] = scaled(--e);
  let mant = a / b;
  const r2 = (a % b) * 2n;
  if (r2 > b || (r2 === b && mant % 2n === 1n)) mant += 1n;
  if (mant === 1n << 64n) {
    mant >>= 1n;
    e++;
  }
  if (e >= 0) return { neg, kind: 'num', n: mant << BigInt(e), k: 0 };
  return { neg, kind: 'num', n: mant * 5n ** BigInt(-e), k: -e };
}

function parseFloatArg(arg: string): { value: LongDouble; error: boolean } {
  const zero: LongDouble = { neg: false, kind: 'num', n: 0n, k: 0 };
  if (arg === '') return { value: zero, error: false };
  if (arg[0] === "'" || arg[0] === '"')
    return { value: { ...zero, n: BigInt(arg.length > 1 ? arg.charCodeAt(1) : 0) }, error: false };
  const m =
    /^[ \t\n]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?|(inf(?:inity)?)|(nan))/i.exec(
      arg,
    );
  const neg = m?.[1] === '-';
  if (!m || (m[2] === undefined && !m[3] && !m[4] && !m[6] && !m[7])) return { value: zero, error: true };
  const error = m[0].length !== arg.length;
  if (m[6]) return { value: { ...zero, neg, kind: 'inf' }, error };
  if (m[7]) return { value: { ...zero, neg, kind: 'nan' }, error };
  if (m[2] !== undefined) return { value: toLongDouble(neg, BigInt(`0x${m[2]}`), 1n), error };
  const digits = (m[3] ?? '') + (m[4] ?? '');
  const exp10 = Number(m[5] ?? 0) - (m[4] ?? '').length;
  const a = BigInt(digits || '0');
  if (a === 0n) return { value: { ...zero, neg }, error };
  // Beyond the long double range (about 1e±4950): infinity or zero.
  if (exp10 + digits.length > 4940) return { value: { ...zero, neg, kind: 'inf' }, error };
  if (exp10 + digits.length < -4960) return { value: { ...zero, neg }, error };
  const value =
    exp10 >= 0
      ? toLongDouble(neg, a * 10n ** BigInt(exp10), 1n)
      : toLongDouble(neg, a, 10n ** BigInt(-exp10));
  return { value, error };
}

function pad(s: string, width: number, left: boolean, zero: boolean): string {
  if (s.length >= width) return s;
  if (left) return s.padEnd(width);
  if (zero) {
    const sign = /^[+\- ]|^0[xX]/.exec(s)?.[0] ?? '';
    return sign + s.slice(sign.length).padStart(width - sign.length, '0');
  }
  return s.padStart(width);
}

/** Round N / 10^k to `drop` fewer digits, half to even (glibc's exact rounding). */
function roundDrop(n: bigint, drop: number): bigint {
  if (drop <= 0) return n * 10n ** BigInt(-drop);
  const d = 10n ** BigInt(drop);
  let q = n / d;
  const r = n % d;
  const twice = r * 2n;
  if (twice > d || (twice === d && q % 2n === 1n)) q += 1n;
  return q;
}

/** `%.{p}f` digits of |v|. */
function fixed(v: LongDouble, p: number): string {
  const { n, k } = v;
  const q = roundDrop(n, k - p)
    .toString()
    .padStart(p + 1, '0');
  return p === 0 ? q : `${q.slice(0, q.length - p)}.${q.slice(q.length - p)}`;
}

/** Significant digits (p + 1 of them) and decimal exponent of |v| rounded for `%.{p}e`. */
function sci(v: LongDouble, p: number): { digits: string; exp: number } {
  if (v.n === 0n) return { digits: '0'.repeat(p + 1), exp: 0 };
  const { n, k } = v;
  const len = n.toString().length;
  let exp = len - 1 - k;
  let digits = roundDrop(n, len - (p + 1)).toString();
  if (digits.length > p + 1) {
    digits = digits.slice(0, p + 1);
    exp++;
  }
  return { digits, exp };
}

function expString(digits: string, exp: number, upper: boolean): string {
  const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const out = `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return upper ? out.toUpperCase() : out;
}

/** C's %f/%e/%g of |v| (sign handled by the caller), exactly rounded as glibc does. */
function floatConv(v: LongDouble, conv: string, prec: number | undefined, alt: boolean): string {
  const upper = conv === conv.toUpperCase();
  if (v.kind !== 'num') {
    const t = v.kind;
    return upper ? t.toUpperCase() : t;
  }
  const p = prec ?? 6;
  // `#` keeps the decimal point even with no digits after it.
  const point = (t: string) => (alt && !t.includes('.') ? t.replace(/^(\d+)/, '$1.') : t);
  if (conv === 'f' || conv === 'F') return point(fixed(v, p));
  if (conv === 'e' || conv === 'E') {
    const { digits, exp } = sci(v, p);
    return point(expString(digits, exp, upper));
  }
  // %g: the exponent of the %e form with P significant digits picks the style.
  const P = p === 0 ? 1 : p;
  const { digits, exp } = sci(v, P - 1);
  let s = P > exp && exp >= -4 ? fixed(v, P - 1 - exp) : expString(digits, exp, upper);
  if (!alt) s = s.replace(/(\.\d*?)0+(e|E|$)/, '$1$2').replace(/\.(e|E|$)/, '$1');
  return point(s);
}

export function printf(ctx: CommandContext): CommandResult {
  let args = ctx.argv.slice(1);
  if (args[0] === '--') args = args.slice(1);
  if (args.length === 0)
    return { stderr: 'sh: printf: usage: printf [-v var] format [arguments]\n', status: 2 };
  const fmt = args[0];
  const rest = args.slice(1);
  let k = 0;
  let out = '';
  let err = '';
  let status = 0;
  const next = (): string | undefined => (k < rest.length ? rest[k++] : undefined);
  const intArg = (a: string | undefined, unsigned = false): bigint => {
    if (a === undefined) return 0n;
    const r = parseInteger(a, unsigned);
    if (r.error) {
      err += `sh: printf: ${a}: invalid number\n`;
      status = 1;
    } else if (r.range) err += `sh: printf: warning: ${a}: Numerical result out of range\n`;
    return r.value;
  };
  let consumedAny = false;
  do {
    const startK = k;
    for (let i = 0; i < fmt.length; i++) {
      const ch = fmt[i];
      if (ch === '\\') {
        const [t, n] = formatEscape(fmt, i);
        out += t;
        i = n - 1;
        continue;
      }
      if (ch !== '%') {
        out += ch;
        continue;
      }
      const m = /^%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d*))?([diouxXcsbeEfFgG%])/.exec(fmt.slice(i));
      if (!m) {
        const bad = fmt[i + 1];
        if (bad === undefined) {
          out += '%';
          continue;
        }
        err += `sh: printf: \`${bad}': invalid format character\n`;
        return { stdout: out, stderr: err, status: 1 };
      }
      i += m[0].length - 1;
      const flags = m[1];
      const conv = m[4];
      if (conv === '%') {
        // Only a bare `%%` is a percent sign; flags, width or precision make it invalid.
        if (m[0] !== '%%') {
          err += "sh: printf: `%': invalid format character\n";
          return { stdout: out, stderr: err, status: 1 };
        }
        out += '%';
        continue;
      }
      let width = 0;
      let left = flags.includes('-');
      if (m[2] === '*') {
        const w = Number(intArg(next()));
        if (w < 0) left = true;
        width = Math.abs(w);
      } else if (m[2]) width = Number(m[2]);
      width = Math.min(width, MAX_FIELD);
      let prec: number | undefined;
      if (m[3] !== undefined) {
        if (m[3] === '*') {
          const p = Number(intArg(next()));
          prec = p < 0 ? undefined : p;
        } else prec = m[3] === '' ? 0 : Number(m[3]);
        if (prec !== undefined) prec = Math.min(prec, MAX_FIELD);
      }
      const zero = flags.includes('0') && !left;
      const arg = next();
      if (arg !== undefined) consumedAny = true;
      let s: string;
      if (conv === 's') {
        s = arg ?? '';
        if (prec !== undefined) s = s.slice(0, prec);
        out += pad(s, width, left, false);
      } else if (conv === 'b') {
        const r = bEscapes(arg ?? '');
        s = prec !== undefined ? r.out.slice(0, prec) : r.out;
        out += pad(s, width, left, false);
        // bash returns success at `\c`, whatever came before.
        if (r.stop) return { stdout: out, stderr: err, status: 0 };
      } else if (conv === 'c') {
        s = (arg ?? '').slice(0, 1) || '\0';
        out += pad(s, width, left, false);
      } else if ('diouxX'.includes(conv)) {
        let v = intArg(arg, !(conv === 'd' || conv === 'i'));
        let neg = false;
        let digits: string;
        if (conv === 'd' || conv === 'i') {
          neg = v < 0n;
          digits = (neg ? -v : v).toString();
        } else {
          if (v < 0n) v += 1n << 64n;
          digits = v.toString(conv === 'o' ? 8 : conv === 'u' ? 10 : 16);
          if (conv === 'X') digits = digits.toUpperCase();
        }
        if (prec !== undefined) digits = prec === 0 && v === 0n ? '' : digits.padStart(prec, '0');
        let prefix = neg
          ? '-'
          : flags.includes('+') && 'di'.includes(conv)
            ? '+'
            : flags.includes(' ') && 'di'.includes(conv)
              ? ' '
              : '';
        if (flags.includes('#')) {
          if (conv === 'o' && !digits.startsWith('0')) digits = `0${digits}`;
          if ((conv === 'x' || conv === 'X') && v !== 0n) prefix += conv === 'x' ? '0x' : '0X';
        }
        out += pad(prefix + digits, width, left, zero && prec === undefined);
      } else {
        let v: LongDouble = { neg: false, kind: 'num', n: 0n, k: 0 };
        if (arg !== undefined) {
          const r = parseFloatArg(arg);
          if (r.error) {
            err += `sh: printf: ${arg}: invalid number\n`;
            status = 1;
          }
          v = r.value;
        }
        let t = floatConv(v, conv, prec, flags.includes('#'));
        const sign = v.neg ? '-' : flags.includes('+') ? '+' : flags.includes(' ') ? ' ' : '';
        t = sign + t;
        out += pad(t, width, left, zero && v.kind === 'num');
      }
    }
    if (k === startK) break;
  } while (k < rest.length && consumedAny);
  return { stdout: out, stderr: err, status };
}
