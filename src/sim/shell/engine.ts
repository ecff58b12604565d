/**
 * The shell engine: runs parsed command lines against a command registry and a VFS.
 *
 * Contract:
 * - `Shell.register(name, handler, description)` adds a command. A handler gets `{argv, stdin, env, vfs,
 *   shell, isTTY}` (argv and env are binary strings, stdin the bytes of the previous pipeline stage or of a
 *   `<` file) and returns `{stdout, stderr, status}` (bytes or binary strings; missing fields are empty/0),
 *   sync or async. A handler that throws prints `name: message` on stderr with status 1.
 * - Statuses as bash: unknown command `sh: foo: not found` 127; syntax error 2 (`sh: syntax error near
 *   unexpected token ...`); a failed redirection `sh: FILE: Permission denied` 1 (the command does not
 *   run); a pipeline's status is its last command's, `!` inverts; `&&`/`||` short-circuit; `$?` is the last
 *   status. `exit [N]` ends a script (N defaults to the last status).
 * - Expansion: parameters (`$VAR`, `${VAR}`, `$?`), leading `~` (`$HOME`), field splitting of unquoted
 *   expansions on blanks and newlines, pathname expansion of unquoted `*?[` against the VFS (no match:
 *   the word stays as typed), quote removal.
 * - Builtins: `cd`, `exit`, `export`, `unset`, `help`, `:`. `help` lists every command with its one-line
 *   description.
 * - `run(line)` returns one line's output; `runScript(text)` a transcript (`# line` then its output, stdout
 *   and stderr interleaved in the order produced), for tests and for replaying the user guide;
 *   `runRepl()` (in repl.ts) is the interactive front end.
 */
import { KhoError } from '../../errors.ts';
import { globExpand, hasGlob } from './glob.ts';
import {
  type AndOr,
  type Pipeline,
  parse,
  type Script,
  ShellIncomplete,
  ShellSyntaxError,
  type SimpleCommand,
  type Word,
} from './parse.ts';
import { errorMessage, type Vfs, vfsErrno } from './vfs.ts';

export type Output = Uint8Array | string;

export interface CommandContext {
  /** argv[0] is the command name as typed. Binary strings. */
  argv: string[];
  stdin: Uint8Array;
  /** The command's environment (shell variables and `NAME=value` prefixes). */
  env: Record<string, string>;
  vfs: Vfs;
  shell: Shell;
  /** True when stdout goes straight to an interactive terminal (ls uses columns then). */
  isTTY: boolean;
}

export interface CommandResult {
  stdout?: Output;
  stderr?: Output;
  status?: number;
}

export type CommandHandler = (ctx: CommandContext) => CommandResult | Promise<CommandResult>;

export interface CommandInfo {
  name: string;
  description: string;
  handler: CommandHandler;
}

export interface RunResult {
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** stdout and stderr interleaved in the order the commands produced them. */
  output: Uint8Array;
  status: number;
}

/** Bytes of a binary string (or the bytes themselves). */
export function toBytes(o: Output | undefined): Uint8Array {
  if (o === undefined) return new Uint8Array(0);
  return typeof o === 'string' ? Buffer.from(o, 'latin1') : o;
}

/** Binary string of bytes. */
export function toText(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Buffer.concat(chunks);
}

type Emit = (fd: 1 | 2, data: Uint8Array) => void;

export interface ShellOptions {
  vfs: Vfs;
  /** Initial variables (HOME, PATH, ...); defaults give HOME=/root, PWD, USER=root, SHELL=/bin/sh. */
  env?: Record<string, string>;
  /** The name used in the shell's own messages (`sh: foo: not found`). */
  name?: string;
}

class ExitSignal {
  constructor(
    readonly status: number,
    readonly message = '',
  ) {}
}

export class Shell {
  readonly vfs: Vfs;
  readonly name: string;
  readonly vars: Map<string, string>;
  private commands = new Map<string, CommandInfo>();
  /** `$?`. */
  lastStatus = 0;
  /** Set once `exit` ran: the status the shell exits with. */
  exitStatus: number | undefined;
  /** True while the REPL runs on a terminal (commands writing to it see isTTY). */
  interactive = false;

  constructor(opts: ShellOptions) {
    this.vfs = opts.vfs;
    this.name = opts.name ?? 'sh';
    this.vars = new Map(
      Object.entries({
        HOME: '/root',
        USER: 'root',
        LOGNAME: 'root',
        SHELL: '/bin/sh',
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
        PWD: this.vfs.cwd,
        ...opts.env,
      }),
    );
    this.registerBuiltins();
  }

  register(name: string, handler: CommandHandler, description = ''): void {
    this.commands.set(name, { name, description, handler });
  }

  unregister(name: string): boolean {
    return this.commands.delete(name);
  }

  command(name: string): CommandInfo | undefined {
    return this.commands.get(name);
  }

  commandNames(): string[] {
    return [...this.commands.keys()].sort();
  }

  get exited(): boolean {
    return this.exitStatus !== undefined;
  }

  /** Run one line (or several), returning its output. */
  async run(line: string): Promise<RunResult> {
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    const all: Uint8Array[] = [];
    const status = await this.execute(line, (fd, data) => {
      (fd === 1 ? out : err).push(data);
      all.push(data);
    });
    return { stdout: concat(out), stderr: concat(err), output: concat(all), status };
  }

  /**
   * Run a script, returning the transcript a terminal would show: each command line after `prompt`, then
   * its output. Lines that continue a command (open quotes, trailing `|`) are shown after `> `. Blank
   * lines are skipped. Stops after `exit`.
   */
  async runScript(
    text: string,
    opts: { prompt?: string } = {},
  ): Promise<{ transcript: string; status: number }> {
    const prompt = opts.prompt ?? '# ';
    let transcript = '';
    let pending = '';
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    for (const line of lines) {
      if (this.exited) break;
      if (pending === '' && line.trim() === '') continue;
      transcript += `${pending === '' ? prompt : '> '}${line}\n`;
      const src = pending === '' ? line : `${pending}\n${line}`;
      if (isIncomplete(src)) {
        pending = src;
        continue;
      }
      pending = '';
      const r = await this.run(src);
      transcript += toText(r.output);
    }
    if (pending !== '') {
      const r = await this.run(pending);
      transcript += toText(r.output);
    }
    return { transcript, status: this.exitStatus ?? this.lastStatus };
  }

  /** Parse and run `src`, sending output to `emit`. Returns the last status. */
  async execute(src: string, emit: Emit): Promise<number> {
    let script: Script;
    try {
      script = parse(src);
    } catch (e) {
      if (e instanceof ShellSyntaxError || e instanceof ShellIncomplete) {
        const msg = e instanceof ShellIncomplete ? 'syntax error: unexpected end of file' : e.message;
        emit(2, toBytes(`${this.name}: ${msg}\n`));
        this.lastStatus = 2;
        return 2;
      }
      throw e;
    }
    try {
      for (const item of script) {
        if (this.exited) break;
        this.lastStatus = await this.runAndOr(item, emit);
      }
    } catch (e) {
      if (e instanceof ExitSignal) {
        this.exitStatus = e.status;
        this.lastStatus = e.status;
      } else throw e;
    }
    return this.lastStatus;
  }

  private async runAndOr(item: AndOr, emit: Emit): Promise<number> {
    let status = await this.runPipeline(item.first, emit);
    for (const { op, pipeline } of item.rest) {
      if ((op === '&&' && status !== 0) || (op === '||' && status === 0)) continue;
      this.lastStatus = status;
      status = await this.runPipeline(pipeline, emit);
    }
    return status;
  }

  private async runPipeline(p: Pipeline, emit: Emit): Promise<number> {
    let stdin: Uint8Array = new Uint8Array(0);
    let status = 0;
    const multi = p.commands.length > 1;
    for (let i = 0; i < p.commands.length; i++) {
      const last = i === p.commands.length - 1;
      const chunks: Uint8Array[] = [];
      // Each part of a multi-command pipeline runs in a subshell: variables and cwd do not leak out.
      const savedVars = multi ? new Map(this.vars) : undefined;
      const savedCwd = this.vfs.cwd;
      const r = await this.runCommand(p.commands[i], stdin, multi, last, (fd, data) => {
        if (fd === 1 && !last) chunks.push(data);
        else emit(fd, data);
      });
      if (savedVars) {
        this.vars.clear();
        for (const [k, v] of savedVars) this.vars.set(k, v);
        if (this.vfs.cwd !== savedCwd) {
          try {
            this.vfs.chdir(savedCwd);
          } catch {
            // The directory went away meanwhile; stay where the subshell left us.
          }
        }
      }
      status = r;
      stdin = concat(chunks);
    }
    if (p.negate) status = status === 0 ? 1 : 0;
    return status;
  }

  // ---------------------------------------------------------------- expansion

  private param(name: string): string {
    if (name === '?') return String(this.lastStatus);
    if (name === '$') return '1';
    if (name === '#') return '0';
    if (name === '0') return this.name;
    if (/^[0-9]$/.test(name)) return '';
    return this.vars.get(name) ?? '';
  }

  /** Expand a word into fields (with pathname expansion unless `noGlob`). */
  expandWord(word: Word, noGlob = false): string[] {
    type Field = { text: string; pattern: string; glob: boolean; quotedAny: boolean };
    const fields: Field[] = [];
    let cur: Field | undefined;
    const ensure = (): Field => {
      if (!cur) {
        cur = { text: '', pattern: '', glob: false, quotedAny: false };
        fields.push(cur);
      }
      return cur;
    };
    const escapeGlob = (s: string) => s.replace(/[\\*?[\]]/g, '\\$&');
    for (const part of word) {
      if (part.kind === 'tilde') {
        const f = ensure();
        const home = this.vars.get('HOME') ?? '/root';
        f.text += home;
        f.pattern += escapeGlob(home);
        f.quotedAny = true;
      } else if (part.kind === 'lit') {
        const f = ensure();
        f.text += part.text;
        if (part.quoted) {
          f.pattern += escapeGlob(part.text);
          f.quotedAny = true;
        } else {
          f.pattern += part.text;
          if (hasGlob(part.text)) f.glob = true;
        }
      } else {
        const value = this.param(part.name);
        if (part.quoted) {
          const f = ensure();
          f.text += value;
          f.pattern += escapeGlob(value);
          f.quotedAny = true;
          continue;
        }
        // Field splitting on IFS whitespace.
        const pieces = value.split(/[ \t\n]+/);
        for (let i = 0; i < pieces.length; i++) {
          if (i > 0) cur = undefined;
          if (pieces[i] === '') continue;
          const f = ensure();
          f.text += pieces[i];
          f.pattern += pieces[i];
          if (hasGlob(pieces[i])) f.glob = true;
        }
      }
    }
    const out: string[] = [];
    for (const f of fields) {
      if (f.text === '' && !f.quotedAny) continue;
      if (f.glob && !noGlob) {
        const m = globExpand(f.pattern, this.vfs);
        if (m.length > 0) {
          for (const x of m) out.push(x);
          continue;
        }
      }
      out.push(f.text);
    }
    return out;
  }

  /** Expand a word to one string (assignments, redirection targets): no splitting, no globbing. */
  expandString(word: Word): string {
    let s = '';
    for (const part of word) {
      if (part.kind === 'tilde') s += this.vars.get('HOME') ?? '/root';
      else if (part.kind === 'lit') s += part.text;
      else s += this.param(part.name);
    }
    return s;
  }

  // ---------------------------------------------------------------- commands

  private async runCommand(
    cmd: SimpleCommand,
    stdin: Uint8Array,
    inMultiPipeline: boolean,
    lastInPipeline: boolean,
    emit: Emit,
  ): Promise<number> {
    const argv: string[] = [];
    for (const w of cmd.words) for (const x of this.expandWord(w)) argv.push(x);
    const assigns = cmd.assigns.map((a) => ({ name: a.name, value: this.expandString(a.value) }));

    // Redirections, left to right: each fd goes to the terminal/pipe or a file opened now.
    // A file sink remembers whether it was opened for appending and whether data has been written yet.
    type FileSink = { kind: 'file'; path: string; append: boolean; started: boolean };
    type Sink = { kind: 'fd'; fd: 1 | 2 } | { kind: 'closed' } | FileSink;
    const sinks: Record<1 | 2, Sink> = { 1: { kind: 'fd', fd: 1 }, 2: { kind: 'fd', fd: 2 } };
    let input = stdin;
    for (const r of cmd.redirects) {
      const target = this.expandString(r.target);
      try {
        if (r.op === '<') {
          input = this.vfs.readFile(target);
        } else if (r.op === '>&') {
          if (target === '1' || target === '2') {
            if (r.fd === 1 || r.fd === 2) sinks[r.fd] = sinks[Number(target) as 1 | 2];
          } else if (target === '-') {
            // `N>&-` closes the descriptor: what the command writes there is lost.
            if (r.fd === 1 || r.fd === 2) sinks[r.fd] = { kind: 'closed' };
          } else if (/^[0-9]+$/.test(target)) {
            emit(2, toBytes(`${this.name}: ${target}: Bad file descriptor\n`));
            return 1;
          } else {
            this.vfs.openWrite(target);
            const sink: FileSink = { kind: 'file', path: target, append: false, started: false };
            sinks[1] = sink;
            sinks[2] = sink;
          }
        } else {
          this.vfs.openWrite(target, { append: r.op === '>>' });
          const sink: FileSink = { kind: 'file', path: target, append: r.op === '>>', started: false };
          if (r.op === '&>') {
            sinks[1] = sink;
            sinks[2] = sink;
          } else if (r.fd === 1 || r.fd === 2) sinks[r.fd] = sink;
        }
      } catch (e) {
        emit(2, toBytes(`${this.name}: ${target}: ${errorMessage(e)}\n`));
        return 1;
      }
    }
    const write = (fd: 1 | 2, data: Uint8Array) => {
      if (data.length === 0) return;
      const sink = sinks[fd];
      if (sink.kind === 'closed') return;
      if (sink.kind === 'fd') emit(sink.fd, data);
      else {
        try {
          this.vfs.writeFile(sink.path, data, { append: sink.started || sink.append });
          sink.started = true;
        } catch (e) {
          emit(2, toBytes(`${this.name}: ${sink.path}: ${errorMessage(e)}\n`));
        }
      }
    };

    if (argv.length === 0) {
      for (const a of assigns) this.vars.set(a.name, a.value);
      return 0;
    }
    const name = argv[0];
    const info = this.commands.get(name);
    if (!info) {
      write(2, toBytes(`${this.name}: ${name}: not found\n`));
      return 127;
    }
    const env: Record<string, string> = Object.fromEntries(this.vars);
    for (const a of assigns) env[a.name] = a.value;
    const isTTY = this.interactive && lastInPipeline && sinks[1].kind === 'fd';
    let result: CommandResult;
    try {
      // A handler that returns nothing succeeded silently.
      result = (await info.handler({ argv, stdin: input, env, vfs: this.vfs, shell: this, isTTY })) ?? {};
    } catch (e) {
      if (e instanceof ExitSignal) {
        write(2, toBytes(e.message));
        if (inMultiPipeline) return e.status;
        throw e;
      }
      const msg = e instanceof KhoError && !vfsErrno(e) ? e.message : errorMessage(e);
      write(2, toBytes(`${name}: ${msg}\n`));
      return 1;
    }
    write(1, toBytes(result.stdout));
    write(2, toBytes(result.stderr));
    return clampStatus(result.status ?? 0);
  }

  private registerBuiltins(): void {
    this.register(
      'cd',
      ({ argv }) => {
        let dir = argv[1];
        let print = false;
        if (argv.length > 2) return { stderr: `${this.name}: cd: too many arguments\n`, status: 1 };
        if (dir === undefined) dir = this.vars.get('HOME') ?? '/';
        else if (dir === '-') {
          dir = this.vars.get('OLDPWD') ?? '';
          if (dir === '') return { stderr: `${this.name}: cd: OLDPWD not set\n`, status: 1 };
          print = true;
        }
        const old = this.vfs.cwd;
        try {
          this.vfs.chdir(dir);
        } catch (e) {
          return { stderr: `${this.name}: cd: ${dir}: ${errorMessage(e)}\n`, status: 1 };
        }
        this.vars.set('OLDPWD', old);
        this.vars.set('PWD', this.vfs.cwd);
        return { stdout: print ? `${this.vfs.cwd}\n` : '', status: 0 };
      },
      'change the current directory',
    );
    this.register(
      'exit',
      ({ argv }) => {
        const a = argv[1];
        if (a === undefined) throw new ExitSignal(this.lastStatus);
        if (!/^[+-]?[0-9]+$/.test(a)) {
          throw new ExitSignal(2, `${this.name}: exit: ${a}: numeric argument required\n`);
        }
        throw new ExitSignal(clampStatus(Number(a)));
      },
      'exit the shell',
    );
    this.register(
      'export',
      ({ argv }) => {
        for (const a of argv.slice(1)) {
          const eq = a.indexOf('=');
          if (eq > 0) this.vars.set(a.slice(0, eq), a.slice(eq + 1));
        }
        return { status: 0 };
      },
      'set shell variables (every variable is exported)',
    );
    this.register(
      'unset',
      ({ argv }) => {
        for (const a of argv.slice(1)) this.vars.delete(a);
        return { status: 0 };
      },
      'remove shell variables',
    );
    this.register(':', () => ({ status: 0 }), 'do nothing, successfully');
    this.register(
      'help',
      ({ argv }) => {
        const names = argv.length > 1 ? argv.slice(1) : this.commandNames();
        const missing = names.filter((n) => !this.commands.has(n));
        if (missing.length > 0)
          return { stderr: `${this.name}: help: no help topics match '${missing[0]}'.\n`, status: 1 };
        const width = Math.max(...names.map((n) => n.length));
        const lines = names.map((n) => {
          const d = this.commands.get(n)!.description;
          return d ? `  ${n.padEnd(width)}  ${d}` : `  ${n}`;
        });
        return { stdout: `Commands:\n${lines.join('\n')}\n`, status: 0 };
      },
      'list the commands with a one-line description',
    );
  }
}

function clampStatus(n: number): number {
  if (!Number.isFinite(n)) return 1;
  return ((Math.trunc(n) % 256) + 256) % 256;
}

export interface TranscriptEntry {
  /** The command as typed (continuation lines joined with newlines). */
  command: string;
  /** Everything printed until the next prompt. */
  output: string;
}

/**
 * Split a transcript (as `runScript` writes it, or a terminal session pasted from a document) into
 * commands and their output: a line starting with `prompt` starts a command; following lines starting
 * with `> ` continue it while it is incomplete; the rest is output.
 */
export function parseTranscript(text: string, prompt = '# '): TranscriptEntry[] {
  const entries: TranscriptEntry[] = [];
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  let cur: TranscriptEntry | undefined;
  for (const line of lines) {
    if (cur && isIncomplete(cur.command) && line.startsWith('> ')) {
      cur.command += `\n${line.slice(2)}`;
      continue;
    }
    if (line.startsWith(prompt)) {
      cur = { command: line.slice(prompt.length), output: '' };
      entries.push(cur);
      continue;
    }
    if (cur) cur.output += `${line}\n`;
  }
  return entries;
}

/** Would more input complete this text (open quote, trailing `|`, `&&`, `\`)? */
export function isIncomplete(src: string): boolean {
  try {
    parse(src);
    return false;
  } catch (e) {
    return e instanceof ShellIncomplete;
  }
}

export { ShellIncomplete, ShellSyntaxError };
