/**
 * Kernels of the older ABI eras in the simulator: kho-v1 (6.18-7.0) hands over only after `kho_finalize`
 * (debugfs `out/finalize`), kho-v1-6.16 freezes the state at finalize (-EBUSY after) and creates
 * `out/fdt` only then, kho-v2 has no blob-size and no kexec metadata. Expected behaviour from the spec
 * (§1.3, §1.4, §4.3, §4.4) and the release → profile table in src/abi/profile.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeKhoRoot } from '../../src/abi/kho-fdt.ts';
import { debugfsKhoTree, treePaths } from '../../src/sim/kernel/debugfs.ts';
import { checkKernel, kexecChecked } from '../../src/sim/kernel/invariants.ts';
import {
  Kernel,
  type KernelImageSpec,
  profileForRelease,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { errnoOf } from '../../src/sim/kernel/kho.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const CMD = 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:region';
const spec = (release: string, profile: KernelImageSpec['profile']): KernelImageSpec => ({
  release,
  profile,
  arch: 'x86_64',
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
});
const msgs = (k: Kernel) =>
  k
    .dmesg()
    .split('\n')
    .map((l) => l.replace(/^\[[ \d.]+\] /, ''));

test('release → profile: the ranges of src/abi/profile.ts, open-ended for the newest, none before 6.16', () => {
  assert.deepEqual(
    ['6.15.3', '6.16.0', '6.17.9', '6.18.1', '7.0.2', '7.1.0', '7.2.1', '7.3.4-khovec', '7.4.0', '8.1.0'].map(
      profileForRelease,
    ),
    [
      undefined,
      'kho-v1-6.16',
      'kho-v1-6.16',
      'kho-v1',
      'kho-v1',
      'kho-v2',
      'kho-v3',
      'kho-v4',
      'kho-v4-bootmem',
      'kho-v4-bootmem',
    ],
  );
});

test('kho-v1 (6.19): without finalize the map is 0 and the next kernel disables revival (-ENOENT)', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), { image: spec('6.19.0', 'kho-v1'), cmdline: CMD });
  assert.ok(treePaths(debugfsKhoTree(k)).includes('kho/out/finalize'));
  assert.equal(decodeKhoRoot(k.kho.rootFdt()).memoryMap, 0n);
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const next = k.kexecExec();
  const lines = msgs(next);
  const i = lines.indexOf('KHO: setup: failed to get preserved memory map');
  assert.ok(i >= 0);
  assert.equal(lines[i + 1], 'KHO: disabling KHO revival: -2');
  assert.ok(!lines.includes("Revived memory reservation 'region' from KHO"));
});

test('kho-v1 (6.19): echo 1 > out/finalize serializes the bitmaps; the next kernel restores the memory', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), { image: spec('6.19.0', 'kho-v1'), cmdline: CMD });
  const folio = k.kho.allocPages(3);
  const data = new Uint8Array(8 * 4096).map((_, i) => (i * 13) & 0xff);
  k.machine.memory.write(folio, data);
  k.kho.preserveFolio(folio, 3);
  const fin = debugfsKhoTree(k).writers.get('kho/out/finalize')!;
  assert.throws(
    () => fin(new TextEncoder().encode('0\n')),
    (e: unknown) => errnoOf(e) === -22,
  );
  fin(new TextEncoder().encode('1\n'));
  assert.equal(new TextDecoder().decode(debugfsKhoTree(k).files.get('kho/out/finalize')!()), '1\n');
  // 6.18+: finalize may run again (a fresh serialization)
  k.kho.finalize();
  assert.notEqual(decodeKhoRoot(k.kho.rootFdt()).memoryMap, 0n);
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const { next, verdict } = kexecChecked(k);
  assert.equal(verdict.accepted, true);
  assert.ok(msgs(next).includes('KHO: found kexec handover data.'));
  assert.ok(msgs(next).includes("Revived memory reservation 'region' from KHO"));
  assert.deepEqual(next.kho.restoreFolio(folio), { pa: folio, order: 3 });
  assert.deepEqual(next.machine.memory.read(folio, data.length), data);
  assert.deepEqual(checkKernel(next), []);
});

test('kho-v1-6.16: out/fdt appears at finalize, the state is then frozen (-EBUSY)', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), {
    image: spec('6.16.0', 'kho-v1-6.16'),
    cmdline: CMD,
  });
  assert.ok(!treePaths(debugfsKhoTree(k)).includes('kho/out/fdt'));
  assert.ok(!treePaths(debugfsKhoTree(k)).includes('kho/out/sub_fdts/memblock'));
  debugfsKhoTree(k).writers.get('kho/out/finalize')!(new TextEncoder().encode('1'));
  const paths = treePaths(debugfsKhoTree(k));
  assert.ok(paths.includes('kho/out/fdt'));
  assert.ok(paths.includes('kho/out/sub_fdts/memblock'));
  assert.equal(errnoOf(catchErr(() => k.kho.preserveFolio(k.kho.allocPages(0), 0))), -16);
  assert.equal(
    errnoOf(
      catchErr(() => debugfsKhoTree(k).writers.get('kho/out/finalize')!(new TextEncoder().encode('1'))),
    ),
    -17,
  );
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const next = k.kexecExec();
  assert.ok(msgs(next).includes('KHO: found kexec handover data. Will skip init for some devices'));
  assert.ok(msgs(next).includes("Revived memory reservation 'region' from KHO"));
});

test('kho-v2 (7.1): no blob-size, no kexec-metadata; sub-blob lengths come from the FDT header', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), { image: spec('7.1.0', 'kho-v2'), cmdline: CMD });
  assert.ok(!treePaths(debugfsKhoTree(k)).includes('kho/out/sub_fdts/kexec-metadata'));
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const next = k.kexecExec();
  assert.ok(!next.dmesg().includes('exec from:'));
  const mb = next.inSubFdts.find((s) => s.name === 'memblock')!;
  assert.equal(mb.size, k.kho.outSubtrees().find((s) => s.name === 'memblock')!.size);
  assert.ok(msgs(next).includes("Revived memory reservation 'region' from KHO"));
});

test('a 7.3 kernel kexecs into a 6.19 kernel: kho-v4 is not kho-v1, so the handover is refused with the error number', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), {
    image: spec('7.3.4-khovec', 'kho-v4'),
    cmdline: CMD,
  });
  k.kexecLoad({ image: spec('6.19.0', 'kho-v1'), cmdline: CMD, fileLoad: true });
  const lines = msgs(k.kexecExec());
  assert.ok(
    lines.some((l) => /^KHO: setup: handover FDT \(0x[0-9a-f]+\) is incompatible with 'kho-v1': 1$/.test(l)),
  );
  assert.ok(lines.includes('KHO: disabling KHO revival: 1'));
});

function catchErr(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}
