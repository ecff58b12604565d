/**
 * Hostile handovers: random byte corruption of what the next kernel reads (root FDT page, scratch array
 * copy, setup_data, radix-tree pages, sub-blobs) never makes the simulator crash or hang. The next kernel
 * either boots (with or without the handover) and the invariant checker finds nothing wrong with what it
 * accepted, or it stops with a `KhoError` that names the reason.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KhoError } from '../../src/errors.ts';
import { kexecChecked } from '../../src/sim/kernel/invariants.ts';
import {
  DEFAULT_IMAGE,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../../src/sim/kernel/kernel.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const CMD = 'kho=on kho_scratch=16M,64M,32M reserve_mem=1M:4096:r';
const IMAGE: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};

type Target = 'root' | 'scratch' | 'setup' | 'tracker' | 'blob';

test('random corruption of the handover never crashes the next boot', () => {
  let booted = 0;
  let refused = 0;
  let stopped = 0;
  fc.assert(
    fc.property(
      fc.constantFrom<Target>('root', 'scratch', 'setup', 'tracker', 'blob'),
      fc.array(fc.record({ off: fc.nat(4095), byte: fc.nat(255) }), { minLength: 1, maxLength: 12 }),
      (target, edits) => {
        const k = Kernel.boot(Machine.create({ memory: '1G' }), { image: IMAGE, cmdline: CMD });
        const r = k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
        const seg = (n: string) => r.plan.segments.find((s) => s.name === n)!;
        const base = {
          root: k.kho.rootFdtPhys,
          scratch: seg('kho-scratch').mem,
          setup: seg('boot-params').mem + seg('boot-params').bufsz - 48n,
          tracker: k.kho.trackerPages[k.kho.trackerPages.length - 1],
          blob: k.kho.outSubtrees()[0].phys,
        }[target];
        const limit = target === 'scratch' ? 48 : target === 'setup' ? 48 : 4096;
        try {
          const { verdict } = kexecChecked(k, {
            fault: (old) => {
              for (const e of edits)
                old.machine.memory.write(base + BigInt(e.off % limit), new Uint8Array([e.byte]));
            },
          });
          if (verdict.accepted) booted++;
          else refused++;
        } catch (e) {
          assert.ok(e instanceof KhoError, `not a KhoError: ${String(e)}`);
          assert.match(e.code, /^(SIM_KERNEL_PANIC|SIM_INVARIANT_|SIM_BAD_ADDRESS|SIM_NOMEM)/);
          stopped++;
        }
      },
    ),
    { numRuns: 150, seed: 0x4b484f },
  );
  assert.ok(booted + refused + stopped === 150);
  assert.ok(refused > 0, 'some corruptions are refused');
});
