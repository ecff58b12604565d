import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { cpuMsSince, cpuStart } from '../../../test/helpers/cpu.ts';
import { createShell, toText } from './index.ts';
import { gnu } from './tools/gnu-oracle.ts';

// ---------------------------------------------------------------- bash as the oracle

const wordArb = fc.oneof(
  fc.constantFrom('abc', 'a', 'x.y', '-n', '-e', '--', 'f*', 'f?', '[fg]1', '1', 'a=b'),
  fc.constantFrom(
    "'sq x'",
    "'a\"b'",
    "''",
    '""',
    '"dq $X y"',
    '"$X"',
    '$X',
    '$' + '{X}z',
    '"$' + '{X}"',
    '$?',
    '"$?"',
  ),
  fc.constantFrom(
    '\\$X',
    'a\\ b',
    '\\\\',
    '\\"',
    "\\'",
    'q"w e"r',
    "a'b c'd",
    '"a\\"b"',
    '"\\$"',
    '"a\\b"',
    '~',
    '~/x',
  ),
  fc.constantFrom('"a\\nb"', "'a\\tb'", '$Y', '"$Y"', 'pre$X', '"  "', 'a#b'),
);
const simpleArb = fc.oneof(
  fc.array(wordArb, { maxLength: 4 }).map((ws) => ['echo', ...ws].join(' ')),
  fc.constantFrom('true', 'false', 'cat', 'wc -c', 'grep -c a', 'echo -n x', 'echo -e "a\\tb"', ': x'),
  fc.tuple(fc.constantFrom('X', 'Y', 'Z'), wordArb).map(([v, w]) => `${v}=${w}`),
  fc.tuple(fc.constantFrom('Z'), wordArb, wordArb).map(([v, w, x]) => `${v}=${w} echo ${x}`),
);
const redirArb = fc.constantFrom(
  '',
  '',
  '',
  ' > f1',
  ' >> f2',
  ' < f1',
  ' 2>&1',
  ' >f2 2>&1',
  ' > /dev/null',
);
// Parts of a bash pipeline run concurrently: only the last may write files, or the result is a race.
const innerRedirArb = fc.constantFrom('', '', ' < f1', ' 2>&1', ' > /dev/null');
const pipelineArb = fc
  .tuple(fc.boolean(), fc.array(fc.tuple(simpleArb, innerRedirArb), { maxLength: 2 }), simpleArb, redirArb)
  .map(([neg, inner, last, r0]) => {
    // A part reading f1 while the last part truncates it is a race in bash too: write f2 instead.
    const r = r0 === ' > f1' && inner.some(([, ir]) => ir === ' < f1') ? ' > f2' : r0;
    return (neg ? '! ' : '') + [...inner.map(([c, ir]) => c + ir), last + r].join(' | ');
  });
const andOrArb = fc
  .tuple(pipelineArb, fc.array(fc.tuple(fc.constantFrom('&&', '||'), pipelineArb), { maxLength: 2 }))
  .map(([p, rest]) => p + rest.map(([op, q]) => ` ${op} ${q}`).join(''));
const lineArb = fc
  .tuple(fc.array(andOrArb, { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([items, comment]) => `${items.join('; ')}; echo "[$?]"${comment ? ' # a comment; echo no' : ''}`);

test('command lines (quotes, expansions, pipes, ;, &&, ||, !, redirections, $?) behave as in bash', async (t) => {
  if (!gnu(t, 'bash')) return;
  await fc.assert(
    fc.asyncProperty(lineArb, async (line) => {
      const dir = mkdtempSync('/tmp/kho-sh-');
      try {
        writeFileSync(`${dir}/f1`, 'hello a\n');
        writeFileSync(`${dir}/g1`, '');
        const r = spawnSync('bash', ['--norc', '--noprofile', '-c', line], {
          cwd: dir,
          env: { PATH: process.env.PATH, LC_ALL: 'C', X: 'p  q', HOME: '/root' },
        });
        const realF2 = (() => {
          try {
            return readFileSync(`${dir}/f2`, 'latin1');
          } catch {
            return null;
          }
        })();
        const sh = createShell({ env: { X: 'p  q' } });
        sh.vfs.mkdir('/tmp/w');
        sh.vfs.chdir('/tmp/w');
        sh.vfs.writeFile('/tmp/w/f1', 'hello a\n');
        sh.vfs.writeFile('/tmp/w/g1', '');
        const ours = await sh.run(line);
        const ourF2 = sh.vfs.exists('/tmp/w/f2') ? toText(sh.vfs.readFile('/tmp/w/f2')) : null;
        assert.equal(toText(ours.stdout), r.stdout.toString('latin1'), line);
        assert.equal(ours.status, r.status, line);
        assert.equal(ourF2, realF2, line);
        assert.equal(toText(sh.vfs.readFile('/tmp/w/f1')), readFileSync(`${dir}/f1`, 'latin1'), line);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 250 },
  );
});

// ---------------------------------------------------------------- the shell's own messages

test('unknown commands print `sh: NAME: not found` with status 127', async () => {
  const sh = createShell();
  const r = await sh.run('nosuch arg; echo $?');
  assert.equal(toText(r.stderr), 'sh: nosuch: not found\n');
  assert.equal(toText(r.stdout), '127\n');
});

test('syntax errors print bash wording and set status 2; the line does not run', async () => {
  const sh = createShell();
  for (const [line, msg] of [
    ['echo a; ; echo b', "sh: syntax error near unexpected token `;'\n"],
    ['| cat', "sh: syntax error near unexpected token `|'\n"],
    ['echo a > ', "sh: syntax error near unexpected token `newline'\n"],
    ["echo 'open", 'sh: syntax error: unexpected end of file\n'],
    ['echo a &&', 'sh: syntax error: unexpected end of file\n'],
  ] as const) {
    const r = await sh.run(line);
    assert.equal(toText(r.stdout), '', line);
    assert.equal(toText(r.stderr), msg, line);
    assert.equal(r.status, 2, line);
  }
  assert.equal(toText((await sh.run('echo $?')).stdout), '2\n');
});

test('redirection into a read-only place fails with the errno and the command does not run', async () => {
  const sh = createShell();
  sh.vfs.addFile('/proc/cmdline', { read: () => 'kho=on\n', size: () => 0 });
  let r = await sh.run('echo hi > /proc/cmdline; echo $?');
  assert.equal(toText(r.stderr), 'sh: /proc/cmdline: Permission denied\n');
  assert.equal(toText(r.stdout), '1\n');
  r = await sh.run('echo hi > /proc/new');
  assert.equal(toText(r.stderr), 'sh: /proc/new: Permission denied\n');
  r = await sh.run('cat < /nonexistent');
  assert.equal(toText(r.stderr), 'sh: /nonexistent: No such file or directory\n');
  assert.equal(r.status, 1);
  r = await sh.run('echo hi > /tmp/dir/x');
  assert.equal(toText(r.stderr), 'sh: /tmp/dir/x: No such file or directory\n');
  r = await sh.run('echo ok > /dev/null; cat /dev/null; echo $?');
  assert.equal(toText(r.output), '0\n');
});

test('exit ends a script with its status; later lines do not run', async () => {
  const sh = createShell();
  const { transcript, status } = await sh.runScript('echo one\nfalse\nexit\necho two\n');
  assert.equal(transcript, '# echo one\none\n# false\n# exit\n');
  assert.equal(status, 1);
  const sh2 = createShell();
  assert.equal((await sh2.runScript('exit 300')).status, 44);
  const sh3 = createShell();
  const r = await sh3.run('exit abc');
  assert.equal(toText(r.stderr), 'sh: exit: abc: numeric argument required\n');
  assert.equal(sh3.exitStatus, 2);
});

test('help lists every registered command with its description', async () => {
  const sh = createShell();
  sh.register('kexec', () => ({ status: 0 }), 'load or execute a new kernel');
  const out = toText((await sh.run('help')).stdout);
  assert.match(out, /^ {2}kexec +load or execute a new kernel$/m);
  for (const name of ['ls', 'cat', 'grep', 'xxd', 'sha256sum', 'cd', 'exit', 'help'])
    assert.match(out, new RegExp(`^  ${name} `, 'm'));
  assert.equal(toText((await sh.run('help nosuch')).stderr), "sh: help: no help topics match 'nosuch'.\n");
});

test('handlers get argv, stdin, env and may be async; a throwing handler prints name: message', async () => {
  const sh = createShell();
  const seen: unknown[] = [];
  sh.register('probe', async (ctx) => {
    seen.push({ argv: ctx.argv, stdin: toText(ctx.stdin), v: ctx.env.V, w: ctx.env.W });
    await new Promise((r) => setTimeout(r, 1));
    return { stdout: new Uint8Array([0x6f, 0x6b, 0x0a]), status: 3 };
  });
  sh.register('boom', () => {
    throw new Error('kaput');
  });
  const r = await sh.run('V=1; echo in | W=2 probe "a b" c; echo $?; echo "[$W]"; boom; echo $?');
  assert.deepEqual(seen, [{ argv: ['probe', 'a b', 'c'], stdin: 'in\n', v: '1', w: '2' }]);
  assert.equal(toText(r.stdout), 'ok\n3\n[]\n1\n');
  assert.equal(toText(r.stderr), 'boom: kaput\n');
});

test('cd and pwd follow the VFS; cd errors as bash', async () => {
  const sh = createShell();
  const r = await sh.run(
    'pwd; cd /sys/kernel; pwd; cd ..; pwd; cd; pwd; cd /nonexistent; cd /proc/../tmp; pwd; cd -',
  );
  assert.equal(toText(r.stdout), '/root\n/sys/kernel\n/sys\n/root\n/tmp\n/root\n');
  assert.equal(toText(r.stderr), 'sh: cd: /nonexistent: No such file or directory\n');
});

test('runScript gives the transcript a terminal shows, continuation lines included', async () => {
  const sh = createShell();
  sh.vfs.addFile('/proc/cmdline', { read: () => 'kho=on kho_scratch=16M,512M,256M\n', size: () => 0 });
  const script = [
    '# the guide, step 0',
    'cat /proc/cmdline',
    '',
    "echo 'two",
    "lines' | wc -l",
    'cat /proc/cmdline | grep -o "kho_scratch=[^ ]*"',
    'nosuch',
  ].join('\n');
  const { transcript, status } = await sh.runScript(script);
  assert.equal(
    transcript,
    [
      '# # the guide, step 0',
      '# cat /proc/cmdline',
      'kho=on kho_scratch=16M,512M,256M',
      "# echo 'two",
      "> lines' | wc -l",
      '2',
      '# cat /proc/cmdline | grep -o "kho_scratch=[^ ]*"',
      'kho_scratch=16M,512M,256M',
      '# nosuch',
      'sh: nosuch: not found',
      '',
    ].join('\n'),
  );
  assert.equal(status, 127);
});

test('pathname expansion: sorted matches, hidden files only for a leading dot, no match keeps the word', async () => {
  const sh = createShell();
  for (const f of ['b.txt', 'a.txt', '.hidden', 'c.bin']) sh.vfs.writeFile(`/tmp/${f}`, '');
  const r = await sh.run(
    'cd /tmp; echo *.txt; echo .h*; echo *.none; echo "*.txt"; echo /tmp/?.bin; echo [ab]*',
  );
  assert.equal(toText(r.stdout), 'a.txt b.txt\n.hidden\n*.none\n*.txt\n/tmp/c.bin\na.txt b.txt\n');
});

test('>FILE 2>&1 and &> send both streams to one file in order; 2>FILE only stderr', async () => {
  const sh = createShell();
  sh.vfs.writeFile('/tmp/in', 'data\n');
  const r = await sh.run(
    'cat /tmp/in /nope > /tmp/both 2>&1; cat /tmp/in /nope &> /tmp/amp; cat /tmp/in /nope 2> /tmp/err; cat /tmp/both /tmp/amp /tmp/err',
  );
  const msg = 'cat: /nope: No such file or directory\n';
  // The third cat's stdout reaches the terminal first; then the three files: both, amp, err.
  assert.equal(toText(r.stdout), `data\ndata\n${msg}data\n${msg}${msg}`);
  assert.equal(toText(r.stderr), '');
});

test('hostile command lines never crash or hang the shell: every outcome is a status and messages', async () => {
  const chars = fc.constantFrom(
    ...'ab *?[]{}()|&;<>$`\'"\\\n\t#~=!-0123456789/.'.split(''),
    'ls',
    'cat',
    'grep',
    'xxd',
    'printf',
    'sort',
    'tr',
    'cut',
    'head',
    'find',
    ' -',
    '%',
    '/tmp',
    '/proc',
  );
  await fc.assert(
    fc.asyncProperty(fc.array(chars, { maxLength: 40 }), async (parts) => {
      const sh = createShell();
      const line = parts.join('');
      const t0 = cpuStart();
      const r = await sh.run(line);
      assert.ok(Number.isInteger(r.status) && r.status >= 0 && r.status <= 255, line);
      assert.ok(cpuMsSince(t0) < 2000, `slow: ${JSON.stringify(line)}`);
      // A crash inside a tool would surface as an internal JS error message.
      assert.doesNotMatch(
        toText(r.stderr),
        /TypeError|RangeError|ReferenceError|is not a function|undefined/,
        line,
      );
    }),
    { numRuns: 400 },
  );
  const sh = createShell();
  const long = `echo ${'x'.repeat(1 << 20)} | wc -c`;
  assert.equal(toText((await sh.run(long)).stdout), '1048577\n');
  const deep = `echo ${'"'.repeat(10000)}`;
  assert.equal((await sh.run(deep)).status, 0);
  assert.equal(toText((await sh.run(`${'true | '.repeat(2000)}echo ok`)).stdout), 'ok\n');
});

test('parseTranscript splits a transcript back into the commands and outputs runScript produced', async () => {
  const { parseTranscript } = await import('./index.ts');
  const sh = createShell();
  const { transcript } = await sh.runScript("echo one\necho 'a\nb' | cat\nfalse\nnosuch\n");
  assert.deepEqual(parseTranscript(transcript), [
    { command: 'echo one', output: 'one\n' },
    { command: "echo 'a\nb' | cat", output: 'a\nb\n' },
    { command: 'false', output: '' },
    { command: 'nosuch', output: 'sh: nosuch: not found\n' },
  ]);
  // The user guide's literal blocks use the same `# ` prompt.
  const guide = '  # kexec -l /path/to/bzImage --initrd /path/to/initrd -s\n  # kexec -e\n';
  const dedented = guide
    .split('\n')
    .map((l) => l.replace(/^ {2}/, ''))
    .join('\n');
  assert.deepEqual(
    parseTranscript(dedented).map((e) => e.command),
    ['kexec -l /path/to/bzImage --initrd /path/to/initrd -s', 'kexec -e'],
  );
});

test('a handler returning nothing succeeds silently; one throwing a KhoError prints its message', async () => {
  const { KhoError } = await import('../../errors.ts');
  const sh = createShell();
  sh.register('quiet', (() => undefined) as unknown as Parameters<typeof sh.register>[1]);
  sh.register('refuse', () => {
    throw new KhoError('SIM_KEXEC_NOT_LOADED', 'no kernel image is loaded');
  });
  const r = await sh.run('quiet; echo $?; refuse; echo $?');
  assert.equal(toText(r.stdout), '0\n1\n');
  assert.equal(toText(r.stderr), 'refuse: no kernel image is loaded\n');
});

test('N>&- closes a descriptor: its output is dropped and no file named - appears', async () => {
  const sh = createShell();
  const r = await sh.run('cd /tmp; cat /nope 2>&-; echo $?; echo out >&-; ls');
  assert.equal(toText(r.stdout), '1\n');
  assert.equal(toText(r.stderr), '');
});
