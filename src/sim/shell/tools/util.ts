/**
 * Shared pieces of the shell's tools: GNU-style option parsing, GNU quoting of file names in messages,
 * reading operands (`-` is stdin), and an output accumulator.
 *
 * Contract: `getopts` accepts clustered short options (`-la`), attached or separate option arguments
 * (`-n5`, `-n 5`), long options with `=` or a separate argument and unambiguous prefixes, `--` to end
 * options, and (as GNU getopt) options after operands; a lone `-` is an operand. Errors are the exact
 * GNU getopt messages (`ls: invalid option -- 'z'`). `quotef` quotes a name only when a shell would need it
 * (GNU's shell-escape style), `quote` always (`'name'`), as coreutils' diagnostics do.
 */
import { KhoError } from '../../../errors.ts';
import type { CommandContext, CommandResult } from '../engine.ts';
import { errorMessage } from '../vfs.ts';

export interface OptSpec {
  /** Short options without argument, e.g. 'laR1'. */
  flags?: string;
  /** Short options taking an argument, e.g. 'n'. */
  withArg?: string;
  /** Long options: name → short letter (or its own key); names ending in '=' take an argument. */
  long?: Record<string, string>;
  /** Stop at the first operand (POSIX order; echo-like tools). */
  noPermute?: boolean;
}

export interface ParsedOpts {
  /** Options in the order given: [key, value]. Key is the short letter or the long mapping. */
  list: [string, string | true][];
  operands: string[];
}

/** A usage error (`SIM_SHELL_USAGE`): the message is the tool's own diagnostic line. */
export class UsageError extends KhoError {
  /** True when the tool prints only the message, without the `Try ... --help` line. */
  readonly noTry: boolean;
  constructor(message: string, noTry = false) {
    super('SIM_SHELL_USAGE', message);
    this.noTry = noTry;
  }
}

export function getopts(tool: string, args: string[], spec: OptSpec): ParsedOpts {
  const flags = spec.flags ?? '';
  const withArg = spec.withArg ?? '';
  const long = spec.long ?? {};
  const list: [string, string | true][] = [];
  const operands: string[] = [];
  let i = 0;
  while (i < args.length) {
    const a = args[i++];
    if (a === '--') {
      operands.push(...args.slice(i));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const names = Object.keys(long).map((k) => k.replace(/=$/, ''));
      const exact = names.find((n) => n === name);
      const cands = exact ? [exact] : names.filter((n) => n.startsWith(name));
      if (cands.length === 0) throw new UsageError(`${tool}: unrecognized option '${a}'`);
      if (cands.length > 1) throw new UsageError(`${tool}: option '${a}' is ambiguous`);
      const full = cands[0];
      const takesArg = Object.hasOwn(long, `${full}=`);
      const key = takesArg ? long[`${full}=`] : long[full];
      if (takesArg) {
        let v: string;
        if (eq >= 0) v = a.slice(eq + 1);
        else if (i < args.length) v = args[i++];
        else throw new UsageError(`${tool}: option '--${full}' requires an argument`);
        list.push([key, v]);
      } else {
        if (eq >= 0) throw new UsageError(`${tool}: option '--${full}' doesn't allow an argument`);
        list.push([key, true]);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        if (withArg.includes(c)) {
          let v: string;
          if (j + 1 < a.length) v = a.slice(j + 1);
          else if (i < args.length) v = args[i++];
          else throw new UsageError(`${tool}: option requires an argument -- '${c}'`);
          list.push([c, v]);
          break;
        }
        if (!flags.includes(c)) throw new UsageError(`${tool}: invalid option -- '${c}'`);
        list.push([c, true]);
      }
      continue;
    }
    operands.push(a);
    if (spec.noPermute) {
      operands.push(...args.slice(i));
      break;
    }
  }
  return { list, operands };
}

export function has(p: ParsedOpts, key: string): boolean {
  return p.list.some(([k]) => k === key);
}
export function lastValue(p: ParsedOpts, key: string): string | undefined {
  let v: string | undefined;
  for (const [k, val] of p.list) if (k === key && typeof val === 'string') v = val;
  return v;
}

const SHELL_SPECIAL = new Set(' \t\n!"$&\'()*;<=>?[\\]^`{|}'.split(''));

/** GNU shell-escape quoting, used for file names in most diagnostics: only when needed. */
export function quotef(name: string): string {
  if (name === '') return "''";
  let needs = name[0] === '#' || name[0] === '~';
  for (const ch of name) {
    if (SHELL_SPECIAL.has(ch) || ch.charCodeAt(0) < 32 || ch.charCodeAt(0) === 127) {
      needs = true;
      break;
    }
  }
  if (!needs) return name;
  return quote(name);
}

/** GNU locale quoting in the C locale: always `'name'` (`"it's"` when the name holds a quote). */
export function quote(name: string): string {
  if (!name.includes("'")) return `'${name}'`;
  if (!/["$`\\]/.test(name)) return `"${name}"`;
  return `'${name.replace(/'/g, "'\\''")}'`;
}

/** Accumulates a tool's output. */
export class Out {
  stdout: string[] = [];
  stderr: string[] = [];
  status = 0;
  out(s: string): void {
    this.stdout.push(s);
  }
  err(s: string): void {
    this.stderr.push(s);
  }
  result(status = this.status): CommandResult {
    return { stdout: this.stdout.join(''), stderr: this.stderr.join(''), status };
  }
}

const stdinRead = new WeakSet<CommandContext>();

/**
 * The bytes of an operand: `-` is stdin, which (as a pipe) yields its bytes once per command and is empty
 * after that (`cat - -`). Throws the VFS error.
 */
export function readOperand(ctx: CommandContext, name: string): Uint8Array {
  if (name === '-') {
    if (stdinRead.has(ctx)) return new Uint8Array(0);
    stdinRead.add(ctx);
    return ctx.stdin;
  }
  return ctx.vfs.readFile(name);
}

export function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** `tool: name: message` for a failed operand. */
export function fileError(tool: string, name: string, e: unknown): string {
  return `${tool}: ${quotef(name)}: ${errorMessage(e)}\n`;
}

/** Run a tool body, turning a UsageError into GNU's message plus the `Try ... --help` line. */
export function withUsage(
  tool: string,
  status: number,
  body: () => CommandResult,
  tryLine = `Try '${tool} --help' for more information.`,
): CommandResult {
  try {
    return body();
  } catch (e) {
    if (e instanceof UsageError)
      return { stderr: e.noTry ? `${e.message}\n` : `${e.message}\n${tryLine}\n`, status };
    throw e;
  }
}

/** Split text into lines; the last line may lack its newline (`terminated` says whether it had one). */
export function splitLines(s: string): { lines: string[]; terminated: boolean } {
  if (s === '') return { lines: [], terminated: true };
  const terminated = s.endsWith('\n');
  const lines = (terminated ? s.slice(0, -1) : s).split('\n');
  return { lines, terminated };
}

/** Parse a GNU count with optional multiplier suffix (b, K, KiB, kB, M, ...). */
export function parseCount(s: string): number | undefined {
  const m = /^(\d+)(b|[KMGTPE](iB|B)?|kB|k)?$/.exec(s);
  if (!m) return undefined;
  let n = Number(m[1]);
  const suf = m[2];
  if (suf) {
    if (suf === 'b') n *= 512;
    else {
      const p = 'KMGTPE'.indexOf(suf[0].toUpperCase()) + 1;
      const base = suf.endsWith('B') && !suf.endsWith('iB') ? 1000 : 1024;
      n *= base ** p;
    }
  }
  return Number.isSafeInteger(n) ? n : Number.MAX_SAFE_INTEGER;
}
