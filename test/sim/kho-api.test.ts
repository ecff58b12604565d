/**
 * The simulated KHO core API: the kernel's errors for bad calls (spec §2.4, errno values from the
 * spec's table), preserve/unpreserve semantics, restore refusals (spec §2.3, invariant 10-11), and a
 * user-written producer carrying folios, page ranges and a vmalloc area across several kexecs.
 * Expected values are hand-derived in each test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KhoError } from '../../src/errors.ts';
import { checkKernel, kexecChecked } from '../../src/sim/kernel/invariants.ts';
import {
  DEFAULT_IMAGE,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { errnoOf, type VmallocArea } from '../../src/sim/kernel/kho.ts';
import type { KhoProducer } from '../../src/sim/kernel/producers.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const CMD = 'kho=on kho_scratch=16M,64M,32M';
const NO_TEST: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};
const boot = (opts: { cmdline?: string; image?: KernelImageSpec; producers?: KhoProducer[] } = {}) =>
  Kernel.boot(Machine.create({ memory: '2G' }), { image: NO_TEST, cmdline: CMD, ...opts });
const hop = (k: Kernel) => {
  k.kexecLoad({ image: k.image, cmdline: k.cmdline, fileLoad: true });
  return kexecChecked(k).next;
};
const errno = (fn: () => unknown): number | undefined => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KhoError, String(e));
    return errnoOf(e);
  }
  return undefined;
};

test("the kernel's errors: -EINVAL, -EEXIST, -E2BIG, -ENOENT", () => {
  // KHO off (no kho=on, and CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT is not set): preserve is -EINVAL
  const off = boot({ cmdline: '' });
  assert.equal(off.kho.enabled, false);
  assert.equal(
    errno(() => off.kho.preserveFolio(0x10000000n, 0)),
    -22,
  );
  const k = boot();
  const pa = k.kho.allocPages(1); // an order-1 folio: 8 KiB aligned
  assert.equal(
    errno(() => k.kho.preserveFolio(pa + 4096n, 1)),
    -22,
    'not aligned to its order',
  );
  assert.equal(
    errno(() => k.kho.preserveFolio(pa + 8n, 0)),
    -22,
    'not page-aligned',
  );
  // CONFIG_KEXEC_HANDOVER_DEBUG (the vectors' kernel): a block in scratch is refused
  assert.equal(
    errno(() => k.kho.preserveFolio(k.scratch[0].addr, 0)),
    -22,
  );
  assert.equal(
    errno(() => k.kho.preservePages(k.scratch[1].addr - 4096n, 2)),
    -22,
  );
  // duplicate sub-tree name: -EEXIST (kexec-metadata is already there)
  const blob = k.kho.allocPreserve(16);
  assert.equal(
    errno(() => k.kho.addSubtree('kexec-metadata', blob, 16n)),
    -17,
  );
  // kho_alloc_preserve: 0 bytes -EINVAL; 4 MiB is order 10 = MAX_PAGE_ORDER; one byte more is -E2BIG
  assert.equal(
    errno(() => k.kho.allocPreserve(0)),
    -22,
  );
  assert.equal(
    errno(() => k.kho.allocPreserve(4 * 1024 * 1024 + 1)),
    -7,
  );
  const big = k.kho.allocPreserve(4 * 1024 * 1024);
  assert.equal(big % (4n << 20n), 0n);
  // a cold boot has nothing incoming
  assert.equal(
    errno(() => k.kho.retrieveSubtree('memblock')),
    -2,
  );
  assert.deepEqual(checkKernel(k), []);
});

test('without CONFIG_KEXEC_HANDOVER_DEBUG a block in scratch is accepted; the checker still flags it', () => {
  const k = boot({
    image: { ...NO_TEST, config: { ...NO_TEST.config, CONFIG_KEXEC_HANDOVER_DEBUG: false } },
  });
  // a page a driver took from the scratch area (not free, so only the scratch rule is broken)
  k.buddy.reservePages(Number(k.scratch[0].addr >> 12n), 1, 'driver');
  k.kho.preserveFolio(k.scratch[0].addr, 0);
  const v = checkKernel(k);
  assert.deepEqual(
    v.map((x) => x.code),
    ['SIM_INVARIANT_PRESERVED_IN_SCRATCH'],
  );
});

test('preserve twice, unpreserve once: the bit is gone (no reference count)', () => {
  const k = boot();
  const a = k.kho.allocPages(2);
  const b = k.kho.allocPages(0);
  k.kho.preserveFolio(a, 2);
  k.kho.preserveFolio(a, 2);
  k.kho.preserveFolio(b, 0);
  k.kho.unpreserveFolio(a, 2);
  const next = hop(k);
  const blocks = next.kho.incoming!.blocks;
  assert.ok(!blocks.some((x) => x.pa === a));
  assert.ok(blocks.some((x) => x.pa === b && x.order === 0));
});

test('kho_preserve_pages splits into aligned blocks: 5 pages at a 32 KiB boundary = order 2 + order 0', () => {
  const k = boot();
  const base = k.kho.allocPages(3); // 8 pages, 32 KiB aligned
  const before = new Set(k.kho.preservedBlocks().map((x) => x.pa));
  k.kho.preservePages(base, 5);
  const added = k.kho.preservedBlocks().filter((x) => !before.has(x.pa));
  assert.deepEqual(added, [
    { pa: base, order: 2 },
    { pa: base + 0x4000n, order: 0 },
  ]);
  const data = new Uint8Array(5 * 4096).map((_, i) => (i * 7) & 0xff);
  k.machine.memory.write(base, data);
  const next = hop(k);
  assert.equal(next.kho.restorePages(base, 5), base);
  // every page its own order-0 page; the content is intact
  for (let i = 0; i < 5; i++) {
    const info = next.buddy.pageInfo(Number(base >> 12n) + i);
    assert.equal(info.state, 'allocated');
    assert.equal(info.order, 0);
  }
  assert.deepEqual(next.machine.memory.read(base, data.length), data);
  // a second restore finds no magic
  assert.equal(next.kho.restorePages(base, 5), null);
});

test('restore refuses memory that was not preserved, a tail page, and a second restore; warns once', () => {
  const k = boot();
  const f = k.kho.allocPages(1);
  k.kho.preserveFolio(f, 1);
  const plain = k.kho.allocPages(0);
  const next = hop(k);
  assert.equal(next.kho.restoreFolio(plain), null, 'never preserved');
  assert.equal(next.kho.restoreFolio(f + 4096n), null, 'tail page of an order-1 folio');
  assert.deepEqual(next.kho.restoreFolio(f), { pa: f, order: 1 });
  assert.equal(next.kho.restoreFolio(f), null, 'already restored');
  const warnings = next
    .dmesg()
    .split('\n')
    .filter((l) => l.includes('WARNING: CPU: 0 PID: 1 at kernel/liveupdate'));
  assert.equal(warnings.length, 1);
  assert.equal(next.buddy.pageInfo(Number(f >> 12n)).state, 'allocated');
});

/** A user producer: a folio, a page range and a vmalloc area with a known pattern, carried forever. */
function patternProducer(): KhoProducer {
  const pattern = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
  const save = (ctx: Parameters<NonNullable<KhoProducer['onBoot']>>[0], hops: number) => {
    const kho = ctx.kho;
    const folio = kho.allocPages(2);
    kho.machine.memory.write(folio, pattern(16384, 1));
    kho.preserveFolio(folio, 2);
    const range = kho.allocPages(2);
    kho.machine.memory.write(range, pattern(3 * 4096, 2));
    kho.preservePages(range, 3);
    const area: VmallocArea = kho.vmalloc(10000);
    kho.writeVmalloc(area, pattern(10000, 3));
    const desc = kho.preserveVmalloc(area);
    // the producer's own blob: a binary struct with the addresses and the hop count
    const blob = kho.allocPreserve(64);
    const dv = new DataView(new ArrayBuffer(48));
    dv.setBigUint64(0, folio, true);
    dv.setBigUint64(8, range, true);
    dv.setBigUint64(16, desc.first, true);
    dv.setUint32(24, desc.totalPages, true);
    dv.setUint16(28, desc.flags, true);
    dv.setUint16(30, desc.order, true);
    dv.setUint32(32, hops, true);
    kho.machine.memory.write(blob, new Uint8Array(dv.buffer));
    kho.addSubtree('pattern', blob, 48n);
  };
  return {
    name: 'pattern',
    onBoot: (ctx) => save(ctx, 0),
    onRestore(ctx, sub) {
      const kho = ctx.kho;
      const dv = new DataView(kho.machine.memory.read(sub.phys, 48).buffer);
      const folio = kho.restoreFolio(dv.getBigUint64(0, true));
      const range = dv.getBigUint64(8, true);
      assert.ok(folio && folio.order === 2);
      assert.deepEqual(kho.machine.memory.read(folio.pa, 16384), pattern(16384, 1));
      assert.equal(kho.restorePages(range, 3), range);
      assert.deepEqual(kho.machine.memory.read(range, 3 * 4096), pattern(3 * 4096, 2));
      const area = kho.restoreVmalloc({
        first: dv.getBigUint64(16, true),
        totalPages: dv.getUint32(24, true),
        flags: dv.getUint16(28, true),
        order: dv.getUint16(30, true),
      });
      assert.ok(area);
      assert.deepEqual(kho.readVmalloc(area, 10000), pattern(10000, 3));
      const hops = dv.getUint32(32, true) + 1;
      ctx.state.set('pattern', hops);
      kho.freePages(folio.pa, 2);
      save(ctx, hops);
    },
  };
}

test('a user producer: folio, pages and vmalloc restored intact over three kexecs', () => {
  let k = boot({ producers: [patternProducer()] });
  for (let i = 1; i <= 3; i++) {
    k = hop(k);
    assert.equal(k.producerState.get('pattern'), i);
    assert.deepEqual(checkKernel(k), []);
  }
  assert.ok(!k.dmesg().includes('initcall pattern returned'));
});

test('producers: a failing one is logged as a failed initcall and the boot goes on; Kconfig gates them', () => {
  const failing: KhoProducer = {
    name: 'broken',
    onBoot(ctx) {
      ctx.kho.allocPreserve(0); // -EINVAL
    },
  };
  let ran = false;
  const gated: KhoProducer = {
    name: 'gated',
    config: 'CONFIG_MY_PRODUCER',
    onBoot() {
      ran = true;
    },
  };
  const k = boot({ producers: [failing, gated] });
  assert.ok(
    k
      .dmesg()
      .split('\n')
      .some((l) => / initcall broken returned -22: /.test(l)),
  );
  assert.equal(ran, false, 'CONFIG_MY_PRODUCER is not set');
  assert.ok(k.dmesg().includes('Run /init as init process'));
  // with KHO off no producer runs at all
  let offRan = false;
  boot({
    cmdline: 'kho=off',
    producers: [
      {
        name: 'p',
        onBoot: () => {
          offRan = true;
        },
      },
    ],
  });
  assert.equal(offRan, false);
});
