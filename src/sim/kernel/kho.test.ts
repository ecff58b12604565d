/**
 * The simulated kernel's outgoing radix tree (kho.ts grows it with number keys, storing leaf bits
 * straight into memory pages) against the ABI library's `RadixTreeWriter` (checked byte for byte
 * against the Linux 7.3.4 vectors in src/abi): for random preserve/unpreserve sequences, replaying
 * the same inserts into a `RadixTreeWriter` that is handed the same page addresses in the same order
 * must give the same bytes in every tree page, and the decoded map must be the preserved set.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeRadixTree, RadixTreeWriter } from '../../abi/radix-tree.ts';
import { Machine } from '../machine/machine.ts';
import { PhysicalMemory } from '../machine/memory.ts';
import { DEFAULT_IMAGE, Kernel, VECTOR_KERNEL_CONFIG } from './kernel.ts';
import { KhoCore } from './kho.ts';

const IMAGE = { ...DEFAULT_IMAGE, config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false } };

type Op = { kind: 'folio'; i: number; on: boolean } | { kind: 'pages'; i: number; n: number; on: boolean };

test('the kernel tracker writes exactly what RadixTreeWriter writes for the same inserts (property)', () => {
  const k = Kernel.boot(Machine.create({ memory: '2G' }), { image: IMAGE, cmdline: 'kho=on' });
  const ps = BigInt(k.machine.spec.pageSize);
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('folio' as const), i: fc.nat(63), on: fc.boolean() }),
    fc.record({
      kind: fc.constant('pages' as const),
      i: fc.nat(63),
      n: fc.integer({ min: 1, max: 16 }),
      on: fc.boolean(),
    }),
  );
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), fc.nat(3), (ops, spread) => {
      // a fresh outgoing state on the running kernel's allocator
      const core = new KhoCore({ machine: k.machine, profile: k.profile, log: k.log, debugChecks: true });
      core.enabled = true;
      core.buddy = k.buddy;
      core.scratch = k.kho.scratch;
      core.init();
      // 64 order-4 blocks (16 pages each), some far apart so several leaves and tables are needed
      const blocks: bigint[] = [];
      const gaps: bigint[] = [];
      for (let i = 0; i < 64; i++) {
        blocks.push(core.allocPages(4));
        if (spread > 0 && i % (4 * spread) === 0) gaps.push(core.allocPages(10));
      }
      const replay: { pa: bigint; order: number; on: boolean }[] = [];
      replay.push({ pa: core.rootFdtPhys, order: 0, on: true });
      for (const op of ops) {
        if (op.kind === 'folio') {
          const pa = blocks[op.i];
          if (op.on) core.preserveFolio(pa, 4);
          else core.unpreserveFolio(pa, 4);
          replay.push({ pa, order: 4, on: op.on });
        } else {
          const pa = blocks[op.i];
          if (op.on) core.preservePages(pa, op.n);
          else core.unpreservePages(pa, op.n);
          for (const b of core.splitPages(pa, op.n)) replay.push({ ...b, on: op.on });
        }
      }
      // the reference: RadixTreeWriter, handed the kernel tracker's pages in allocation order
      const pages = core.trackerPages;
      const mem = new PhysicalMemory(Number(ps), k.machine.spec.memorySize);
      let next = 0;
      const ref = new RadixTreeWriter(
        {
          pageSize: Number(ps),
          allocPage: () => {
            assert.ok(next < pages.length, 'the reference needs more pages than the kernel allocated');
            return pages[next++];
          },
          write: (pa, bytes) => mem.write(pa, bytes),
        },
        { pageSize: Number(ps), endian: k.profile.endian },
      );
      for (const r of replay) r.on ? ref.add(r.pa, r.order) : ref.remove(r.pa, r.order);
      assert.equal(next, pages.length, 'the kernel allocated pages the reference did not need');
      for (const pa of pages)
        assert.deepEqual(
          k.machine.memory.read(pa, Number(ps)),
          mem.read(pa, Number(ps)),
          `tree page 0x${pa.toString(16)}`,
        );
      // and the map decodes to the blocks whose last operation set them (bits carry no count)
      const live = new Map<string, { pa: bigint; order: number }>();
      for (const r of replay) {
        const key = `${r.pa}:${r.order}`;
        if (r.on) live.set(key, { pa: r.pa, order: r.order });
        else live.delete(key);
      }
      const want = [...live.values()].sort((a, b) =>
        a.pa < b.pa ? -1 : a.pa > b.pa ? 1 : a.order - b.order,
      );
      const decoded = decodeRadixTree(core.phys, core.memoryMapRoot, { pageSize: Number(ps) });
      assert.deepEqual(decoded.blocks, want);
      // give everything back for the next run
      for (const pa of blocks) core.freePages(pa, 4);
      for (const pa of gaps) core.freePages(pa, 10);
    }),
    { numRuns: 100 },
  );
});
