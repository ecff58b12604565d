/**
 * `kho map`: text, JSON, SVG and HTML output on a real 7.3.4 handover and on a simulated machine, in
 * process and once through the launcher; exit statuses 0 / 1 / 2. Expected values come from the vector
 * files (scratch_phys, preserved.json, the memblock blob's reserve_mem region as `kho inspect` tests
 * pin it) and from the simulated kernel's own state.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { capture } from '../../../test/helpers/cli.ts';
import { withTempDir } from '../../../test/helpers/oracle.ts';
import { REGION_KINDS } from '../../map/model.ts';
import { main } from '../main.ts';
import { runMap } from './map.ts';

const ROOT = join(import.meta.dirname, '../../..');
const S1 = join(ROOT, 'test/vectors/linux-7.3.4/flat-explicit/stage1');

test('map --json: the model with u64 values as hex strings; every preserved.json block present', () => {
  const { code, out } = capture((io) =>
    runMap(join(S1, 'out'), { memory: join(S1, 'mem'), iomem: join(S1, 'iomem'), json: true }, io),
  );
  assert.equal(code, 0);
  const j = JSON.parse(out);
  assert.equal(j.pageSize, 4096);
  assert.match(j.start, /^0x[0-9a-f]+$/);
  const regions = j.lanes.flatMap((l: { regions: unknown[] }) => l.regions) as {
    start: string;
    end: string;
    kind: string;
    producer?: string;
  }[];
  const preserved = JSON.parse(readFileSync(join(S1, 'preserved.json'), 'utf8')) as [string, number][];
  for (const [pa] of preserved)
    assert.ok(
      regions.some((r) => r.start === pa),
      pa,
    );
  // khovec_region: start 0x7d400000, size 0x400000 (kho inspect's test pins the same values).
  assert.ok(
    regions.some((r) => r.kind === 'reserve_mem' && r.start === '0x7d400000' && r.end === '0x7d800000'),
  );
  // scratch_phys's first line, 0x7c000000, with scratch_len 0x1000000: the lowmem area.
  assert.ok(
    regions.some((r) => r.kind === 'scratch-lowmem' && r.start === '0x7c000000' && r.end === '0x7d000000'),
  );
  assert.equal(j.summary.preservedBlocks, preserved.length);
  assert.equal(j.summary.unattributedBlocks, 0);
});

test('map text table: header, producers, one line per region', () => {
  const { code, out } = capture((io) => runMap(join(S1, 'out'), { memory: join(S1, 'mem') }, io));
  assert.equal(code, 0);
  assert.match(out, /preserved: 37 blocks, 12\.0 MiB/);
  assert.match(out, /kho_test +33 blocks/);
  assert.match(
    out,
    /reserve_mem +0x7d400000 +0x7d800000 +4 MiB +reserve_mem +memblock +reserve_mem 'khovec_region'/,
  );
  assert.match(out, /scratch +0x78000000 +0x7c000000 +64 MiB +scratch-global/);
});

test('map --svg and --html write files; both at once is a usage error', () => {
  withTempDir((dir) => {
    const svg = join(dir, 'm.svg');
    const html = join(dir, 'm.html');
    const a = capture((io) => runMap(join(S1, 'out'), { memory: join(S1, 'mem'), svg }, io));
    assert.equal(a.code, 0);
    assert.match(readFileSync(svg, 'utf8'), /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const b = capture((io) => runMap(join(S1, 'out'), { memory: join(S1, 'mem'), html }, io));
    assert.equal(b.code, 0);
    assert.match(readFileSync(html, 'utf8'), /^<!DOCTYPE html>/);
    const c = capture((io) => runMap(join(S1, 'out'), { svg, html }, io));
    assert.equal(c.code, 2);
  });
});

test('map on a simulated machine: --sim-memory 1G --sim-numa 2 --sim-kexec shows nodes and kexec segments', () => {
  const { code, out } = capture((io) =>
    runMap(
      undefined,
      {
        simMemory: '1G',
        simNuma: '2',
        simCmdline: 'kho=on reserve_mem=4M:4096:khovec_region',
        simKexec: true,
        json: true,
      },
      io,
    ),
  );
  assert.equal(code, 0);
  const j = JSON.parse(out);
  assert.deepEqual(
    j.nodes.map((n: { nid: number }) => n.nid),
    [0, 1],
  );
  const lanes = j.lanes.map((l: { name: string }) => l.name);
  for (const l of ['iomem', 'nodes', 'scratch', 'reserve_mem', 'kho', 'kexec'])
    assert.ok(lanes.includes(l), l);
  assert.equal(j.summary.unattributedBlocks, 0);
});

test('map exit statuses: no input 2, bad option values 2, missing path 1', () => {
  assert.equal(capture((io) => runMap(undefined, {}, io)).code, 2);
  assert.equal(capture((io) => runMap(undefined, { simMemory: '1G', simNuma: 'x' }, io)).code, 2);
  assert.equal(capture((io) => runMap(undefined, { simMemory: 'lots' }, io)).code, 2);
  assert.equal(capture((io) => runMap(join(S1, 'out'), { width: '9' }, io)).code, 2);
  assert.equal(capture((io) => runMap(join(S1, 'out'), { simMemory: '1G' }, io)).code, 2);
  assert.equal(capture((io) => runMap(join(S1, 'nope'), {}, io)).code, 1);
  assert.equal(capture((io) => runMap(join(S1, 'out'), { iomem: join(S1, 'nope') }, io)).code, 1);
});

test('map --help lists examples and exit statuses; the launcher runs kho map', async () => {
  let help = '';
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => {
    help += s;
    return true;
  }) as typeof process.stdout.write;
  try {
    assert.equal(await main(['map', '--help']), 0);
  } finally {
    process.stdout.write = orig;
  }
  assert.match(help, /Examples:/);
  assert.match(help, /Exit status: 0 ok, 1 .*, 2 usage/);
  // The JSON schema is in the help, and names every kind the model has.
  assert.match(help, /JSON \(--json\): \{ source, pageSize, start, end, nodes/);
  for (const k of REGION_KINDS) assert.ok(help.includes(` ${k}`), k);
  const bin = join(ROOT, 'bin/kho.js');
  if (existsSync(bin)) {
    const r = spawnSync(process.execPath, [bin, 'map', join(S1, 'out')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /scratch-lowmem/);
  }
});
