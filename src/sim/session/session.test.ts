/**
 * The session's own pieces: kexec's option parsing (getopt_long semantics of kexec-tools' main(), written
 * out by hand), the khoctl producer (its sub-FDT checked with fdtget; its bytes across kexec, reboot and a
 * load without -s), `kho inspect|validate|diff` inside the shell against the CLI on the same vector files,
 * memdump/memwrite, uname/dmesg formats, the image files under /boot, the invariant checker after every
 * command, and a kernel panic halting the machine until `reboot`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { oracle } from '../../../test/helpers/oracle.ts';
import { diffHandovers, loadHandoverPath } from '../../abi/handover.ts';
import { formatDiff, formatHandover } from '../../cli/commands/inspect-format.ts';
import { parseImageDescription } from '../kexec/image.ts';
import { parseKexecArgs } from './commands.ts';
import { decodeKhoctlFdt, encodeKhoctlFdt } from './khoctl.ts';
import { DEFAULT_CMDLINE, Session } from './session.ts';

const VEC = fileURLToPath(new URL('../../../test/vectors/linux-7.3.4/', import.meta.url));
const text = (r: { output: Uint8Array }) => Buffer.from(r.output).toString('latin1');
const stdout = (r: { stdout: Uint8Array }) => Buffer.from(r.stdout).toString('latin1');

test('kexec options: getopt_long as kexec-tools main() uses them', () => {
  const p = (s: string) => {
    const r = parseKexecArgs(s === '' ? [] : s.split(' '));
    assert.equal(typeof r, 'object', `${s}: ${r}`);
    return r as Exclude<ReturnType<typeof parseKexecArgs>, string>;
  };
  // the guide's line: load only, file syscall, the kernel file after -l
  let o = p('-l /path/to/bzImage --initrd /path/to/initrd -s');
  assert.deepEqual(
    [o.load, o.exec, o.unload, o.syscall, o.file, o.initrd],
    [true, false, false, 's', '/path/to/bzImage', '/path/to/initrd'],
  );
  // clustered short options, the file anywhere, --opt=value
  o = p('-sl --initrd=/rd --append=console=ttyS0 /k');
  assert.deepEqual(
    [o.load, o.syscall, o.file, o.initrd, o.append],
    [true, 's', '/k', '/rd', 'console=ttyS0'],
  );
  o = p('--kexec-file-syscall --load /k --command-line x --reuse-cmdline');
  assert.deepEqual([o.load, o.syscall, o.append, o.reuse], [true, 's', 'x', true]);
  // -e alone: exec, no load; `-l ... -e`: the later -e clears do_load (OPT_EXEC sets do_load = 0)
  o = p('-e');
  assert.deepEqual([o.load, o.exec], [false, true]);
  o = p('-l /k -e');
  assert.deepEqual([o.load, o.exec], [false, true]);
  // `kexec FILE` with no action: load then shut down into it; -f: load and exec
  o = p('/k');
  assert.deepEqual([o.load, o.exec], [true, true]);
  o = p('-f /k');
  assert.deepEqual([o.load, o.exec], [true, true]);
  o = p('-u');
  assert.deepEqual([o.load, o.unload, o.exec], [false, true, false]);
  o = p('-c -l /k');
  assert.equal(o.syscall, 'c');
  o = p('-l -- -weird-name');
  assert.equal(o.file, '-weird-name');
  assert.equal(parseKexecArgs(['-q']), "kexec: invalid option -- 'q'");
  assert.equal(parseKexecArgs(['--nope']), "kexec: unrecognized option '--nope'");
  assert.equal(
    parseKexecArgs(['--reuse-cmdline=x']),
    "kexec: option '--reuse-cmdline' doesn't allow an argument",
  );
  assert.equal(parseKexecArgs(['--append']), "kexec: option '--append' requires an argument");
});

test('khoctl sub-FDT: what fdtget reads back (big-endian cells)', (t) => {
  if (!oracle(t, 'fdtget')) return;
  const blob = encodeKhoctlFdt([
    { name: 'a', phys: 0x123456789000n, size: 5000n, order: 1, origin: 'new' },
    { name: 'buf_2', phys: 0x1000n, size: 4096n, order: 0, origin: 'new' },
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'khoctl-'));
  try {
    const f = join(dir, 'khoctl.dtb');
    writeFileSync(f, blob);
    const get = (...a: string[]) => execFileSync('fdtget', [...a], { encoding: 'utf8' }).trim();
    assert.equal(get(f, '/', 'compatible'), 'kho-sim,khoctl-v1');
    assert.equal(get('-l', f, '/'), 'a\nbuf_2');
    assert.equal(get('-t', 'x', f, '/a', 'phys'), '1234 56789000');
    assert.equal(get('-t', 'x', f, '/a', 'size'), '0 1388');
    assert.equal(get('-t', 'x', f, '/a', 'order'), '1');
    assert.equal(get('-t', 'x', f, '/buf_2', 'phys'), '0 1000');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(decodeKhoctlFdt(blob), [
    { name: 'a', phys: 0x123456789000n, size: 5000n, order: 1 },
    { name: 'buf_2', phys: 0x1000n, size: 4096n, order: 0 },
  ]);
  assert.throws(
    () => decodeKhoctlFdt(new Uint8Array(8)),
    (e: Error & { code?: string }) => e.code?.startsWith('FDT_ERR_') ?? false,
  );
});

test('khoctl: bytes survive KHO kexecs; a load without -s or a reboot loses them', async () => {
  const s = new Session({ mem: '2G' });
  const pres = await s.run('khoctl preserve mine 10000');
  assert.equal(pres.status, 0, text(pres));
  // 10000 bytes need get_order(10000) = 2 (four 4 KiB pages)
  assert.match(stdout(pres), /^mine: 10000 bytes preserved at 0x[0-9a-f]+ \(order 2\)\n$/);
  assert.equal((await s.run("khoctl write mine 9990 'tail bytes'")).status, 0);
  assert.equal(
    text(await s.run("khoctl write mine 9991 'tail bytes'")),
    "khoctl: 10 bytes at offset '9991' do not fit in 10000 bytes\n",
  );
  assert.equal(text(await s.run('khoctl read mine 9990 10')), 'tail bytes');
  for (let hop = 1; hop <= 3; hop++) {
    await s.run('kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline -s');
    assert.equal((await s.run('kexec -e')).status, 0);
    assert.equal(text(await s.run('khoctl read mine 9990 10')), 'tail bytes', `hop ${hop}`);
    assert.equal(
      text(await s.run('dmesg | grep khoctl')).replace(/^\[[ \d.]+\] /, ''),
      'khoctl: restored 1 region(s) from KHO\n',
    );
    assert.match(text(await s.run('khoctl show')), /\nmine +0x[0-9a-f]+ +10000 +2 {2}restored /);
  }
  // without -s nothing is handed over: the producer has nothing to restore
  await s.run('kexec -l /boot/bzImage --reuse-cmdline');
  await s.run('kexec -e');
  assert.equal(text(await s.run('khoctl show')), 'no khoctl regions\n');
  assert.equal(text(await s.run('khoctl read mine')), "khoctl: no region 'mine'\n");
  await s.run('khoctl preserve again 1');
  await s.run('reboot');
  assert.equal(text(await s.run('khoctl show')), 'no khoctl regions\n');
  assert.deepEqual(
    s.history.map((h) => [h.kind, h.kexecCount, h.khoBoot]),
    [
      ['cold', 0, false],
      ['kexec', 1, true],
      ['kexec', 2, true],
      ['kexec', 3, true],
      ['kexec', 0, false],
      ['cold', 0, false],
    ],
  );
});

test('khoctl: usage and kernel errors', async () => {
  const s = new Session({ mem: '2G' });
  const cases: [string, string, number][] = [
    [
      'khoctl preserve x 0',
      "khoctl: size '0' must be 1 to 4194304 bytes (one folio of at most order 10)\n",
      2,
    ],
    [
      'khoctl preserve x 5M',
      "khoctl: size '5M' must be 1 to 4194304 bytes (one folio of at most order 10)\n",
      2,
    ],
    [
      "khoctl preserve 'a b' 1",
      "khoctl: 'a b' is not a region name (letters, digits, _.,+- ; at most 31)\n",
      2,
    ],
    ['khoctl frob', "khoctl: unknown command 'frob'\n", 2],
    ['khoctl unpreserve none', "khoctl: no region 'none'\n", 1],
  ];
  for (const [cmd, want, status] of cases) {
    const r = await s.run(cmd);
    assert.equal(r.status, status, cmd);
    assert.ok(text(r).startsWith(want), `${cmd}: ${text(r)}`);
  }
  assert.equal((await s.run('khoctl preserve x 4M')).status, 0);
  assert.equal(text(await s.run('khoctl preserve x 1')), "khoctl: region 'x' exists\n");
  assert.equal((await s.run('khoctl unpreserve x')).status, 0);
  assert.equal(
    text(await s.run('ls /sys/kernel/debug/kho/out/sub_fdts')),
    'kexec-metadata\nkho_test\nmemblock\n',
    'the sub-tree goes with the last region',
  );
  const off = new Session({ mem: '2G', cmdline: 'kho=off' });
  const r = await off.run('khoctl preserve x 1');
  assert.equal(r.status, 1);
  assert.match(text(r), /KHO is not enabled in this kernel/);
});

test('kho inspect / validate / diff in the shell print what the CLI prints for the same files', async () => {
  const s = new Session({ mem: '2G', host: VEC });
  for (const p of [
    'flat-explicit/stage2/in',
    'flat-explicit/stage1/out/fdt',
    'flat-explicit/stage2/in/sub_fdts/memblock',
    'three-hops/stage3/in',
  ]) {
    const r = await s.run(`kho inspect /host/${p}`);
    assert.equal(r.status, 0, text(r));
    const h = loadHandoverPath(join(VEC, p));
    // the same text, with the host path as the shell names it
    assert.equal(stdout(r), formatHandover(h).replaceAll(VEC, '/host/'), p);
  }
  const d = await s.run('kho diff /host/flat-explicit/stage1/out /host/flat-explicit/stage2/in');
  const want = formatDiff(
    diffHandovers(
      loadHandoverPath(join(VEC, 'flat-explicit/stage1/out')),
      loadHandoverPath(join(VEC, 'flat-explicit/stage2/in')),
    ),
    '/host/flat-explicit/stage1/out',
    '/host/flat-explicit/stage2/in',
  );
  assert.equal(stdout(d), want.replaceAll(VEC, '/host/'));
  // validate: the cut-short out/fdt of 7.3 is reported, not a crash; the in/fdt is valid
  const v = await s.run('kho validate /host/flat-explicit/stage2/in/fdt');
  assert.equal(v.status, 0);
  assert.match(stdout(v), /valid \(0 errors/);
  // errors: the CLI's one line and statuses
  const missing = await s.run('kho inspect /nowhere');
  assert.equal(missing.status, 1);
  assert.match(text(missing), /^kho: \/nowhere: IO_ENOENT: cannot read \/nowhere: No such file or directory/);
  assert.equal((await s.run('kho inspect')).status, 2);
  assert.equal((await s.run('kho map x')).status, 2);
  assert.equal((await s.run('kho inspect /proc/cmdline --memory /tmp/x')).status, 2);
  // --memory /dev/mem: the live machine's memory gives the preserved-memory map of out/
  const live = await s.run('kho inspect /sys/kernel/debug/kho/out --memory /dev/mem --json');
  assert.equal(live.status, 0, text(live));
  const j = JSON.parse(stdout(live));
  assert.equal(j.preserved.format, 'radix-tree');
  assert.ok(j.preserved.blocks > 0);
  assert.equal(
    j.root.wholeAt,
    `0x${s.kernel.kho.rootFdtPhys.toString(16)}`,
    'the cut-short out/fdt is found whole in memory',
  );
});

test('memdump / memwrite: raw bytes of a reserve_mem region, by name or address', async () => {
  const s = new Session({ mem: '2G' });
  const list = text(await s.run('memdump -l'));
  const m = /^trace_buf (0x[0-9a-f]+) 0x400000\n$/.exec(list);
  assert.ok(m, list);
  assert.equal((await s.run("memwrite trace_buf 16 'AB'")).status, 0);
  // 16 zero bytes then 'AB' (0x41 0x42) then zeros: xxd's layout, by hand
  assert.equal(
    text(await s.run(`memdump ${m[1]} 32 | xxd`)),
    '00000000: 0000 0000 0000 0000 0000 0000 0000 0000  ................\n' +
      '00000010: 4142 0000 0000 0000 0000 0000 0000 0000  AB..............\n',
  );
  assert.equal(text(await s.run('memdump trace_buf | wc -c')), '4194304\n');
  assert.equal(
    text(await s.run("memwrite trace_buf 0x3fffff 'AB'")),
    "memwrite: 2 bytes at offset '0x3fffff' do not fit in 4194304 bytes\n",
  );
  assert.equal((await s.run('memwrite nosuch 0 x')).status, 1);
  assert.equal((await s.run('memdump 0x10000000000 16')).status, 1);
  assert.equal(text(await s.run('cat /dev/mem')), 'cat: /dev/mem: Operation not permitted\n');
});

test('uname, dmesg, /proc and /boot', async () => {
  const s = new Session({ mem: '2G' });
  assert.equal(
    text(await s.run('uname -a')),
    'Linux kho-sim 7.3.4-khovec #1 SMP PREEMPT_DYNAMIC Tue Nov 24 20:16:13 UTC 2026 x86_64 GNU/Linux\n',
  );
  assert.equal(text(await s.run('uname')), 'Linux\n');
  assert.equal(text(await s.run('uname -rm')), '7.3.4-khovec x86_64\n');
  assert.equal(text(await s.run('cat /proc/cmdline')), `${DEFAULT_CMDLINE}\n`);
  const d = text(await s.run('dmesg'));
  const first = d.split('\n')[0];
  assert.match(first, /^\[ {4}0\.000000\] Linux version 7\.3\.4-khovec /);
  assert.equal(text(await s.run('dmesg -t | head -1')), `${first.slice(15)}\n`);
  assert.match(text(await s.run('dmesg -r | head -1')), /^<5>\[/, 'the banner is KERN_NOTICE');
  assert.equal((await s.run('dmesg --bogus')).status, 1);
  assert.match(text(await s.run('head -1 /proc/iomem')), /^00000000-[0-9a-f]{8} : Reserved\n$/);
  // /boot/bzImage is the running kernel's description, which the loader parses
  const img = parseImageDescription(text(await s.run('cat /boot/bzImage')));
  assert.equal(img.release, '7.3.4-khovec');
  assert.equal(img.description?.profile, 'kho-v4');
  assert.equal(img.description?.config.CONFIG_KEXEC_HANDOVER_DEBUGFS, true);
  assert.equal(text(await s.run('head -c 6 /boot/initrd')), '070701');
  assert.equal(
    text(await s.run('grep HANDOVER_DEBUGFS /boot/config-7.3.4-khovec')),
    'CONFIG_KEXEC_HANDOVER_DEBUGFS=y\n',
  );
  assert.match(
    text(await s.run('help')),
    /kexec -l \/boot\/bzImage --initrd \/boot\/initrd --reuse-cmdline -s/,
  );
  assert.match(text(await s.run('help')), /\n {2}khoctl {5}preserve your own memory across kexec/);
});

test('a kernel without CONFIG_KEXEC_HANDOVER_DEBUGFS has no debugfs mount; kho=off has no kho dir', async () => {
  const { DEFAULT_IMAGE } = await import('../kernel/kernel.ts');
  const s = new Session({
    mem: '2G',
    image: { ...DEFAULT_IMAGE, config: { ...DEFAULT_IMAGE.config, CONFIG_KEXEC_HANDOVER_DEBUGFS: false } },
  });
  assert.equal(s.vfs.isMounted('/sys/kernel/debug'), false);
  assert.equal(text(await s.run('ls /sys/kernel/debug')), '');
  const off = new Session({ mem: '2G', cmdline: 'kho=off' });
  assert.equal(off.vfs.isMounted('/sys/kernel/debug'), true);
  assert.equal((await off.run('ls /sys/kernel/debug/kho')).status, 2);
});

test('the invariant checker runs after every command and fails it loudly', async () => {
  const s = new Session({ mem: '2G' });
  assert.equal((await s.run('uname -r')).status, 0);
  // a bug in a producer: a preserved page handed back to the allocator
  const kho = s.kernel.kho;
  const pa = kho.allocPages(0);
  kho.preserveFolio(pa, 0);
  kho.freePages(pa, 0);
  const r = await s.run('uname -r');
  assert.equal(r.status, 1);
  assert.equal(stdout(r), '7.3.4-khovec\n', 'the command still ran');
  assert.match(
    Buffer.from(r.stderr).toString(),
    /^\*\*\* INVARIANT VIOLATION: SIM_INVARIANT_PRESERVED_FREE: preserved block at 0x/,
  );
  // kexec -e refuses to hand over a state that breaks an invariant
  await s.run('kexec -l /boot/bzImage --reuse-cmdline -s');
  const e = await s.run('kexec -e');
  assert.equal(e.status, 1);
  assert.match(text(e), /kexec: not executing/);
  assert.equal(s.history.length, 1);
});

test('a violation caused by a redirection (written after its command returned) is caught after the line', async () => {
  const s = new Session({ mem: '2G' });
  const kho = s.kernel.kho;
  // a file whose write handler breaks an invariant, standing in for a buggy writable debugfs knob
  s.vfs.addFile('/tmp/knob', {
    read: () => '',
    write: () => {
      const pa = kho.allocPages(0);
      kho.preserveFolio(pa, 0);
      kho.freePages(pa, 0);
    },
  });
  const r = await s.run('echo 1 > /tmp/knob');
  assert.equal(r.status, 1);
  const err = Buffer.from(r.stderr).toString();
  assert.equal(err.match(/INVARIANT VIOLATION/g)?.length, 1, 'reported once');
  assert.match(err, /SIM_INVARIANT_PRESERVED_FREE/);
  assert.equal(s.shell.lastStatus, 1, '$? is 1');
});

test('a kernel panic during a kexec boot halts the machine until reboot', async () => {
  // 40M of lowmem scratch holds the kexec segments but not the next kernel's 32 MiB memmap + the rest
  const s = new Session({ mem: '2G', cmdline: 'kho=on kho_scratch=40M,2M,2M' });
  assert.equal((await s.run('kexec -l /boot/bzImage --reuse-cmdline -s')).status, 0);
  const e = await s.run('kexec -e');
  assert.equal(e.status, 1);
  assert.match(
    text(e),
    /Kernel panic - not syncing: sparse_init: Failed to allocate 33554432 bytes .*\(KHO scratch only\)/,
  );
  const u = await s.run('uname -r');
  assert.equal(u.status, 1);
  assert.match(text(u), /the machine is halted/);
  assert.equal((await s.run('reboot')).status, 0);
  assert.equal(text(await s.run('uname -r')), '7.3.4-khovec\n');
});
