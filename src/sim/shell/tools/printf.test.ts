import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell } from '../index.ts';
import { gnu, runTool } from './gnu-oracle.ts';

const specArb = fc
  .tuple(
    fc.subarray(['-', '+', ' ', '#', '0']),
    fc.option(fc.oneof(fc.integer({ min: 0, max: 12 }).map(String), fc.constant('*'))),
    fc.option(fc.oneof(fc.integer({ min: 0, max: 8 }).map(String), fc.constant(''), fc.constant('*'))),
    fc.constantFrom('d', 'i', 'o', 'u', 'x', 'X', 'c', 's', 'b', 'e', 'E', 'f', 'g', 'G', '%'),
  )
  .map(([f, w, p, c]) => `%${f.join('')}${w ?? ''}${p === null ? '' : `.${p}`}${c}`);
const litArb = fc.constantFrom('a', ' ', '\\n', '\\t', '\\\\', '\\101', '\\x41', '\\0', 'z:', '\\"', '\\q');
const fmtArb = fc.array(fc.oneof(specArb, litArb), { minLength: 1, maxLength: 4 }).map((p) => p.join(''));
const argArb = fc.constantFrom(
  '0',
  '1',
  '-1',
  '42',
  '007',
  '0x1f',
  '-0x10',
  "'A",
  '3.5',
  '-2.25',
  '1e3',
  '',
  'abc',
  '12abc',
  'hello world',
  'a\\tb',
  'x\\cy',
  'q\\"u\\?v\\\'w\\101',
  '\\0101',
  '9223372036854775807',
  '-9223372036854775808',
  '99999999999999999999',
  '0.0001234',
  '12345',
);

test('printf matches bash builtin printf (stdout, status, whether it complains)', async (t) => {
  if (!gnu(t, 'bash')) return;
  await fc.assert(
    fc.asyncProperty(fmtArb, fc.array(argArb, { maxLength: 4 }), async (fmt, args) => {
      // A huge `*` width makes bash print megabytes (ours clamps widths at 1 MiB): not compared.
      fc.pre(!(fmt.includes('*') && args.some((a) => a.length > 5)));
      const ours = await runTool(createShell(), ['printf', fmt, ...args]);
      const r = spawnSync('bash', ['--norc', '-c', 'printf "$@"', 'bash', fmt, ...args], {
        env: { LC_ALL: 'C' },
      });
      const label = JSON.stringify([fmt, ...args]);
      assert.equal(ours.stdout, r.stdout.toString('latin1'), label);
      assert.equal(ours.status, r.status, label);
      assert.equal(ours.stderr === '', r.stderr.length === 0, `${label}: ${r.stderr}`);
    }),
    { numRuns: 300 },
  );
});

test("printf %b reads echo -e's escapes plus bare \\NNN octal, as bash does", async (t) => {
  if (!gnu(t, 'bash')) return;
  for (const arg of ['q\\"u\\?v\\\'w', '\\101\\0101\\1012', '\\x41\\x4g\\e\\q', 'a\\cb', 'tail\\']) {
    const ours = await runTool(createShell(), ['printf', '[%b]', arg]);
    const r = spawnSync('bash', ['--norc', '-c', 'printf "$@"', 'bash', '[%b]', arg], {
      env: { LC_ALL: 'C' },
    });
    assert.equal(ours.stdout, r.stdout.toString('latin1'), arg);
    assert.equal(ours.status, r.status, arg);
  }
});
