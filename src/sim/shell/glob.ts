/**
 * Shell patterns (fnmatch(3) without flags, as `find -name` and pathname expansion use them) over binary
 * strings, and pathname expansion against the VFS.
 *
 * Contract: `*` any run of bytes, `?` any byte, `[...]` a bracket expression (`!` or `^` negates; ranges by
 * byte value; `[:alpha:]`-style classes of the C locale; `]` first is literal), `\x` the byte `x`. An unclosed
 * `[` is a literal `[`. `globExpand` matches each pattern component against directory entries (entries
 * starting with `.` only when the pattern component does), returns sorted matches, or `[]` when nothing
 * matches (the shell then keeps the word as typed, as POSIX sh does). Matching is iterative with
 * backtracking only to the last `*`, so hostile patterns cannot take exponential time.
 */
import { compareBytes, type Vfs } from './vfs.ts';

const CLASSES: Record<string, (c: number) => boolean> = {
  alpha: (c) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  digit: (c) => c >= 48 && c <= 57,
  alnum: (c) => CLASSES.alpha(c) || CLASSES.digit(c),
  upper: (c) => c >= 65 && c <= 90,
  lower: (c) => c >= 97 && c <= 122,
  space: (c) => c === 32 || (c >= 9 && c <= 13),
  blank: (c) => c === 32 || c === 9,
  punct: (c) =>
    (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126),
  print: (c) => c >= 32 && c <= 126,
  graph: (c) => c >= 33 && c <= 126,
  cntrl: (c) => c < 32 || c === 127,
  xdigit: (c) => CLASSES.digit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102),
};

/** Character classes of the C locale, shared with grep's and tr's bracket expressions. */
export function charClass(name: string): ((c: number) => boolean) | undefined {
  return Object.hasOwn(CLASSES, name) ? CLASSES[name] : undefined;
}

/** Match a bracket expression starting at `p[i] === '['`; returns [matched, nextIndex] or undefined if unclosed. */
function bracket(p: string, i: number, c: number): [boolean, number] | undefined {
  let j = i + 1;
  let negate = false;
  if (p[j] === '!' || p[j] === '^') {
    negate = true;
    j++;
  }
  let matched = false;
  let first = true;
  while (j < p.length) {
    const ch = p[j];
    if (ch === ']' && !first) return [matched !== negate, j + 1];
    first = false;
    if (ch === '[' && p[j + 1] === ':') {
      const end = p.indexOf(':]', j + 2);
      if (end > 0) {
        const cls = charClass(p.slice(j + 2, end));
        if (cls?.(c)) matched = true;
        j = end + 2;
        continue;
      }
    }
    let lo: number;
    if (ch === '\\' && j + 1 < p.length) {
      lo = p.charCodeAt(j + 1);
      j += 2;
    } else {
      lo = p.charCodeAt(j);
      j++;
    }
    if (p[j] === '-' && j + 1 < p.length && p[j + 1] !== ']') {
      let hi: number;
      if (p[j + 1] === '\\' && j + 2 < p.length) {
        hi = p.charCodeAt(j + 2);
        j += 3;
      } else {
        hi = p.charCodeAt(j + 1);
        j += 2;
      }
      if (c >= lo && c <= hi) matched = true;
    } else if (c === lo) matched = true;
  }
  return undefined;
}

/** fnmatch(pattern, name, 0). */
export function fnmatch(p: string, s: string): boolean {
  let pi = 0;
  let si = 0;
  let starP = -1;
  let starS = -1;
  while (si < s.length) {
    if (pi < p.length) {
      const ch = p[pi];
      if (ch === '*') {
        starP = ++pi;
        starS = si;
        continue;
      }
      if (ch === '?') {
        pi++;
        si++;
        continue;
      }
      if (ch === '[') {
        const r = bracket(p, pi, s.charCodeAt(si));
        if (r === undefined) {
          if (s[si] === '[') {
            pi++;
            si++;
            continue;
          }
        } else if (r[0]) {
          pi = r[1];
          si++;
          continue;
        }
      } else if (ch === '\\' && pi + 1 < p.length) {
        if (p[pi + 1] === s[si]) {
          pi += 2;
          si++;
          continue;
        }
      } else if (ch === s[si]) {
        pi++;
        si++;
        continue;
      }
    }
    if (starP < 0) return false;
    pi = starP;
    si = ++starS;
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/** Does the pattern contain an unescaped glob character? */
export function hasGlob(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}

/** Remove backslash escapes from a pattern (for components without glob characters). */
export function unescapePattern(p: string): string {
  return p.replace(/\\(.)/gs, '$1');
}

/** Pathname expansion of one pattern against the VFS: sorted matches, or [] if none. */
export function globExpand(pattern: string, vfs: Vfs): string[] {
  const absolute = pattern.startsWith('/');
  const comps = pattern.split('/');
  // Prefixes built so far: display string (as the user wrote it).
  let results: string[] = [absolute ? '/' : ''];
  const trailing = pattern.endsWith('/') && pattern.length > 1;
  for (let k = absolute ? 1 : 0; k < comps.length; k++) {
    const comp = comps[k];
    if (comp === '') continue;
    const next: string[] = [];
    const join = (prefix: string, name: string) =>
      prefix === '' ? name : prefix.endsWith('/') ? prefix + name : `${prefix}/${name}`;
    if (!hasGlob(comp)) {
      const name = unescapePattern(comp);
      for (const r of results) next.push(join(r, name));
    } else {
      for (const r of results) {
        let names: string[];
        try {
          names = vfs.readdir(r === '' ? '.' : r);
        } catch {
          continue;
        }
        const all = comp.startsWith('.') ? ['.', '..', ...names] : names.filter((n) => !n.startsWith('.'));
        for (const n of all) if (fnmatch(comp, n)) next.push(join(r, n));
      }
    }
    results = next;
    if (results.length === 0) return [];
  }
  const out = results.filter((r) => {
    try {
      const st = vfs.stat(r);
      return !trailing || st.type === 'dir';
    } catch {
      try {
        vfs.lstat(r);
        return !trailing;
      } catch {
        return false;
      }
    }
  });
  return (trailing ? out.map((r) => `${r}/`) : out).sort(compareBytes);
}
