/**
 * kexec in the simulator: the file loader hands over through the architecture's boot data (x86
 * setup_data SETUP_KEXEC_KHO, arm64 /chosen), the user-space loader does not, the next command line is
 * exactly the one given, a kernel of another ABI profile refuses the handover, a cold reboot loses
 * memory and restarts the count. Expected values come from the spec (§4.2, §6, invariant 12) and the
 * vectors' log texts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findKhoSetupData } from '../../src/abi/boot.ts';
import { decodeScratchArray } from '../../src/abi/scratch.ts';
import { debugfsKhoTree, procCmdline, treePaths } from '../../src/sim/kernel/debugfs.ts';
import { checkKernel, kexecChecked } from '../../src/sim/kernel/invariants.ts';
import {
  DEFAULT_IMAGE,
  imageDescriptionJson,
  imageSpecOf,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { machinePhysMemory } from '../../src/sim/kernel/kho.ts';
import { loadKernelImage } from '../../src/sim/kexec/image.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const CMD = 'kho=on kho_scratch=16M,64M,32M reserve_mem=4M:4096:khovec_region';
const NO_TEST: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};
const boot = (machine = Machine.create({ memory: '2G' }), cmdline = CMD, image = NO_TEST) =>
  Kernel.boot(machine, { image, cmdline });

test('-s: setup_data SETUP_KEXEC_KHO in boot_params points at the root FDT and the scratch copy; segments in scratch', () => {
  const k = boot();
  const r = k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  assert.equal(r.handover, true);
  assert.deepEqual(checkKernel(k), []);
  for (const s of r.plan.segments)
    assert.ok(
      k.scratch.some((a) => s.mem >= a.addr && s.mem + s.memsz <= a.addr + a.size),
      `${s.name} inside scratch`,
    );
  const h = k.prepareHandoff();
  const mem = machinePhysMemory(k.machine);
  const head = new DataView(k.machine.memory.read(h.bootParams! + 0x250n, 8).buffer).getBigUint64(0, true);
  const sd = findKhoSetupData(mem, head);
  assert.ok(sd);
  const seg = r.plan.segments.find((s) => s.name === 'kho-scratch')!;
  // { fdt_addr, fdt_size = PAGE_SIZE, scratch_addr, scratch_size = 16 * count }
  assert.deepEqual(
    [sd.fdtAddr, sd.fdtSize, sd.scratchAddr, sd.scratchSize],
    [k.kho.rootFdtPhys, 4096n, seg.mem, 48n],
  );
  assert.deepEqual(
    decodeScratchArray(k.machine.memory.read(seg.mem, 48)).map((e) => [e.addr, e.size]),
    k.scratch.map((a) => [a.addr, a.size]),
  );
});

test('arm64: the handover travels in the DTB /chosen and the next kernel finds it', () => {
  const m = Machine.create({ memory: '2G', arch: 'arm64' });
  const k = boot(m, CMD, { ...NO_TEST, arch: 'arm64' });
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const { next } = kexecChecked(k);
  assert.ok(next.dmesg().includes('KHO: found kexec handover data.'));
  assert.ok(next.dmesg().includes('KHO: exec from: 7.3.4-khovec (count 1)'));
  assert.equal(next.kho.incoming?.fdtPhys, k.kho.rootFdtPhys);
});

test('without -s the load works, says plainly that nothing is handed over, and the next boot is cold', () => {
  const k = boot();
  const r = k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: false });
  assert.equal(r.handover, false);
  assert.match(r.message, /NOT handed over/);
  const next = k.kexecExec();
  const d = next.dmesg();
  assert.ok(!d.includes('found kexec handover data'));
  assert.ok(!d.includes('exec from:'));
  assert.ok(!d.includes('Revived memory reservation'));
  assert.equal(next.kho.isKhoBoot, false);
  // fresh scratch and a cold-boot debugfs view: out/fdt, no in/
  const paths = treePaths(debugfsKhoTree(next));
  assert.ok(paths.includes('kho/out/fdt'));
  assert.ok(!paths.includes('kho/in'));
});

test('the next command line is exactly the given one: empty means no kho=on, so KHO stays off (Kconfig default n)', () => {
  const k = boot();
  k.kexecLoad({ image: k.image, fileLoad: true });
  const next = k.kexecExec();
  assert.equal(procCmdline(next), '\n');
  // kho_populate does not look at kho=, so the handover is found and preserved memory stays reserved ...
  assert.ok(next.dmesg().includes('KHO: found kexec handover data.'));
  assert.equal(next.kho.isKhoBoot, true);
  assert.deepEqual(checkKernel(next), []);
  // ... but kho_init returns at once: no metadata, no debugfs, and a later kexec hands nothing over
  assert.equal(next.kho.enabled, false);
  assert.ok(!next.dmesg().includes('exec from:'));
  assert.deepEqual(treePaths(debugfsKhoTree(next)), []);
  assert.equal(next.kexecLoad({ image: next.image, cmdline: CMD, fileLoad: true }).handover, false);
});

test('a kernel of another ABI profile refuses the handover and boots cold; the count restarts', () => {
  const k = boot();
  const v3: KernelImageSpec = { ...NO_TEST, release: '7.1.0-sim', profile: 'kho-v3' };
  k.kexecLoad({ image: v3, cmdline: CMD, fileLoad: true });
  const { next, verdict } = kexecChecked(k);
  assert.equal(verdict.accepted, false);
  const lines = next
    .dmesg()
    .split('\n')
    .map((l) => l.replace(/^\[[ \d.]+\] /, ''));
  assert.ok(
    lines.includes(
      `KHO: setup: handover FDT (0x${k.kho.rootFdtPhys.toString(16)}) is incompatible with 'kho-v3': 1`,
    ),
  );
  assert.equal(
    lines[
      lines.indexOf(
        'KHO: setup: handover FDT (0x' +
          k.kho.rootFdtPhys.toString(16) +
          ") is incompatible with 'kho-v3': 1",
      ) + 1
    ],
    'KHO: disabling KHO revival',
  );
  assert.equal(next.kho.isKhoBoot, false);
  assert.equal(next.kexecCount, 0);
  assert.equal(next.release, '7.1.0-sim');
  // its own outgoing metadata starts at 1 again
  next.kexecLoad({ image: next.image, cmdline: CMD, fileLoad: true });
  const third = next.kexecExec();
  assert.ok(third.dmesg().includes('KHO: exec from: 7.1.0-sim (count 1)'));
});

test('a simulated image description (helper I) boots its release and profile', () => {
  const k = boot();
  const img = loadKernelImage(
    new TextEncoder().encode(
      JSON.stringify({
        kind: 'kho-simulated-kernel',
        release: '7.3.5-sim',
        profile: 'kho-v4',
        config: { CONFIG_KEXEC_HANDOVER: true, CONFIG_KEXEC_HANDOVER_DEBUGFS: true },
        memSize: '34M',
      }),
    ),
  );
  k.kexecLoad({ image: img, cmdline: CMD, fileLoad: true });
  const next = k.kexecExec();
  assert.equal(next.release, '7.3.5-sim');
  assert.ok(next.dmesg().includes('KHO: exec from: 7.3.4-khovec (count 1)'));
  assert.ok(next.dmesg().includes("Revived memory reservation 'khovec_region' from KHO"));
});

test('kexec -u unloads; kexec -e with nothing loaded is -EINVAL; a stopped kernel refuses calls', () => {
  const k = boot();
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  k.kexecUnload();
  assert.throws(() => k.kexecExec(), { code: 'SIM_EINVAL' });
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  k.kexecExec();
  assert.throws(() => k.kexecLoad({ image: k.image, fileLoad: true }), { code: 'SIM_KERNEL_STOPPED' });
});

test('reboot: memory is lost, the cold-boot command line is used, the count starts from 0 again', () => {
  const k = boot();
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const k2 = k.kexecExec();
  const region = k2.reserveMem.findByName('khovec_region')!;
  k2.machine.memory.fill(region.start, 4096n, 0x5a);
  const cold = k2.reboot();
  assert.equal(cold.machine.powerCycles, 1);
  assert.equal(cold.cmdline, CMD);
  assert.equal(cold.kexecCount, 0);
  assert.ok(!cold.dmesg().includes('found kexec handover data'));
  const r = cold.reserveMem.findByName('khovec_region')!;
  assert.deepEqual(cold.machine.memory.read(region.start, 16), new Uint8Array(16));
  assert.ok(r);
  cold.kexecLoad({ image: cold.image, cmdline: CMD, fileLoad: true });
  assert.ok(cold.kexecExec().dmesg().includes('KHO: exec from: 7.3.4-khovec (count 1)'));
});

test('memory the old kernel did not preserve is garbage in the next kernel; preserved memory is not', () => {
  const k = boot();
  const kept = k.kho.allocPages(0);
  const lost = k.kho.allocPages(0);
  const data = new Uint8Array(4096).fill(0x11);
  k.machine.memory.write(kept, data);
  k.machine.memory.write(lost, data);
  k.kho.preserveFolio(kept, 0);
  k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
  const { next } = kexecChecked(k);
  assert.deepEqual(next.machine.memory.read(kept, 4096), data);
  assert.notDeepEqual(next.machine.memory.read(lost, 4096), data);
  assert.equal(next.buddy.pageInfo(Number(kept >> 12n)).state, 'reserved');
});

test("a kernel's own image file (for /boot/bzImage) parses back to the same kernel", () => {
  const img = loadKernelImage(new TextEncoder().encode(imageDescriptionJson(DEFAULT_IMAGE)), {
    arch: 'x86_64',
  });
  assert.equal(img.format, 'description');
  assert.equal(img.release, '7.3.4-khovec');
  assert.equal(img.x86?.initSize, 0x2200000n);
  const back = imageSpecOf(img, NO_TEST);
  assert.deepEqual(
    { release: back.release, profile: back.profile, arch: back.arch, config: back.config },
    {
      release: DEFAULT_IMAGE.release,
      profile: DEFAULT_IMAGE.profile,
      arch: DEFAULT_IMAGE.arch,
      config: DEFAULT_IMAGE.config,
    },
  );
});
