/**
 * Real and described kernel images in `kho shell`: `--host DIR` shows host files read-only at /host, so
 * `kexec -l /host/bzImage -s` loads a real x86 bzImage (built here by hand from the boot protocol,
 * Documentation/arch/x86/boot.rst: `HdrS`, boot flag 0xAA55, protocol 2.15, LOADED_HIGH, XLF_KERNEL_64 |
 * XLF_CAN_BE_LOADED_ABOVE_4G, the version string at kernel_version + 0x200); the next kernel reports the
 * image's release and the metadata names the previous one. `--image FILE` cold-boots a described kernel.
 * A kernel of another ABI profile rejects the handover and boots without it (no in/).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Session } from '../../src/sim/session/session.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const text = (r: { output: Uint8Array }) => Buffer.from(r.output).toString('latin1');

/** A minimal bzImage: 4 setup sectors + 1 boot sector, then a 64 KiB "payload". */
function bzImage(version: string): Buffer {
  const setupSects = 4;
  const b = Buffer.alloc((setupSects + 1) * 512 + 0x10000);
  b.writeUInt8(setupSects, 0x1f1);
  b.writeUInt32LE(0x10000 / 16, 0x1f4); // syssize in 16-byte units
  b.writeUInt16LE(0xaa55, 0x1fe);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206); // protocol 2.15
  b.writeUInt16LE(0x400, 0x20e); // kernel_version: string at 0x400 + 0x200
  b.write(`${version}\0`, 0x600, 'latin1');
  b.writeUInt8(0x01, 0x211); // LOADED_HIGH
  b.writeUInt32LE(0x200000, 0x230); // kernel_alignment 2 MiB
  b.writeUInt8(1, 0x234); // relocatable
  b.writeUInt16LE(0x3, 0x236); // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  b.writeUInt32LE(2047, 0x238); // cmdline_size
  b.writeBigUInt64LE(0x1000000n, 0x258); // pref_address
  b.writeUInt32LE(0x2200000, 0x260); // init_size 34 MiB
  return b;
}

test('kho shell --host: kexec -l a real bzImage with -s; the next kernel runs its release', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kho-img-'));
  try {
    writeFileSync(join(dir, 'bzImage'), bzImage('7.3.9-custom (root@build) #2 SMP'));
    writeFileSync(join(dir, 'notakernel'), 'hello\n');
    const script = [
      'kexec -l /host/notakernel -s',
      'echo "load1 $?"',
      'kexec -l /host/bzImage --reuse-cmdline -s',
      'echo "load2 $?"',
      'kexec -e > /dev/null',
      'uname -r',
      'dmesg | grep "exec from"',
      'touch /host/x',
      'ls /sys/kernel/debug/kho/in/sub_fdts',
    ].join('\n');
    const r = spawnSync(process.execPath, ['bin/kho.js', 'shell', '--mem', '2G', '--host', dir], {
      cwd: ROOT,
      input: `${script}\n`,
      encoding: 'latin1',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], 'load1 255');
    assert.equal(lines[1], 'load2 0');
    assert.equal(lines[2], '7.3.9-custom', "the release is the bzImage's version string's first word");
    assert.match(lines[3], /\] KHO: exec from: 7\.3\.4-khovec \(count 1\)$/);
    assert.deepEqual(lines.slice(4, 8), ['kexec-metadata', 'kho_test', 'memblock', '']);
    assert.equal(
      r.stderr,
      'Cannot determine the file type of /host/notakernel\n' +
        "touch: cannot touch '/host/x': Read-only file system\n",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kho shell --image: cold-boots a described kernel; bad options exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kho-img-'));
  try {
    const desc = {
      kind: 'kho-simulated-kernel',
      release: '7.3.0-described',
      profile: 'kho-v4',
      config: { CONFIG_KEXEC_HANDOVER: true, CONFIG_KEXEC_HANDOVER_DEBUGFS: true },
      memSize: '34M',
    };
    writeFileSync(join(dir, 'k.json'), JSON.stringify(desc));
    const r = spawnSync(
      process.execPath,
      ['bin/kho.js', 'shell', '--mem', '2G', '--image', join(dir, 'k.json')],
      {
        cwd: ROOT,
        input:
          'uname -r\nls /sys/kernel/debug/kho/out/sub_fdts\ngrep -c TEST_KEXEC /boot/config-7.3.0-described\n',
        encoding: 'latin1',
        timeout: 60_000,
      },
    );
    assert.equal(r.stderr, '');
    // no CONFIG_TEST_KEXEC_HANDOVER in its Kconfig: no kho_test sub-tree
    assert.equal(r.stdout, '7.3.0-described\nkexec-metadata\nmemblock\n0\n');
    assert.equal(r.status, 1, 'grep -c found nothing: the last status');
    const bad = spawnSync(process.execPath, ['bin/kho.js', 'shell', '--image', join(dir, 'missing')], {
      cwd: ROOT,
      input: '',
      encoding: 'latin1',
      timeout: 60_000,
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /IO_ENOENT: cannot read .*missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a kernel of another ABI profile rejects the handover and boots without it', async () => {
  const s = new Session({ mem: '2G' });
  const desc =
    '{"kind":"kho-simulated-kernel","release":"6.18.1","profile":"kho-v1","config":{"CONFIG_KEXEC_HANDOVER":true,"CONFIG_KEXEC_HANDOVER_DEBUGFS":true},"memSize":"34M"}';
  assert.equal((await s.run(`echo '${desc}' > /tmp/old.json`)).status, 0);
  assert.equal((await s.run('kexec -l /tmp/old.json --reuse-cmdline -s')).status, 0);
  const e = await s.run('kexec -e');
  assert.equal(e.status, 0, 'a rejected handover is not an invariant violation: nothing was promised');
  assert.match(text(e), /\[now running 6\.18\.1: KHO handover rejected: /);
  assert.equal(text(await s.run('uname -r')), '6.18.1\n');
  assert.equal(text(await s.run('ls /sys/kernel/debug/kho')), 'out\n');
  assert.equal(text(await s.run('dmesg | grep -c Revived')), '0\n');
  assert.equal(s.history.at(-1)?.khoBoot, false);
});
