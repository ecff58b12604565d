/**
 * `grep`, as GNU grep 3.8 behaves in the C locale.
 *
 * Contract: options -E -F -G -e PAT -i/-y -v -c -n -o -q -l -L -H -h -w -x -r/-R -s -m NUM, `--color` (ignored).
 * Patterns are GNU basic (default) or extended regular expressions (see regex.ts) or fixed strings; a
 * pattern holding newlines is several patterns. `-o` prints each POSIX leftmost-longest match (empty
 * matches are skipped). Input holding a NUL byte is binary: NUL also ends lines, selected lines are not
 * printed and `grep: NAME: binary file matches` goes to stderr instead. Status 0 if a line was selected,
 * 1 if none, 2 on an error (a missing file, a bad pattern) unless -q selected a line. File names prefix
 * output lines when more than one file is searched (or -r), as `name:`.
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { errorMessage } from '../vfs.ts';
import {
  enableRegexpFallback,
  fixedToJs,
  longestMatchAt,
  RegexSyntaxError,
  translateRegexInfo,
} from './regex.ts';

enableRegexpFallback();

import { getopts, has, lastValue, quotef, readOperand, text, UsageError } from './util.ts';

const USAGE = "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n";

interface Matcher {
  test(line: string): boolean;
  /** [start, end) of each match to print with -o. */
  matches(line: string): [number, number][];
}

function buildMatcher(
  patterns: string[],
  mode: 'G' | 'E' | 'F',
  ignoreCase: boolean,
  word: boolean,
  whole: boolean,
): Matcher {
  const infos = patterns.map((p) =>
    mode === 'F'
      ? { src: fixedToJs(p), contextual: false }
      : translateRegexInfo(p, mode === 'E' ? 'extended' : 'basic'),
  );
  const srcs = infos.map((i) => i.src);
  const contextual = whole || word || infos.some((i) => i.contextual);
  const wrap = (s: string) =>
    whole ? `^(?:${s})$` : word ? `(?<![A-Za-z0-9_])(?:${s})(?![A-Za-z0-9_])` : `(?:${s})`;
  const src = srcs.map(wrap).join('|');
  const flags = ignoreCase ? 'is' : 's';
  let re: RegExp;
  try {
    re = new RegExp(src, `${flags}g`);
  } catch (e) {
    throw new RegexSyntaxError(`Invalid regular expression (${errorMessage(e)})`);
  }
  return {
    test(line) {
      re.lastIndex = 0;
      return re.test(line);
    },
    matches(line) {
      const out: [number, number][] = [];
      let pos = 0;
      while (pos <= line.length) {
        re.lastIndex = pos;
        const m = re.exec(line);
        if (!m) break;
        const start = m.index;
        const end = longestMatchAt(src, flags, line, start, start + m[0].length, contextual);
        if (end > start) {
          out.push([start, end]);
          pos = end;
        } else pos = start + 1;
      }
      return out;
    },
  };
}

export function grep(ctx: CommandContext): CommandResult {
  let p: ReturnType<typeof getopts>;
  try {
    p = getopts('grep', ctx.argv.slice(1), {
      flags: 'EFGivycnoqlLHhwxrRsz',
      withArg: 'em',
      long: {
        'extended-regexp': 'E',
        'fixed-strings': 'F',
        'basic-regexp': 'G',
        'regexp=': 'e',
        'ignore-case': 'i',
        'invert-match': 'v',
        count: 'c',
        'line-number': 'n',
        'only-matching': 'o',
        quiet: 'q',
        silent: 'q',
        'files-with-matches': 'l',
        'files-without-match': 'L',
        'with-filename': 'H',
        'no-filename': 'h',
        'word-regexp': 'w',
        'line-regexp': 'x',
        recursive: 'r',
        'no-messages': 's',
        'max-count=': 'm',
        'color=': 'color',
        colour: 'color',
        color: 'color',
      },
    });
  } catch (e) {
    if (e instanceof UsageError) return { stderr: `${e.message}\n${USAGE}`, status: 2 };
    throw e;
  }
  let mode: 'G' | 'E' | 'F' = 'G';
  for (const [k] of p.list) if (k === 'E' || k === 'F' || k === 'G') mode = k;
  const patterns: string[] = [];
  for (const [k, v] of p.list)
    if (k === 'e' && typeof v === 'string') for (const x of v.split('\n')) patterns.push(x);
  const operands = [...p.operands];
  if (!has(p, 'e')) {
    if (operands.length === 0) return { stderr: USAGE, status: 2 };
    for (const x of operands.shift()!.split('\n')) patterns.push(x);
  }
  const invert = has(p, 'v');
  const count = has(p, 'c');
  const numbers = has(p, 'n');
  const only = has(p, 'o');
  const quiet = has(p, 'q');
  const listMatch = has(p, 'l');
  const listNoMatch = has(p, 'L');
  const recursive = has(p, 'r') || has(p, 'R');
  const noMessages = has(p, 's');
  const mArg = lastValue(p, 'm');
  let maxCount = Number.POSITIVE_INFINITY;
  if (mArg !== undefined) {
    if (!/^-?\d+$/.test(mArg)) return { stderr: `grep: invalid max count\n`, status: 2 };
    maxCount = Number(mArg) < 0 ? Number.POSITIVE_INFINITY : Number(mArg);
  }

  // GNU exits at once when matching cannot succeed: -m 0, or -v with one empty pattern (without -x/-w).
  if (
    (maxCount === 0 || (patterns.join('\n') === '' && invert && !has(p, 'x') && !has(p, 'w'))) &&
    !listNoMatch
  )
    return { status: 1 };
  let matcher: Matcher;
  try {
    matcher = buildMatcher(patterns, mode, has(p, 'i') || has(p, 'y'), has(p, 'w'), has(p, 'x'));
  } catch (e) {
    if (e instanceof RegexSyntaxError) return { stderr: `grep: ${e.message}\n`, status: 2 };
    throw e;
  }

  // Expand operands (recursion) into [displayName, readName] pairs.
  const out: string[] = [];
  const err: string[] = [];
  let errors = false;
  const files: string[] = [];
  if (operands.length === 0) operands.push(recursive ? '.' : '-');
  const walk = (path: string, top: boolean) => {
    let isDir = false;
    try {
      isDir = path !== '-' && ctx.vfs.stat(path).type === 'dir';
    } catch {
      isDir = false;
    }
    if (isDir && recursive) {
      if (!top && ctx.vfs.lstat(path).type === 'symlink') return;
      for (const n of ctx.vfs.readdir(path)) walk(path.endsWith('/') ? path + n : `${path}/${n}`, false);
      return;
    }
    if (!top && recursive) {
      try {
        if (ctx.vfs.lstat(path).type === 'symlink') return;
      } catch {
        return;
      }
    }
    files.push(path);
  };
  for (const op of operands) walk(op, true);
  const showNames = has(p, 'H') ? true : has(p, 'h') ? false : files.length > 1 || recursive;

  let selectedAny = false;
  for (const name of files) {
    const display = name === '-' ? '(standard input)' : name;
    let data: string;
    try {
      data = text(readOperand(ctx, name));
    } catch (e) {
      errors = true;
      if (!noMessages) err.push(`grep: ${quotef(name)}: ${errorMessage(e)}\n`);
      continue;
    }
    const binary = data.includes('\0');
    const body = data.endsWith('\n') || (binary && data.endsWith('\0')) ? data.slice(0, -1) : data;
    const lines = data === '' ? [] : body.split(binary ? /[\n\0]/ : '\n');
    const prefix = showNames ? `${display}:` : '';
    let selected = 0;
    const lineOut: string[] = [];
    for (let i = 0; i < lines.length && selected < maxCount; i++) {
      const line = lines[i];
      const hit = matcher.test(line);
      if (hit === invert) continue;
      selected++;
      if (quiet || count || listMatch || listNoMatch || binary) continue;
      const num = numbers ? `${i + 1}:` : '';
      if (only) {
        if (invert) continue;
        for (const [s, e] of matcher.matches(line)) lineOut.push(`${prefix}${num}${line.slice(s, e)}\n`);
      } else lineOut.push(`${prefix}${num}${line}\n`);
    }
    if (selected > 0) selectedAny = true;
    if (quiet) {
      if (selectedAny) return { stderr: err.join(''), status: 0 };
      continue;
    }
    if (count) out.push(`${prefix}${selected}\n`);
    if (listMatch) {
      if (selected > 0) out.push(`${display}\n`);
      continue;
    }
    if (listNoMatch) {
      if (selected === 0) out.push(`${display}\n`);
      continue;
    }
    if (count) continue;
    for (const l of lineOut) out.push(l);
    if (binary && selected > 0 && !noMessages) {
      // GNU prints the stdout collected so far before this stderr line; keep the order in the transcript.
      err.push(`grep: ${display}: binary file matches\n`);
    }
  }
  const status = errors && !(quiet && selectedAny) ? 2 : selectedAny ? 0 : 1;
  return { stdout: out.join(''), stderr: err.join(''), status };
}
