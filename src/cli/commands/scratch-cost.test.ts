/**
 * `kho scratch-cost` (a cold boot of the simulated kernel decides). Oracles: the real 7.3.4 kernel's `scratch_len` for the same machine and
 * command line (explicit sizes, the default scale with and without reserve_mem, and a malformed
 * kho_scratch= that the kernel replaced by the default scale), and hand derivations of the explicit
 * grammar (lowmem and global as given, per node rounded up to CMA_MIN_ALIGNMENT_BYTES).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { captureAll } from '../../../test/helpers/cli.ts';
import { computeScratchCost, runScratchCost, type ScratchCostOptions } from './scratch-cost.ts';

const VEC = join(import.meta.dirname, '../../../test/vectors/linux-7.3.4');
const lens = (scenario: string): bigint[] =>
  readFileSync(join(VEC, scenario, 'stage1/out/scratch_len'), 'utf8')
    .trim()
    .split('\n')
    .map(BigInt);
const sizes = (o: ScratchCostOptions): bigint[] => computeScratchCost(o).regions.map((r) => r.size);

function run(o: ScratchCostOptions) {
  return captureAll((io) => runScratchCost(o, io));
}

test("explicit sizes: the vectors' scratch_len exactly (1 and 2 nodes)", () => {
  assert.deepEqual(sizes({ mem: '2G', khoScratch: '16M,64M,32M' }), lens('flat-explicit'));
  assert.deepEqual(sizes({ mem: '2G', numa: '2', khoScratch: '16M,64M,32M' }), lens('numa-explicit'));
  assert.equal(computeScratchCost({ mem: '2G', khoScratch: '16M,64M,32M' }).estimate, false);
});

test('default scale on the vectors’ 2 GiB machine: the kernel’s figures, marked as estimates', () => {
  // default-scale: kho=on reserve_mem=8M:2M:trace_buf -> lowmem 164 MiB, global 0, node 140 MiB
  const d = computeScratchCost({ mem: '2G', reserveMem: ['8M:2M:trace_buf'] });
  assert.deepEqual(
    d.regions.map((r) => r.size),
    lens('default-scale'),
  );
  assert.equal(d.estimate, true);
  // bad-scratch: kho_scratch=16M,64M is malformed, the kernel keeps 200 % -> 148 MiB, 0, 140 MiB
  const r = run({ mem: '2G', khoScratch: '16M,64M' });
  assert.equal(r.code, 1);
  assert.deepEqual(sizes({ mem: '2G', khoScratch: '16M,64M' }), lens('bad-scratch'));
  assert.match(r.out, /kernel: Malformed early option 'kho_scratch'/);
  assert.match(r.err, /Malformed early option 'kho_scratch'/);
  assert.match(r.out, /lowmem {2}148 MiB \(est\.\)/);
  assert.match(r.out, /^estimate: /m);
});

test('explicit grammar, hand-derived: per node rounded up to the pageblock size, lowmem/global as given', () => {
  // x86_64: A = 2 MiB. 1M lowmem and 3M global stay; 3M per node -> 4 MiB on each of 4 nodes.
  const c = computeScratchCost({ mem: '8G', numa: '4', khoScratch: '1M,3M,3M' });
  assert.deepEqual(
    c.regions.map((r) => [r.kind, r.nid, r.size]),
    [
      ['lowmem', undefined, 1n << 20n],
      ['global', undefined, 3n << 20n],
      ['node', 0, 4n << 20n],
      ['node', 1, 4n << 20n],
      ['node', 2, 4n << 20n],
      ['node', 3, 4n << 20n],
    ],
  );
  assert.equal(c.total, 20n << 20n);
  assert.equal(c.arrayBytes, 6n * 16n);
  // arm64 with 16K pages: pageblock 2^11 pages = 32 MiB
  assert.deepEqual(sizes({ mem: '4G', arch: 'arm64', pageSize: '16K', khoScratch: '16M,64M,1M' }), [
    16n << 20n,
    64n << 20n,
    32n << 20n,
  ]);
});

test('human and JSON output: shares of memory, hex sizes', () => {
  const h = run({ mem: '2G', khoScratch: '16M,64M,32M' });
  assert.equal(h.code, 0);
  assert.match(
    h.out,
    /KHO scratch at a cold boot of a 2 GiB x86_64 machine, 1 NUMA node, 4 KiB pages \(explicit sizes\)/,
  );
  assert.match(h.out, /kernel: KHO: scratch areas: lowmem: 16MiB global: 64MiB pernode: 32MiB/);
  // 112 MiB of 2048 MiB = 5.47 %
  assert.match(h.out, /total {3}112 MiB {2}5\.47%/);
  assert.doesNotMatch(h.out, /est\./);
  const j = JSON.parse(run({ mem: '2G', numa: '2', khoScratch: '16M,64M,32M', json: true }).out) as {
    regions: { kind: string; size: string; share: number }[];
    total: string;
    share: number;
    count: number;
    estimate: boolean;
  };
  assert.deepEqual(
    j.regions.map((r) => r.size),
    ['0x1000000', '0x4000000', '0x2000000', '0x2000000'],
  );
  assert.equal(j.total, '0x9000000');
  assert.equal(j.share, 7.03); // 144 / 2048
  assert.equal(j.count, 4);
  assert.equal(j.estimate, false);
});

test('usage errors exit 2; a bad reserve_mem exits 1', () => {
  assert.equal(run({}).code, 2);
  assert.equal(run({ mem: '2X' }).code, 2);
  assert.equal(run({ mem: '2G', numa: 'two' }).code, 2);
  assert.equal(run({ mem: '2G', arch: 'sparc' }).code, 2);
  assert.equal(run({ mem: '2G', pageSize: '64K' }).code, 2); // x86_64 has 4K pages only
  const r = run({ mem: '2G', reserveMem: ['8M'] });
  assert.equal(r.code, 1);
  assert.match(r.err, /reserve_mem: empty or malformed parameter/);
});

test("a reservation the machine cannot hold: the kernel's messages, no regions, exit 1", () => {
  // 4 GiB of global scratch on a 2 GiB machine: kho_reserve_scratch() fails at the global area
  const r = run({ mem: '2G', khoScratch: '16M,4G,1G', json: true });
  assert.equal(r.code, 1);
  const j = JSON.parse(r.out) as { reserved: boolean; regions: unknown[]; kernelLog: string[] };
  assert.equal(j.reserved, false);
  assert.deepEqual(j.regions, []);
  assert.deepEqual(j.kernelLog.slice(-2), [
    'KHO: Failed to reserve global scratch buffer',
    'KHO: Failed to reserve scratch area, disabling kexec handover',
  ]);
  assert.match(r.err, /could not reserve scratch/);
});

test('spaces cannot smuggle other parameters onto the simulated command line', () => {
  assert.equal(run({ mem: '2G', khoScratch: '16M,64M,32M kho=off' }).code, 2);
  assert.equal(run({ mem: '2G', reserveMem: ['8M:2M:a reserve_mem=1M:0:b'] }).code, 2);
});
