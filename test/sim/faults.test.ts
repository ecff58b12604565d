/**
 * Fault injection: each fault of src/sim/kernel/faults.ts has its defined outcome — detected by the
 * invariant checker, warned about with the kernel's texts (spec §4.3, §5, §6) and a cold boot, or a
 * failed load / failed boot with a clear reason. Never silent data loss.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KhoError } from '../../src/errors.ts';
import {
  corruptRootFdt,
  scribble,
  scribblePreserved,
  scribbleTracker,
  setMemblockCompatible,
  setMetadataVersion,
} from '../../src/sim/kernel/faults.ts';
import { kexecChecked } from '../../src/sim/kernel/invariants.ts';
import {
  DEFAULT_IMAGE,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const CMD = 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:khovec_region';
const NO_TEST: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};
const boot = (cmdline = CMD) => Kernel.boot(Machine.create({ memory: '2G' }), { image: NO_TEST, cmdline });
const load = (k: Kernel) => k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
const msgs = (k: Kernel) =>
  k
    .dmesg()
    .split('\n')
    .map((l) => l.replace(/^\[[ \d.]+\] /, ''));

test('a scribble over preserved memory during the handover is caught with its address', () => {
  const k = boot();
  load(k);
  const region = k.reserveMem.findByName('khovec_region')!;
  assert.throws(
    () => kexecChecked(k, { fault: (old) => scribble(old, region.start + 0x1000n, 8) }),
    (e: unknown) =>
      e instanceof KhoError &&
      e.code === 'SIM_INVARIANT_PRESERVED_CHANGED' &&
      e.path === `phys:0x${region.start.toString(16)}`,
  );
});

test('scribblePreserved: a data block is reported; the root FDT page makes the next kernel refuse it all', () => {
  const k = boot();
  load(k);
  let pa = 0n;
  assert.throws(
    () =>
      kexecChecked(k, {
        fault: (old) => {
          pa = scribblePreserved(old, 1); // block 0 is the root FDT page, block 1 the reserve_mem region
        },
      }),
    (e: unknown) =>
      e instanceof KhoError &&
      e.code === 'SIM_INVARIANT_PRESERVED_CHANGED' &&
      e.path === `phys:0x${pa.toString(16)}`,
  );
});

test('a scribbled root FDT page: the next kernel says the FDT is invalid and boots without KHO state', () => {
  const k = boot();
  load(k);
  const { next, verdict } = kexecChecked(k, {
    fault: (old) => {
      assert.equal(scribblePreserved(old, 0), old.kho.rootFdtPhys);
    },
  });
  assert.equal(verdict.accepted, false);
  assert.match(verdict.reason ?? '', /invalid FDT/);
  assert.ok(msgs(next).includes('KHO: disabling KHO revival'));
});

test('a scribble elsewhere (not preserved, not the tracker) changes nothing that was promised', () => {
  const k = boot();
  load(k);
  scribble(k, 0x20000000n, 4096);
  const { verdict } = kexecChecked(k);
  assert.equal(verdict.accepted, true);
});

test('a destroyed radix root: the next kernel cannot walk the map and boots without KHO state', () => {
  const k = boot();
  load(k);
  scribbleTracker(k, 0);
  const { next, verdict } = kexecChecked(k);
  assert.equal(verdict.accepted, false);
  assert.match(verdict.reason ?? '', /bad memory map/);
  assert.ok(msgs(next).some((l) => l.startsWith('KHO: failed to walk the preserved memory map: ')));
  assert.equal(next.kho.isKhoBoot, false);
  assert.ok(!next.dmesg().includes('exec from:'));
});

for (const [how, expected] of [
  ['magic', /^KHO: setup: handover FDT \(0x[0-9a-f]+\) is invalid: -9$/],
  ['truncate', /^KHO: setup: handover FDT \(0x[0-9a-f]+\) is invalid: -8$/],
  ['compatible', /^KHO: setup: handover FDT \(0x[0-9a-f]+\) is incompatible with 'kho-v4': 1$/],
] as const) {
  test(`a corrupted root FDT (${how}) is refused: warning, revival disabled, fresh scratch, count restarts`, () => {
    const k = boot();
    load(k);
    corruptRootFdt(k, how);
    const { next, verdict } = kexecChecked(k);
    assert.equal(verdict.accepted, false);
    const lines = msgs(next);
    const i = lines.findIndex((l) => expected.test(l));
    assert.ok(i >= 0, `expected ${expected} in\n${lines.filter((l) => l.includes('KHO')).join('\n')}`);
    assert.equal(lines[i + 1], 'KHO: disabling KHO revival');
    assert.ok(!lines.includes('KHO: found kexec handover data.'));
    assert.equal(next.kexecCount, 0);
    // the region is allocated afresh, not revived
    assert.ok(!lines.includes("Revived memory reservation 'khovec_region' from KHO"));
    assert.ok(next.debugfsKho && next.outFdtLen !== null, 'a cold-boot view: out/fdt exists');
  });
}

test('kexec-metadata version 2: the next kernel warns and the chain restarts at 1', () => {
  const k = boot();
  load(k);
  setMetadataVersion(k, 2);
  const { next } = kexecChecked(k);
  const lines = msgs(next);
  assert.ok(lines.includes('KHO: kexec-metadata version 2 not supported (expected 1)'));
  assert.ok(!lines.some((l) => l.startsWith('KHO: exec from:')));
  assert.equal(next.kexecCount, 0);
  // everything else was handed over
  assert.ok(lines.includes("Revived memory reservation 'khovec_region' from KHO"));
  load(next);
  assert.ok(msgs(next.kexecExec()).includes('KHO: exec from: 7.3.4-khovec (count 1)'));
});

test("memblock compatible 'memblock-v2': the region is not revived but allocated afresh, with the kernel's warning", () => {
  const k = boot();
  load(k);
  setMemblockCompatible(k, 'memblock-v2');
  const { next } = kexecChecked(k);
  const lines = msgs(next);
  assert.ok(lines.includes("KHO memblock FDT is not 'memblock-v1'"));
  assert.ok(!lines.includes("Revived memory reservation 'khovec_region' from KHO"));
  // the old region stays preserved (reserved) in the next kernel: nothing was lost silently
  const old = k.reserveMem.findByName('khovec_region')!;
  assert.equal(next.buddy.pageInfo(Number(old.start >> 12n)).state, 'reserved');
  assert.notEqual(next.reserveMem.findByName('khovec_region')!.start, old.start);
});

test('scratch too small for the payload: the load fails with -EADDRNOTAVAIL (SIM_KEXEC_NO_FIT)', () => {
  const k = boot('kho=on kho_scratch=4M,4M,4M');
  assert.throws(() => load(k), { code: 'SIM_KEXEC_NO_FIT' });
  assert.equal(k.loaded, null);
});

test("scratch that holds the segments but not the next kernel's early allocations: it panics with a reason", () => {
  // 40 MiB lowmem takes the 34 MiB kernel; the memmap (32 MiB) then fits nowhere in scratch
  const k = boot('kho=on kho_scratch=40M,2M,2M');
  load(k);
  assert.throws(
    () => k.kexecExec(),
    (e: unknown) =>
      e instanceof KhoError && e.code === 'SIM_KERNEL_PANIC' && /KHO scratch only/.test(e.message),
  );
});

test('checkInvariants: true checks every kexec of the chain without being asked', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), {
    image: NO_TEST,
    cmdline: CMD,
    checkInvariants: true,
  });
  load(k);
  const next = k.kexecExec();
  assert.equal(next.checkInvariants, true);
  load(next);
  const region = next.reserveMem.findByName('khovec_region')!;
  assert.throws(() => next.kexecExec({ fault: (old) => scribble(old, region.start, 4) }), {
    code: 'SIM_INVARIANT_PRESERVED_CHANGED',
  });
});
