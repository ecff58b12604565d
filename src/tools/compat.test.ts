/**
 * `kho compat`. Oracles: fdtget on the real 7.3.4 blobs (root and sub-blob compatibles), the raw
 * bytes of the kexec-metadata and LUO blobs read by hand from their C layouts (spec §6, §9), the
 * profile table's release ranges written out by hand, the vectors' kernel.config lines, the kernel's
 * rejection message (spec §4.3), and the simulator's own boot of B after a kexec from A (an
 * independent code path: the simulated kernel's kho_populate and producers).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { captureAll } from '../../test/helpers/cli.ts';
import { oracle } from '../../test/helpers/oracle.ts';
import { runCompat } from '../cli/commands/compat.ts';
import { Kernel } from '../sim/kernel/kernel.ts';
import { loadKernelImage } from '../sim/kexec/image.ts';
import { Machine } from '../sim/machine/machine.ts';
import { checkCompat, describeKernel, parseKconfig, profilesForRelease } from './compat.ts';

const VEC = join(import.meta.dirname, '../../test/vectors/linux-7.3.4');
const tmp = mkdtempSync(join(tmpdir(), 'kho-compat-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function desc(name: string, o: Record<string, unknown>): string {
  const p = join(tmp, `${name}.json`);
  writeFileSync(
    p,
    JSON.stringify({
      kind: 'kho-simulated-kernel',
      release: '7.3.4-khovec',
      profile: 'kho-v4',
      config: {
        CONFIG_KEXEC_HANDOVER: true,
        CONFIG_KEXEC_HANDOVER_DEBUGFS: true,
        CONFIG_TEST_KEXEC_HANDOVER: true,
        CONFIG_LIVEUPDATE: true,
      },
      memSize: '34M',
      ...o,
    }),
  );
  return p;
}

function run(a: string, b: string, json = true) {
  return captureAll((io) => runCompat(a, b, { json }, io));
}

test('releases map to the profiles whose kernels range holds them (profile table by hand)', () => {
  // kho-v1-6.16: 6.16-6.17, kho-v1: 6.18-7.0, kho-v2: 7.1, kho-v3: 7.2, kho-v4: 7.3, kho-v4-bootmem: 7.4+
  assert.deepEqual(profilesForRelease('7.3.4-khovec'), ['kho-v4']);
  assert.deepEqual(profilesForRelease('6.17.2'), ['kho-v1-6.16']);
  assert.deepEqual(profilesForRelease('6.19.0-rc4-next-20260107'), ['kho-v1']);
  assert.deepEqual(profilesForRelease('7.0'), ['kho-v1']);
  assert.deepEqual(profilesForRelease('7.1.9'), ['kho-v2']);
  assert.deepEqual(profilesForRelease('7.4.0'), ['kho-v4-bootmem']);
  assert.deepEqual(profilesForRelease('8.2.1'), ['kho-v4-bootmem']);
  assert.deepEqual(profilesForRelease('6.15.3'), []);
  assert.deepEqual(profilesForRelease('not-a-release'), []);
});

test("the vectors' kernel.config reads as its lines say", () => {
  const c = parseKconfig(readFileSync(join(VEC, 'kernel.config'), 'latin1'));
  // kernel.config lines 314-319, 4606, 4613
  assert.equal(c.CONFIG_KEXEC_HANDOVER, true);
  assert.equal(c.CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT, false);
  assert.equal(c.CONFIG_LIVEUPDATE, true);
  assert.equal(c.CONFIG_LIVEUPDATE_TEST, false);
  assert.equal(c.CONFIG_TEST_KEXEC_HANDOVER, true);
  assert.deepEqual(parseKconfig('CONFIG_A="x y"\nCONFIG_B=m\nCONFIG_C=0x10\nCONFIG_D=12\n'), {
    CONFIG_A: 'x y',
    CONFIG_B: 'm',
    CONFIG_C: '0x10',
    CONFIG_D: 12,
  });
});

test('a real blob: root compatible and each sub-blob version as fdtget and the raw bytes show them', (t) => {
  if (!oracle(t, 'fdtget')) return;
  const fdtget = (f: string, prop: string) =>
    execFileSync('fdtget', ['-t', 's', f, '/', prop], { encoding: 'latin1' }).trim();
  const out = join(VEC, 'flat-explicit/stage1/out');
  const s = describeKernel(join(VEC, 'flat-explicit/stage1'));
  assert.equal(s.kind, 'handover');
  assert.equal(s.compatible, fdtget(join(out, 'fdt.whole'), 'compatible'));
  assert.deepEqual(s.profiles, ['kho-v4', 'kho-v4-bootmem']);
  assert.match(s.notes.join('\n'), /shared by kho-v4 \(7\.3\) and kho-v4-bootmem \(7\.4\+\)/);
  const v = Object.fromEntries(s.producers.map((p) => [p.name, p.version]));
  assert.equal(v.memblock, fdtget(join(out, 'sub_fdts/memblock'), 'compatible'));
  assert.equal(v.kho_test, fdtget(join(out, 'sub_fdts/kho_test'), 'compatible'));
  const meta = readFileSync(join(out, 'sub_fdts/kexec-metadata'));
  assert.equal(v['kexec-metadata'], String(meta.readUInt32LE(0)));
  // previous_release: bytes 4..69, NUL-terminated
  assert.equal(s.release, meta.subarray(4, meta.indexOf(0, 4)).toString('latin1'));
  const luo = readFileSync(join(VEC, 'luo-memfd/stage1/out/sub_fdts/LUO'));
  const l = describeKernel(join(VEC, 'luo-memfd/stage1/out'));
  assert.equal(
    l.producers.find((p) => p.name === 'LUO')?.version,
    luo.subarray(0, luo.indexOf(0)).toString(),
  );
});

test('blob A to a description B of the same ABI: every producer kept, exit 0', () => {
  const r = run(join(VEC, 'luo-memfd/stage1/out'), desc('same', {}));
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.abi.verdict, 'accepted');
  assert.equal(j.verdict, 'compatible');
  assert.deepEqual(j.producers.map((p: { name: string }) => p.name).sort(), [
    'LUO',
    'kexec-metadata',
    'kho_test',
  ]);
  assert.ok(j.producers.every((p: { status: string }) => p.status === 'kept'));
});

test('another root ABI: B boots without KHO, names the warning, drops every producer; the simulator agrees', () => {
  const a = desc('a-v4', {});
  const b = desc('b-v3', { release: '7.2.1', profile: 'kho-v3' });
  const r = run(a, b);
  assert.equal(r.code, 1);
  const j = JSON.parse(r.out);
  assert.equal(j.abi.verdict, 'rejected');
  assert.equal(j.verdict, 'incompatible');
  // spec §4.3: "setup: handover FDT (0x…) is incompatible with 'kho-vN': <err>", then "disabling KHO revival"
  assert.deepEqual(j.abi.kernelLog, [
    "KHO: setup: handover FDT (0x…) is incompatible with 'kho-v3': 1",
    'KHO: disabling KHO revival',
  ]);
  assert.ok(j.producers.every((p: { status: string }) => p.status === 'dropped'));
  // The simulator: kexec from A (kho-v4) into B (kho-v3) logs the same lines, address filled in.
  const m = Machine.create({ memory: '2G' });
  const k = Kernel.boot(m, { cmdline: 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:r' });
  k.kexecLoad({
    image: loadKernelImage(readFileSync(b)),
    cmdline: 'kho=on reserve_mem=4M:4096:r',
    fileLoad: true,
  });
  const dmesg = k.kexecExec().dmesg();
  for (const line of j.abi.kernelLog as string[]) {
    const re = new RegExp(line.replace(/[()[\]]/g, '\\$&').replace('0x…', '0x[0-9a-f]+'));
    assert.match(dmesg, re);
  }
  assert.doesNotMatch(dmesg, /Revived memory reservation/);
  const human = run(a, b, false);
  assert.match(human.out, /ABI: rejected: B accepts only 'kho-v3', A writes 'kho-v4': B boots without KHO/);
  assert.match(human.out, /verdict: incompatible/);
});

test('same ABI, B without the self-test and with another LUO version: kho_test dropped, LUO refused (panic)', () => {
  const a = desc('a', {});
  const b = desc('b-74', {
    release: '7.4.0',
    profile: 'kho-v4-bootmem',
    config: { CONFIG_KEXEC_HANDOVER: true, CONFIG_LIVEUPDATE: true },
    producers: { LUO: { compatible: 'luo-v6' } },
  });
  const j = JSON.parse(run(a, b).out);
  assert.equal(j.abi.verdict, 'accepted');
  const by = Object.fromEntries(j.producers.map((p: { name: string }) => [p.name, p]));
  assert.equal(by.kho_test.status, 'dropped');
  assert.match(by.kho_test.reason, /CONFIG_TEST_KEXEC_HANDOVER/);
  assert.equal(by.LUO.status, 'refused');
  assert.equal(by.LUO.panics, true);
  assert.equal(by['kexec-metadata'].status, 'kept');
  assert.equal(by.memblock.status, 'kept');
  assert.deepEqual(j.dropped, ['kho_test']);
  assert.deepEqual(j.refused, ['LUO']);
  assert.equal(j.verdict, 'incompatible');
  assert.match(j.notes.join('\n'), /B names scratch 'bootmem'/);
  // Without the LUO clash the handover is degraded (kho_test lost), not incompatible.
  const b2 = desc('b-74-noluo', {
    release: '7.4.0',
    profile: 'kho-v4-bootmem',
    config: { CONFIG_KEXEC_HANDOVER: true, CONFIG_LIVEUPDATE: true },
  });
  const r2 = run(a, b2);
  assert.equal(r2.code, 1);
  assert.equal(JSON.parse(r2.out).verdict, 'degraded');
});

test('dropped agrees with the simulator: B without CONFIG_TEST_KEXEC_HANDOVER runs no restore', () => {
  const b = desc('b-notest', {
    config: { CONFIG_KEXEC_HANDOVER: true, CONFIG_KEXEC_HANDOVER_DEBUGFS: true },
  });
  const r = checkCompat(describeKernel(desc('a2', {})), describeKernel(b));
  assert.equal(r.producers.find((p) => p.name === 'kho_test')?.status, 'dropped');
  const m = Machine.create({ memory: '2G' });
  const k = Kernel.boot(m, { cmdline: 'kho=on kho_scratch=16M,64M,32M' });
  k.kexecLoad({ image: loadKernelImage(readFileSync(b)), cmdline: 'kho=on', fileLoad: true });
  const dmesg = k.kexecExec().dmesg();
  assert.match(dmesg, /KHO: found kexec handover data\./);
  assert.doesNotMatch(dmesg, /test_kho: KHO restore/);
});

test('a bzImage: release from its version string, profile inferred and said so; Kconfig from --b-config', () => {
  // A minimal bzImage (Documentation/arch/x86/boot.rst): setup_sects at 0x1f1, boot_flag 0xAA55 at
  // 0x1fe, "HdrS" at 0x202, version 0x020f at 0x206, kernel_version at 0x20e (string at +0x200),
  // loadflags LOADED_HIGH at 0x211, xloadflags KERNEL_64|CAN_BE_LOADED_ABOVE_4G at 0x236.
  const img = Buffer.alloc(4 * 512);
  img[0x1f1] = 1;
  img.writeUInt16LE(0xaa55, 0x1fe);
  img.write('HdrS', 0x202, 'latin1');
  img.writeUInt16LE(0x020f, 0x206);
  img.writeUInt16LE(0x100, 0x20e);
  img[0x211] = 1;
  img.writeUInt16LE(3, 0x236);
  img.write('7.2.5-generic (builder@host) #1 SMP\0', 0x300, 'latin1');
  const bz = join(tmp, 'bzImage');
  writeFileSync(bz, img);
  const s = describeKernel(bz);
  assert.equal(s.kind, 'bzImage');
  assert.equal(s.release, '7.2.5-generic');
  assert.deepEqual(s.profiles, ['kho-v3']);
  assert.equal(s.profileSource, 'inferred-from-release');
  assert.match(s.notes.join('\n'), /profile inferred from release 7\.2\.5-generic/);
  // From the 7.3.4 blob: ABI rejected ('kho-v4' vs 'kho-v3').
  const r = checkCompat(describeKernel(join(VEC, 'flat-explicit/stage1/out')), s);
  assert.equal(r.abi.verdict, 'rejected');
  // Same-era bzImage with unknown Kconfig: the self-test is uncertain, not assumed.
  img.write('7.3.9 #1\0', 0x300, 'latin1');
  writeFileSync(bz, img);
  const u = checkCompat(describeKernel(join(VEC, 'flat-explicit/stage1/out')), describeKernel(bz));
  assert.equal(u.abi.verdict, 'accepted');
  assert.equal(u.producers.find((p) => p.name === 'kho_test')?.status, 'unknown');
  assert.equal(u.producers.find((p) => p.name === 'memblock')?.status, 'kept');
  const cfg = parseKconfig(readFileSync(join(VEC, 'kernel.config'), 'latin1'));
  const k = checkCompat(
    describeKernel(join(VEC, 'flat-explicit/stage1/out')),
    describeKernel(bz, { config: cfg }),
  );
  assert.ok(k.producers.every((p) => p.status === 'kept'));
  assert.equal(k.verdict, 'compatible');
});

test('usage and unreadable input: exit 2 without two kernels, 1 for a file that is no kernel', () => {
  assert.equal(run(desc('x', {}), undefined as unknown as string).code, 2);
  const junk = join(tmp, 'junk');
  writeFileSync(junk, 'hello');
  const r = run(junk, desc('y', {}));
  assert.equal(r.code, 1);
  assert.match(r.err, /KHO_COMPAT_UNKNOWN_INPUT|SIM_BAD_IMAGE/);
  const bad = join(tmp, 'bad.json');
  writeFileSync(bad, '{"kind":"kho-simulated-kernel","release":"x","profile":"kho-v9","memSize":"1M"}');
  const r2 = run(bad, desc('z', {}));
  assert.equal(r2.code, 1);
  assert.match(r2.err, /KHO_UNKNOWN_PROFILE/);
});

test('the real binary: --help has examples and exit statuses, exit codes 0 / 1 / 2', () => {
  const main = join(import.meta.dirname, '../cli/main.ts');
  const kho = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
      encoding: 'utf8',
      cwd: join(import.meta.dirname, '../..'),
    });
  for (const cmd of [['compat'], ['debugfs', 'export'], ['debugfs', 'mount']]) {
    const h = kho(...cmd, '--help');
    assert.equal(h.status, 0);
    assert.match(h.stdout, /Examples:/);
    assert.match(h.stdout, /Exit status: 0/);
  }
  assert.equal(kho('compat', join(VEC, 'luo-memfd/stage1'), desc('bin-b', {})).status, 0);
  assert.equal(kho('compat', desc('bin-a', {}), desc('bin-c', { profile: 'kho-v3' })).status, 1);
  assert.equal(kho('compat', '--bogus').status, 2);
});

test("an in/ dir whose LUO page was reused (luo-memfd stage 2): not read as A's LUO version, and said so", () => {
  const s = describeKernel(join(VEC, 'luo-memfd/stage2/in'));
  // The file starts with the init script's text, not 'luo-v' (vectors README).
  assert.equal(
    readFileSync(join(VEC, 'luo-memfd/stage2/in/sub_fdts/LUO')).subarray(0, 5).toString() === 'luo-v',
    false,
  );
  const luo = s.producers.find((p) => p.name === 'LUO');
  assert.equal(luo?.version, 'luo-v5');
  assert.match(luo?.how ?? '', /version assumed from kho-v4/);
  assert.match(s.notes.join('\n'), /reused page/);
  assert.match(s.notes.join('\n'), /an in\/ directory holds what the previous kernel handed over/);
});

test('an arm64 Image has no release: ABI unknown (exit 1); other architecture or no KHO in B: incompatible', () => {
  // struct arm64_image_header: image_size (u64) at 0x10, magic 'ARM\\x64' at 0x38.
  const img = Buffer.alloc(64);
  img.writeBigUInt64LE(0x2000000n, 0x10);
  img.write('ARM\x64', 0x38, 'latin1');
  const p = join(tmp, 'Image');
  writeFileSync(p, img);
  const s = describeKernel(p);
  assert.equal(s.kind, 'arm64-Image');
  assert.equal(s.release, null);
  assert.equal(s.compatible, null);
  const r = run(desc('arm-a', { arch: 'arm64' }), p);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.out).verdict, 'unknown');
  // x86_64 A, arm64 B: kexec refuses the image.
  const x = checkCompat(describeKernel(desc('x86-a', {})), describeKernel(desc('arm-b', { arch: 'arm64' })));
  assert.equal(x.verdict, 'incompatible');
  assert.match(x.notes.join('\n'), /-ENOEXEC/);
  // B without CONFIG_KEXEC_HANDOVER: it ignores the handover.
  const n = checkCompat(
    describeKernel(desc('a-kho', {})),
    describeKernel(desc('b-nokho', { config: { CONFIG_KEXEC_HANDOVER: false } })),
  );
  assert.equal(n.abi.verdict, 'rejected');
  assert.ok(n.producers.every((p) => p.status === 'dropped'));
  // A 6.18-7.0 kernel (kho-v1, live FDT) must finalize; B of the same era accepts.
  const f = checkCompat(
    describeKernel(desc('a-618', { release: '6.18.3', profile: 'kho-v1' })),
    describeKernel(desc('b-619', { release: '6.19.1', profile: 'kho-v1' })),
  );
  assert.equal(f.abi.verdict, 'accepted');
  assert.match(f.notes.join('\n'), /finalize/);
  // kexec-metadata does not exist before kho-v3: nothing to judge for it.
  assert.equal(
    f.producers.some((p) => p.name === 'kexec-metadata'),
    false,
  );
});
