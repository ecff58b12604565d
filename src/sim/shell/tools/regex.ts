/**
 * POSIX regular expressions (GNU grep's basic and extended syntax) translated to JavaScript RegExp source,
 * for matching binary strings (one char per byte) in the C locale.
 *
 * Contract: `translateRegex(pattern, 'basic' | 'extended')` returns JS source to compile with the `s` flag
 * (so `.` matches any byte), or throws `RegexSyntaxError` with GNU's message (`Unmatched [, [^, [:, [.,
 * or [=`, `Unmatched ( or \\(`, `Invalid back reference`, ...). BRE: `\( \) \{ \} \| \+ \?` are operators,
 * `* ` is literal at the start of an expression, `^`/`$` anchor only at the ends of an expression. ERE:
 * `( ) { } | + ?` are operators; a `{` that does not start a valid interval is literal (as GNU). Both: bracket
 * expressions with C-locale classes (backslash is literal inside), `\< \> \b \B \w \W \s \S`, back references
 * `\1`-`\9`. Repeated quantifiers (`a**`) are legal as in POSIX. Semantics differ from POSIX only in the
 * match *chosen* (JS is leftmost-first, POSIX leftmost-longest); `longestMatchAt` recovers the POSIX match.
 */
import { setFlagsFromString } from 'node:v8';
import { KhoError } from '../../../errors.ts';
import { charClass } from '../glob.ts';

/** A pattern GNU grep rejects (`SIM_SHELL_REGEX`); the message is grep's. */
export class RegexSyntaxError extends KhoError {
  constructor(message: string) {
    super('SIM_SHELL_REGEX', message);
  }
}

const hex = (c: number) => `\\x${c.toString(16).padStart(2, '0')}`;
const esc = (ch: string) => {
  const c = ch.charCodeAt(0);
  return c < 256 ? hex(c) : `\\u${c.toString(16).padStart(4, '0')}`;
};

/** Translate a bracket expression starting at `p[i] === '['`. Returns [jsClass, next index]. */
function bracketToJs(p: string, i: number): [string, number] {
  let j = i + 1;
  let negate = false;
  if (p[j] === '^') {
    negate = true;
    j++;
  }
  const set = new Array<boolean>(256).fill(false);
  let first = true;
  while (true) {
    if (j >= p.length) throw new RegexSyntaxError('Unmatched [, [^, [:, [., or [=');
    const ch = p[j];
    if (ch === ']' && !first) {
      j++;
      break;
    }
    first = false;
    let lo: number;
    if (ch === '[' && (p[j + 1] === ':' || p[j + 1] === '=' || p[j + 1] === '.')) {
      const kind = p[j + 1];
      const end = p.indexOf(`${kind}]`, j + 2);
      if (end < 0) throw new RegexSyntaxError('Unmatched [, [^, [:, [., or [=');
      const body = p.slice(j + 2, end);
      j = end + 2;
      if (kind === ':') {
        const cls = charClass(body);
        if (!cls) throw new RegexSyntaxError('Invalid character class name');
        for (let c = 0; c < 256; c++) if (cls(c)) set[c] = true;
        continue;
      }
      if (body.length !== 1) throw new RegexSyntaxError('Invalid collation character');
      lo = body.charCodeAt(0);
    } else {
      lo = p.charCodeAt(j);
      j++;
    }
    if (p[j] === '-' && p[j + 1] !== undefined && p[j + 1] !== ']') {
      let hi: number;
      if (p[j + 1] === '[' && p[j + 2] === '.') {
        const end = p.indexOf('.]', j + 3);
        if (end < 0) throw new RegexSyntaxError('Unmatched [, [^, [:, [., or [=');
        hi = p.charCodeAt(j + 3);
        j = end + 2;
      } else {
        hi = p.charCodeAt(j + 1);
        j += 2;
      }
      if (hi < lo) throw new RegexSyntaxError('Invalid range end');
      for (let c = lo; c <= Math.min(hi, 255); c++) set[c] = true;
    } else if (lo < 256) set[lo] = true;
  }
  let cls = '';
  for (let c = 0; c < 256; c++) {
    if (!set[c]) continue;
    let d = c;
    while (d + 1 < 256 && set[d + 1]) d++;
    cls += d === c ? hex(c) : `${hex(c)}-${hex(d)}`;
    c = d;
  }
  if (cls === '') return [negate ? '[\\s\\S]' : '[]', j];
  return [`[${negate ? '^' : ''}${cls}]`, j];
}

/** Parse `{m}`, `{m,}`, `{,n}`, `{m,n}` body at p[i] (after the brace); returns [quantifier, index after close]. */
function interval(p: string, i: number, close: string): [string, number] | undefined {
  const end = p.indexOf(close, i);
  if (end < 0) return undefined;
  const m = /^(\d*)(,(\d*))?$/.exec(p.slice(i, end));
  if (!m || (m[1] === '' && m[2] === undefined)) return undefined;
  const lo = m[1] === '' ? 0 : Number(m[1]);
  const hi = m[2] === undefined ? lo : m[3] === '' ? undefined : Number(m[3]);
  if (lo > 32767 || (hi !== undefined && (hi > 32767 || hi < lo)))
    throw new RegexSyntaxError('Invalid content of \\{\\}');
  return [
    hi === undefined ? `{${lo},}` : hi === lo && m[2] === undefined ? `{${lo}}` : `{${lo},${hi}}`,
    end + close.length,
  ];
}

export function translateRegex(p: string, syntax: 'basic' | 'extended'): string {
  return translateRegexInfo(p, syntax).src;
}

/**
 * The translation and whether it holds context-sensitive assertions (anchors, word boundaries): without
 * them a match of a substring does not depend on the text around it.
 */
export function translateRegexInfo(
  p: string,
  syntax: 'basic' | 'extended',
): { src: string; contextual: boolean } {
  let contextual = false;
  const ere = syntax === 'extended';
  // Output as a list of atoms so a quantifier can wrap the previous atom.
  type Frame = { atoms: string[]; alts: string[][]; group: number };
  const stack: Frame[] = [];
  let cur: Frame = { atoms: [], alts: [], group: 0 };
  let groups = 0;
  const closedGroups = new Set<number>();
  let lastQuantifiable = false; // previous atom can take a quantifier
  let lastWasQuant = false;
  let atExprStart = true; // start of whole RE, after ( or |
  const pushAtom = (s: string, quantifiable = true) => {
    // Only anchors and word-boundary assertions are pushed as not quantifiable.
    if (!quantifiable) contextual = true;
    cur.atoms.push(s);
    lastQuantifiable = quantifiable;
    lastWasQuant = false;
    atExprStart = false;
  };
  // The atom before its quantifier, to merge stacked quantifiers (`a**` is `a*`) instead of nesting them:
  // nested unbounded loops make JS backtracking exponential.
  let lastBase = '';
  let lastQ = '';
  const quantify = (q: string): void => {
    const prev = cur.atoms.pop()!;
    if (!lastWasQuant) {
      lastBase = prev;
      lastQ = q;
    } else {
      const simple = (x: string) => x === '*' || x === '+' || x === '?';
      if (simple(lastQ) && simple(q)) lastQ = lastQ === q ? q : '*';
      else if (lastQ === '*') lastQ = '*';
      else {
        lastBase = `(?:${prev})`;
        lastQ = q;
      }
    }
    cur.atoms.push(`${lastBase}${lastQ}`);
    lastWasQuant = true;
  };
  const openGroup = () => {
    stack.push(cur);
    groups++;
    cur = { atoms: [], alts: [], group: groups };
    atExprStart = true;
    lastQuantifiable = false;
    lastWasQuant = false;
  };
  const closeGroup = () => {
    const body = [...cur.alts.map((a) => a.join('')), cur.atoms.join('')].join('|');
    const g = cur.group;
    closedGroups.add(g);
    cur = stack.pop()!;
    pushAtom(`(${body})`);
  };
  const alternate = () => {
    cur.alts.push(cur.atoms);
    cur.atoms = [];
    atExprStart = true;
    lastQuantifiable = false;
    lastWasQuant = false;
  };
  let i = 0;
  while (i < p.length) {
    const ch = p[i];
    if (ch === '\\') {
      if (i + 1 >= p.length) throw new RegexSyntaxError('Trailing backslash');
      const d = p[i + 1];
      i += 2;
      if (!ere && d === '(') openGroup();
      else if (!ere && d === ')') {
        if (stack.length === 0) throw new RegexSyntaxError('Unmatched ) or \\)');
        closeGroup();
      } else if (!ere && d === '|') alternate();
      else if (!ere && d === '{') {
        if (atExprStart || !lastQuantifiable) {
          if (atExprStart) throw new RegexSyntaxError('Invalid preceding regular expression');
          pushAtom(esc('{'));
          continue;
        }
        const iv = interval(p, i, '\\}');
        if (!iv) throw new RegexSyntaxError('Unmatched \\{');
        quantify(iv[0]);
        i = iv[1];
      } else if (!ere && (d === '+' || d === '?')) {
        if (atExprStart || !lastQuantifiable) pushAtom(esc(d));
        else quantify(d);
      } else if (d >= '1' && d <= '9') {
        const n = Number(d);
        if (!closedGroups.has(n)) throw new RegexSyntaxError('Invalid back reference');
        pushAtom(`\\${n}`);
      } else if (d === '<') pushAtom('(?<![A-Za-z0-9_])(?=[A-Za-z0-9_])', false);
      else if (d === '>') pushAtom('(?<=[A-Za-z0-9_])(?![A-Za-z0-9_])', false);
      else if (d === 'b') pushAtom('\\b', false);
      else if (d === 'B') pushAtom('\\B', false);
      else if (d === 'w') pushAtom('[A-Za-z0-9_]');
      else if (d === 'W') pushAtom('[^A-Za-z0-9_]');
      else if (d === 's') pushAtom('[\\t-\\r ]');
      else if (d === 'S') pushAtom('[^\\t-\\r ]');
      else if (d === '`') pushAtom('^', false);
      else if (d === "'") pushAtom('$', false);
      else pushAtom(esc(d));
      continue;
    }
    if (ch === '[') {
      if (i + 1 >= p.length) throw new RegexSyntaxError('Invalid regular expression');
      const [cls, next] = bracketToJs(p, i);
      pushAtom(cls);
      i = next;
      continue;
    }
    if (ch === '.') {
      pushAtom('[\\s\\S]');
      i++;
      continue;
    }
    if (ch === '*') {
      i++;
      if (atExprStart || !lastQuantifiable) {
        // BRE: literal at the start of an expression; ERE: GNU ignores it (with a warning).
        if (!ere) pushAtom(esc('*'));
        continue;
      }
      quantify('*');
      continue;
    }
    if (ere && (ch === '+' || ch === '?')) {
      i++;
      if (atExprStart || !lastQuantifiable) {
        if (atExprStart) continue;
        pushAtom(esc(ch));
        continue;
      }
      quantify(ch);
      continue;
    }
    if (ere && ch === '{') {
      const iv = lastQuantifiable && !atExprStart ? interval(p, i + 1, '}') : undefined;
      if (!iv) {
        pushAtom(esc('{'));
        i++;
        continue;
      }
      quantify(iv[0]);
      i = iv[1];
      continue;
    }
    if (ere && ch === '(') {
      openGroup();
      i++;
      continue;
    }
    if (ere && ch === ')') {
      i++;
      if (stack.length === 0) {
        pushAtom(esc(')'));
        continue;
      }
      closeGroup();
      continue;
    }
    if (ere && ch === '|') {
      alternate();
      i++;
      continue;
    }
    if (ch === '^') {
      i++;
      if (ere || atExprStart) {
        pushAtom('^', false);
        atExprStart = !ere;
        // In BRE a `*` right after the anchor is literal.
        if (!ere) lastQuantifiable = false;
        continue;
      }
      pushAtom(esc('^'));
      continue;
    }
    if (ch === '$') {
      i++;
      const atEnd = i >= p.length || (!ere && (p.startsWith('\\)', i) || p.startsWith('\\|', i)));
      if (ere || atEnd) pushAtom('$', false);
      else pushAtom(esc('$'));
      continue;
    }
    pushAtom(esc(ch));
    i++;
  }
  if (stack.length > 0) throw new RegexSyntaxError('Unmatched ( or \\(');
  return { src: [...cur.alts.map((a) => a.join('')), cur.atoms.join('')].join('|'), contextual };
}

/** Escape a fixed string for a JS regex. */
export function fixedToJs(s: string): string {
  let out = '';
  for (const ch of s) out += esc(ch);
  return out;
}

const tailCache = new Map<string, RegExp>();
const cached = (key: string, make: () => RegExp): RegExp => {
  let re = tailCache.get(key);
  if (!re) {
    if (tailCache.size > 4096) tailCache.clear();
    re = make();
    tailCache.set(key, re);
  }
  return re;
};

/**
 * The POSIX (leftmost-longest) match starting at `start`, given that a JS match of `src` starts there and
 * ends at `jsEnd`: tries longer ends first. A `contextual` pattern (anchors, word boundaries) is tested in
 * the whole line with a lookahead fixing the end; otherwise on the substring alone, which keeps the
 * expression eligible for V8's linear-time engine.
 */
export function longestMatchAt(
  src: string,
  flags: string,
  line: string,
  start: number,
  jsEnd: number,
  contextual = true,
): number {
  if (line.length - start > 2048) return jsEnd;
  const whole = contextual
    ? undefined
    : cached(`${flags}\0w\0${src}`, () => new RegExp(`^(?:${src})$`, flags));
  for (let end = line.length; end > jsEnd; end--) {
    if (whole) {
      if (whole.test(line.slice(start, end))) return end;
      continue;
    }
    const k = line.length - end;
    const re = cached(
      `${flags}\0${k}\0${src}`,
      () => new RegExp(`(?:${src})(?=[\\s\\S]{${k}}$)`, `${flags}y`),
    );
    re.lastIndex = start;
    const m = re.exec(line);
    if (m && start + m[0].length === end) return end;
  }
  return jsEnd;
}

/**
 * V8 falls back to its linear-time regexp engine when a backtracking match runs away (`\(a*\)*b` on a
 * long line), for expressions without lookaround or back references. Process-wide, and harmless: the
 * fallback gives the same results.
 */
export function enableRegexpFallback(): void {
  try {
    setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  } catch {
    // Not available: matching stays backtracking-only.
  }
}
