import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell } from '../index.ts';
import { gnu, runGnu, runTool } from './gnu-oracle.ts';

/** Bytes biased towards newlines, blanks and printable text, with some of every byte value. */
const bytesArb = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(10, 32, 9, 97, 98, 65, 49) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    ),
    { maxLength: 120 },
  )
  .map((a) => Uint8Array.from(a));
const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');

async function same(tool: string, args: string[], input: Uint8Array) {
  const ours = await runTool(createShell(), [tool, ...args], input);
  const real = runGnu(tool, args, { input });
  assert.deepEqual(ours, real, `${tool} ${JSON.stringify(args)} on ${JSON.stringify(latin1(input))}`);
}

const countArg = fc.integer({ min: 0, max: 15 }).map(String);

test('head -n/-c (also -N and all-but-last) matches GNU head', async (t) => {
  if (!gnu(t, 'head')) return;
  const argsArb = fc.oneof(
    countArg.map((n) => ['-n', n]),
    countArg.map((n) => ['-c', n]),
    countArg.map((n) => ['-n', `-${n}`]),
    countArg.map((n) => ['-c', `-${n}`]),
    countArg.map((n) => [`-${n}`]),
    fc.constant([] as string[]),
  );
  await fc.assert(
    fc.asyncProperty(argsArb, bytesArb, (a, b) => same('head', a, b)),
    { numRuns: 150 },
  );
});

test('tail -n/-c (also +N and -N) matches GNU tail', async (t) => {
  if (!gnu(t, 'tail')) return;
  const argsArb = fc.oneof(
    countArg.map((n) => ['-n', n]),
    countArg.map((n) => ['-c', n]),
    countArg.map((n) => ['-n', `+${n}`]),
    countArg.map((n) => ['-c', `+${n}`]),
    countArg.map((n) => [`-${n}`]),
    fc.constant([] as string[]),
  );
  await fc.assert(
    fc.asyncProperty(argsArb, bytesArb, (a, b) => same('tail', a, b)),
    { numRuns: 150 },
  );
});

test('wc counts and pads as GNU wc on a pipe', async (t) => {
  if (!gnu(t, 'wc')) return;
  const optsArb = fc.subarray(['-l', '-w', '-c', '-L']);
  await fc.assert(
    fc.asyncProperty(optsArb, bytesArb, (o, b) => same('wc', o, b)),
    { numRuns: 200 },
  );
});

test('xxd dumps byte-identically to xxd (-g -c -l -s -p -u)', async (t) => {
  if (!gnu(t, 'xxd')) return;
  const optArb = fc.oneof(
    fc.integer({ min: 0, max: 9 }).map((n) => ['-g', String(n)]),
    fc.integer({ min: 1, max: 40 }).map((n) => ['-c', String(n)]),
    fc.integer({ min: 0, max: 70 }).map((n) => ['-l', String(n)]),
    fc.integer({ min: 0, max: 70 }).map((n) => ['-s', String(n)]),
    fc.constant(['-p']),
    fc.constant(['-u']),
  );
  const argsArb = fc.array(optArb, { maxLength: 3 }).map((l) => l.flat());
  await fc.assert(
    fc.asyncProperty(argsArb, bytesArb, (a, b) => same('xxd', a, b)),
    { numRuns: 250 },
  );
});

test('sha256sum of stdin matches GNU sha256sum', async (t) => {
  if (!gnu(t, 'sha256sum')) return;
  await fc.assert(
    fc.asyncProperty(bytesArb, (b) => same('sha256sum', [], b)),
    { numRuns: 60 },
  );
});

test('head, tail, wc, xxd and sha256sum on files: names, headers, totals and errors as GNU', async (t) => {
  if (!gnu(t, 'head', 'tail', 'wc', 'xxd', 'sha256sum')) return;
  const dir = mkdtempSync('/tmp/kho-bytes-');
  try {
    writeFileSync(`${dir}/a`, 'one\ntwo\nthree\nfour\n');
    writeFileSync(`${dir}/b b`, Buffer.from('x'.repeat(20000) + '\n'));
    writeFileSync(`${dir}/c`, Buffer.from([0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 0x38]));
    writeFileSync(`${dir}/back\\slash`, 'z\n');
    const sh = createShell();
    sh.vfs.mkdirp('/mnt/h');
    sh.vfs.mountHost('/mnt/h', dir);
    sh.vfs.chdir('/mnt/h');
    const cases: [string, string[]][] = [
      ['head', ['-n', '2', 'a', 'c']],
      ['head', ['-q', '-n', '1', 'a', 'a']],
      ['head', ['-v', 'a']],
      ['head', ['a', 'missing']],
      ['head', ['-n', 'x', 'a']],
      ['tail', ['-n', '2', 'a', 'b b']],
      ['tail', ['-c', '3', 'missing', 'a']],
      ['wc', ['a']],
      ['wc', ['-l', 'a']],
      ['wc', ['a', 'b b', 'c']],
      ['wc', ['-w', 'a', 'c']],
      ['wc', ['missing', 'a']],
      ['wc', ['a', 'missing']],
      ['xxd', ['c']],
      ['xxd', ['-s', '4', 'c']],
      ['xxd', ['missing']],
      ['sha256sum', ['a', 'c', 'b b', 'back\\slash']],
      ['sha256sum', ['missing', 'a']],
    ];
    for (const [tool, args] of cases) {
      const ours = await runTool(sh, [tool, ...args]);
      const real = runGnu(tool, args, { cwd: dir });
      assert.deepEqual(ours, real, `${tool} ${args.join(' ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('directories and missing files as operands: each tool words the failure as GNU does', async (t) => {
  if (!gnu(t, 'head', 'tail', 'wc', 'xxd', 'sha256sum', 'sort', 'uniq', 'cut', 'cat', 'grep')) return;
  const dir = mkdtempSync('/tmp/kho-dirs-');
  try {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(`${dir}/dd`);
    writeFileSync(`${dir}/f`, 'x y\n');
    const sh = createShell();
    sh.vfs.mkdirp('/mnt/h');
    sh.vfs.mountHost('/mnt/h', dir);
    sh.vfs.chdir('/mnt/h');
    const cases: [string, string[]][] = [
      ['head', ['dd']],
      ['head', ['-n1', 'dd', 'f']],
      ['tail', ['dd', 'f']],
      ['wc', ['dd']],
      ['wc', ['dd', 'f']],
      ['xxd', ['dd']],
      ['sha256sum', ['dd', 'f']],
      ['sort', ['dd']],
      ['sort', ['f', 'missing']],
      ['uniq', ['dd']],
      ['uniq', ['missing']],
      ['cut', ['-f1', 'dd', 'f']],
      ['cut', ['-f1', 'missing']],
      ['cat', ['dd', 'f', 'missing']],
      ['grep', ['x', 'dd', 'f']],
    ];
    for (const [tool, args] of cases) {
      const ours = await runTool(sh, [tool, ...args]);
      const real = runGnu(tool, args, { cwd: dir });
      assert.deepEqual(ours, real, `${tool} ${args.join(' ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
