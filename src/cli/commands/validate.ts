/**
 * `kho validate FDT|DIR [--memory IMAGE] [--profile P] [--json]`: every finding of a handover (root FDT,
 * sub-blobs, preserved-memory map when an image is given), each with a code, a path and a severity.
 * Exit status: 0 valid (no finding of severity `error`), 1 invalid or unreadable, 2 usage.
 */
import type { Command } from 'commander';
import { PROFILE_NAMES } from '../../abi/profile.ts';
import { type Finding, findingFromError, KhoError } from '../../errors.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, reportError, toJson } from '../common.ts';
import { type InspectOptions, type Io, isUsageError, loadForCli, stdio } from './inspect.ts';
import { findingLine } from './inspect-format.ts';

export interface ValidateResult {
  path: string;
  valid: boolean;
  errors: number;
  warnings: number;
  findings: Finding[];
}

/** The result for `path` from its findings: valid when none has severity `error`. */
export function validationOf(path: string, findings: Finding[]): ValidateResult {
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.filter((f) => f.severity === 'warning').length;
  return { path, valid: errors === 0, errors, warnings, findings };
}

/** `kho validate`'s output: JSON, or one line a finding and a summary line. */
export function formatValidation(res: ValidateResult, json: boolean): string {
  if (json) return `${toJson(res)}\n`;
  const { path, errors, warnings, findings } = res;
  return `${findings.map((f) => `${path}: ${findingLine(f)}\n`).join('')}${path}: ${res.valid ? 'valid' : 'INVALID'} (${errors} errors, ${warnings} warnings, ${findings.length - errors - warnings} notes)\n`;
}

export function runValidate(pathArg: string | undefined, opts: InspectOptions, io: Io = stdio): number {
  const path = pathArg ?? (opts.fdtAt !== undefined ? `phys:${opts.fdtAt}` : '(none)');
  let findings: Finding[];
  try {
    findings = loadForCli(pathArg, opts).findings;
  } catch (e) {
    if (isUsageError(e)) {
      reportError(path, e);
      return EXIT_USAGE;
    }
    if (!(e instanceof KhoError)) {
      reportError(path, e);
      return EXIT_INVALID;
    }
    findings = [findingFromError(e)];
  }
  const res = validationOf(path, findings);
  io.out(formatValidation(res, opts.json === true));
  return res.valid ? EXIT_OK : EXIT_INVALID;
}

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check a KHO handover and list every finding; exit 0 valid, 1 invalid')
    .argument('[path]', 'root FDT file, sub-blob file, or debugfs directory (kho/out or kho/in)')
    .option('-m, --memory <image>', 'physical memory: raw file, ELF core, or directory of <16 hex>.bin files')
    .option('--fdt-at <addr>', 'read the root FDT from the memory image at this physical address')
    .option('-p, --profile <profile>', `judge by this ABI profile (${PROFILE_NAMES.join(', ')})`)
    .option('--page-size <bytes>', 'page size of the machine: 4096 (default), 16384 or 65536')
    .option('--json', 'JSON output: { path, valid, errors, warnings, findings[] }')
    .addHelpText(
      'after',
      `
Examples:
  kho validate /sys/kernel/debug/kho/in/fdt
  kho validate /sys/kernel/debug/kho/out --memory /proc/vmcore --json
  kho validate fdt --profile kho-v3      # would a kho-v3 kernel accept it?`,
    )
    .action((path: string | undefined, opts: InspectOptions) => {
      process.exitCode = runValidate(path, opts);
    });
}
