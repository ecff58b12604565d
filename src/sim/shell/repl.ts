/**
 * The interactive front end of the shell.
 *
 * Contract: `runRepl(shell, opts)` reads commands until end of input or `exit`, and resolves to the exit
 * status (`exit N`, or the last command's status). On a terminal it shows the `# ` prompt (`> ` for a
 * continuation line), keeps a history (up arrow) and completes command names and paths with Tab, via
 * node:readline. When the input is not a terminal it reads lines from it and runs each complete command,
 * printing nothing but the commands' own output (no prompt, no echo), so `kho shell < script` works.
 * Input lines are decoded as UTF-8 on a terminal and byte for byte otherwise; the shell sees binary
 * strings either way, and output bytes are written unchanged.
 */
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { isIncomplete, type Shell } from './engine.ts';

export interface ReplOptions {
  input?: Readable & { isTTY?: boolean };
  output?: Writable & { isTTY?: boolean };
  errorOutput?: Writable;
  prompt?: string;
  /** Shown once on a terminal before the first prompt. */
  banner?: string;
  /** Force interactive mode (prompt and history) even if the input is not a TTY. */
  terminal?: boolean;
}

function writeAsync(w: Writable, data: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (data.length === 0) return resolve();
    if (w.write(data)) resolve();
    else w.once('drain', () => resolve());
  });
}

export async function runRepl(shell: Shell, opts: ReplOptions = {}): Promise<number> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const errorOutput = opts.errorOutput ?? process.stderr;
  const prompt = opts.prompt ?? '# ';
  const terminal = opts.terminal ?? Boolean(input.isTTY && output.isTTY);

  if (!terminal) {
    (input as Readable).setEncoding('latin1');
    const rl = createInterface({ input, terminal: false, crlfDelay: Number.POSITIVE_INFINITY });
    let pending = '';
    const run = async (src: string) => {
      const writes: Promise<void>[] = [];
      await shell.execute(src, (fd, data) => {
        writes.push(writeAsync(fd === 1 ? output : errorOutput, data));
      });
      await Promise.all(writes);
    };
    for await (const line of rl) {
      const src = pending === '' ? line : `${pending}\n${line}`;
      if (isIncomplete(src)) {
        pending = src;
        continue;
      }
      pending = '';
      await run(src);
      if (shell.exited) break;
    }
    if (pending !== '' && !shell.exited) await run(pending);
    rl.close();
    return shell.exitStatus ?? shell.lastStatus;
  }

  shell.interactive = true;
  const completer = (line: string): [string[], string] => {
    const m = /(\S*)$/.exec(line);
    const word = m ? m[1] : '';
    const isFirst = line.slice(0, line.length - word.length).trim() === '';
    let hits: string[] = [];
    if (isFirst && !word.includes('/')) hits = shell.commandNames().filter((n) => n.startsWith(word));
    else {
      const slash = word.lastIndexOf('/');
      const dir = slash < 0 ? '.' : word.slice(0, slash + 1) || '/';
      const base = word.slice(slash + 1);
      try {
        const names = shell.vfs.readdir(dir);
        const prefix = slash < 0 ? '' : word.slice(0, slash + 1);
        hits = names
          .filter((n) => n.startsWith(base) && (base.startsWith('.') || !n.startsWith('.')))
          .map((n) => {
            const full = prefix + n;
            try {
              return shell.vfs.stat(full).type === 'dir' ? `${full}/` : full;
            } catch {
              return full;
            }
          });
      } catch {
        hits = [];
      }
    }
    return [hits, word];
  };
  const rl = createInterface({ input, output, terminal: true, historySize: 1000, prompt, completer });
  if (opts.banner) output.write(opts.banner);
  let pending = '';
  rl.prompt();
  return await new Promise<number>((resolve) => {
    let busy = Promise.resolve();
    rl.on('line', (line) => {
      busy = busy.then(async () => {
        const bytes = Buffer.from(line, 'utf8').toString('latin1');
        const src = pending === '' ? bytes : `${pending}\n${bytes}`;
        if (isIncomplete(src)) {
          pending = src;
          rl.setPrompt('> ');
          rl.prompt();
          return;
        }
        pending = '';
        rl.pause();
        await shell.execute(src, (fd, data) => {
          (fd === 1 ? output : errorOutput).write(data);
        });
        if (shell.exited) {
          rl.close();
          return;
        }
        rl.setPrompt(prompt);
        rl.resume();
        rl.prompt();
      });
    });
    rl.on('SIGINT', () => {
      pending = '';
      output.write('^C\n');
      rl.setPrompt(prompt);
      rl.prompt();
    });
    rl.on('close', () => {
      void busy.then(() => {
        shell.interactive = false;
        resolve(shell.exitStatus ?? shell.lastStatus);
      });
    });
  });
}
