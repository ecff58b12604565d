/**
 * debugfs mounted into the shell's VFS: the files are computed from kernel state when read, so
 * sub-trees added after boot appear; `out/fdt` keeps the length it had when kho_init created it (the
 * 7.3 quirk the vectors show: 233 bytes in flat-explicit), and is absent after a KHO boot.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeKhoRoot } from '../../src/abi/kho-fdt.ts';
import { debugfsVfsDir, kernelFiles, unameRelease } from '../../src/sim/kernel/debugfs.ts';
import {
  DEFAULT_IMAGE,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { Machine } from '../../src/sim/machine/machine.ts';
import { Vfs } from '../../src/sim/shell/vfs.ts';

const VEC = new URL('../vectors/linux-7.3.4/flat-explicit/', import.meta.url);
const CMD = 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:khovec_region';
const NO_TEST: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};

function mounted(k: Kernel): Vfs {
  const vfs = new Vfs();
  vfs.mkdirp('/sys/kernel/debug');
  vfs.mount('/sys/kernel/debug', debugfsVfsDir(k));
  return vfs;
}

test('mounted debugfs: listing, contents, and a sub-tree added after boot', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), { image: NO_TEST, cmdline: CMD });
  const vfs = mounted(k);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug'), ['kho']);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho/out'), [
    'fdt',
    'scratch_len',
    'scratch_phys',
    'sub_fdts',
  ]);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho/out/sub_fdts'), ['kexec-metadata', 'memblock']);
  assert.equal(
    new TextDecoder().decode(vfs.readFile('/sys/kernel/debug/kho/out/scratch_len')),
    readFileSync(new URL('stage1/out/scratch_len', VEC), 'utf8'),
  );
  // without kho_test the root holds two sub-trees; out/fdt was cut when kexec-metadata alone was in
  const before = vfs.readFile('/sys/kernel/debug/kho/out/fdt');
  assert.equal(before.length, 233);
  const blob = k.kho.allocPreserve(100);
  k.kho.addSubtree('mine', blob, 100n);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho/out/sub_fdts'), ['kexec-metadata', 'memblock', 'mine']);
  assert.equal(vfs.readFile('/sys/kernel/debug/kho/out/sub_fdts/mine').length, 100);
  const after = vfs.readFile('/sys/kernel/debug/kho/out/fdt');
  assert.equal(after.length, 233, 'the length is not updated');
  const root = decodeKhoRoot(after);
  assert.ok(root.truncation, 'the cut-off file is shorter than its totalsize');
  assert.ok(root.blob.header.totalsize > 233);
  // files are mode 0400 as in the kernel
  assert.equal(vfs.stat('/sys/kernel/debug/kho/out/scratch_phys').perm, 0o400);
  // procfs and uname
  const files = kernelFiles(k);
  assert.equal(new TextDecoder().decode(files.get('/proc/cmdline')!()), `${CMD}\n`);
  assert.equal(unameRelease(k), '7.3.4-khovec');
});

test('after a KHO kexec: no out/fdt, in/ with the incoming root and blobs; kho=off: empty debugfs', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), { image: NO_TEST, cmdline: CMD });
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const next = k.kexecExec();
  const vfs = mounted(next);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho'), ['in', 'out']);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho/out'), ['scratch_len', 'scratch_phys', 'sub_fdts']);
  assert.throws(() => vfs.readFile('/sys/kernel/debug/kho/out/fdt'), { code: 'SIM_ENOENT' });
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho/in/sub_fdts'), ['kexec-metadata', 'memblock']);
  assert.deepEqual(vfs.readFile('/sys/kernel/debug/kho/in/fdt'), k.kho.rootFdt());
  const off = Kernel.boot(Machine.create({ memory: '2G' }), { image: NO_TEST, cmdline: 'kho=off' });
  assert.deepEqual(mounted(off).readdir('/sys/kernel/debug'), []);
});
