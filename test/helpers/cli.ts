/**
 * Running `kho` CLI code in-process for tests.
 *
 * - `runCli(argv)`: `main(argv)` with process.stdout/stderr captured (stdout as bytes, stderr as UTF-8);
 *   the original writers and `process.exitCode` are restored afterwards, even when `main` throws.
 * - `capture(fn)`: calls a command's `run*(…, io)` entry with an `io.out` that collects the text it
 *   writes; returns the exit status and that text.
 * - `quiet(fn)`: calls `fn` with process.stderr silenced, returning its value and what it wrote there.
 */
import { main } from '../../src/cli/main.ts';

export interface CliRun {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** `main(argv)` with stdout/stderr captured; process.exitCode restored afterwards. */
export async function runCli(argv: string[]): Promise<CliRun> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  const grab =
    (sink: Buffer[]) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      sink.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
      (rest.find((r) => typeof r === 'function') as (() => void) | undefined)?.();
      return true;
    };
  const prevExit = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = grab(out) as typeof process.stdout.write;
  process.stderr.write = grab(err) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = prevExit;
  }
}

/** A command's `run*(…, io)` with `io.out` collected into a string. */
export function capture(fn: (io: { out(s: string): void }) => number): { code: number; out: string } {
  let out = '';
  const code = fn({ out: (s) => (out += s) });
  return { code, out };
}

/** stderr is written by reportError through process.stderr: silence it and keep it. */
export function quiet<T>(fn: () => T): { value: T; err: string } {
  const orig = process.stderr.write.bind(process.stderr);
  let err = '';
  process.stderr.write = ((s: string | Uint8Array) => {
    err += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: fn(), err };
  } finally {
    process.stderr.write = orig;
  }
}

/** `capture(fn)` with process.stderr silenced and kept too: exit status, io.out text and stderr text. */
export function captureAll(fn: (io: { out(s: string): void }) => number): {
  code: number;
  out: string;
  err: string;
} {
  const { value, err } = quiet(() => capture(fn));
  return { ...value, err };
}
