/**
 * Shared CLI plumbing: exit statuses, the one-line error format, JSON output.
 *
 * Exit statuses (documented in the README): 0 ok, 1 invalid input or failed check, 2 usage.
 * Errors print one line per problem: `kho: <file>: <CODE>: <what>`; never a stack trace.
 */
import pc from 'picocolors';
import { KhoError } from '../errors.ts';

export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

/** Print one error line for `file` (or none) to stderr. */
export function reportError(file: string | undefined, e: unknown): void {
  const prefix = file === undefined ? 'kho: ' : `kho: ${file}: `;
  if (e instanceof KhoError) {
    process.stderr.write(`${prefix}${e.describe()}\n`);
  } else if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    // Node's system errors (ENOENT, EACCES, ...).
    const ne = e as NodeJS.ErrnoException;
    process.stderr.write(`${prefix}IO_${ne.code}: ${ne.message.replace(/^[A-Z]+: /, '')}\n`);
  } else {
    process.stderr.write(`${prefix}KHO_INTERNAL: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}

/** JSON with u64 values (bigint) as hex strings and byte arrays as hex strings. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === 'bigint') return `0x${v.toString(16)}`;
      if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
      return v;
    },
    indent,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(`${toJson(value)}\n`);
}

/**
 * Colours for human output: on only when stdout is a terminal (or FORCE_COLOR is set), never with NO_COLOR.
 * picocolors' own default also turns colour on whenever a `CI` variable exists, which would put escape codes
 * into piped output and logs.
 */
export const colorEnabled =
  !('NO_COLOR' in process.env) && ('FORCE_COLOR' in process.env || process.stdout.isTTY === true);
export const color = pc.createColors(colorEnabled);

let brokenPipeGuard = false;

/**
 * Exit quietly when the reader of stdout goes away (`kho ... | head`): without this, Node reports the
 * EPIPE as an unhandled 'error' event with a stack trace. Keeps an exit status already set (1 after a
 * bad file), else 0. Other stdout errors print one `kho: IO_...` line and exit 1. Idempotent.
 */
export function exitQuietlyOnBrokenPipe(): void {
  if (brokenPipeGuard) return;
  brokenPipeGuard = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK);
    reportError(undefined, e);
    process.exit(EXIT_INVALID);
  });
}
