/**
 * `kho demo [--mem 8G] [--numa N] [--kexecs 2] [--json]`: the README's main job (`npm start`).
 *
 * Boots the default simulated machine with the guide's parameters (`kho=on kho_scratch=16M,512M,256M`, a
 * `reserve_mem=4M:4096:trace_buf` region, `console=ttyS0`), writes a known pattern into the reserve_mem
 * region and into memory a user producer (`khoctl`) preserved, then KHO-kexecs as the guide does
 * (`kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline -s` and `kexec -e`), twice by default,
 * and shows what survived: the `KHO: exec from: ... (count N)` and `Revived memory reservation` lines,
 * the debugfs view (`ls -R`, scratch_len / scratch_phys), `kho inspect` of `in/`, and the SHA-256 of the
 * preserved memory before and after. Every step is a command run in the session's shell, printed with
 * its output, so the demo is also a transcript a user can replay in `kho shell`.
 *
 * Checks (each hop): the count is the hop number, the release is the previous kernel's, the reserve_mem
 * region is revived at the same address, both hashes equal the ones taken before the first kexec, the
 * self-test restored (on the hops whose handover carries it: it alternates, as in the real kernel), `kho validate` of `in/fdt` passes, no invariant violation. Exit 0 when all hold,
 * 1 otherwise. `--json` prints only a summary object (docs in the module: `DemoSummary`).
 */
import type { Command } from 'commander';
import { KhoError } from '../../errors.ts';
import { DEFAULT_CMDLINE, DEFAULT_MEM, Session } from '../../sim/session/session.ts';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, color as pc, reportError, toJson } from '../common.ts';
import { type Io, stdio } from './inspect.ts';

export interface DemoOptions {
  mem?: string;
  numa?: string;
  kexecs?: string;
  json?: boolean;
  /** Programmatic only: runs before each `kexec -e` (tests inject faults here to see the demo fail). */
  beforeExec?: (s: Session, hop: number) => void;
}

export interface DemoCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DemoHop {
  hop: number;
  execFrom: string | null;
  count: number | null;
  revived: string[];
  debugfs: string[];
  reserveMemSha256: string;
  reserveMemPhys: string | null;
  khoctlSha256: string;
  selfTest: boolean;
  inFdtValid: boolean;
}

/** The `--json` output. */
export interface DemoSummary {
  ok: boolean;
  machine: { mem: string; numa: number; arch: string; release: string };
  cmdline: string;
  before: { reserveMemSha256: string; reserveMemPhys: string; khoctlSha256: string; khoctlPhys: string };
  hops: DemoHop[];
  checks: DemoCheck[];
  elapsedMs: number;
}

export const DEMO_PATTERN =
  'KHO demo: written before the first kexec; it must read back the same after every KHO kexec';
export const DEMO_REGION = 'trace_buf';
export const DEMO_KHOCTL = 'demo';

const sha = (out: string) => /^([0-9a-f]{64})\s/m.exec(out)?.[1] ?? '';

export async function runDemo(o: DemoOptions, io: Io = stdio): Promise<number> {
  const t0 = performance.now();
  let kexecs = 2;
  if (o.kexecs !== undefined) {
    if (!/^\d{1,2}$/.test(o.kexecs) || Number(o.kexecs) < 1 || Number(o.kexecs) > 20) {
      reportError(undefined, new KhoError('CLI_USAGE', `--kexecs '${o.kexecs}' is not 1 to 20`));
      return EXIT_USAGE;
    }
    kexecs = Number(o.kexecs);
  }
  let numa = 1;
  if (o.numa !== undefined) {
    if (!/^\d{1,2}$/.test(o.numa)) {
      reportError(undefined, new KhoError('CLI_USAGE', `--numa '${o.numa}' is not a node count`));
      return EXIT_USAGE;
    }
    numa = Number(o.numa);
  }
  let s: Session;
  try {
    s = new Session({ mem: o.mem ?? DEFAULT_MEM, numa, cmdline: DEFAULT_CMDLINE });
  } catch (e) {
    reportError(undefined, e);
    return EXIT_USAGE;
  }
  const text = !o.json;
  const say = (t: string) => {
    if (text) io.out(t);
  };
  const section = (t: string) => say(`\n${pc.bold(pc.cyan(`== ${t} ==`))}\n`);
  const checks: DemoCheck[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  /** Run a command, show it and its output, return its output text. */
  const sh = async (line: string, show = true): Promise<{ out: string; status: number }> => {
    const r = await s.run(line);
    const out = Buffer.from(r.output).toString('latin1');
    if (show) say(`${pc.dim('#')} ${pc.bold(line)}\n${out}`);
    if (/\*\*\* INVARIANT VIOLATION/.test(out)) check(`invariants after '${line}'`, false, out.trim());
    return { out, status: r.status };
  };

  const spec = s.machine.spec;
  section('1. Cold boot');
  say(
    `A simulated ${Number(spec.memorySize >> 20n) / 1024}G ${spec.arch} machine (${spec.numaNodes} NUMA node(s)) boots ${s.kernel.release} (ABI profile ${s.kernel.profile.name}).\n`,
  );
  await sh('uname -r');
  await sh('cat /proc/cmdline');
  await sh('dmesg | grep KHO');
  await sh('cat /sys/kernel/debug/kho/out/scratch_len');
  await sh('cat /sys/kernel/debug/kho/out/scratch_phys');
  await sh('ls /sys/kernel/debug/kho/out/sub_fdts');

  section('2. Preserve state');
  say(
    `The reserve_mem region '${DEMO_REGION}' (preserved by memblock's KHO producer) and a region preserved by\nthe user producer 'khoctl' get a known pattern; their SHA-256 is taken before any kexec.\n`,
  );
  const list = await sh('memdump -l');
  const regionPhys = new RegExp(`^${DEMO_REGION} (0x[0-9a-f]+) `, 'm').exec(list.out)?.[1] ?? '';
  await sh(`memwrite ${DEMO_REGION} 0 '${DEMO_PATTERN}'`);
  await sh(`memwrite ${DEMO_REGION} 0x3fff00 'end of ${DEMO_REGION}'`);
  const rmBefore = sha((await sh(`memdump ${DEMO_REGION} | sha256sum`)).out);
  const pres = await sh(`khoctl preserve ${DEMO_KHOCTL} 64K`);
  const khoctlPhys = / at (0x[0-9a-f]+) /.exec(pres.out)?.[1] ?? '';
  await sh(`khoctl write ${DEMO_KHOCTL} 0 '${DEMO_PATTERN}'`);
  const kcBefore = sha((await sh(`khoctl read ${DEMO_KHOCTL} | sha256sum`)).out);
  check(
    'pattern written',
    rmBefore !== '' && kcBefore !== '' && khoctlPhys !== '',
    `reserve_mem ${regionPhys}, khoctl ${khoctlPhys}`,
  );

  const hops: DemoHop[] = [];
  let prevRelease = s.kernel.release;
  for (let hop = 1; hop <= kexecs; hop++) {
    section(`${hop + 2}. KHO kexec #${hop}`);
    const load = await sh('kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline -s');
    o.beforeExec?.(s, hop);
    const exec = await sh('kexec -e');
    check(
      `kexec #${hop} ran`,
      load.status === 0 && exec.status === 0,
      `load ${load.status}, exec ${exec.status}`,
    );
    const log = await sh(`dmesg | grep -e 'KHO:' -e 'Revived memory' -e test_kho -e khoctl`);
    const m = /KHO: exec from: (\S+) \(count (\d+)\)/.exec(log.out);
    const count = m ? Number(m[2]) : null;
    check(
      `kexec #${hop}: metadata names the previous kernel and count ${hop}`,
      m !== null && m[1] === prevRelease && count === hop,
      m ? m[0] : 'no "KHO: exec from" line',
    );
    const revived = [...log.out.matchAll(/Revived memory reservation '([^']+)' from KHO/g)].map((x) => x[1]);
    check(
      `kexec #${hop}: reserve_mem '${DEMO_REGION}' revived`,
      revived.includes(DEMO_REGION),
      revived.join(', ') || 'none',
    );
    const selfTest = /test_kho: KHO restore succeeded/.test(log.out);
    const tree = await sh('ls -R /sys/kernel/debug/kho');
    await sh('cat /sys/kernel/debug/kho/out/scratch_len');
    await sh('cat /sys/kernel/debug/kho/out/scratch_phys');
    const debugfs = (await sh('find /sys/kernel/debug/kho', false)).out.split('\n').filter(Boolean);
    // The self-test preserves on a boot without its sub-tree and restores (without preserving again) on one
    // with it, as Linux 7.3 does (the vectors' three-hops: restored at count 1, absent at count 2).
    const testIn = debugfs.includes('/sys/kernel/debug/kho/in/sub_fdts/kho_test');
    if (testIn)
      check(
        `kexec #${hop}: in-kernel self-test restored its folios`,
        selfTest,
        selfTest ? 'test_kho: KHO restore succeeded' : 'no success line',
      );
    check(
      `kexec #${hop}: debugfs in/ present`,
      tree.out.includes('/sys/kernel/debug/kho/in:'),
      `in/sub_fdts: ${
        debugfs
          .filter((p) => p.startsWith('/sys/kernel/debug/kho/in/sub_fdts/'))
          .map((p) => p.slice('/sys/kernel/debug/kho/in/sub_fdts/'.length))
          .join(', ') || '(none)'
      }`,
    );
    await sh('kho inspect /sys/kernel/debug/kho/in');
    const valid = await sh('kho validate /sys/kernel/debug/kho/in/fdt');
    check(`kexec #${hop}: kho validate in/fdt`, valid.status === 0, valid.out.trim().split('\n').pop() ?? '');
    const list2 = await sh('memdump -l');
    const phys2 = new RegExp(`^${DEMO_REGION} (0x[0-9a-f]+) `, 'm').exec(list2.out)?.[1] ?? null;
    check(
      `kexec #${hop}: '${DEMO_REGION}' at the same physical address`,
      phys2 === regionPhys,
      `${regionPhys} -> ${phys2 ?? 'absent'}`,
    );
    const rm = sha((await sh(`memdump ${DEMO_REGION} | sha256sum`)).out);
    check(
      `kexec #${hop}: '${DEMO_REGION}' contents unchanged (sha256)`,
      rm === rmBefore && rm !== '',
      `${rmBefore.slice(0, 16)}… -> ${rm.slice(0, 16)}…`,
    );
    await sh('khoctl show');
    const kc = sha((await sh(`khoctl read ${DEMO_KHOCTL} | sha256sum`)).out);
    check(
      `kexec #${hop}: khoctl '${DEMO_KHOCTL}' contents unchanged (sha256)`,
      kc === kcBefore && kc !== '',
      `${kcBefore.slice(0, 16)}… -> ${kc.slice(0, 16) || 'absent'}…`,
    );
    hops.push({
      hop,
      execFrom: m ? m[0] : null,
      count,
      revived,
      debugfs,
      reserveMemSha256: rm,
      reserveMemPhys: phys2,
      khoctlSha256: kc,
      selfTest,
      inFdtValid: valid.status === 0,
    });
    prevRelease = s.kernel.release;
  }
  const finalViolations = s.violations();
  check(
    'no invariant violation',
    finalViolations.length === 0 && !checks.some((c) => c.name.startsWith('invariants after')),
    `${finalViolations.length} at the end`,
  );
  const ok = checks.every((c) => c.ok);
  const elapsedMs = Math.round(performance.now() - t0);
  if (o.json) {
    const summary: DemoSummary = {
      ok,
      machine: { mem: o.mem ?? DEFAULT_MEM, numa, arch: spec.arch, release: s.kernel.release },
      cmdline: DEFAULT_CMDLINE,
      before: { reserveMemSha256: rmBefore, reserveMemPhys: regionPhys, khoctlSha256: kcBefore, khoctlPhys },
      hops,
      checks,
      elapsedMs,
    };
    io.out(`${toJson(summary)}\n`);
  } else {
    section('What survived');
    for (const c of checks) say(`  ${c.ok ? pc.green('ok  ') : pc.red('FAIL')} ${c.name}: ${c.detail}\n`);
    say(
      `\n${ok ? pc.green(pc.bold(`Everything preserved survived ${kexecs} KHO kexec(s).`)) : pc.red(pc.bold('Something did not survive (see FAIL above).'))} (${elapsedMs} ms)\n` +
        'Try it yourself: kho shell (type help).\n',
    );
  }
  return ok ? EXIT_OK : EXIT_INVALID;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      "boot a simulated machine with the guide's parameters, preserve state, KHO-kexec twice, show what survived",
    )
    .option('--mem <size>', 'installed memory', DEFAULT_MEM)
    .option('--numa <n>', 'NUMA nodes', '1')
    .option('--kexecs <n>', 'number of KHO kexecs (1 to 20)', '2')
    .option(
      '--json',
      'print only a JSON summary: { ok, machine, cmdline, before, hops[], checks[], elapsedMs }',
    )
    .addHelpText(
      'after',
      `
Exit status: 0 when every check holds (kexec counts 1..N, reserve_mem revived at the same address with
the same SHA-256, khoctl memory unchanged, self-test restored, in/fdt valid, no invariant violation), 1 otherwise.

Examples:
  kho demo
  npm start
  kho demo --kexecs 5 --json`,
    )
    .action(async (o: DemoOptions) => {
      process.exitCode = await runDemo(o);
    });
}
