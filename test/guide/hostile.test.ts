/**
 * Hostile command lines for the session's machine commands: random argv for kexec, khoctl, memdump,
 * memwrite, kho, dmesg and uname never make a command throw (the engine would print a JS error such as
 * `TypeError: ...`), always end with a status a shell user expects (0, 1, 2 or 255), and leave the machine
 * free of invariant violations. Words are drawn from the commands' own vocabulary plus random text, so
 * most runs reach the parsers' deeper branches.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Session } from '../../src/sim/session/session.ts';

const VOCAB = [
  '-l',
  '-e',
  '-u',
  '-s',
  '-c',
  '-a',
  '-f',
  '-h',
  '-v',
  '-sl',
  '--initrd',
  '--initrd=/boot/initrd',
  '--append',
  '--append=kho=on',
  '--reuse-cmdline',
  '--command-line=',
  '--',
  '/boot/bzImage',
  '/boot/initrd',
  '/proc/cmdline',
  '/sys/kernel/debug/kho/out',
  '/sys/kernel/debug/kho/out/fdt',
  '/sys/kernel/debug/kho/in',
  '/dev/mem',
  '/tmp',
  'preserve',
  'write',
  'read',
  'show',
  'unpreserve',
  'inspect',
  'validate',
  'diff',
  '--json',
  '--memory',
  '-m',
  '--profile',
  'kho-v1',
  'trace_buf',
  'x',
  '0',
  '1',
  '4096',
  '0x1000',
  '4M',
  '5M',
  '0xffffffffffffffff',
  '99999999999999999999',
  '-1',
  '-t',
  '-r',
  '--level',
  'err,warn',
  '-rm',
  '--all',
  'a'.repeat(300),
];
const word = fc.oneof(fc.constantFrom(...VOCAB), fc.string({ maxLength: 12 }));
const CMDS = ['kexec', 'khoctl', 'memdump', 'memwrite', 'kho', 'dmesg', 'uname'];

test('random argv for the machine commands: no JS error escapes, statuses are 0/1/2/255, no violation', async () => {
  const s = new Session({ mem: '2G' });
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...CMDS), fc.array(word, { maxLength: 6 }), async (cmd, args) => {
      const line = [cmd, ...args.map((a) => `'${a.replaceAll("'", '')}'`)].join(' ');
      const r = await s.run(line);
      const out = Buffer.from(r.output).toString('latin1');
      assert.doesNotMatch(
        out,
        /TypeError|RangeError|ReferenceError|SyntaxError|KHO_INTERNAL|undefined/,
        line,
      );
      assert.ok([0, 1, 2, 255].includes(r.status), `${line}: status ${r.status}`);
      assert.doesNotMatch(out, /INVARIANT VIOLATION/, line);
      if (s.halted) await s.run('reboot');
    }),
    { numRuns: 300 },
  );
});
