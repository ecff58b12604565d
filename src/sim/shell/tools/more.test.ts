import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell, toText } from '../index.ts';
import { gnu, runGnu, runTool } from './gnu-oracle.ts';

const bytesArb = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(10, 10, 9, 32, 97, 98) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    ),
    { maxLength: 60 },
  )
  .map((a) => Uint8Array.from(a));

async function same(tool: string, args: string[], input: Uint8Array | string = '') {
  const ours = await runTool(createShell(), [tool, ...args], input);
  const real = runGnu(tool, args, {
    input: typeof input === 'string' ? Buffer.from(input, 'latin1') : input,
  });
  assert.deepEqual(ours, real, `${tool} ${JSON.stringify(args)}`);
}

test('cat -n -b -s -E -T -v -A -e -t matches GNU cat, numbering across inputs', async (t) => {
  if (!gnu(t, 'cat')) return;
  const optsArb = fc.subarray(['-n', '-b', '-s', '-E', '-T', '-v', '-A', '-e', '-t']);
  await fc.assert(
    fc.asyncProperty(optsArb, bytesArb, fc.boolean(), async (o, b, twice) => {
      await same('cat', [...o, ...(twice ? ['-', '-'] : [])], b);
    }),
    { numRuns: 200 },
  );
});

test('seq (FIRST INCR LAST, decimals, -s, -w, negatives) matches GNU seq', async (t) => {
  if (!gnu(t, 'seq')) return;
  const numArb = fc.oneof(
    fc.integer({ min: -20, max: 20 }).map(String),
    fc.constantFrom('0.5', '1.25', '-1.5', '2.0', '.5', '3.'),
  );
  const argsArb = fc.oneof(
    numArb.map((a) => [a]),
    fc.tuple(numArb, numArb).map(([a, b]) => [a, b]),
    fc
      .tuple(
        numArb,
        numArb.filter((x) => Number(x) !== 0),
        numArb,
      )
      .map(([a, b, c]) => [a, b, c]),
  );
  const optArb = fc.constantFrom([], ['-w'], ['-s', ','], ['-s', ', '], ['-w', '-s', ':']);
  await fc.assert(
    fc.asyncProperty(optArb, argsArb, async (o, a) => {
      await same('seq', [...o, ...a]);
    }),
    { numRuns: 200 },
  );
});

test('basename and dirname match GNU', async (t) => {
  if (!gnu(t, 'basename', 'dirname')) return;
  const nameArb = fc
    .array(fc.constantFrom('a', 'b.txt', '/', '//', '.', '..', 'x.txt'), { minLength: 1, maxLength: 4 })
    .map((p) => p.join(''));
  await fc.assert(
    fc.asyncProperty(nameArb, fc.option(fc.constantFrom('.txt', 'a', 'txt')), async (n, suffix) => {
      await same('basename', suffix === null ? [n] : [n, suffix]);
      await same('basename', ['-a', n, n]);
      await same('dirname', [n, n]);
    }),
    { numRuns: 150 },
  );
});

test('tee copies stdin to stdout and files; unwritable files are reported', async () => {
  const sh = createShell();
  const r = await sh.run('echo hi | tee /tmp/a /proc/nope /tmp/b; tee -a /tmp/a < /tmp/b; cat /tmp/a');
  assert.equal(toText(r.stdout), 'hi\nhi\nhi\nhi\n');
  assert.equal(toText(r.stderr), 'tee: /proc/nope: Permission denied\n');
});

test('seq refuses to produce unbounded output', async () => {
  const sh = createShell();
  const r = await sh.run('seq 100000000 | wc -l');
  assert.equal(toText(r.stderr), 'seq: write error: File too large\n');
});
