import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell } from '../index.ts';
import { gnu, runGnu, runTool } from './gnu-oracle.ts';

const lineArb = fc
  .array(fc.constantFrom('a', 'b', 'c', 'A', 'B', ' ', '.', '*', 'x', '1', '2', '_', '-', '+', '(', '{'), {
    maxLength: 8,
  })
  .map((cs) => cs.join(''));
const textArb = fc
  .tuple(fc.array(lineArb, { maxLength: 8 }), fc.boolean(), fc.integer({ min: 0, max: 12 }))
  .map(([lines, trailing, nul]) => {
    let s = lines.join('\n') + (trailing && lines.length ? '\n' : '');
    if (nul === 0 && s.length > 0) s = `${s.slice(0, 1)}\0${s.slice(1)}`;
    return s;
  });

function regexArb(ere: boolean): fc.Arbitrary<string> {
  const lit = fc.constantFrom('a', 'b', 'c', 'x', '1', ' ', '\\.', '\\*', '_');
  const cls = fc.constantFrom('.', '[ab]', '[^a]', '[[:digit:]]', '[[:alpha:]]', '[a-c1]', '[]a]', '[.*]');
  const q = ere
    ? fc.constantFrom('*', '+', '?', '{1,2}', '{2}', '{0,1}', '{1,}')
    : fc.constantFrom('*', '\\+', '\\?', '\\{1,2\\}', '\\{2\\}', '\\{1,\\}');
  const { seq } = fc.letrec<{ seq: string; atom: string }>((tie) => ({
    atom: fc.oneof(
      { weight: 5, arbitrary: lit },
      { weight: 3, arbitrary: cls },
      {
        weight: 1,
        arbitrary: tie('seq').map((s) => (ere ? `(${s})` : `\\(${s}\\)`)),
      },
    ),
    seq: fc
      .tuple(
        fc.array(fc.tuple(tie('atom'), fc.option(q, { freq: 3 })), { minLength: 1, maxLength: 3 }),
        fc.option(tie('seq'), { freq: 6 }),
      )
      .map(([items, alt]) => {
        const s = items.map(([a, qq]) => a + (qq ?? '')).join('');
        return alt === null ? s : `${s}${ere ? '|' : '\\|'}${alt}`;
      }),
  }));
  return fc
    .tuple(fc.boolean(), seq, fc.boolean())
    .map(([caret, s, dollar]) => (caret ? '^' : '') + s + (dollar ? '$' : ''));
}

// -x with -w together is left out: GNU 3.8 prints a stray empty line for `-o -x -w` (a quirk not worth copying).
const optsArb = fc
  .subarray(['-i', '-v', '-c', '-n', '-o', '-x', '-w'])
  .filter((o) => !(o.includes('-x') && o.includes('-w')));

async function compare(args: string[], input: string) {
  const sh = createShell();
  const ours = await runTool(sh, ['grep', ...args], input);
  const real = runGnu('grep', args, { input: Buffer.from(input, 'latin1') });
  assert.deepEqual(ours, real, `grep ${JSON.stringify(args)} on ${JSON.stringify(input)}`);
}

test('grep: basic regular expressions match GNU grep on random lines and options', async (t) => {
  if (!gnu(t, 'grep')) return;
  await fc.assert(
    fc.asyncProperty(regexArb(false), optsArb, textArb, async (re, opts, input) => {
      await compare([...opts, '-e', re], input);
    }),
    { numRuns: 250 },
  );
});

test('grep: extended regular expressions match GNU grep -E', async (t) => {
  if (!gnu(t, 'grep')) return;
  await fc.assert(
    fc.asyncProperty(regexArb(true), optsArb, textArb, async (re, opts, input) => {
      await compare(['-E', ...opts, '-e', re], input);
    }),
    { numRuns: 250 },
  );
});

test('grep: fixed strings and -q match GNU grep -F', async (t) => {
  if (!gnu(t, 'grep')) return;
  await fc.assert(
    fc.asyncProperty(
      lineArb,
      fc.subarray(['-i', '-v', '-c', '-o', '-q', '-x']),
      textArb,
      async (s, opts, input) => {
        await compare(['-F', ...opts, '--', s], input);
      },
    ),
    { numRuns: 150 },
  );
});

test('grep: hand-picked GNU behaviours', async (t) => {
  if (!gnu(t, 'grep')) return;
  const cases: [string[], string][] = [
    [['-o', 'a\\|ab'], 'ab\nab'],
    [['-o', 'a**'], 'a**b\n'],
    [['-E', '-o', 'a{,2}'], 'aaa\n'],
    [['-E', '{x'], '{x\n'],
    [['-E', 'a{1'], 'a{1\n'],
    [['\\(a\\)\\2'], 'ab\n'],
    [['\\(a\\)\\1'], 'aa\nab\n'],
    [['a+b'], 'a+b\naab\n'],
    [['-c', ''], 'x\n'],
    [['-c', 'x'], ''],
    [['o'], 'hello\0world\n'],
    [['-c', 'o'], 'hello\0world\n'],
    [['['], 'a[\n'],
    [['-E', '(a'], 'a\n'],
    [['\\<ab\\>'], 'ab cab ab_\n'],
    [['-o', '\\w\\+'], 'foo bar_1 ,x\n'],
    [['-n', 'KHO'], '[    0.000000] KHO: exec from: 7.3.4 (count 1)\nother\nKHO again\n'],
    [['-in', 'kho'], '[    0.000000] KHO: exec from: 7.3.4 (count 1)\nother\n'],
  ];
  for (const [args, input] of cases) await compare(args, input);
});

test('grep: files, names and errors as GNU grep', async (t) => {
  if (!gnu(t, 'grep')) return;
  const { mkdtempSync, writeFileSync, rmSync, mkdirSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/kho-grep-');
  try {
    writeFileSync(`${dir}/a.txt`, 'one\ntwo\nthree\n');
    writeFileSync(`${dir}/b.txt`, 'four\nfive\n');
    mkdirSync(`${dir}/sub`);
    writeFileSync(`${dir}/sub/c.txt`, 'two too\n');
    const sh = createShell();
    sh.vfs.mkdirp('/mnt/h');
    sh.vfs.mountHost('/mnt/h', dir);
    sh.vfs.chdir('/mnt/h');
    for (const args of [
      ['o', 'a.txt', 'b.txt'],
      ['-c', 'o', 'a.txt', 'b.txt'],
      ['-l', 'o', 'a.txt', 'b.txt', 'sub/c.txt'],
      ['-h', 't', 'a.txt', 'sub/c.txt'],
      ['-H', 't', 'a.txt'],
      ['t', 'missing', 'a.txt'],
      ['-s', 't', 'missing', 'a.txt'],
      ['-q', 't', 'missing', 'a.txt'],
      ['t', 'sub'],
      ['-r', 'two', 'sub'],
      ['-n', 'e', 'a.txt', 'b.txt'],
      ['-m', '1', 'o', 'a.txt'],
    ]) {
      const ours = await runTool(sh, ['grep', ...args]);
      const real = runGnu('grep', args, { cwd: dir });
      assert.deepEqual(ours, real, `grep ${args.join(' ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
