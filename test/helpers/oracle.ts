/**
 * Oracles for the tests: libfdt (pylibfdt under Debian's /usr/bin/python3) and dtc/fdtdump/fdtget;
 * Debian's Chromium for the browser test of `kho map --html`.
 *
 * `oracle(t, 'dtc')` returns true when the tool is present. When it is missing: under CI=true the test
 * fails (an oracle test never silently skips in CI); elsewhere it is skipped with a reason.
 * scripts/setup-oracles.sh (run by `npm test`) installs them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export const PYTHON = '/usr/bin/python3';
type OracleName = 'dtc' | 'fdtdump' | 'fdtget' | 'pylibfdt' | 'cc' | 'libfdt-dev' | 'chromium';
/** Debian's Chromium (the `kho map` HTML test drives it with playwright-core). */
export const CHROMIUM = '/usr/bin/chromium';

const cache = new Map<OracleName, boolean>();
function probe(name: OracleName): boolean {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let ok = false;
  try {
    if (name === 'pylibfdt')
      ok = spawnSync(PYTHON, ['-c', 'import libfdt'], { stdio: 'ignore' }).status === 0;
    else if (name === 'libfdt-dev') ok = existsSync('/usr/include/libfdt.h');
    else if (name === 'chromium')
      ok = existsSync(CHROMIUM) && spawnSync(CHROMIUM, ['--version'], { stdio: 'ignore' }).status === 0;
    else if (name === 'dtc') ok = spawnSync('dtc', ['--version'], { stdio: 'ignore' }).status === 0;
    else ok = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
  } catch {
    ok = false;
  }
  cache.set(name, ok);
  return ok;
}

/** True if the oracle is usable; otherwise fails the test under CI=true, or skips it. */
export function oracle(t: TestContext, ...names: OracleName[]): boolean {
  for (const name of names) {
    if (probe(name)) continue;
    const why = `oracle ${name} is not installed (run scripts/setup-oracles.sh)`;
    if (process.env.CI === 'true') throw new Error(`${why}; under CI=true oracle tests must not skip`);
    t.skip(why);
    return false;
  }
  return true;
}

/** Run a Python program under Debian's python3 with JSON on stdin; returns its stdout as a Buffer. */
export function runPython(program: string, input: unknown): Buffer {
  return execFileSync(PYTHON, ['-c', program], {
    input: JSON.stringify(input),
    maxBuffer: 1 << 30,
  });
}

/** A scratch directory removed after `fn`. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'kho-test-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Compile DTS sources with dtc (`dtc -q -I dts -O dtb`) in one shell call; returns the blobs. */
export function dtcCompile(sources: string[]): Uint8Array[] {
  return withTempDir((dir) => {
    sources.forEach((s, i) => writeFileSync(join(dir, `${i}.dts`), s));
    execFileSync('sh', [
      '-c',
      `for f in ${dir}/*.dts; do dtc -q -I dts -O dtb -o "\${f%.dts}.dtb" "$f" || exit 1; done`,
    ]);
    return sources.map((_, i) => new Uint8Array(readFileSync(join(dir, `${i}.dtb`))));
  });
}
