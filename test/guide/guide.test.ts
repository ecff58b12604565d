/**
 * The KHO user guide (Documentation/core-api/kho/usage.rst) replayed end to end through `kho shell`, side
 * by side with the real Linux 7.3.4 captures in test/vectors/linux-7.3.4.
 *
 * Each scenario boots a session shaped like the vectors' QEMU machine (2 GiB, 1 or 2 nodes) with the
 * vectors' command line, and at each stage runs the guide's commands in the shell: `cat /proc/cmdline`,
 * `uname -r`, `cat .../out/scratch_len`, `cat .../out/scratch_phys`, `find /sys/kernel/debug/kho`,
 * `dmesg | grep ...`, then `kexec -s -l /boot/bzImage --initrd /boot/initrd --append "<next stage's
 * command line>"` and `kexec -e` (the vectors' RECIPE.md ran exactly that). Oracles, all from the vectors:
 * meta.json's `cmdline`, `uname` and `tree` (the debugfs file set), `out/scratch_len` byte for byte, and the
 * KHO / reserve_mem / self-test log lines of `dmesg` in order (timestamps aside). `scratch_phys` is checked
 * against its format (`0x%llx` lines, one per `scratch_len` line) and the placement rules (lowmem below
 * 4 GiB, every area inside RAM and aligned to the 2 MiB pageblock), since exact addresses need not match.
 * One scenario runs through the real binary with the script on stdin.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Session } from '../../src/sim/session/session.ts';

const VEC = new URL('../vectors/linux-7.3.4/', import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const vecText = (p: string) => readFileSync(new URL(p, VEC), 'utf8');
const meta = (p: string) =>
  JSON.parse(vecText(`${p}/meta.json`)) as { cmdline: string; uname: string; tree: string[] };
const KHO_RE = /KHO|test_kho|Revived memory reservation|Malformed early option|reserve_mem/;
const untimed = (t: string) =>
  t
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/^\[[ \d.]+\] /, ''));
const vecKhoLines = (p: string) => untimed(vecText(`${p}/dmesg`)).filter((l) => KHO_RE.test(l));
const GREP = `dmesg | grep -e KHO -e test_kho -e 'Revived memory reservation' -e 'Malformed early option' -e reserve_mem`;

const text = (r: { output: Uint8Array }) => Buffer.from(r.output).toString('latin1');

interface Scenario {
  name: string;
  numa: number;
  stages: number;
}
const SCENARIOS: Scenario[] = [
  { name: 'flat-explicit', numa: 1, stages: 2 },
  { name: 'numa-explicit', numa: 2, stages: 2 },
  { name: 'three-hops', numa: 1, stages: 3 },
  { name: 'default-scale', numa: 1, stages: 2 },
  { name: 'kho-off', numa: 1, stages: 1 },
];

/** The placement rules a scratch_phys/scratch_len pair must obey on a session's machine. */
function checkPlacement(s: Session, phys: string, len: string, where: string): void {
  const lines = (t: string) => t.split('\n').filter((l) => l !== '');
  const p = lines(phys);
  const l = lines(len);
  assert.equal(p.length, l.length, `${where}: one scratch_phys line per scratch_len line`);
  for (const x of p) assert.match(x, /^0x[0-9a-f]+$/, `${where}: scratch_phys line format`);
  const areas = p.map((x, i) => ({ addr: BigInt(x), size: BigInt(l[i]) }));
  assert.ok(areas[0].addr + areas[0].size <= 1n << 32n, `${where}: lowmem scratch below 4 GiB`);
  for (const a of areas) {
    if (a.size === 0n) continue;
    assert.equal(a.addr % (2n << 20n), 0n, `${where}: ${a.addr.toString(16)} aligned to 2 MiB`);
    assert.ok(s.machine.isRam(a.addr, a.size), `${where}: scratch at 0x${a.addr.toString(16)} is RAM`);
  }
  // per-node areas (after lowmem and global) lie inside their node
  areas.slice(2).forEach((a, nid) => {
    const node = s.machine.nodes[nid];
    if (a.size > 0n)
      assert.ok(
        a.addr >= node.start && a.addr + a.size <= node.end,
        `${where}: node ${nid} scratch inside node ${nid}`,
      );
  });
}

for (const sc of SCENARIOS) {
  test(`guide replayed in the shell, side by side with the vectors: ${sc.name}`, async () => {
    const s = new Session({ mem: '2G', numa: sc.numa, cmdline: meta(`${sc.name}/stage1`).cmdline });
    for (let stage = 1; stage <= sc.stages; stage++) {
      const dir = `${sc.name}/stage${stage}`;
      const m = meta(dir);
      const where = `${dir}`;
      assert.equal(text(await s.run('cat /proc/cmdline')), `${m.cmdline}\n`, `${where}: /proc/cmdline`);
      assert.equal(text(await s.run('uname -r')), `${m.uname}\n`, `${where}: uname -r`);
      const find = await s.run('find /sys/kernel/debug/kho');
      const tree = text(find)
        .split('\n')
        .filter((l) => l.startsWith('/'))
        .sort();
      assert.deepEqual(tree, [...m.tree].sort(), `${where}: the debugfs file set`);
      if (m.tree.length > 0) {
        const len = text(await s.run('cat /sys/kernel/debug/kho/out/scratch_len'));
        assert.equal(len, vecText(`${dir}/out/scratch_len`), `${where}: scratch_len, byte for byte`);
        const phys = text(await s.run('cat /sys/kernel/debug/kho/out/scratch_phys'));
        checkPlacement(s, phys, len, where);
      } else {
        assert.equal(find.status, 1, `${where}: no kho directory, find fails`);
        assert.match(text(find), /find: '\/sys\/kernel\/debug\/kho': No such file or directory/);
      }
      assert.deepEqual(untimed(text(await s.run(GREP))), vecKhoLines(dir), `${where}: KHO log lines`);
      if (stage < sc.stages) {
        const next = meta(`${sc.name}/stage${stage + 1}`).cmdline;
        const load = await s.run(`kexec -s -l /boot/bzImage --initrd /boot/initrd --append "${next}"`);
        assert.equal(load.status, 0, `${where}: kexec -l: ${text(load)}`);
        assert.equal(text(load), '', `${where}: kexec-tools prints nothing on a successful load`);
        const exec = await s.run('kexec -e');
        assert.equal(exec.status, 0, `${where}: kexec -e: ${text(exec)}`);
      }
    }
  });
}

test('the guide literally, through the real binary with the script on stdin (flat-explicit machine)', () => {
  const cmdline = meta('flat-explicit/stage1').cmdline;
  const script = [
    'echo "--- scratch_len"',
    'cat /sys/kernel/debug/kho/out/scratch_len',
    'echo "--- load"',
    'kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline -s',
    'echo "status $?"',
    'echo "--- exec"',
    'kexec -e',
    'echo "--- dmesg"',
    'dmesg | grep KHO',
    'echo "--- cmdline"',
    'cat /proc/cmdline',
    'echo "--- in"',
    'ls /sys/kernel/debug/kho/in /sys/kernel/debug/kho/in/sub_fdts',
    'echo "--- metadata"',
    'kho inspect /sys/kernel/debug/kho/in/sub_fdts/kexec-metadata | grep -i "kexec metadata"',
    'echo "--- validate"',
    'kho validate /sys/kernel/debug/kho/in/fdt',
    'echo "--- reboot"',
    'reboot > /dev/null',
    'dmesg | grep -c "exec from"',
    'ls /sys/kernel/debug/kho',
    'exit 7',
  ].join('\n');
  const r = spawnSync(process.execPath, ['bin/kho.js', 'shell', '--mem', '2G', '--cmdline', cmdline], {
    cwd: ROOT,
    input: `${script}\n`,
    encoding: 'latin1',
    timeout: 60_000,
  });
  assert.equal(r.status, 7, `exit N ends the script with N; stderr: ${r.stderr}`);
  const parts = new Map<string, string>();
  for (const chunk of r.stdout.split('--- ').slice(1)) {
    const nl = chunk.indexOf('\n');
    parts.set(chunk.slice(0, nl), chunk.slice(nl + 1));
  }
  assert.equal(parts.get('scratch_len'), vecText('flat-explicit/stage1/out/scratch_len'));
  assert.equal(parts.get('load'), 'status 0\n', 'a -s load hands over and says nothing');
  assert.match(parts.get('exec') ?? '', /^kexec_core: Starting new kernel\n/);
  // the vectors' stage 2 KHO lines, except the reserve_mem one this grep does not select
  assert.deepEqual(
    untimed(parts.get('dmesg') ?? ''),
    vecKhoLines('flat-explicit/stage2').filter((l) => l.includes('KHO')),
  );
  // --reuse-cmdline: the same command line again (kexec-tools drops only BOOT_IMAGE=)
  assert.equal(parts.get('cmdline'), `${cmdline}\n`);
  assert.equal(
    parts.get('in'),
    '/sys/kernel/debug/kho/in:\nfdt\nsub_fdts\n\n/sys/kernel/debug/kho/in/sub_fdts:\nkexec-metadata\nkho_test\nmemblock\n',
  );
  assert.match(parts.get('metadata') ?? '', /previous release "7\.3\.4-khovec", kexec_count 1/);
  assert.match(parts.get('validate') ?? '', /\/sys\/kernel\/debug\/kho\/in\/fdt: valid \(0 errors/);
  // after a cold boot: no exec-from line (count back to 0 means none is logged) and no in/
  assert.equal(parts.get('reboot'), '0\nout\n');
});

test("the guide's own example passes no command line: the next kernel's /proc/cmdline is empty", async () => {
  const s = new Session({ mem: '2G' });
  assert.equal((await s.run('kexec -l /boot/bzImage --initrd /boot/initrd -s')).status, 0);
  const e = await s.run('kexec -e');
  assert.equal(e.status, 0, text(e));
  assert.equal(text(await s.run('cat /proc/cmdline')), '\n');
  assert.equal(text(await s.run('uname -r')), '7.3.4-khovec\n');
});

test('kexec -l without -s: says at load time that nothing is handed over; the next kernel has no in/', async () => {
  const s = new Session({ mem: '2G' });
  await s.run('memwrite trace_buf 0 survivor');
  const load = await s.run('kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline');
  assert.equal(load.status, 0, 'the load itself works, as with kexec-tools');
  assert.match(Buffer.from(load.stderr).toString('latin1'), /NOT handed over/);
  assert.equal(Buffer.from(load.stdout).length, 0);
  assert.equal((await s.run('kexec -e')).status, 0);
  // KHO is on again (same command line) but nothing came in
  assert.equal(text(await s.run('ls /sys/kernel/debug/kho')), 'out\n');
  assert.equal(text(await s.run('dmesg | grep -c "found kexec handover data"')), '0\n');
  assert.equal(text(await s.run('dmesg | grep -c "exec from"')), '0\n');
  assert.equal(text(await s.run('dmesg | grep -c Revived')), '0\n');
});

test("kexec error paths print kexec-tools' messages and statuses", async () => {
  const s = new Session({ mem: '2G' });
  const cases: [string, string, number][] = [
    ['kexec -e', 'Nothing has been loaded!\n', 1],
    ['kexec -l /boot/nope -s', "Cannot open `/boot/nope': No such file or directory\n", 1],
    [
      'kexec -l /boot/bzImage --initrd /tmp/none -s',
      "Cannot open `/tmp/none': No such file or directory\n",
      1,
    ],
    ['kexec -l /boot/initrd -s', 'Cannot determine the file type of /boot/initrd\n', 255],
    ['kexec -s -l', 'No kernel specified\n', 255],
    ['kexec -z', "kexec: invalid option -- 'z'\n", 1],
    ['kexec --frobnicate', "kexec: unrecognized option '--frobnicate'\n", 1],
    ['kexec -l /boot/bzImage --initrd', "kexec: option '--initrd' requires an argument\n", 1],
  ];
  for (const [cmd, first, status] of cases) {
    const r = await s.run(cmd);
    assert.equal(r.status, status, cmd);
    assert.ok(text(r).startsWith(first), `${cmd}: ${JSON.stringify(text(r))}`);
  }
  // -u unloads: exec then has nothing
  assert.equal((await s.run('kexec -l /boot/bzImage -s')).status, 0);
  assert.equal(text(await s.run('cat /sys/kernel/kexec_loaded')), '1\n');
  assert.equal((await s.run('kexec -u')).status, 0);
  assert.equal(text(await s.run('cat /sys/kernel/kexec_loaded')), '0\n');
  assert.equal(text(await s.run('kexec -e')), 'Nothing has been loaded!\n');
});
