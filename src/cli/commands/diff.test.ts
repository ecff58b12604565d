/** `kho diff`: before/after a kexec on the real vectors, human and JSON. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { capture } from '../../../test/helpers/cli.ts';
import { runDiff } from './diff.ts';

const VEC = join(import.meta.dirname, '../../../test/vectors/linux-7.3.4');

test('stage2/in vs stage3/in of three-hops: kho_test removed, metadata count 1 -> 2', () => {
  const a = join(VEC, 'three-hops/stage2/in');
  const b = join(VEC, 'three-hops/stage3/in');
  const h = capture((io) => runDiff(a, b, {}, io));
  assert.equal(h.code, 0);
  assert.match(h.out, /^- sub-blob kho_test at 0x3da4000 \(kho_test\)$/m);
  assert.match(h.out, /^~ metadata kexecCount: 1 -> 2$/m);
  assert.match(h.out, /^root memoryMap: 0x3c51000 -> 0x1844000$/m);
  const j = JSON.parse(capture((io) => runDiff(a, b, { json: true }, io)).out);
  assert.deepEqual(
    j.subBlobs.removed.map((s: { name: string }) => s.name),
    ['kho_test'],
  );
  assert.equal(j.same, false);
});

test('out/fdt.whole before vs in/fdt after the kexec: the same handover', () => {
  const h = capture((io) =>
    runDiff(
      join(VEC, 'flat-explicit/stage1/out/fdt.whole'),
      join(VEC, 'flat-explicit/stage2/in/fdt'),
      {},
      io,
    ),
  );
  assert.equal(h.code, 0);
  assert.match(h.out, /no differences/);
});

test('preserved ranges gained and lost when both sides have memory images', () => {
  const j = JSON.parse(
    capture((io) =>
      runDiff(
        join(VEC, 'flat-explicit/stage1/out'),
        join(VEC, 'numa-explicit/stage1/out'),
        {
          memoryA: join(VEC, 'flat-explicit/stage1/mem'),
          memoryB: join(VEC, 'numa-explicit/stage1/mem'),
          json: true,
        },
        io,
      ),
    ).out,
  );
  assert.ok(j.preserved.gained.length > 0);
  assert.ok(j.preserved.lost.some((r: { start: string }) => r.start === '0x7d400000'));
});
