/**
 * libfdt's own verdict on blobs: `fdtCheck(blobs)` runs Debian's libfdt (`fdt_check_header` and
 * `fdt_check_full(fdt, blob.length)`) through the small C harness `fdtcheck.c`, compiled on first use
 * into a cache directory under the system temp dir (keyed by the source's hash), and returns per blob
 * the results as libfdt error names (and, for blobs fdt_check_full accepts, what `fdt_setprop` on a
 * copy says: FDT_ERR_BADLAYOUT when libfdt's read-write functions refuse the block layout) (`'OK'` for success, `'CRASH'`/`'HANG'` if libfdt faulted or
 * did not return within 50 ms). Needs `cc` and libfdt-dev: guard tests with `oracle(t, 'cc', 'libfdt-dev')`.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LibfdtVerdict {
  header: string;
  full: string;
  /** fdt_setprop_u32 on a copy, only when `full` is OK; '-' otherwise. */
  rw: string;
}

const SOURCE = new URL('./fdtcheck.c', import.meta.url).pathname;
let binary: string | null = null;

function build(): string {
  if (binary) return binary;
  const src = readFileSync(SOURCE);
  const hash = createHash('sha256').update(src).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'kho-fdtcheck');
  mkdirSync(dir, { recursive: true });
  const exe = join(dir, `fdtcheck-${hash}`);
  if (!existsSync(exe)) {
    const tmp = `${exe}.${process.pid}.tmp`;
    execFileSync('cc', ['-O2', '-o', tmp, SOURCE, '-lfdt'], { stdio: ['ignore', 'ignore', 'inherit'] });
    renameSync(tmp, exe);
  }
  binary = exe;
  return exe;
}

/** libfdt's fdt_check_header and fdt_check_full results for each blob, in one process. */
export function fdtCheck(blobs: Uint8Array[]): LibfdtVerdict[] {
  const frames: Buffer[] = [];
  for (const b of blobs) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    frames.push(len, Buffer.from(b.buffer, b.byteOffset, b.length));
  }
  const out = execFileSync(build(), [], { input: Buffer.concat(frames), maxBuffer: 1 << 28 });
  const lines = out.toString('utf8').trim().split('\n').filter(Boolean);
  if (lines.length !== blobs.length)
    throw new Error(`fdtcheck answered ${lines.length} of ${blobs.length} blobs`);
  return lines.map((l) => {
    const [header = '', full = '', rw = ''] = l.split(' ');
    return { header, full, rw };
  });
}

/** A structure-block token for `asmFdt`: given the strings table, its bytes. */
export type Tok = (names: (name: string) => number) => Buffer;

function u32(...words: number[]): Buffer {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32BE(w >>> 0, 4 * i));
  return b;
}
function pad4(b: Buffer): Buffer {
  return Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
}

/** Hand-assembled structure-block tokens, for fixtures libfdt then judges. */
export const tok = {
  begin:
    (name: string): Tok =>
    () =>
      Buffer.concat([u32(1), pad4(Buffer.from(`${name}\0`, 'latin1'))]),
  end: (): Tok => () => u32(2),
  prop:
    (name: string | number, value: Uint8Array | string = new Uint8Array(0), len?: number): Tok =>
    (names) => {
      const v = typeof value === 'string' ? Buffer.from(`${value}\0`, 'latin1') : Buffer.from(value);
      const off = typeof name === 'number' ? name : names(name);
      return Buffer.concat([u32(3, len ?? v.length, off), pad4(v)]);
    },
  nop: (): Tok => () => u32(4),
  fin: (): Tok => () => u32(9),
  word:
    (w: number): Tok =>
    () =>
      u32(w),
  raw:
    (b: Uint8Array): Tok =>
    () =>
      Buffer.from(b),
};

export interface AsmLayout {
  offRsvmap: number;
  offStruct: number;
  offStrings: number;
  sizeStruct: number;
  sizeStrings: number;
  /** Absolute offset of each token, in order. */
  at: number[];
}

/**
 * Assemble a blob in dtc's layout (40-byte header, rsvmap, structure, strings): version 17 unless
 * told, property names interned in first-use order after `strings` (raw leading strings-block bytes).
 * `patch` may then change anything (header fields, bytes) before the blob is returned.
 */
export function asmFdt(opts: {
  struct: Tok[];
  strings?: string;
  rsv?: [bigint, bigint][];
  version?: number;
  patch?: (b: Buffer, layout: AsmLayout) => Buffer | undefined;
}): { bytes: Uint8Array; layout: AsmLayout } {
  let strings = Buffer.from(opts.strings ?? '', 'latin1');
  const names = (name: string): number => {
    const want = Buffer.from(`${name}\0`, 'latin1');
    const found = strings.indexOf(want);
    if (found >= 0) return found;
    const off = strings.length;
    strings = Buffer.concat([strings, want]);
    return off;
  };
  const rsv = Buffer.alloc(16 * ((opts.rsv?.length ?? 0) + 1));
  (opts.rsv ?? []).forEach(([a, s], i) => {
    rsv.writeBigUInt64BE(a, 16 * i);
    rsv.writeBigUInt64BE(s, 16 * i + 8);
  });
  const offRsvmap = 40;
  const offStruct = offRsvmap + rsv.length;
  const at: number[] = [];
  const parts: Buffer[] = [];
  let pos = offStruct;
  for (const t of opts.struct) {
    const b = t(names);
    at.push(pos);
    parts.push(b);
    pos += b.length;
  }
  const struct = Buffer.concat(parts);
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const head = u32(
    0xd00dfeed,
    total,
    offStruct,
    offStrings,
    offRsvmap,
    opts.version ?? 17,
    16,
    0,
    strings.length,
    struct.length,
  );
  const layout: AsmLayout = {
    offRsvmap,
    offStruct,
    offStrings,
    sizeStruct: struct.length,
    sizeStrings: strings.length,
    at,
  };
  let out: Buffer = Buffer.concat([head, rsv, struct, strings]);
  out = opts.patch?.(out, layout) ?? out;
  return { bytes: new Uint8Array(out), layout };
}
