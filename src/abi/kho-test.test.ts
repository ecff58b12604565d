/** kho_test sub-FDT: decoded fields equal what libfdt reads in the real 7.3.4 blobs; hostile ones give findings. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { oracle } from '../../test/helpers/oracle.ts';
import { pyWalk } from '../../test/helpers/pywalk.ts';
import { VECTORS } from '../../test/helpers/vectors.ts';
import { FdtRw } from '../fdt/write-rw.ts';
import { loadHandoverPath } from './handover.ts';
import { decodeKhoTestFdt, KHO_TEST_MAGIC, validateKhoTestFdt, x86CsumPartial } from './kho-test.ts';

const BLOBS = [
  'flat-explicit/stage1/out/blobs/kho_test',
  'luo-memfd/stage1/out/blobs/kho_test',
  'three-hops/stage1/out/blobs/kho_test',
  'bad-scratch/stage1/out/blobs/kho_test',
];

test('real kho_test blobs: compatible, magic, nr_folios, folios_info, csum as libfdt reads them', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const bytes = BLOBS.map((p) => readFileSync(join(VECTORS, p)));
  const walks = pyWalk(bytes);
  bytes.forEach((b, i) => {
    const dec = decodeKhoTestFdt(b);
    assert.deepEqual(dec.findings, []);
    const nodes = walks[i]!.nodes;
    const v = (node: string, prop: string) =>
      Buffer.from(nodes.find((n) => n.name === node)!.props.find((p) => p.name === prop)!.value, 'hex');
    assert.equal(dec.compatible, v('', 'compatible').toString('latin1').replace(/\0$/, ''));
    assert.equal(dec.magic, v('', 'magic').readUInt32LE(0));
    assert.equal(dec.magic, KHO_TEST_MAGIC);
    assert.equal(dec.nrFolios, v('data', 'nr_folios').readUInt32LE(0));
    assert.equal(dec.csum, v('data', 'csum').readUInt32LE(0));
    const fi = v('data', 'folios_info');
    assert.deepEqual(dec.foliosInfo, {
      first: fi.readBigUInt64LE(0),
      totalPages: fi.readUInt32LE(8),
      flags: fi.readUInt16LE(12),
      order: fi.readUInt16LE(14),
    });
  });
});

test('flat-explicit self-test: 30 folios, one vmalloc page (ALLOC flag), order 0', () => {
  const dec = decodeKhoTestFdt(readFileSync(join(VECTORS, BLOBS[0]!)));
  assert.equal(dec.nrFolios, 30);
  assert.equal(dec.foliosInfo?.totalPages, 1);
  assert.equal(dec.foliosInfo?.flags, 1);
  assert.equal(dec.foliosInfo?.order, 0);
});

test('a wrong magic and a short csum are the restore path failures', () => {
  const rw = FdtRw.openInto(readFileSync(join(VECTORS, BLOBS[0]!)), 4096);
  rw.setprop(0, 'magic', new Uint8Array([1, 2, 3, 4]));
  rw.setprop(rw.pathOffset('/data'), 'csum', new Uint8Array([1, 2]));
  rw.pack();
  assert.deepEqual(
    validateKhoTestFdt(rw.blob()).map((f) => `${f.code} ${f.path}`),
    ['KHO_TEST_BAD_MAGIC /:magic', 'KHO_TEST_BAD_PROPERTY /data:csum'],
  );
});

test("x86_64 csum_partial: hand-derived ones'-complement sums folded to 32 bits", () => {
  const words = (...w: bigint[]) => {
    const b = new Uint8Array(w.length * 8);
    const dv = new DataView(b.buffer);
    w.forEach((x, i) => dv.setBigUint64(i * 8, x, true));
    return b;
  };
  assert.equal(x86CsumPartial(words(1n), 0), 1);
  // 0xffff_ffff_ffff_ffff + 1 wraps with end-around carry to 1.
  assert.equal(x86CsumPartial(words(0xffffffffffffffffn, 1n), 0), 1);
  // seed 5 + 0x1_0000_0002 = 0x1_0000_0007, folded: 1 + 7.
  assert.equal(x86CsumPartial(words(0x100000002n), 5), 8);
  // all ones: 0xffffffff + 0xffffffff = 0x1_ffff_fffe -> 0xffff_ffff.
  assert.equal(x86CsumPartial(words(0xffffffffffffffffn), 0), 0xffffffff);
  assert.equal(x86CsumPartial(new Uint8Array(4096), 0x1234), 0x1234);
});

test('the self-test checksum recomputed over the real folios equals the recorded csum (full capture)', (t) => {
  // Needs every folio of flat-explicit: the whole capture (8 MiB) is not copied into the project.
  const base = '/work/shared/vectors/linux-7.3.4/flat-explicit/stage1';
  if (!existsSync(join(base, 'mem/0000000004400000.bin'))) {
    t.skip('the full flat-explicit capture is not available');
    return;
  }
  const h = loadHandoverPath(join(base, 'out'), { memoryPath: join(base, 'mem') });
  const kt = h.subBlobs.find((s) => s.name === 'kho_test')!.khoTest!;
  assert.equal(kt.csumComputed, kt.csum);
  assert.equal(kt.csum, 0x27a1408f);
});
