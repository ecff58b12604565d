import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell } from '../index.ts';
import { gnu, runGnu, runTool } from './gnu-oracle.ts';

const fieldArb = fc
  .array(fc.constantFrom('a', 'B', 'b', '1', '2', '0', '-', '.', ' ', 'z', '9', ':', '\t'), { maxLength: 7 })
  .map((c) => c.join(''));
const linesArb = (line: fc.Arbitrary<string>) =>
  fc
    .tuple(fc.array(line, { maxLength: 10 }), fc.boolean())
    .map(([ls, trailing]) => ls.join('\n') + (trailing && ls.length ? '\n' : ''));
const textArb = linesArb(fieldArb);

async function same(tool: string, args: string[], input: string) {
  const ours = await runTool(createShell(), [tool, ...args], input);
  const real = runGnu(tool, args, { input });
  assert.deepEqual(ours, real, `${tool} ${JSON.stringify(args)} on ${JSON.stringify(input)}`);
}

test('sort (-n -r -u -f -s -b) matches GNU sort in the C locale', async (t) => {
  if (!gnu(t, 'sort')) return;
  const optsArb = fc.subarray(['-n', '-r', '-u', '-f', '-s', '-b']);
  await fc.assert(
    fc.asyncProperty(optsArb, textArb, (o, s) => same('sort', o, s)),
    { numRuns: 250 },
  );
});

test('sort -t/-k keys match GNU sort', async (t) => {
  if (!gnu(t, 'sort')) return;
  const keyArb = fc
    .tuple(
      fc.integer({ min: 1, max: 3 }),
      fc.option(fc.integer({ min: 1, max: 3 })),
      fc.constantFrom('', 'n', 'r', 'nr', 'b'),
    )
    .map(([f1, f2, o]) => `${f1}${o}${f2 === null ? '' : `,${Math.max(f1, f2)}`}`);
  const argsArb = fc
    .tuple(
      fc.array(keyArb, { minLength: 1, maxLength: 2 }),
      fc.option(fc.constantFrom(':', ' ')),
      fc.subarray(['-u', '-r', '-n']),
    )
    .map(([keys, sep, o]) => [...o, ...(sep === null ? [] : ['-t', sep]), ...keys.flatMap((k) => ['-k', k])]);
  await fc.assert(
    fc.asyncProperty(argsArb, textArb, (a, s) => same('sort', a, s)),
    { numRuns: 200 },
  );
});

test('uniq (-c -d -u -i) matches GNU uniq', async (t) => {
  if (!gnu(t, 'uniq')) return;
  const dupLines = linesArb(fc.constantFrom('a', 'A', 'b', '', 'a b'));
  const optsArb = fc.subarray(['-c', '-d', '-u', '-i']);
  await fc.assert(
    fc.asyncProperty(optsArb, dupLines, (o, s) => same('uniq', o, s)),
    { numRuns: 150 },
  );
});

test('cut -f/-b/-c with -d, -s and lists matches GNU cut', async (t) => {
  if (!gnu(t, 'cut')) return;
  const rangeArb = fc.oneof(
    fc.integer({ min: 1, max: 5 }).map(String),
    fc.integer({ min: 1, max: 5 }).map((n) => `${n}-`),
    fc.integer({ min: 1, max: 5 }).map((n) => `-${n}`),
    fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 3 })).map(([a, d]) => `${a}-${a + d}`),
  );
  const listArb = fc.array(rangeArb, { minLength: 1, maxLength: 3 }).map((l) => l.join(','));
  const argsArb = fc.oneof(
    fc
      .tuple(listArb, fc.option(fc.constantFrom(':', ' ', '-')), fc.boolean())
      .map(([l, d, s]) => ['-f', l, ...(d === null ? [] : ['-d', d]), ...(s ? ['-s'] : [])]),
    listArb.map((l) => ['-b', l]),
    listArb.map((l) => ['-c', l]),
  );
  await fc.assert(
    fc.asyncProperty(argsArb, textArb, (a, s) => same('cut', a, s)),
    { numRuns: 200 },
  );
});

test('tr (translate, -d, -s, -c, classes, ranges, escapes) matches GNU tr', async (t) => {
  if (!gnu(t, 'tr')) return;
  const setArb = fc.constantFrom(
    'a-c',
    'ab',
    '[:digit:]',
    '[:alpha:]',
    '\\n',
    ' ',
    'a-z',
    '0-9',
    '.-',
    'xyz',
    '\\t:',
  );
  const argsArb = fc.oneof(
    fc.tuple(setArb, setArb).map(([a, b]) => [a, b]),
    setArb.map((a) => ['-d', a]),
    setArb.map((a) => ['-s', a]),
    setArb.map((a) => ['-cd', a]),
    fc.tuple(setArb, setArb).map(([a, b]) => ['-s', a, b]),
    fc.tuple(setArb, setArb).map(([a, b]) => ['-ds', a, b]),
    fc.constant<string[]>(['a-z', 'A-Z']),
    fc.constant<string[]>(['[:lower:]', '[:upper:]']),
  );
  await fc.assert(
    fc.asyncProperty(argsArb, textArb, (a, s) => same('tr', a, s)),
    { numRuns: 200 },
  );
});
