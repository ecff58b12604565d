/**
 * The kernel command line as Linux parses it: splitting (with the kernel's quote handling), `memparse`,
 * `kstrtobool`, `kstrtouint`, the early parameters KHO cares about (`kho=`, `kho_scratch=`), the syntax
 * of `reserve_mem=`, and the list of unknown parameters handed to init.
 *
 * Contract: every function here is pure and total: hostile input never throws; failures are results
 * carrying the exact line the kernel logs. Values are `bigint` where the kernel uses u64 and wrap modulo
 * 2^64 as C does. Behaviour follows (read for facts, not copied):
 * - `lib/cmdline.c` `next_arg`/`memparse`, `lib/kstrtox.c` (`_parse_integer_fixup_radix`,
 *   `_parse_integer_limit`, `kstrtoull`), `lib/kstrtox.c` `kstrtobool`;
 * - `init/main.c` `do_early_param` (`Malformed early option '%s'`), `obsolete_checksetup`,
 *   `unknown_bootoption` and `print_unknown_bootoptions`
 *   (`Unknown kernel command line parameters "%s", will be passed to user space.`: argv ones, then
 *   environment ones; a repeated `name=` replaces the earlier one; `HOME=`/`TERM=` replace the defaults
 *   and are therefore not listed; names containing `.` are module parameters and ignored);
 * - `kernel/liveupdate/kexec_handover.c` `kho_parse_scratch_size` (spec §3.2);
 * - `mm/memblock.c` `reserve_mem()` (syntax part; the table and the allocation are in `memblock.ts`).
 */
import type { LogLevel } from './printk.ts';

export interface LogLine {
  level: LogLevel;
  text: string;
}

/** One parameter as `next_arg` splits it: `value` is null when there was no `=`. */
export interface CmdlineParam {
  name: string;
  value: string | null;
}

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/** The kernel's `isspace()` (lib/ctype.c: space, \t \n \v \f \r, and 0xa0). */
export function isKernelSpace(ch: string): boolean {
  return (
    ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r' || ch === '\u00a0'
  );
}

function skipSpaces(s: string, i: number): number {
  while (i < s.length && isKernelSpace(s[i])) i++;
  return i;
}

/**
 * Split a command line as `parse_args()` does: parameters up to a bare `--`, and the text after it
 * (which the kernel hands to init as arguments), or null if there was no `--`.
 */
export function splitCommandLine(cmdline: string): { params: CmdlineParam[]; afterDashes: string | null } {
  const s = cmdline.replace(/\0[\s\S]*$/, ''); // a C string ends at its first NUL
  const params: CmdlineParam[] = [];
  let i = skipSpaces(s, 0);
  while (i < s.length) {
    let start = i;
    let inQuote = false;
    let quoted = false;
    if (s[start] === '"') {
      start++;
      inQuote = true;
      quoted = true;
    }
    let j = start;
    let equals = -1;
    for (; j < s.length; j++) {
      if (isKernelSpace(s[j]) && !inQuote) break;
      // like the kernel, an '=' at the very first position does not count as a separator
      if (equals < 0 && s[j] === '=' && j > start) equals = j;
      if (s[j] === '"') inQuote = !inQuote;
    }
    let token = s.slice(start, j);
    let name: string;
    let value: string | null;
    if (equals < 0) {
      if (quoted && token.endsWith('"')) token = token.slice(0, -1);
      name = token;
      value = null;
    } else {
      name = s.slice(start, equals);
      value = s.slice(equals + 1, j);
      if (value.startsWith('"')) {
        value = value.slice(1);
        if (value.endsWith('"')) value = value.slice(0, -1);
      } else if (quoted && value.endsWith('"')) value = value.slice(0, -1);
    }
    i = skipSpaces(s, j < s.length ? j + 1 : j);
    if (value === null && name === '--') return { params, afterDashes: s.slice(i) };
    params.push({ name, value });
  }
  return { params, afterDashes: null };
}

/** Init arguments after `--`, split the way `set_init_arg` receives them. */
export function initArgsAfterDashes(afterDashes: string | null): string[] {
  if (afterDashes === null) return [];
  return splitCommandLine(afterDashes).params.map((p) =>
    p.value === null ? p.name : `${p.name}=${p.value}`,
  );
}

/** `parameq`: names compare equal with `-` and `_` interchangeable. */
export function paramEq(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] === '-' ? '_' : a[i];
    const y = b[i] === '-' ? '_' : b[i];
    if (x !== y) return false;
  }
  return true;
}

function digitValue(ch: string | undefined): number {
  if (ch === undefined) return 99;
  const c = ch.charCodeAt(0);
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 97 + 10;
  return 99;
}

/** `_parse_integer_fixup_radix`: returns [base, index after any 0x prefix]. */
function fixupRadix(s: string, i: number, base: number): [number, number] {
  let b = base;
  if (b === 0) {
    if (s[i] === '0') {
      b = s[i + 1]?.toLowerCase() === 'x' && digitValue(s[i + 2]) < 16 ? 16 : 8;
    } else b = 10;
  }
  if (b === 16 && s[i] === '0' && s[i + 1]?.toLowerCase() === 'x') return [b, i + 2];
  return [b, i];
}

/** `_parse_integer_limit`: digits of `base` from `i`; value wraps modulo 2^64. */
function parseDigits(s: string, i: number, base: number): { value: bigint; end: number; overflow: boolean } {
  let value = 0n;
  let overflow = false;
  const b = BigInt(base);
  let j = i;
  for (; j < s.length; j++) {
    const d = digitValue(s[j]);
    if (d >= base) break;
    const next = value * b + BigInt(d);
    if (next > 0xffffffffffffffffn) overflow = true;
    value = U64(next);
  }
  return { value, end: j, overflow };
}

/**
 * `memparse(s)`: a number in C notation (0x hex, leading-0 octal, else decimal) with an optional
 * K/M/G/T/P/E suffix (either case), wrapping modulo 2^64. `end` is the index after what was consumed;
 * `end === start` means nothing was.
 */
export function memparse(s: string, start = 0): { value: bigint; end: number } {
  const [base, i] = fixupRadix(s, start, 0);
  const r = parseDigits(s, i, base);
  if (r.end === i) return { value: 0n, end: start }; // simple_strtoull consumed nothing
  let value = r.value;
  let end = r.end;
  const shifts: Record<string, bigint> = { k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n };
  const sh = shifts[s[end]?.toLowerCase() ?? ''];
  if (sh !== undefined) {
    value = U64(value << sh);
    end++;
  }
  return { value, end };
}

/** `kstrtoull(s, base)`: whole string, optional leading `+`, optional single trailing newline. */
export function kstrtoull(
  s: string,
  base: number,
): { ok: true; value: bigint } | { ok: false; errno: string } {
  let i = 0;
  if (s[0] === '+') i++;
  const [b, j] = fixupRadix(s, i, base);
  const r = parseDigits(s, j, b);
  if (r.overflow) return { ok: false, errno: 'ERANGE' };
  if (r.end === j) return { ok: false, errno: 'EINVAL' };
  let end = r.end;
  if (s[end] === '\n') end++;
  if (end !== s.length) return { ok: false, errno: 'EINVAL' };
  return { ok: true, value: r.value };
}

/** `kstrtouint(s, base)`: as `kstrtoull`, and the value must fit in 32 bits. */
export function kstrtouint(
  s: string,
  base: number,
): { ok: true; value: number } | { ok: false; errno: string } {
  const r = kstrtoull(s, base);
  if (!r.ok) return r;
  if (r.value > 0xffffffffn) return { ok: false, errno: 'ERANGE' };
  return { ok: true, value: Number(r.value) };
}

/** `kstrtobool`: looks only at the first one or two characters; null when not a boolean. */
export function kstrtobool(s: string | null): boolean | null {
  if (s === null) return null;
  switch (s[0]) {
    case 'y':
    case 'Y':
    case 't':
    case 'T':
    case '1':
      return true;
    case 'n':
    case 'N':
    case 'f':
    case 'F':
    case '0':
      return false;
    case 'o':
    case 'O':
      if (s[1] === 'n' || s[1] === 'N') return true;
      if (s[1] === 'f' || s[1] === 'F') return false;
      return null;
    default:
      return null;
  }
}

/** `kho_scratch=` state: `scale` (percent, 0 = explicit sizes) and the explicit sizes. */
export interface KhoScratchConfig {
  scale: number;
  lowmem: bigint;
  global: bigint;
  pernode: bigint;
}

export const DEFAULT_SCRATCH_SCALE = 200;

export function defaultScratchConfig(): KhoScratchConfig {
  return { scale: DEFAULT_SCRATCH_SCALE, lowmem: 0n, global: 0n, pernode: 0n };
}

export type KhoScratchParse =
  | { ok: true; kind: 'scale'; scale: number; log: LogLine }
  | { ok: true; kind: 'sizes'; lowmem: bigint; global: bigint; pernode: bigint; log: LogLine }
  | { ok: false; reason: string };

/** C's `%d` of an unsigned int. */
const asInt32 = (v: number): number => v | 0;

/**
 * `kho_parse_scratch_size()`: `N%` (at most 11 characters, kstrtouint base 10 on the part before
 * `%`), or exactly three memparse values `L,G,P` with nothing after and a non-zero (64-bit wrapping) sum.
 */
export function parseKhoScratch(value: string | null): KhoScratchParse {
  if (value === null) return { ok: false, reason: 'no value' };
  const len = value.length;
  if (len === 0) return { ok: false, reason: 'empty value' };
  if (value[len - 1] === '%') {
    if (len > 11) return { ok: false, reason: 'scale longer than 11 characters' };
    const r = kstrtouint(value.slice(0, len - 1), 10);
    if (!r.ok) return { ok: false, reason: `scale is not an unsigned integer (${r.errno})` };
    return {
      ok: true,
      kind: 'scale',
      scale: r.value,
      log: { level: 'notice', text: `KHO: scratch scale is ${asInt32(r.value)}%` },
    };
  }
  const sizes: bigint[] = [];
  let p = 0;
  let total = 0n;
  for (let i = 0; i < 3; i++) {
    if (i > 0) {
      if (value[p] !== ',') return { ok: false, reason: `expected ',' at ${p}` };
      p++;
    }
    const r = memparse(value, p);
    if (r.end === p) return { ok: false, reason: `expected a size at ${p}` };
    sizes.push(r.value);
    total = U64(total + r.value);
    p = r.end;
  }
  if (total === 0n) return { ok: false, reason: 'all sizes are zero' };
  if (p !== len) return { ok: false, reason: `trailing characters at ${p}` };
  const [lowmem, global, pernode] = sizes;
  return {
    ok: true,
    kind: 'sizes',
    lowmem,
    global,
    pernode,
    log: {
      level: 'notice',
      text: `KHO: scratch areas: lowmem: ${lowmem >> 20n}MiB global: ${global >> 20n}MiB pernode: ${BigInt.asIntN(64, pernode >> 20n)}MiB`,
    },
  };
}

/** reserve_mem table limits (mm/memblock.c). */
export const RESERVE_MEM_MAX_ENTRIES = 8;
export const RESERVE_MEM_NAME_SIZE = 16;
/** SMP_CACHE_BYTES (L1_CACHE_BYTES) on x86_64 and arm64. */
export const SMP_CACHE_BYTES = 64n;

export const RESERVE_MEM_MALFORMED = 'reserve_mem: empty or malformed parameter';

export type ReserveMemParse =
  | { ok: true; size: bigint; align: bigint; name: string }
  | { ok: false; log: LogLine };

/**
 * The syntax checks of `reserve_mem=size:align:name`: size is a non-zero memparse value, then `:`,
 * align a memparse value (may be empty: 0) raised to at least SMP_CACHE_BYTES, then `:`, then a name of
 * 1..15 bytes that is not all spaces. (The table-full and duplicate-name checks need the table: see
 * `ReserveMemTable` in memblock.ts, which also performs the allocation.)
 */
export function parseReserveMem(value: string | null): ReserveMemParse {
  const malformed = { ok: false as const, log: { level: 'err' as const, text: RESERVE_MEM_MALFORMED } };
  if (value === null) return malformed;
  const s = memparse(value, 0);
  if (s.value === 0n || s.end === 0) return malformed;
  if (value[s.end] !== ':') return malformed;
  const a = memparse(value, s.end + 1);
  if (value[a.end] !== ':') return malformed;
  const align = a.value < SMP_CACHE_BYTES ? SMP_CACHE_BYTES : a.value;
  const name = value.slice(a.end + 1);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0 || bytes >= RESERVE_MEM_NAME_SIZE) return malformed;
  if ([...name].every(isKernelSpace)) return malformed;
  return { ok: true, size: s.value, align, name };
}

/**
 * How the kernel knows a parameter:
 * - `early`: `early_param("name", ...)`: handled for `name` and `name=...`;
 * - `setup`: `__setup("str", ...)`: `obsolete_checksetup` matches `str` as a prefix of `name[=value]`
 *   and passes the rest to the handler. For `str` ending in `=` (`console=`) any value is taken (and a
 *   bare `console` is not); handlers of flag-like strings (`ro`, `rootwait`) refuse any rest, so
 *   those match exactly;
 * - `core`: a built-in `kernel_param` (`core_param`): matched by exact name.
 */
export interface KnownParam {
  kind: 'early' | 'setup' | 'core';
  str: string;
}

/** A representative default set of what a Linux 7.3 x86_64/arm64 kernel knows; extend as needed. */
export const DEFAULT_KNOWN_PARAMS: readonly KnownParam[] = [
  ...[
    'kho',
    'kho_scratch',
    'liveupdate',
    'earlycon',
    'earlyprintk',
    'loglevel',
    'debug',
    'quiet',
    'mem',
    'memmap',
    'memblock',
    'nokaslr',
    'cma',
    'crashkernel',
    'numa',
    'mitigations',
    'acpi',
    'iommu',
    'nosmp',
    'maxcpus',
    'nr_cpus',
    'initrd',
    'nopti',
    'noexec',
    'hugepagesz',
    'movable_node',
  ].map((str) => ({ kind: 'early' as const, str })),
  ...[
    'console=',
    'reserve_mem=',
    'root=',
    'rootfstype=',
    'rootflags=',
    'rootwait',
    'rootdelay=',
    'ro',
    'rw',
    'init=',
    'rdinit=',
    'selinux=',
    'apparmor=',
    'security=',
    'lsm=',
    'transparent_hugepage=',
    'hugepages=',
    'default_hugepagesz=',
    'noapic',
    'nolapic',
    'swiotlb=',
    'audit=',
    'nowatchdog',
    'nmi_watchdog=',
    'sysrq_always_enabled',
    'norandmaps',
    'oops=',
    'kasan=',
    'slub_debug',
    'page_owner=',
    'elevator=',
    'net.ifnames=',
  ].map((str) => ({ kind: 'setup' as const, str })),
  ...['panic', 'panic_on_warn', 'pause_on_oops', 'initcall_debug', 'initcall_blacklist'].map((str) => ({
    kind: 'core' as const,
    str,
  })),
];

function prefixEq(line: string, str: string): boolean {
  return line.length >= str.length && paramEq(line.slice(0, str.length), str);
}

/** Whether the kernel would consume `p` (rather than pass it to init). */
export function isKnownParam(p: CmdlineParam, known: readonly KnownParam[] = DEFAULT_KNOWN_PARAMS): boolean {
  const line = p.value === null ? p.name : `${p.name}=${p.value}`;
  for (const k of known) {
    if (k.kind === 'core' && paramEq(p.name, k.str)) return true;
    if (k.kind === 'early' && prefixEq(line, k.str)) {
      const next = line[k.str.length];
      if (next === undefined || next === '=') return true;
    }
    if (k.kind === 'setup' && (k.str.endsWith('=') ? prefixEq(line, k.str) : paramEq(line, k.str)))
      return true;
  }
  return false;
}

/** MAX_INIT_ARGS / MAX_INIT_ENVS (init/main.c). */
export const MAX_INIT_ARGS = 32;
export const MAX_INIT_ENVS = 32;

export interface UnknownParams {
  /** Parameters without `=`: init's argv, in order. */
  argv: string[];
  /** Parameters with `=`: init's environment, in order, later ones replacing earlier ones by name. */
  envp: string[];
  /** The kernel's log line, or null when it prints none. */
  line: LogLine | null;
  /**
   * Set when there were too many for init: the kernel prints no unknown-parameter line and later
   * panics with this message (`Too many boot env vars at \`x=1'`).
   */
  panic?: string;
}

/** `unknown_bootoption` over all parameters, then `print_unknown_bootoptions`. */
export function unknownParams(
  params: readonly CmdlineParam[],
  known: readonly KnownParam[] = DEFAULT_KNOWN_PARAMS,
): UnknownParams {
  const argv: string[] = [];
  const envp: string[] = ['HOME=/', 'TERM=linux'];
  const envIndex = new Map<string, number>([
    ['HOME', 0],
    ['TERM', 1],
  ]);
  let panic: string | undefined;
  for (const p of params) {
    if (isKnownParam(p, known)) continue;
    if (p.name.includes('.')) continue; // an unused module parameter
    if (panic !== undefined) continue; // panic_later: the rest is ignored
    if (p.value !== null) {
      const entry = `${p.name}=${p.value}`;
      const dup = envIndex.get(p.name);
      // the kernel walks envp_init up to the duplicate (or the end) and gives up at slot MAX_INIT_ENVS
      if ((dup ?? envp.length - 1) >= MAX_INIT_ENVS) panic = `Too many boot env vars at \`${entry}'`;
      if (dup !== undefined) envp[dup] = entry;
      else {
        envIndex.set(p.name, envp.length);
        envp.push(entry);
      }
    } else {
      if (argv.length >= MAX_INIT_ARGS) panic = `Too many boot init vars at \`${p.name}'`;
      argv.push(p.name);
    }
  }
  const env = envp.slice(2);
  const all = [...argv, ...env];
  return {
    argv,
    envp: env,
    line:
      all.length === 0 || panic !== undefined
        ? null
        : {
            level: 'notice',
            text: `Unknown kernel command line parameters "${all.join(' ')}", will be passed to user space.`,
          },
    ...(panic !== undefined ? { panic } : {}),
  };
}

export interface ParsedCommandLine {
  raw: string;
  params: CmdlineParam[];
  /** Arguments after `--`, for init. */
  initArgs: string[];
  /** `kho=` result: undefined when absent or malformed (the Kconfig default applies). */
  kho: boolean | undefined;
  /** Final `kho_scratch=` state after every occurrence (defaults: scale 200 %). */
  khoScratch: KhoScratchConfig;
  /** Values of every `reserve_mem=` parameter, in order (run them through `ReserveMemTable`). */
  reserveMem: string[];
  /** Lines logged while parsing early parameters (`parse_early_param`), in order. */
  earlyLog: LogLine[];
  unknown: UnknownParams;
}

/** The command line as the kernel keeps it: at most `size - 1` bytes (UTF-8), cut like strscpy. */
export function truncateCommandLine(cmdline: string, size: number = COMMAND_LINE_SIZE): string {
  const bytes = Buffer.from(cmdline, 'utf8');
  if (bytes.length <= size - 1) return cmdline;
  return bytes.subarray(0, Math.max(0, size - 1)).toString('utf8'); // a cut character decodes as U+FFFD
}

/**
 * Parse a whole command line (truncated to COMMAND_LINE_SIZE - 1 bytes first): early parameters in order (each `kho`/`kho_scratch` occurrence applied in
 * turn, later ones winning, failures logged as `Malformed early option '<name as written>'`), the
 * `reserve_mem=` values, and the unknown parameters.
 */
export function parseKernelCommandLine(
  cmdline: string,
  known: readonly KnownParam[] = DEFAULT_KNOWN_PARAMS,
  commandLineSize: number = COMMAND_LINE_SIZE,
): ParsedCommandLine {
  // the boot protocol copies at most COMMAND_LINE_SIZE - 1 bytes into boot_command_line
  const { params, afterDashes } = splitCommandLine(truncateCommandLine(cmdline, commandLineSize));
  const earlyLog: LogLine[] = [];
  let kho: boolean | undefined;
  const khoScratch = defaultScratchConfig();
  const reserveMem: string[] = [];
  const malformed = (name: string): LogLine => ({
    level: 'warning',
    text: `Malformed early option '${name}'`,
  });
  for (const p of params) {
    if (paramEq(p.name, 'kho')) {
      const b = kstrtobool(p.value);
      if (b === null) earlyLog.push(malformed(p.name));
      else kho = b;
    } else if (paramEq(p.name, 'kho_scratch')) {
      const r = parseKhoScratch(p.value);
      if (!r.ok) earlyLog.push(malformed(p.name));
      else {
        earlyLog.push(r.log);
        if (r.kind === 'scale') khoScratch.scale = r.scale;
        else Object.assign(khoScratch, { scale: 0, lowmem: r.lowmem, global: r.global, pernode: r.pernode });
      }
    }
    // __setup("reserve_mem=") needs the '=': a bare `reserve_mem` is an unknown parameter
    if (p.value !== null && paramEq(p.name, 'reserve_mem')) reserveMem.push(p.value);
  }
  return {
    raw: cmdline,
    params,
    initArgs: initArgsAfterDashes(afterDashes),
    kho,
    khoScratch,
    reserveMem,
    earlyLog,
    unknown: unknownParams(params, known),
  };
}

export const KERNEL_CMDLINE_PREFIX = 'Kernel command line: ';
/** CONFIG_CMDLINE_LOG_WRAP_IDEAL_LEN of the vectors' kernel. */
export const DEFAULT_CMDLINE_LOG_WRAP_IDEAL_LEN = 1021;
/** COMMAND_LINE_SIZE on x86_64 and arm64. */
export const COMMAND_LINE_SIZE = 2048;

/**
 * `print_kernel_cmdline()` (init/main.c, Linux 6.19+): `Kernel command line: ...`, wrapped at spaces
 * (ignoring quotes) so that each line, prefix and ` \` continuation included, stays within the ideal
 * length when possible; 0, or an ideal length beyond COMMAND_LINE_SIZE, disables wrapping.
 */
export function kernelCommandLineLines(
  cmdline: string,
  idealLen = DEFAULT_CMDLINE_LOG_WRAP_IDEAL_LEN,
  commandLineSize = COMMAND_LINE_SIZE,
): LogLine[] {
  const cont = ' \\';
  const prefixLen = KERNEL_CMDLINE_PREFIX.length;
  const ideal = Math.max(idealLen, prefixLen + cont.length);
  const idealCmd = ideal - prefixLen;
  const split = idealCmd - cont.length;
  const line = (t: string): LogLine => ({ level: 'notice', text: `${KERNEL_CMDLINE_PREFIX}${t}` });
  if (idealLen === 0 || idealCmd >= commandLineSize - 1) return [line(cmdline)];
  const out: LogLine[] = [];
  let s = cmdline;
  while (s.length > idealCmd) {
    // the last space that keeps the line short enough, else the first space at all
    let prev = -1;
    let cutoff = 0;
    for (;;) {
      cutoff = s.indexOf(' ', cutoff + 1);
      if (cutoff < 0 || cutoff > split) break;
      prev = cutoff;
    }
    if (prev >= 0) cutoff = prev;
    else if (cutoff < 0) break;
    let first = cutoff;
    while (first > 0 && s[first - 1] === ' ') first--;
    while (s[cutoff] === ' ') cutoff++;
    if (cutoff === s.length) break;
    if (first > 0) out.push({ level: 'notice', text: `${KERNEL_CMDLINE_PREFIX}${s.slice(0, first)}${cont}` });
    s = s.slice(cutoff);
  }
  if (s.length) out.push(line(s));
  return out;
}

/** The x86 `Command line: ...` line (setup_arch) and the generic `Kernel command line: ...` lines. */
export function commandLineLogLines(
  cmdline: string,
  idealLen?: number,
): { arch: LogLine; kernel: LogLine[] } {
  return {
    arch: { level: 'notice', text: `Command line: ${cmdline}` },
    kernel: kernelCommandLineLines(cmdline, idealLen),
  };
}
