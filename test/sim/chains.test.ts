/**
 * Property: random chains of preservations, unpreservations, sub-tree changes, kexecs (with and
 * without -s) and cold reboots keep every invariant (src/sim/kernel/invariants.ts, checked after every
 * step and around every kexec), and everything preserved when a `-s` kexec happens is restorable in the
 * next kernel with the very bytes it had — however many hops it is carried. The model of what should
 * survive is kept by the test (a user who knows what it preserved), not by the code under test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { assertInvariants, kexecChecked } from '../../src/sim/kernel/invariants.ts';
import {
  DEFAULT_IMAGE,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const CMD = 'kho=on kho_scratch=16M,64M,32M reserve_mem=1M:4096:chain';
const IMAGE: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};

type Op =
  | { op: 'preserve'; order: number; seed: number }
  | { op: 'unpreserve'; pick: number }
  | { op: 'subtree'; pick: number }
  | { op: 'kexec' }
  | { op: 'kexec-no-s' }
  | { op: 'reboot' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('preserve' as const),
      order: fc.integer({ min: 0, max: 4 }),
      seed: fc.nat(255),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unpreserve' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('subtree' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.constant({ op: 'kexec' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'kexec-no-s' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reboot' as const }) },
);

interface Held {
  pa: bigint;
  order: number;
  bytes: Uint8Array;
}

const pattern = (n: number, seed: number) =>
  new Uint8Array(n).map((_, i) => (i * 131 + seed * 7 + (i >> 12)) & 0xff);

let hops = 0;

function runChain(ops: Op[]): Kernel {
  let k = Kernel.boot(Machine.create({ memory: '1G' }), { image: IMAGE, cmdline: CMD });
  let held: Held[] = [];
  let chainBytes: Uint8Array | undefined;
  let subtrees: { name: string; pa: bigint }[] = [];
  const ps = 4096;
  for (const o of ops) {
    switch (o.op) {
      case 'preserve': {
        const pa = k.kho.allocPages(o.order);
        const bytes = pattern(ps << o.order, o.seed);
        k.machine.memory.write(pa, bytes);
        k.kho.preserveFolio(pa, o.order);
        held.push({ pa, order: o.order, bytes });
        break;
      }
      case 'unpreserve': {
        if (held.length === 0) break;
        const [h] = held.splice(o.pick % held.length, 1);
        k.kho.unpreserveFolio(h.pa, h.order);
        k.kho.freePages(h.pa, h.order);
        break;
      }
      case 'subtree': {
        if (subtrees.length > 0 && o.pick % 2 === 0) {
          const [s] = subtrees.splice(o.pick % subtrees.length, 1);
          k.kho.removeSubtree(s.pa);
          k.kho.unpreserveFree(s.pa);
        } else {
          const pa = k.kho.allocPreserve(32);
          const name = `chain-${o.pick % 1000}`;
          if (subtrees.some((s) => s.name === name)) {
            assert.throws(() => k.kho.addSubtree(name, pa, 32n), { code: 'SIM_EEXIST' });
            k.kho.unpreserveFree(pa);
          } else {
            k.kho.addSubtree(name, pa, 32n);
            subtrees.push({ name, pa });
          }
        }
        break;
      }
      case 'kexec': {
        const region = k.reserveMem.findByName('chain')!;
        chainBytes = k.machine.memory.read(region.start, 1 << 20);
        k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
        const { next, verdict } = kexecChecked(k);
        hops++;
        assert.equal(verdict.accepted, true);
        k = next;
        // reserve_mem comes back at the same address with the same bytes
        const again = next.reserveMem.findByName('chain')!;
        assert.equal(again.start, region.start);
        assert.deepEqual(next.machine.memory.read(again.start, 1 << 20), chainBytes);
        // every sub-tree is there with its address
        for (const s of subtrees) assert.equal(next.kho.retrieveSubtree(s.name).phys, s.pa);
        subtrees = [];
        // restore every held folio, check its bytes, preserve it again in the new kernel
        for (const h of held) {
          const f = k.kho.restoreFolio(h.pa);
          assert.deepEqual(f, { pa: h.pa, order: h.order });
          assert.deepEqual(k.machine.memory.read(h.pa, ps << h.order), h.bytes);
          k.kho.preserveFolio(h.pa, h.order);
        }
        // the new region content is arbitrary but must be carried again
        k.machine.memory.write(again.start, pattern(4096, hops & 0xff));
        break;
      }
      case 'kexec-no-s': {
        k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: false });
        k = kexecChecked(k).next;
        hops++;
        assert.equal(k.kho.isKhoBoot, false);
        held = [];
        subtrees = [];
        break;
      }
      case 'reboot': {
        k = k.reboot();
        assert.equal(k.kexecCount, 0);
        held = [];
        subtrees = [];
        break;
      }
    }
    assertInvariants(k);
  }
  return k;
}

test('random chains of preservations, kexecs and cold boots keep every invariant', () => {
  hops = 0;
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 5, maxLength: 30 }), (ops) => {
      runChain(ops);
    }),
    { numRuns: 600, seed: 0x6b686f },
  );
  assert.ok(hops >= 2000, `at least 2000 kexec hops in the run (got ${hops})`);
});

test('a long chain: 100 kexecs carrying the same folios, count 100 at the end', () => {
  const ops: Op[] = [
    { op: 'preserve', order: 3, seed: 1 },
    { op: 'preserve', order: 0, seed: 2 },
    ...Array.from({ length: 100 }, () => ({ op: 'kexec' as const })),
  ];
  const k = runChain(ops);
  assert.equal(k.kexecCount, 100);
  assert.ok(k.dmesg().includes('KHO: exec from: 7.3.4-khovec (count 100)'));
});
