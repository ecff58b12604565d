/**
 * `kho demo` end to end through the real binary (`node bin/kho.js demo`): exit 0, the kexec counts 1 and
 * 2 in `KHO: exec from:` lines, the reserve_mem region at the same address, and SHA-256 digests before and
 * after every kexec that equal each other *and* the digest the test computes itself of what the demo wrote
 * (hand-derived: the pattern at offset 0, `end of trace_buf` at 0x3fff00, zeros elsewhere, in the 4 MiB
 * region; the pattern then zeros in the 64 KiB khoctl folio, which the kernel zeroes on allocation).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEMO_PATTERN, type DemoSummary } from '../../src/cli/commands/demo.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/kho.js', 'demo', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });

function expectedDigests(): { region: string; khoctl: string } {
  const region = Buffer.alloc(4 << 20);
  region.write(DEMO_PATTERN, 0, 'latin1');
  region.write('end of trace_buf', 0x3fff00, 'latin1');
  const folio = Buffer.alloc(64 << 10);
  folio.write(DEMO_PATTERN, 0, 'latin1');
  const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  return { region: h(region), khoctl: h(folio) };
}

test('kho demo --json: counts 1 and 2, the preserved bytes unchanged after both kexecs', () => {
  const t0 = performance.now();
  const r = run('--json');
  const wall = performance.now() - t0;
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as DemoSummary;
  assert.equal(s.ok, true);
  assert.equal(s.cmdline, 'kho=on kho_scratch=16M,512M,256M reserve_mem=4M:4096:trace_buf console=ttyS0');
  const want = expectedDigests();
  assert.equal(s.before.reserveMemSha256, want.region, 'the demo wrote what it says it wrote');
  assert.equal(s.before.khoctlSha256, want.khoctl);
  assert.deepEqual(
    s.hops.map((h) => h.execFrom),
    ['KHO: exec from: 7.3.4-khovec (count 1)', 'KHO: exec from: 7.3.4-khovec (count 2)'],
  );
  for (const h of s.hops) {
    assert.equal(h.reserveMemSha256, want.region, `hop ${h.hop}: reserve_mem bytes`);
    assert.equal(h.khoctlSha256, want.khoctl, `hop ${h.hop}: khoctl bytes`);
    assert.equal(h.reserveMemPhys, s.before.reserveMemPhys, `hop ${h.hop}: same physical address`);
    assert.deepEqual(h.revived, ['trace_buf']);
    assert.ok(h.debugfs.includes('/sys/kernel/debug/kho/in/fdt'), `hop ${h.hop}: in/fdt present`);
    assert.ok(h.debugfs.includes('/sys/kernel/debug/kho/in/sub_fdts/memblock'));
    assert.ok(!h.debugfs.includes('/sys/kernel/debug/kho/out/fdt'), 'no out/fdt after a KHO boot (7.3)');
    assert.equal(h.inFdtValid, true);
  }
  // the self-test alternates as on the real kernel (three-hops vectors): restored at count 1 only
  assert.deepEqual(
    s.hops.map((h) => h.selfTest),
    [true, false],
  );
  assert.ok(s.checks.every((c) => c.ok));
  assert.ok(s.elapsedMs < 5000, `the demo itself takes ${s.elapsedMs} ms`);
  assert.ok(wall < 20_000, `with node and tsx start-up: ${Math.round(wall)} ms`);
});

test('kho demo (text): sectioned transcript with the log lines, debugfs view and the verdict', () => {
  const r = run();
  assert.equal(r.status, 0, r.stderr);
  for (const s of [
    '== 1. Cold boot ==',
    '== 2. Preserve state ==',
    '== 3. KHO kexec #1 ==',
    '== 4. KHO kexec #2 ==',
    '== What survived ==',
  ])
    assert.ok(r.stdout.includes(s), s);
  assert.match(r.stdout, /\] KHO: exec from: 7\.3\.4-khovec \(count 1\)\n/);
  assert.match(r.stdout, /\] KHO: exec from: 7\.3\.4-khovec \(count 2\)\n/);
  assert.match(r.stdout, /\] Revived memory reservation 'trace_buf' from KHO\n/);
  assert.match(r.stdout, /# ls -R \/sys\/kernel\/debug\/kho\n\/sys\/kernel\/debug\/kho:\nin\nout\n/);
  assert.match(
    r.stdout,
    /# cat \/sys\/kernel\/debug\/kho\/out\/scratch_len\n0x1000000\n0x20000000\n0x10000000\n/,
  );
  assert.match(r.stdout, /Everything preserved survived 2 KHO kexec\(s\)/);
  assert.doesNotMatch(r.stdout, /FAIL/);
});

test('kho demo: bad options are usage errors (exit 2)', () => {
  const r = run('--kexecs', '0');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /CLI_USAGE: --kexecs '0' is not 1 to 20/);
});

test('kho demo fails (exit 1) and says what did not survive when preserved bytes change', async () => {
  const { runDemo } = await import('../../src/cli/commands/demo.ts');
  let out = '';
  const status = await runDemo(
    {
      json: true,
      // before the second kexec, scribble on the reserve_mem region (the fault the guide's use cases name)
      beforeExec: (s, hop) => {
        if (hop !== 2) return;
        const r = s.kernel.reserveMem.findByName('trace_buf');
        if (r) s.machine.memory.write(r.start + 100n, new Uint8Array([0xff]));
      },
    },
    { out: (t) => (out += t) },
  );
  assert.equal(status, 1);
  const s = JSON.parse(out) as DemoSummary;
  assert.equal(s.ok, false);
  const failed = s.checks.filter((c) => !c.ok).map((c) => c.name);
  assert.deepEqual(failed, ["kexec #2: 'trace_buf' contents unchanged (sha256)"]);
});
