import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { codeOf } from '../../test/helpers/errors.ts';
import { preservedJson, SCENARIOS, VECTORS } from '../../test/helpers/vectors.ts';
import {
  decodeScratchArray,
  encodeScratchArray,
  formatScratchText,
  parseScratchText,
  scratchFromDebugfs,
  scratchRole,
  scratchToDebugfs,
  validatePreservedOutsideScratch,
  validateScratch,
} from './scratch.ts';

test('vectors: flat-explicit kho_scratch=16M,64M,32M gives lowmem 16M, global 64M, one node 32M', () => {
  const dir = join(VECTORS, 'flat-explicit/stage1/out');
  const phys = readFileSync(join(dir, 'scratch_phys'), 'utf8');
  const len = readFileSync(join(dir, 'scratch_len'), 'utf8');
  const e = scratchFromDebugfs(phys, len);
  assert.deepEqual(e, [
    { addr: 0x7c000000n, size: 16n << 20n },
    { addr: 0x78000000n, size: 64n << 20n },
    { addr: 0x76000000n, size: 32n << 20n },
  ]);
  assert.deepEqual(scratchToDebugfs(e), { phys, len });
  assert.deepEqual(validateScratch(e), []);
});

test('vectors: every scratch file parses, re-formats byte for byte, and is consistent', () => {
  let n = 0;
  for (const sc of readdirSync(VECTORS)) {
    for (const st of [1, 2, 3]) {
      const dir = join(VECTORS, sc, `stage${st}`, 'out');
      if (!existsSync(join(dir, 'scratch_phys'))) continue;
      const phys = readFileSync(join(dir, 'scratch_phys'), 'utf8');
      const len = readFileSync(join(dir, 'scratch_len'), 'utf8');
      const e = scratchFromDebugfs(phys, len);
      assert.deepEqual(scratchToDebugfs(e), { phys, len });
      // numa-explicit has 2 nodes: 4 entries; the others 1 node: 3.
      assert.equal(e.length, sc === 'numa-explicit' ? 4 : 3, `${sc} ${st}`);
      assert.deepEqual(validateScratch(e), [], `${sc} ${st}`);
      n++;
    }
  }
  assert.ok(n >= 12);
  // Default scale on 2 GiB: global is 0 bytes but still listed with an address (README).
  const ds = scratchFromDebugfs(
    readFileSync(join(VECTORS, 'default-scale/stage1/out/scratch_phys'), 'utf8'),
    readFileSync(join(VECTORS, 'default-scale/stage1/out/scratch_len'), 'utf8'),
  );
  assert.deepEqual(ds[1], { addr: 0x7d800000n, size: 0n });
  assert.equal(ds[0].size, 164n << 20n);
  assert.equal(ds[2].size, 140n << 20n);
});

test('binary array: 16-byte native entries, hand-derived', () => {
  const b = encodeScratchArray([
    { addr: 0x7c000000n, size: 0x1000000n },
    { addr: 0x1_0000_0000n, size: 1n },
  ]);
  assert.deepEqual(
    [...b],
    [0, 0, 0, 0x7c, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
  );
  assert.deepEqual(decodeScratchArray(b), [
    { addr: 0x7c000000n, size: 0x1000000n },
    { addr: 0x1_0000_0000n, size: 1n },
  ]);
  assert.equal(
    codeOf(() => decodeScratchArray(new Uint8Array(17))),
    'KHO_SCRATCH_BAD_SIZE',
  );
  const be = encodeScratchArray([{ addr: 1n, size: 2n }], 'big');
  assert.deepEqual([...be], [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
});

test('text: strict 0x%llx lines', () => {
  assert.equal(formatScratchText([0n, 0xabcn]), '0x0\n0xabc\n');
  assert.deepEqual(parseScratchText(''), []);
  for (const bad of [
    '0x10',
    '0X10\n',
    '0x010\n',
    '16\n',
    '0xABC\n',
    '0x1\n\n',
    `0x1${'0'.repeat(16)}\n`,
    ' 0x1\n',
  ]) {
    assert.equal(
      codeOf(() => parseScratchText(bad)),
      'KHO_SCRATCH_BAD_TEXT',
      JSON.stringify(bad),
    );
  }
  assert.equal(
    codeOf(() => scratchFromDebugfs('0x1\n0x2\n', '0x1\n')),
    'KHO_SCRATCH_MISMATCH',
  );
  assert.deepEqual(
    [0, 1, 2, 5].map((i) => scratchRole(i)),
    ['lowmem', 'global', 'node0', 'node3'],
  );
});

test('validate reports every problem', () => {
  const f = validateScratch([
    { addr: 0x1000n, size: 0x10000n },
    { addr: 0x8000n, size: 0x10000n }, // overlaps lowmem
    { addr: 0xffff_ffff_ffff_f000n, size: 0x2000n }, // wraps
    { addr: 0x100800n, size: 0x1000n }, // unaligned
  ]);
  assert.deepEqual(
    f.map((x) => [x.code, x.path]),
    [
      ['KHO_SCRATCH_OVERLAP', 'scratch[1] (global)'],
      ['KHO_SCRATCH_WRAPS', 'scratch[2] (node0)'],
      ['KHO_SCRATCH_UNALIGNED', 'scratch[3] (node1)'],
    ],
  );
  assert.deepEqual(
    validateScratch([{ addr: 0n, size: 0n }]).map((x) => x.code),
    ['KHO_SCRATCH_TOO_FEW'],
  );
});

test('property: array and text round trips', () => {
  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  const entry = fc.tuple(u64, u64).map(([addr, size]) => ({ addr, size }));
  fc.assert(
    fc.property(
      fc.array(entry, { maxLength: 10 }),
      fc.constantFrom('little' as const, 'big' as const),
      (es, endian) => {
        assert.deepEqual(decodeScratchArray(encodeScratchArray(es, endian), endian), es);
        const { phys, len } = scratchToDebugfs(es);
        assert.deepEqual(scratchFromDebugfs(phys, len), es);
      },
    ),
    { numRuns: 200 },
  );
});

test('vectors: no preserved block of any stage-1 capture lies in scratch; a planted one is reported', () => {
  for (const sc of SCENARIOS) {
    const dir = join(VECTORS, sc, 'stage1');
    const blocks = preservedJson(`${sc}/stage1`).map(([pa, order]) => ({ pa: BigInt(pa), order }));
    const scratch = scratchFromDebugfs(
      readFileSync(join(dir, 'out/scratch_phys'), 'utf8'),
      readFileSync(join(dir, 'out/scratch_len'), 'utf8'),
    );
    assert.deepEqual(validatePreservedOutsideScratch(blocks, scratch), [], sc);
    const planted = [...blocks, { pa: scratch[0].addr + scratch[0].size - 0x1000n, order: 1 }];
    assert.deepEqual(
      validatePreservedOutsideScratch(planted, scratch).map((f) => f.code),
      ['KHO_SCRATCH_PRESERVED_OVERLAP'],
    );
  }
});
