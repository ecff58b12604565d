/**
 * The reader against libfdt: dtc compiles random DTS trees (so the blobs come from dtc, not kho) and
 * the real KHO vectors; kho's reader must see exactly the nodes, offsets, names, properties and
 * memory reservations that a pylibfdt walk of the same bytes sees.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseFdt } from '../../src/fdt/reader.ts';
import { arbTree, toDtsSource } from '../helpers/gen.ts';
import { dtcCompile, oracle } from '../helpers/oracle.ts';
import { ourWalk, pyWalk } from '../helpers/pywalk.ts';

test('random dtc-compiled trees: reader sees what libfdt sees', (t) => {
  if (!oracle(t, 'dtc', 'pylibfdt')) return;
  const trees = fc.sample(arbTree, { numRuns: 300, seed: 0x6b686f });
  const blobs = dtcCompile(trees.map(toDtsSource));
  const expected = pyWalk(blobs);
  blobs.forEach((blob, i) => {
    assert.deepEqual(ourWalk(parseFdt(blob)), expected[i], `tree ${i}:\n${toDtsSource(trees[i]!)}`);
  });
});

test('real KHO blobs from Linux 7.3.4: reader sees what libfdt sees', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const dir = new URL('../vectors/linux-7.3.4/flat-explicit/stage1/out/', import.meta.url).pathname;
  const files = ['fdt.whole', ...readdirSync(join(dir, 'sub_fdts')).map((f) => `sub_fdts/${f}`)]
    .map((f) => new Uint8Array(readFileSync(join(dir, f))))
    .filter((b) => b.length >= 4 && Buffer.from(b).readUInt32BE(0) === 0xd00dfeed);
  assert.ok(files.length >= 3, 'the root FDT and at least two FDT sub-blobs');
  const expected = pyWalk(files);
  files.forEach((b, i) => assert.deepEqual(ourWalk(parseFdt(b)), expected[i]));
});
