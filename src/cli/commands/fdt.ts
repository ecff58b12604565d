/**
 * `kho fdt`: devicetree blob tools, in-process and batch-friendly.
 *
 * - `kho fdt dts FILE... [--out-dir DIR]`: the text `dtc -I dtb -O dts` prints (one file and no
 *   --out-dir: stdout; else `DIR/NAME.dts` for `NAME.dtb`).
 * - `kho fdt dtb FILE... [--out-dir DIR]`: the blob `dtc -I dtb -O dtb` writes (dtc mode re-encode).
 * - `kho fdt get FILE NODE PROP [NODE PROP]...` with fdtget's options (`-t TYPE`, `-p`, `-l`, `-d`):
 *   fdtget's output byte for byte (its type letters s/i/u/x, size prefixes hh|b, h, l, its value
 *   guessing, one line per value).
 * - `kho fdt check FILE... [--json]`: every finding of `checkFdt` per file.
 *
 * Contract: every file is read, processed and its output written before the next one is read
 * (streamed, no per-file process). A bad file (missing, unreadable, not a valid blob) prints exactly one
 * line `kho: <file>: <CODE>: <what>` on stderr, the other files are still processed, and the exit
 * status is 1; usage errors exit 2. Never a stack trace. When a batch has run for more than a second and
 * stderr is a TTY, a progress bar is drawn on stderr.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { type Finding, KhoError } from '../../errors.ts';
import { toDtsBytes } from '../../fdt/dts.ts';
import { type FdtBlob, type FdtNodeView, lookupPath, parseFdt } from '../../fdt/reader.ts';
import { checkFdt, firstError } from '../../fdt/validate.ts';
import { encodeDtc } from '../../fdt/write-dtc.ts';
import {
  EXIT_INVALID,
  EXIT_OK,
  EXIT_USAGE,
  exitQuietlyOnBrokenPipe,
  reportError,
  toJson,
} from '../common.ts';
import { findingLine } from './inspect-format.ts';

/** Where command output goes (stdout by default; tests pass their own). */
export interface FdtIo {
  out(data: string | Uint8Array): void;
}
const stdout: FdtIo = { out: (d) => void process.stdout.write(d) };

function usage(message: string): KhoError {
  return new KhoError('CLI_USAGE', message);
}

/** `NAME.dtb` → `DIR/NAME.<ext>`; other names get `.<ext>` appended. */
export function outputPath(file: string, outDir: string, ext: 'dts' | 'dtb'): string {
  const base = basename(file);
  const stem = base.toLowerCase().endsWith('.dtb') ? base.slice(0, -4) : base;
  return join(outDir, `${stem}.${ext}`);
}

/** Run `each` over `files`: one error line per failing file, a progress bar for long TTY batches. */
function batch(files: string[], each: (file: string) => void): number {
  let status = EXIT_OK;
  const start = Date.now();
  let bar: cliProgress.SingleBar | undefined;
  for (let i = 0; i < files.length; i++) {
    const file = files[i] as string;
    try {
      each(file);
    } catch (e) {
      if (bar) process.stderr.write('\r\x1b[2K'); // the bar redraws below the error line
      reportError(file, e);
      status = EXIT_INVALID;
    }
    if (!bar && files.length > 1 && process.stderr.isTTY && Date.now() - start > 1000) {
      bar = new cliProgress.SingleBar(
        { stream: process.stderr, format: 'kho fdt [{bar}] {value}/{total} files', clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(files.length, i + 1);
    } else bar?.update(i + 1);
  }
  bar?.stop();
  return status;
}

/** Decode for the CLI: the whole blob must be valid (as dtc -I dtb requires). */
function readBlob(file: string): FdtBlob {
  return parseFdt(readFileSync(file));
}

function convert(
  files: string[],
  outDir: string | undefined,
  ext: 'dts' | 'dtb',
  render: (blob: FdtBlob) => Uint8Array,
  io: FdtIo,
): number {
  if (files.length > 1 && outDir === undefined)
    throw usage(`${files.length} input files need --out-dir DIR (one output file per input)`);
  if (outDir !== undefined) mkdirSync(outDir, { recursive: true });
  const written = new Map<string, string>();
  return batch(files, (file) => {
    const out = render(readBlob(file));
    if (outDir === undefined) {
      io.out(out);
      return;
    }
    const dest = outputPath(file, outDir, ext);
    const prev = written.get(dest);
    if (prev !== undefined)
      throw new KhoError('CLI_OUTPUT_CLASH', `would overwrite ${dest}, already written for ${prev}`, {
        path: dest,
        expected: 'input files with distinct names',
      });
    writeFileSync(dest, out);
    written.set(dest, file);
  });
}

/** `kho fdt dts`: dtc -I dtb -O dts for each file. */
export function runFdtDts(files: string[], opts: { outDir?: string }, io: FdtIo = stdout): number {
  return convert(files, opts.outDir, 'dts', (b) => toDtsBytes(b), io);
}

/** `kho fdt dtb`: dtc -I dtb -O dtb for each file. */
export function runFdtDtb(files: string[], opts: { outDir?: string }, io: FdtIo = stdout): number {
  return convert(files, opts.outDir, 'dtb', (b) => encodeDtc(b), io);
}

// ---------------------------------------------------------------------------------------------
// fdtget

/** A decoded fdtget `-t` argument: type letter (0 = guess) and element size (-1 = guess). */
export interface FdtgetType {
  type: '' | 's' | 'i' | 'u' | 'x';
  size: -1 | 1 | 2 | 4;
}

/**
 * fdtget's type string: an optional size prefix (`hh` or `b` = 1 byte, `h` = 2, `l` = 4; `L`, `ll`,
 * `LL`, `bb` are accepted as fdtget accepts them) then one of `s i u x`. Throws CLI_BAD_TYPE.
 */
export function decodeFdtgetType(fmt: string): FdtgetType {
  let i = 0;
  let qualifier = '';
  if (fmt.length > 0 && 'hlLb'.includes(fmt[0] as string)) {
    qualifier = fmt[i++] as string;
    if (fmt[i] === qualifier) {
      i++;
      if (qualifier === 'h') qualifier = 'b';
    }
  }
  const t = fmt[i];
  if (t === undefined || !'iuxs'.includes(t) || i + 1 !== fmt.length)
    throw new KhoError('CLI_BAD_TYPE', `invalid type string '${fmt}'`, {
      expected: "[hh|b|h|l]{s|i|u|x}, e.g. 's', 'x', 'hhx', 'bu', 'hx', 'lx'",
    });
  const size: FdtgetType['size'] =
    t === 's' ? -1 : qualifier === 'b' ? 1 : qualifier === 'h' ? 2 : qualifier === 'l' ? 4 : -1;
  return { type: t as FdtgetType['type'], size };
}

/** C's isprint in the C locale. */
const isPrint = (c: number): boolean => c >= 0x20 && c <= 0x7e;

/** fdtget's (dtc's util) printable-string test: NUL-terminated, non-empty printable segments. */
export function isPrintableString(v: Uint8Array): boolean {
  if (v.length === 0 || v[v.length - 1] !== 0) return false;
  let i = 0;
  while (i < v.length) {
    const start = i;
    while (i < v.length && v[i] !== 0 && isPrint(v[i] as number)) i++;
    if (v[i] !== 0 || i === start) return false;
    i++;
  }
  return true;
}

/**
 * One value as fdtget prints it, without the newline, as a binary string (one char per byte).
 * Throws FDT_ERR_BADVALUE where fdtget refuses (an unterminated string for `-t s`, a length that is not
 * a multiple of the chosen size).
 */
export function formatFdtgetValue(v: Uint8Array, t: FdtgetType, where = ''): string {
  if (v.length === 0) return '';
  const isString = t.type === 's' || (t.type === '' && isPrintableString(v));
  if (isString) {
    if (v[v.length - 1] !== 0)
      throw new KhoError('FDT_ERR_BADVALUE', 'unterminated string', {
        ...(where ? { path: where } : {}),
        expected: 'a value ending in NUL for type s',
      });
    const parts: string[] = [];
    let i = 0;
    while (i < v.length) {
      let j = i;
      while (v[j] !== 0) j++;
      parts.push(Buffer.from(v.buffer, v.byteOffset + i, j - i).toString('latin1'));
      i = j + 1;
    }
    return parts.join(' ');
  }
  let size: number = t.size;
  if (size === -1) size = v.length % 4 === 0 ? 4 : 1;
  else if (v.length % size !== 0)
    throw new KhoError('FDT_ERR_BADVALUE', `property length ${v.length} is not a multiple of ${size}`, {
      ...(where ? { path: where } : {}),
      expected: `a multiple of the selected data size (${size})`,
    });
  const out: string[] = [];
  for (let i = 0; i < v.length; i += size) {
    // fdtget reads into a C int: 4-byte cells are signed for %d/%i, bytes and halves never are.
    const value =
      size === 4
        ? ((v[i] as number) << 24) |
          ((v[i + 1] as number) << 16) |
          ((v[i + 2] as number) << 8) |
          (v[i + 3] as number)
        : size === 2
          ? ((v[i] as number) << 8) | (v[i + 1] as number)
          : (v[i] as number);
    if (t.type === 'x') out.push((value >>> 0).toString(16));
    else if (t.type === 'u') out.push(String(value >>> 0));
    else out.push(String(value | 0));
  }
  return out.join(' ');
}

export interface FdtGetOptions {
  type?: string;
  properties?: boolean;
  list?: boolean;
  default?: string;
}

/** fdt_path_offset's answer for a path: the node, or the libfdt error it would return. */
function findNode(blob: FdtBlob, path: string): FdtNodeView {
  const n = lookupPath(blob.root, path);
  if (n) return n;
  const aliasMissing = !path.startsWith('/');
  throw new KhoError(aliasMissing ? 'FDT_ERR_BADPATH' : 'FDT_ERR_NOTFOUND', `no node '${path}'`, {
    path,
    ...(aliasMissing ? { expected: 'an absolute path or an alias in /aliases' } : {}),
  });
}

/** `kho fdt get`: fdtget. Output is written per item; the first failing item ends the run (as fdtget). */
export function runFdtGet(file: string, items: string[], opts: FdtGetOptions, io: FdtIo = stdout): number {
  if (opts.properties && opts.list) throw usage('-p/--properties and -l/--list exclude each other');
  const t: FdtgetType = opts.type !== undefined ? decodeFdtgetType(opts.type) : { type: '', size: -1 };
  const perItem = opts.properties || opts.list ? 1 : 2;
  if (perItem === 2 && items.length % 2 !== 0)
    throw usage(
      `NODE and PROP come in pairs (got ${items.length} argument${items.length === 1 ? '' : 's'}); -p lists a node's properties, -l its sub-nodes`,
    );
  const line = (s: string) => io.out(Buffer.from(`${s}\n`, 'latin1'));
  try {
    const blob = readBlob(file);
    for (let i = 0; i + perItem <= items.length; i += perItem) {
      const path = items[i] as string;
      let node: FdtNodeView;
      try {
        node = findNode(blob, path);
      } catch (e) {
        if (opts.default === undefined) throw e;
        line(opts.default);
        continue;
      }
      if (opts.properties) {
        for (const p of node.props) line(p.name);
      } else if (opts.list) {
        for (const c of node.children) line(c.name === '' ? '/' : c.name);
      } else {
        const name = items[i + 1] as string;
        const prop = node.props.find((p) => p.name === name);
        if (!prop) {
          if (opts.default !== undefined) {
            line(opts.default);
            continue;
          }
          throw new KhoError('FDT_ERR_NOTFOUND', `no property '${name}' in ${path}`, { path });
        }
        line(formatFdtgetValue(prop.value, t, `${path}:${name}`));
      }
    }
  } catch (e) {
    reportError(file, e);
    return EXIT_INVALID;
  }
  return EXIT_OK;
}

// ---------------------------------------------------------------------------------------------
// check

export interface FdtCheckResult {
  file: string;
  valid: boolean;
  errors: number;
  warnings: number;
  findings: Finding[];
}

/** `kho fdt check`: findings per file; exit 1 when any file has an error or cannot be read. */
export function runFdtCheck(files: string[], opts: { json?: boolean }, io: FdtIo = stdout): number {
  let first = true;
  if (opts.json) io.out('[');
  const status = batch(files, (file) => {
    const findings = checkFdt(readFileSync(file));
    const errors = findings.filter((f) => f.severity === 'error').length;
    const warnings = findings.filter((f) => f.severity === 'warning').length;
    const res: FdtCheckResult = { file, valid: errors === 0, errors, warnings, findings };
    if (opts.json) {
      io.out(`${first ? '\n' : ',\n'}${toJson(res, 0)}`);
      first = false;
    } else {
      const lines = findings.map((f) => `${file}: ${findingLine(f)}\n`);
      lines.push(
        `${file}: ${res.valid ? 'valid' : 'INVALID'} (${errors} errors, ${warnings} warnings, ${findings.length - errors - warnings} notes)\n`,
      );
      io.out(lines.join(''));
    }
    const e = firstError(findings);
    if (e) {
      throw new KhoError(e.code, e.message, {
        ...(e.offset !== undefined ? { offset: e.offset } : {}),
        ...(e.path !== undefined ? { path: e.path } : {}),
      });
    }
  });
  if (opts.json) io.out(first ? ']\n' : '\n]\n');
  return status;
}

// ---------------------------------------------------------------------------------------------
// registration

/** Run a command body: usage problems exit 2 with one line, anything else is the body's status. */
function act(body: () => number): void {
  exitQuietlyOnBrokenPipe();
  try {
    process.exitCode = body();
  } catch (e) {
    reportError(undefined, e);
    process.exitCode =
      e instanceof KhoError && (e.code === 'CLI_USAGE' || e.code === 'CLI_BAD_TYPE')
        ? EXIT_USAGE
        : EXIT_INVALID;
  }
}

export function registerFdt(program: Command): void {
  const fdt = program
    .command('fdt')
    .description('devicetree blob tools: dts, dtb, get (fdtget), check')
    .addHelpText(
      'after',
      `
Examples:
  kho fdt dts board.dtb                     # like dtc -I dtb -O dts board.dtb
  kho fdt dtb *.dtb --out-dir /tmp/re       # re-encode as dtc -I dtb -O dtb does
  kho fdt get board.dtb /chosen bootargs    # like fdtget
  kho fdt check *.dtb --json`,
    );

  fdt
    .command('dts')
    .description('print each blob as dtc -I dtb -O dts does')
    .argument('<files...>', 'DTB files')
    .option('-o, --out-dir <dir>', 'write DIR/NAME.dts for each NAME.dtb (needed for more than one file)')
    .addHelpText(
      'after',
      `
Examples:
  kho fdt dts board.dtb > board.dts
  kho fdt dts /boot/dtbs/*/*.dtb --out-dir dts/`,
    )
    .action((files: string[], opts: { outDir?: string }) => act(() => runFdtDts(files, opts)));

  fdt
    .command('dtb')
    .description('re-encode each blob as dtc -I dtb -O dtb does (dtc mode)')
    .argument('<files...>', 'DTB files')
    .option('-o, --out-dir <dir>', 'write DIR/NAME.dtb for each NAME.dtb (needed for more than one file)')
    .addHelpText(
      'after',
      `
Examples:
  kho fdt dtb kho-fdt > canonical.dtb
  kho fdt dtb *.dtb --out-dir canonical/`,
    )
    .action((files: string[], opts: { outDir?: string }) => act(() => runFdtDtb(files, opts)));

  fdt
    .command('get')
    .description('read values as fdtget does: one line per NODE PROP pair')
    .argument('<file>', 'DTB file')
    .argument('[items...]', 'NODE PROP pairs (with -p or -l: NODEs)')
    .option(
      '-t, --type <type>',
      'value type: s string, i signed, u unsigned, x hex; size prefix hh or b (1 byte), h (2 bytes), l (4 bytes); no prefix: 4 bytes when the length is a multiple of 4, else 1',
    )
    .option('-p, --properties', "list each NODE's property names")
    .option('-l, --list', "list each NODE's sub-node names")
    .option('-d, --default <value>', 'print VALUE when a node or property is missing')
    .addHelpText(
      'after',
      `
Without -t, a value made of printable NUL-terminated strings prints as those strings (space
separated), else as signed decimal 32-bit cells when its length is a multiple of 4, else as
decimal bytes. An empty value prints an empty line.

Examples:
  kho fdt get board.dtb / compatible                # one line per NODE PROP pair
  kho fdt get -t x board.dtb /memory reg            # hex cells, e.g. 0 40000000 0 80000000
  kho fdt get -t hhx kho/in/fdt / preserved-memory-map  # bytes in hex
  kho fdt get -p board.dtb /chosen                  # property names
  kho fdt get -l board.dtb /                        # sub-node names
  kho fdt get -d none board.dtb /chosen bootargs    # 'none' when missing`,
    )
    .action((file: string, items: string[], opts: FdtGetOptions) => act(() => runFdtGet(file, items, opts)));

  fdt
    .command('check')
    .description("list every finding of each blob (libfdt's verdict as errors, dtc's as warnings)")
    .argument('<files...>', 'DTB files')
    .option('--json', 'a JSON array: { file, valid, errors, warnings, findings[] } per file')
    .addHelpText(
      'after',
      `
Exit status: 0 when no file has an error, 1 otherwise.

Examples:
  kho fdt check board.dtb
  kho fdt check /boot/dtbs/**/*.dtb --json > findings.json`,
    )
    .action((files: string[], opts: { json?: boolean }) => act(() => runFdtCheck(files, opts)));
}
