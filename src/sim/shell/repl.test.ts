import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createShell, runRepl } from './index.ts';

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('latin1') };
}

test('non-terminal input: commands run line by line with no prompt or echo; exit sets the status', async () => {
  const input = new PassThrough();
  const out = sink();
  const err = sink();
  const done = runRepl(createShell(), { input, output: out.stream, errorOutput: err.stream });
  input.end("echo a\necho 'b\nc' | wc -l\nnosuch\nexit 4\necho never\n");
  assert.equal(await done, 4);
  assert.equal(out.text(), 'a\n2\n');
  assert.equal(err.text(), 'sh: nosuch: not found\n');
});

test('non-terminal input without exit ends with the last status', async () => {
  const input = new PassThrough();
  const out = sink();
  const done = runRepl(createShell(), { input, output: out.stream, errorOutput: sink().stream });
  input.end('true\nfalse');
  assert.equal(await done, 1);
  assert.equal(out.text(), '');
});

test('a child process reading a script from a pipe gets raw bytes through unchanged', () => {
  const program = [
    "import { createShell, runRepl } from './src/sim/shell/index.ts';",
    'process.exitCode = await runRepl(createShell());',
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
    cwd: new URL('../../..', import.meta.url).pathname,
    input: Buffer.concat([
      Buffer.from('echo '),
      Buffer.from([0xc3, 0xa9, 0xff]),
      Buffer.from(' | xxd -p\nexit 3\n'),
    ]),
  });
  assert.equal(r.stderr.toString(), '');
  assert.equal(r.stdout.toString(), 'c3a9ff0a\n');
  assert.equal(r.status, 3);
});

test('terminal mode: prompt, history recall with the up arrow, continuation prompt', async () => {
  const input = new PassThrough();
  const out = sink();
  const done = runRepl(createShell(), {
    input,
    output: out.stream,
    errorOutput: out.stream,
    terminal: true,
    banner: 'welcome\n',
  });
  const type = async (s: string) => {
    input.write(s);
    await new Promise((r) => setTimeout(r, 20));
  };
  await type('echo hi\r');
  await type('\x1b[A\r');
  await type("echo 'x\r");
  await type("y'\r");
  await type('exit 0\r');
  assert.equal(await done, 0);
  const text = out.text();
  assert.ok(text.startsWith('welcome\n'), JSON.stringify(text.slice(0, 40)));
  // readline redraws the prompt with cursor escapes; the prompt text itself is there.
  assert.match(text, /# \x1b\[3Gecho hi/);
  assert.equal(text.split('hi\n').length - 1, 2, 'the recalled command ran again');
  assert.match(text, /> /);
  assert.match(text, /x\ny\n/);
});
