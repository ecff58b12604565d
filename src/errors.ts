/**
 * The one error class of kho, with stable codes.
 *
 * Every failure kho reports (a malformed blob, a hostile radix tree, a bad command line, a simulated
 * kernel refusing a handover) is a `KhoError` whose `code` never changes between releases, so callers
 * branch on `err.code`, never on message text. Where the failure has a place, `offset` is the byte
 * offset inside the input and `path` the node path (`/memblock/khovec_region`) or file; `expected`
 * says what would have been valid.
 *
 * FDT codes reuse libfdt's error names (`FDT_ERR_BADMAGIC`, ...) so they map 1:1 to `fdt_strerror()`.
 * KHO codes are prefixed `KHO_`, simulator codes `SIM_`, command-line usage codes `CLI_`.
 */

/** libfdt's error names (libfdt.h), in libfdt's numbering order. */
export const FDT_ERROR_CODES = [
  'FDT_ERR_NOTFOUND',
  'FDT_ERR_EXISTS',
  'FDT_ERR_NOSPACE',
  'FDT_ERR_BADOFFSET',
  'FDT_ERR_BADPATH',
  'FDT_ERR_BADPHANDLE',
  'FDT_ERR_BADSTATE',
  'FDT_ERR_TRUNCATED',
  'FDT_ERR_BADMAGIC',
  'FDT_ERR_BADVERSION',
  'FDT_ERR_BADSTRUCTURE',
  'FDT_ERR_BADLAYOUT',
  'FDT_ERR_INTERNAL',
  'FDT_ERR_BADNCELLS',
  'FDT_ERR_BADVALUE',
  'FDT_ERR_BADOVERLAY',
  'FDT_ERR_NOPHANDLES',
  'FDT_ERR_BADFLAGS',
  'FDT_ERR_ALIGNMENT',
] as const;
export type FdtErrorCode = (typeof FDT_ERROR_CODES)[number];

/** libfdt's negative error number for a code (FDT_ERR_NOTFOUND = 1, ...). */
export function fdtErrno(code: FdtErrorCode): number {
  return FDT_ERROR_CODES.indexOf(code) + 1;
}

/** Stable codes: libfdt's names, then kho's own (`KHO_*`, `SIM_*`, `CLI_*`, `IO_*`). */
export type KhoErrorCode =
  | FdtErrorCode
  | `KHO_${string}`
  | `SIM_${string}`
  | `CLI_${string}`
  | `IO_${string}`;

export interface KhoErrorInit {
  /** Byte offset in the input where the problem was found. */
  offset?: number;
  /** Node path, file path or other locator. */
  path?: string;
  /** What would have been valid at that place. */
  expected?: string;
  /** The underlying cause, if any. */
  cause?: unknown;
}

export class KhoError extends Error {
  override readonly name = 'KhoError';
  readonly code: KhoErrorCode;
  readonly offset?: number;
  readonly path?: string;
  readonly expected?: string;

  constructor(code: KhoErrorCode, message: string, init: KhoErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    if (init.offset !== undefined) this.offset = init.offset;
    if (init.path !== undefined) this.path = init.path;
    if (init.expected !== undefined) this.expected = init.expected;
  }

  /** One line: `CODE: message (at offset 0x.., path ..; expected ..)`. */
  describe(): string {
    const where: string[] = [];
    if (this.path !== undefined) where.push(`at ${this.path}`);
    if (this.offset !== undefined) where.push(`offset 0x${this.offset.toString(16)}`);
    if (this.expected !== undefined) where.push(`expected ${this.expected}`);
    return `${this.code}: ${this.message}${where.length ? ` (${where.join(', ')})` : ''}`;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.offset !== undefined ? { offset: this.offset } : {}),
      ...(this.path !== undefined ? { path: this.path } : {}),
      ...(this.expected !== undefined ? { expected: this.expected } : {}),
    };
  }
}

export function isKhoError(e: unknown, code?: KhoErrorCode): e is KhoError {
  return e instanceof KhoError && (code === undefined || e.code === code);
}

/** A validation finding: validators report every finding, not only the first. */
export type Severity = 'error' | 'warning' | 'info';
export interface Finding {
  code: KhoErrorCode;
  severity: Severity;
  message: string;
  path?: string;
  offset?: number;
  expected?: string;
}

/** A finding from its parts; `path`, `offset` and `expected` appear only when given. */
export function finding(
  code: KhoErrorCode,
  severity: Severity,
  message: string,
  path?: string,
  extra: { offset?: number; expected?: string } = {},
): Finding {
  return {
    code,
    severity,
    message,
    ...(path !== undefined ? { path } : {}),
    ...(extra.offset !== undefined ? { offset: extra.offset } : {}),
    ...(extra.expected !== undefined ? { expected: extra.expected } : {}),
  };
}

/** The finding for a thrown KhoError; `path` stands in when the error names none. */
export function findingFromError(e: KhoError, severity: Severity = 'error', path?: string): Finding {
  const where = e.path ?? path;
  return {
    code: e.code,
    severity,
    message: e.message,
    ...(where !== undefined ? { path: where } : {}),
    ...(e.offset !== undefined ? { offset: e.offset } : {}),
    ...(e.expected !== undefined ? { expected: e.expected } : {}),
  };
}
