/**
 * `kho inspect`: human and JSON output on the real 7.3.4 debugfs files, in-process and once through
 * the `bin/kho.js` launcher; u64 values as hex strings in JSON; the exit statuses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { capture } from '../../../test/helpers/cli.ts';
import { preservedJson, SCENARIOS, VECTORS } from '../../../test/helpers/vectors.ts';
import { main } from '../main.ts';
import { runInspect } from './inspect.ts';

const ROOT = join(import.meta.dirname, '../../..');

test('inspect out/ with --memory: named values, hex addresses, sizes with units, merged ranges', () => {
  const { code, out } = capture((io) =>
    runInspect(
      join(VECTORS, 'flat-explicit/stage1/out'),
      { memory: join(VECTORS, 'flat-explicit/stage1/mem') },
      io,
    ),
  );
  assert.equal(code, 0);
  assert.match(out, /compatible "kho-v4" -> profile kho-v4/);
  assert.match(out, /preserved-memory-map: 0x3c1e000/);
  assert.match(out, /whole blob found in the memory image at 0x3c1f000/);
  assert.match(out, /khovec_region: start 0x7d400000, size 0x400000 \(4 MiB\)/);
  assert.match(out, /the next kernel will log: KHO: exec from: 7\.3\.4-khovec \(count 1\)/);
  assert.match(out, /37 blocks, 12611584 bytes \(12\.0 MiB\), 12 merged ranges/);
  assert.match(out, /\[0x7d400000, 0x7d800000\) {2}4 MiB/);
  assert.match(out, /lowmem {2}0x7c000000, 0x1000000 \(16 MiB\)/);
  assert.match(out, /out\/fdt is cut short: 233 of 353 bytes \(120 missing\)/);
});

test('inspect --json: u64 values as "0x..." strings, preserved blocks listed', () => {
  const { code, out } = capture((io) =>
    runInspect(
      join(VECTORS, 'flat-explicit/stage1/out'),
      { memory: join(VECTORS, 'flat-explicit/stage1/mem'), json: true },
      io,
    ),
  );
  assert.equal(code, 0);
  const j = JSON.parse(out);
  assert.equal(j.root.memoryMap, '0x3c1e000');
  assert.equal(j.root.wholeAt, '0x3c1f000');
  assert.deepEqual(j.reserveMem, [{ name: 'khovec_region', start: '0x7d400000', size: '0x400000' }]);
  assert.equal(j.preserved.list.length, 37);
  assert.deepEqual(j.preserved.list[0], { pa: '0x3c1f000', order: 0 });
  assert.equal(j.metadata.kexecCount, 1);
  assert.equal(j.subBlobs[0].phys, '0x4e6b000');
});

test('inspect of an after-kexec out/ says there is no out/fdt; in/fdt decodes cleanly', () => {
  const a = capture((io) => runInspect(join(VECTORS, 'flat-explicit/stage2/out'), {}, io));
  assert.equal(a.code, 0);
  assert.match(a.out, /KHO_DEBUGFS_NO_FDT/);
  const b = capture((io) => runInspect(join(VECTORS, 'flat-explicit/stage2/in/fdt'), {}, io));
  assert.equal(b.code, 0);
  assert.match(b.out, /totalsize 353 B\n/);
});

test('exit statuses: 1 for a missing file, 2 for a bad profile or a missing argument', async () => {
  const err = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((s: string) => {
    stderr += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    assert.equal(runInspect('/nonexistent/kho', {}, { out: () => {} }), 1);
    assert.match(stderr, /^kho: \/nonexistent\/kho: IO_ENOENT: /);
    assert.equal(
      runInspect(join(VECTORS, 'flat-explicit/stage2/in/fdt'), { profile: 'kho-v9' }, { out: () => {} }),
      2,
    );
    assert.equal(await main(['inspect']), 2);
    process.exitCode = undefined;
  } finally {
    process.stderr.write = err;
  }
});

test('bin/kho.js inspect --json end to end', () => {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/kho.js'), 'inspect', '--json', join(VECTORS, 'three-hops/stage3/in/fdt')],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.root.compatible, 'kho-v4');
  assert.deepEqual(
    j.root.subtrees.map((s: { name: string }) => s.name),
    ['kexec-metadata'],
  );
});

test('--fdt-at reads the root FDT from the memory image (the address of a cut-short out/fdt)', () => {
  const mem = join(VECTORS, 'flat-explicit/stage1/mem');
  const r = capture((io) => runInspect(undefined, { memory: mem, fdtAt: '0x3c1f000', json: true }, io));
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out);
  assert.deepEqual(j.source, { kind: 'memory', path: 'phys:0x3c1f000' });
  assert.equal(j.root.totalsize, 353);
  assert.equal(j.preserved.blocks, 37);
  // With the debugfs directory: the memory's root replaces the cut-short out/fdt.
  const d = JSON.parse(
    capture((io) =>
      runInspect(
        join(VECTORS, 'flat-explicit/stage1/out'),
        { memory: mem, fdtAt: '0x3c1f000', json: true },
        io,
      ),
    ).out,
  );
  assert.equal(d.root.have, 353);
  assert.ok(!d.findings.some((f: { code: string }) => f.code === 'KHO_FDT_CUT_SHORT'));
  // Not an FDT there: exit 1 with the error line; no memory: exit 1; a bad address: usage.
  const err = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    assert.equal(runInspect(undefined, { memory: mem, fdtAt: '0x3c1e000' }, { out: () => {} }), 1);
    assert.equal(runInspect(undefined, { fdtAt: '0x3c1f000' }, { out: () => {} }), 1);
    assert.equal(runInspect(undefined, { memory: mem, fdtAt: 'here' }, { out: () => {} }), 2);
  } finally {
    process.stderr.write = err;
  }
});

test('inspect --json on every scenario: out/, in/ and fdt.whole with the stage-1 image match preserved.json and dmesg', () => {
  const scenarios = SCENARIOS;
  for (const sc of scenarios) {
    const mem = join(VECTORS, sc, 'stage1/mem');
    const expected = preservedJson(`${sc}/stage1`);
    const targets = [join(VECTORS, sc, 'stage1/out'), join(VECTORS, sc, 'stage1/out/fdt.whole')];
    if (existsSync(join(VECTORS, sc, 'stage2/in'))) targets.push(join(VECTORS, sc, 'stage2/in'));
    for (const p of targets) {
      const r = capture((io) => runInspect(p, { memory: mem, json: true }, io));
      assert.equal(r.code, 0, p);
      const j = JSON.parse(r.out);
      assert.deepEqual(
        j.preserved.list.map((b: { pa: string; order: number }) => [b.pa, b.order]),
        expected,
        p,
      );
      const next = join(VECTORS, sc, 'stage2/dmesg');
      if (existsSync(next)) {
        const log = readFileSync(next, 'utf8');
        assert.equal(j.metadata.logLine, log.match(/KHO: exec from: .*\(count \d+\)/)![0], p);
        for (const m of j.reserveMem)
          assert.match(log, new RegExp(`Revived memory reservation '${m.name}' from KHO`));
      }
    }
  }
});
