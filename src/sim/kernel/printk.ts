/**
 * The simulated kernel log: printk records with levels and monotonic timestamps, rendered as `dmesg`
 * prints them.
 *
 * Contract:
 * - `SimClock` is a monotonic nanosecond clock that only moves forward: `advance(ns)`, or
 *   `enterStage(stage)` which jumps to the nominal time of a boot stage if that is later than now.
 *   Before timekeeping starts (`early`), a real kernel stamps everything `0.000000`; so does this one.
 * - `KernelLog.log(level, text)` appends one record per line of `text` at the clock's current time
 *   (plus `stepNs` per record once the clock is running, so records stay strictly ordered).
 * - `formatTimestamp(ns)` gives the kernel's `[%5lu.%06lu]` prefix (`[    0.000000]`), and
 *   `dmesg()` the whole text, one `[ts] message` line per record, oldest first. The buffer keeps at most
 *   `capacityBytes` of message text (the kernel's 256 KiB default), dropping the oldest records.
 */
import { KhoError } from '../../errors.ts';

export const LOG_LEVELS = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Nominal boot-stage times (ns), shaped after the 7.3.4 vectors' dmesg. */
export const BOOT_STAGES = {
  /** setup_arch, early params, memblock: timestamps are still 0. */
  early: 0n,
  /** timekeeping is up (tsc calibrated). */
  timekeeping: 6_000_000n,
  /** `Kernel command line:`, `Unknown kernel command line parameters`. */
  cmdline: 150_000_000n,
  /** mm_core_init: kho_memory_init, memblock_free_all, `Memory: ...`. */
  mm_init: 400_000_000n,
  /** early_initcall .. fs_initcall (kho_init). */
  initcalls: 1_000_000_000n,
  /** late_initcall (reserve_mem_init, test_kho). */
  late_initcalls: 1_400_000_000n,
  /** init runs. */
  userspace: 2_000_000_000n,
} as const;
export type BootStage = keyof typeof BOOT_STAGES;

export class SimClock {
  private ns = 0n;
  private running = false;

  get nowNs(): bigint {
    return this.ns;
  }

  /** Whether timekeeping has started (before, every record is stamped 0). */
  get isRunning(): boolean {
    return this.running;
  }

  advance(ns: bigint): void {
    if (ns < 0n) throw new KhoError('SIM_BAD_ARGUMENT', `clock cannot go back (${ns} ns)`);
    this.ns += ns;
    if (this.ns > 0n) this.running = true;
  }

  enterStage(stage: BootStage): void {
    const t = BOOT_STAGES[stage];
    if (t === undefined) throw new KhoError('SIM_BAD_ARGUMENT', `unknown boot stage '${String(stage)}'`);
    if (t > this.ns) this.ns = t;
    if (this.ns > 0n) this.running = true;
  }
}

export interface LogRecord {
  seq: number;
  tsNs: bigint;
  level: LogLevel;
  text: string;
}

/** `[%5lu.%06lu]`: seconds right-aligned in 5 columns, microseconds in 6 digits. */
export function formatTimestamp(ns: bigint): string {
  const us = ns / 1000n;
  const sec = us / 1_000_000n;
  const frac = us % 1_000_000n;
  return `[${sec.toString().padStart(5, ' ')}.${frac.toString().padStart(6, '0')}]`;
}

export interface KernelLogOptions {
  clock?: SimClock;
  /** Bytes of message text kept (default 262144, the kernel's log buffer). */
  capacityBytes?: number;
  /** Time added after each record once the clock runs (default 10 µs). */
  stepNs?: bigint;
}

export class KernelLog {
  readonly clock: SimClock;
  readonly capacityBytes: number;
  private readonly stepNs: bigint;
  private recs: LogRecord[] = [];
  private bytes = 0;
  private seq = 0;

  constructor(opts: KernelLogOptions = {}) {
    this.clock = opts.clock ?? new SimClock();
    this.capacityBytes = opts.capacityBytes ?? 262144;
    this.stepNs = opts.stepNs ?? 10_000n;
  }

  /** Append `text` (each line its own record) at `level`. */
  log(level: LogLevel, text: string): void {
    if (!LOG_LEVELS.includes(level)) throw new KhoError('SIM_BAD_ARGUMENT', `unknown log level '${level}'`);
    const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
    for (const line of lines) {
      this.recs.push({ seq: this.seq++, tsNs: this.clock.nowNs, level, text: line });
      this.bytes += line.length;
      if (this.clock.isRunning) this.clock.advance(this.stepNs);
    }
    while (this.bytes > this.capacityBytes && this.recs.length > 0) {
      const old = this.recs.shift()!;
      this.bytes -= old.text.length;
    }
  }

  /** Append result lines from the parsers and allocators (`{ level, text }`), in order. */
  emit(...lines: readonly { level: LogLevel; text: string }[]): void {
    for (const l of lines) this.log(l.level, l.text);
  }

  emerg(t: string): void {
    this.log('emerg', t);
  }
  err(t: string): void {
    this.log('err', t);
  }
  warn(t: string): void {
    this.log('warning', t);
  }
  notice(t: string): void {
    this.log('notice', t);
  }
  info(t: string): void {
    this.log('info', t);
  }
  debug(t: string): void {
    this.log('debug', t);
  }

  get records(): readonly LogRecord[] {
    return this.recs;
  }

  /** Messages only, oldest first. */
  messages(): string[] {
    return this.recs.map((r) => r.text);
  }

  /**
   * The log as `dmesg` prints it. `maxLevel` keeps records at that level or more severe;
   * `raw` prefixes each line with `<N>` (the syslog priority), as `dmesg -r` does.
   */
  dmesg(opts: { maxLevel?: LogLevel; raw?: boolean } = {}): string {
    const max = LOG_LEVELS.indexOf(opts.maxLevel ?? 'debug');
    let out = '';
    for (const r of this.recs) {
      const lvl = LOG_LEVELS.indexOf(r.level);
      if (lvl > max) continue;
      out += `${opts.raw ? `<${lvl}>` : ''}${formatTimestamp(r.tsNs)} ${r.text}\n`;
    }
    return out;
  }
}
