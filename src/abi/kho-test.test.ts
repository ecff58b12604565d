/** kho_test sub-FDT: decoded fields equal what libfdt reads in the real 7.3.4 blobs; hostile ones give findings. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { oracle } from '../../test/helpers/oracle.ts';
import { pyWalk } from '../../test/helpers/pywalk.ts';
import { FdtRw } from '../fdt/write-rw.ts';
import { decodeKhoTestFdt, KHO_TEST_MAGIC, validateKhoTestFdt } from './kho-test.ts';

const VEC = join(import.meta.dirname, '../../test/vectors/linux-7.3.4');
const BLOBS = [
  'flat-explicit/stage1/out/blobs/kho_test',
  'luo-memfd/stage1/out/blobs/kho_test',
  'three-hops/stage1/out/blobs/kho_test',
  'bad-scratch/stage1/out/blobs/kho_test',
];

test('real kho_test blobs: compatible, magic, nr_folios, folios_info, csum as libfdt reads them', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const bytes = BLOBS.map((p) => readFileSync(join(VEC, p)));
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
  const dec = decodeKhoTestFdt(readFileSync(join(VEC, BLOBS[0]!)));
  assert.equal(dec.nrFolios, 30);
  assert.equal(dec.foliosInfo?.totalPages, 1);
  assert.equal(dec.foliosInfo?.flags, 1);
  assert.equal(dec.foliosInfo?.order, 0);
});

test('a wrong magic and a short csum are the restore path failures', () => {
  const rw = FdtRw.openInto(readFileSync(join(VEC, BLOBS[0]!)), 4096);
  rw.setprop(0, 'magic', new Uint8Array([1, 2, 3, 4]));
  rw.setprop(rw.pathOffset('/data'), 'csum', new Uint8Array([1, 2]));
  rw.pack();
  assert.deepEqual(
    validateKhoTestFdt(rw.blob()).map((f) => `${f.code} ${f.path}`),
    ['KHO_TEST_BAD_MAGIC /:magic', 'KHO_TEST_BAD_PROPERTY /data:csum'],
  );
});
