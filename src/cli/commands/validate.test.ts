/** `kho validate`: every finding with code, path, severity; exit 0 valid, 1 invalid. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { capture } from '../../../test/helpers/cli.ts';
import { FdtRw } from '../../fdt/write-rw.ts';
import { runValidate } from './validate.ts';

const VEC = join(import.meta.dirname, '../../../test/vectors/linux-7.3.4');

test('real handovers are valid (exit 0); the cut-short out/fdt is a warning, not an error', () => {
  for (const p of ['flat-explicit/stage2/in/fdt', 'flat-explicit/stage1/out', 'three-hops/stage3/in']) {
    const r = capture((io) => runValidate(join(VEC, p), { json: true }, io));
    assert.equal(r.code, 0, r.out);
    assert.equal(JSON.parse(r.out).valid, true);
  }
  const r = capture((io) => runValidate(join(VEC, 'flat-explicit/stage1/out/fdt'), { json: true }, io));
  const j = JSON.parse(r.out);
  assert.equal(j.errors, 0);
  assert.ok(
    j.findings.some(
      (f: { code: string; severity: string }) => f.code === 'KHO_FDT_CUT_SHORT' && f.severity === 'warning',
    ),
  );
});

test('a broken root: every finding listed with code, path and severity, exit 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kho-validate-'));
  try {
    const rw = FdtRw.openInto(readFileSync(join(VEC, 'flat-explicit/stage1/out/fdt.whole')), 4096);
    rw.delprop(rw.pathOffset('/memblock'), 'blob-size');
    rw.delprop(rw.pathOffset('/kho_test'), 'preserved-data');
    rw.setprop(0, 'preserved-memory-map', new Uint8Array(4));
    rw.pack();
    const f = join(dir, 'fdt');
    writeFileSync(f, rw.blob());
    const r = capture((io) => runValidate(f, { json: true }, io));
    assert.equal(r.code, 1);
    const j = JSON.parse(r.out);
    assert.equal(j.valid, false);
    assert.deepEqual(
      j.findings
        .map((x: { code: string; path: string; severity: string }) => `${x.severity} ${x.code} ${x.path}`)
        .sort(),
      [
        'error KHO_ROOT_BAD_MEMORY_MAP /:preserved-memory-map',
        'error KHO_SUBTREE_NO_BLOB_SIZE /memblock:blob-size',
        'error KHO_SUBTREE_NO_DATA /kho_test:preserved-data',
      ],
    );
    const h = capture((io) => runValidate(f, {}, io));
    assert.match(h.out, /INVALID \(3 errors/);
    // Not an FDT at all: one finding, exit 1.
    writeFileSync(f, 'hello');
    const bad = capture((io) => runValidate(f, { json: true }, io));
    assert.equal(bad.code, 1);
    assert.ok(JSON.parse(bad.out).findings.length >= 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--profile kho-v3 on a kho-v4 root: incompatible, exit 1', () => {
  const r = capture((io) =>
    runValidate(join(VEC, 'flat-explicit/stage2/in/fdt'), { profile: 'kho-v3', json: true }, io),
  );
  assert.equal(r.code, 1);
  assert.deepEqual(
    JSON.parse(r.out).findings.map((f: { code: string }) => f.code),
    ['KHO_ROOT_INCOMPATIBLE'],
  );
});
