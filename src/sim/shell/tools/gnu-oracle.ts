/**
 * Test support (not part of the shell): the real GNU tools as oracles, and a way to run one of our tools
 * on the same input.
 *
 * Contract: `gnu(t, ...tools)` is true when every tool is on PATH; otherwise the test fails under CI=true
 * (an oracle test never silently skips in CI) or is skipped. `runGnu` runs a real tool with LC_ALL=C and
 * TZ=UTC (the locale and zone our tools implement) and returns its stdout, stderr and status.
 * `runTool` calls one of our registered tools directly with an argv (no shell quoting involved).
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import type { Shell } from '../engine.ts';
import { toBytes } from '../engine.ts';

export interface Ran {
  stdout: string;
  stderr: string;
  status: number;
}

const cache = new Map<string, boolean>();
export function gnu(t: TestContext, ...tools: string[]): boolean {
  for (const tool of tools) {
    let ok = cache.get(tool);
    if (ok === undefined) {
      ok = spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
      cache.set(tool, ok);
    }
    if (ok) continue;
    const why = `oracle ${tool} is not installed`;
    if (process.env.CI === 'true') throw new Error(`${why}; under CI=true oracle tests must not skip`);
    t.skip(why);
    return false;
  }
  return true;
}

export function runGnu(
  tool: string,
  args: string[],
  opts: { input?: Uint8Array | string; cwd?: string } = {},
): Ran {
  const r = spawnSync(tool, args, {
    input: opts.input === undefined ? Buffer.alloc(0) : Buffer.from(toBytes(opts.input)),
    cwd: opts.cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', TZ: 'UTC' },
    maxBuffer: 1 << 26,
  });
  // A tool that exits before reading its input (grep -m 0) makes the write fail with EPIPE: not an error.
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'EPIPE') throw r.error;
  return {
    stdout: r.stdout.toString('latin1'),
    stderr: r.stderr.toString('latin1'),
    status: r.status ?? 128,
  };
}

export async function runTool(shell: Shell, argv: string[], stdin: Uint8Array | string = ''): Promise<Ran> {
  const info = shell.command(argv[0]);
  if (!info) throw new Error(`no tool ${argv[0]}`);
  const r = await info.handler({
    argv,
    stdin: toBytes(stdin),
    env: Object.fromEntries(shell.vars),
    vfs: shell.vfs,
    shell,
    isTTY: false,
  });
  return {
    stdout: Buffer.from(toBytes(r.stdout)).toString('latin1'),
    stderr: Buffer.from(toBytes(r.stderr)).toString('latin1'),
    status: r.status ?? 0,
  };
}
