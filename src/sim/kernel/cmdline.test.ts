import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { cpuMsSince, cpuStart } from '../../../test/helpers/cpu.ts';
import {
  commandLineLogLines,
  kernelCommandLineLines,
  kstrtobool,
  kstrtouint,
  memparse,
  parseKernelCommandLine,
  parseKhoScratch,
  parseReserveMem,
  splitCommandLine,
  unknownParams,
} from './cmdline.ts';

const VEC = new URL('../../../test/vectors/linux-7.3.4/', import.meta.url);
const vec = (p: string) => readFileSync(new URL(p, VEC), 'utf8');
const msgs = (dmesg: string) => dmesg.split('\n').map((l) => l.replace(/^\[[ \d.]+\] /, ''));
const SCENARIOS = ['flat-explicit', 'numa-explicit', 'default-scale', 'bad-scratch', 'kho-off'];

test('vectors: the "Unknown kernel command line parameters" line is reproduced exactly', () => {
  for (const s of SCENARIOS) {
    const meta = JSON.parse(vec(`${s}/stage1/meta.json`));
    const expect = msgs(vec(`${s}/stage1/dmesg`)).filter((l) => l.startsWith('Unknown kernel command line'));
    assert.equal(expect.length, 1, s);
    assert.equal(parseKernelCommandLine(meta.cmdline).unknown.line?.text, expect[0], s);
  }
});

test('vectors: early-parameter log lines (scratch areas, malformed option, nothing for the default scale)', () => {
  for (const s of SCENARIOS) {
    const meta = JSON.parse(vec(`${s}/stage1/meta.json`));
    const expect = msgs(vec(`${s}/stage1/dmesg`)).filter((l) =>
      /^(KHO: scratch|Malformed early option)/.test(l),
    );
    assert.deepEqual(
      parseKernelCommandLine(meta.cmdline).earlyLog.map((l) => l.text),
      expect,
      s,
    );
  }
  const bad = parseKernelCommandLine(JSON.parse(vec('bad-scratch/stage1/meta.json')).cmdline);
  assert.deepEqual(bad.khoScratch, { scale: 200, lowmem: 0n, global: 0n, pernode: 0n });
  assert.equal(bad.kho, true);
  const off = parseKernelCommandLine(JSON.parse(vec('kho-off/stage1/meta.json')).cmdline);
  assert.equal(off.kho, false);
  assert.deepEqual(off.reserveMem, ['4M:4096:khovec_region']);
});

test('kho_scratch= grammar (spec §3.2 and kho_parse_scratch_size), hand-derived', () => {
  const M = 1n << 20n;
  const ok: [string, object][] = [
    ['50%', { kind: 'scale', scale: 50 }],
    ['+7%', { kind: 'scale', scale: 7 }], // kstrtouint takes a leading '+'
    ['5\n%', { kind: 'scale', scale: 5 }], // ... and one trailing newline
    ['4294967295%', { kind: 'scale', scale: 4294967295 }], // 11 characters: the maximum
    ['16M,64M,32M', { kind: 'sizes', lowmem: 16n * M, global: 64n * M, pernode: 32n * M }],
    ['16m,64m,32m', { kind: 'sizes', lowmem: 16n * M, global: 64n * M, pernode: 32n * M }],
    ['0x10k,010,1G', { kind: 'sizes', lowmem: 16384n, global: 8n, pernode: 1n << 30n }],
    ['0,0,1', { kind: 'sizes', lowmem: 0n, global: 0n, pernode: 1n }],
  ];
  for (const [v, want] of ok) {
    const r = parseKhoScratch(v);
    assert.ok(r.ok, v);
    for (const [k, val] of Object.entries(want)) assert.equal((r as never)[k], val, `${v} ${k}`);
  }
  for (const v of [
    '',
    '%',
    '-5%',
    '0x10%', // base 10: stops at 'x'
    '12345678901%', // 12 characters
    '4294967296%', // does not fit an unsigned int
    '16M,64M', // the vectors' bad-scratch value
    '16M,64M,32M,',
    '16M,64M,32M,1M',
    ',64M,32M',
    '16M,,32M',
    '16M ,64M,32M',
    '0,0,0', // sum zero
    '8E,8E,0', // 2^63 + 2^63 wraps to 0 in a size_t
    '16Z,1,1',
    '0x,1,1', // "0x" without a hex digit is octal 0, then 'x' is not a comma
  ])
    assert.equal(parseKhoScratch(v).ok, false, JSON.stringify(v));
  assert.equal(parseKhoScratch(null).ok, false);
  // log lines: %d of an unsigned scale, MiB shifted down
  const big = parseKhoScratch('4294967295%');
  assert.ok(big.ok);
  assert.equal(big.log.text, 'KHO: scratch scale is -1%');
  const sizes = parseKhoScratch('1536K,64M,100');
  assert.ok(sizes.ok);
  assert.equal(sizes.log.text, 'KHO: scratch areas: lowmem: 1MiB global: 64MiB pernode: 0MiB');
});

test('later kho_scratch= occurrences win; a malformed one changes nothing', () => {
  const p = parseKernelCommandLine(
    'kho_scratch=16M,64M,32M kho-scratch=50% kho_scratch=bad kho=on kho=maybe',
  );
  assert.deepEqual(p.khoScratch, { scale: 50, lowmem: 16n << 20n, global: 64n << 20n, pernode: 32n << 20n });
  assert.deepEqual(
    p.earlyLog.map((l) => l.text),
    [
      'KHO: scratch areas: lowmem: 16MiB global: 64MiB pernode: 32MiB',
      'KHO: scratch scale is 50%',
      "Malformed early option 'kho_scratch'",
      "Malformed early option 'kho'",
    ],
  );
  assert.equal(p.kho, true);
  // a bare "kho" has no value: kstrtobool(NULL) fails
  assert.deepEqual(
    parseKernelCommandLine('kho').earlyLog.map((l) => l.text),
    ["Malformed early option 'kho'"],
  );
});

test('kstrtobool looks at one or two characters only', () => {
  const cases: [string | null, boolean | null][] = [
    ['on', true],
    ['off', false],
    ['ON', true],
    ['oFx', false],
    ['yes', true],
    ['1abc', true],
    ['0', false],
    ['nope', false],
    ['True', true],
    ['o', null],
    ['ox', null],
    ['', null],
    ['2', null],
    [null, null],
  ];
  for (const [s, want] of cases) assert.equal(kstrtobool(s), want, String(s));
});

test('memparse and kstrtouint follow lib/cmdline.c and lib/kstrtox.c', () => {
  const cases: [string, bigint, number][] = [
    ['4M', 4n << 20n, 2],
    ['0x1000', 4096n, 6],
    ['010', 8n, 3],
    ['09', 0n, 1], // octal: '9' is not a digit
    ['1e', 1n << 60n, 2], // decimal 1, then the E suffix
    ['0x1e', 30n, 4], // hex digits take the 'e'
    ['16M,', 16n << 20n, 3],
    ['1T', 1n << 40n, 2],
    ['2p', 2n << 50n, 2],
    ['16E', 0n, 3], // 16 << 60 wraps to 0
    ['18446744073709551617', 1n, 20], // wraps modulo 2^64
  ];
  for (const [s, v, end] of cases) assert.deepEqual(memparse(s), { value: v, end }, s);
  for (const s of ['k', '', '-1', ' 1', 'x']) assert.equal(memparse(s).end, 0, s);
  assert.deepEqual(kstrtouint('4294967295', 10), { ok: true, value: 4294967295 });
  assert.deepEqual(kstrtouint('4294967296', 10), { ok: false, errno: 'ERANGE' });
  assert.deepEqual(kstrtouint('99999999999999999999', 10), { ok: false, errno: 'ERANGE' });
  assert.deepEqual(kstrtouint('12a', 10), { ok: false, errno: 'EINVAL' });
  assert.deepEqual(kstrtouint('', 10), { ok: false, errno: 'EINVAL' });
  assert.deepEqual(kstrtouint('7\n', 10), { ok: true, value: 7 });
  assert.deepEqual(kstrtouint('7\n\n', 10), { ok: false, errno: 'EINVAL' });
});

test('splitting: quotes as next_arg handles them, and "--" ends kernel parameters', () => {
  const r = splitCommandLine('  a="b c"  "d e" "x=1 2" f=g"h" -- init1 "init 2"');
  assert.deepEqual(r.params, [
    { name: 'a', value: 'b c' },
    { name: 'd e', value: null },
    { name: 'x', value: '1 2' },
    { name: 'f', value: 'g"h"' },
  ]);
  assert.equal(r.afterDashes, 'init1 "init 2"');
  assert.deepEqual(parseKernelCommandLine('quiet -- single x=1').initArgs, ['single', 'x=1']);
  // '=' at the start of a word does not split it
  assert.deepEqual(splitCommandLine('=a=b').params, [{ name: '=a', value: 'b' }]);
  assert.deepEqual(splitCommandLine('').params, []);
});

test('unknown parameters: argv first, then environment; duplicates replace; module params and known ones skipped', () => {
  const { params } = splitCommandLine(
    'foo=1 bar quietly quiet=1 ro rootwaitx foo=2 mod.param=1 HOME=/root console=ttyS0 console reserve_mem kho_scratch=x panic=5 baz="a b"',
  );
  const u = unknownParams(params);
  // early_param("quiet") takes "quiet" and "quiet=..." but not "quietly"; __setup("rootwait") refuses
  // a rest; a bare "console" or "reserve_mem" does not match "console=" / "reserve_mem="; HOME=
  // replaces the default HOME=/ and so is not listed
  assert.deepEqual(u.argv, ['bar', 'quietly', 'rootwaitx', 'console', 'reserve_mem']);
  assert.deepEqual(u.envp, ['foo=2', 'baz=a b']);
  assert.equal(
    u.line?.text,
    'Unknown kernel command line parameters "bar quietly rootwaitx console reserve_mem foo=2 baz=a b", will be passed to user space.',
  );
  assert.equal(unknownParams(splitCommandLine('console=ttyS0 kho=on').params).line, null);
});

test('reserve_mem= syntax and messages (mm/memblock.c reserve_mem)', () => {
  assert.deepEqual(parseReserveMem('4M:4096:khovec_region'), {
    ok: true,
    size: 4n << 20n,
    align: 4096n,
    name: 'khovec_region',
  });
  assert.deepEqual(parseReserveMem('8M:2M:trace_buf'), {
    ok: true,
    size: 8n << 20n,
    align: 2n << 20n,
    name: 'trace_buf',
  });
  // alignment below SMP_CACHE_BYTES (64), including an empty one, is raised to 64
  for (const v of ['4M:0:x', '4M::x', '4M:8:x']) {
    const r = parseReserveMem(v);
    assert.ok(r.ok && r.align === 64n, v);
  }
  const r15 = parseReserveMem('1M:4K:0123456789abcde');
  assert.ok(r15.ok);
  for (const v of [
    '0:4096:x',
    ':4096:x',
    '4M:4096:',
    '4M:4096:   ',
    '4M:4096:0123456789abcdef',
    '4M-4096:x',
    '4M:4096',
    'x:1:y',
  ]) {
    const r = parseReserveMem(v);
    assert.ok(!r.ok, v);
    assert.deepEqual(r.log, { level: 'err', text: 'reserve_mem: empty or malformed parameter' });
  }
  assert.equal(parseReserveMem(null).ok, false);
});

test('property: parsing never throws on arbitrary command lines', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      const p = parseKernelCommandLine(s);
      assert.ok(Array.isArray(p.params));
      parseKhoScratch(s);
      parseReserveMem(s);
      memparse(s);
    }),
    { numRuns: 300 },
  );
});

test('"Command line:" and "Kernel command line:" lines: the vectors, and wrapping as init/main.c documents it', () => {
  for (const sc of SCENARIOS) {
    const meta = JSON.parse(vec(`${sc}/stage1/meta.json`));
    const dm = msgs(vec(`${sc}/stage1/dmesg`));
    const l = commandLineLogLines(meta.cmdline);
    assert.deepEqual(
      [l.arch.text, ...l.kernel.map((x) => x.text)],
      dm.filter((x) => /^(Kernel )?[Cc]ommand line: /.test(x)),
    );
  }
  // the example in print_kernel_cmdline()'s comment, for CONFIG_CMDLINE_LOG_WRAP_IDEAL_LEN=40
  const cmd =
    'loglevel=7 init=/sbin/init root=PARTUUID=8c3efc1a-768b-6642-8d0c-89eb782f19f0/PARTNROFF=1 rootwait ro my_quoted_arg="The quick brown fox jumps over the lazy dog."';
  assert.deepEqual(
    kernelCommandLineLines(cmd, 40).map((x) => x.text),
    [
      'Kernel command line: loglevel=7 \\',
      'Kernel command line: init=/sbin/init \\',
      'Kernel command line: root=PARTUUID=8c3efc1a-768b-6642-8d0c-89eb782f19f0/PARTNROFF=1 \\',
      'Kernel command line: rootwait ro \\',
      'Kernel command line: my_quoted_arg="The \\',
      'Kernel command line: quick brown fox \\',
      'Kernel command line: jumps over the \\',
      'Kernel command line: lazy dog."',
    ],
  );
  // 0 disables wrapping; so does the vectors' 1021 for any command line that fits in 1000 characters
  assert.equal(kernelCommandLineLines(cmd, 0).length, 1);
  assert.equal(kernelCommandLineLines(cmd).length, 1);
});

test('too many init arguments or environment variables: no unknown-parameter line, a later panic', () => {
  const env = Array.from({ length: 31 }, (_, i) => `e${i}=1`).join(' ');
  // HOME, TERM and 31 more fill envp_init[0..32]: still fine
  assert.ok(parseKernelCommandLine(env).unknown.line);
  assert.equal(parseKernelCommandLine(env).unknown.panic, undefined);
  // a duplicate of an early entry is still fine; one more new variable is not
  assert.equal(parseKernelCommandLine(`${env} e0=2`).unknown.panic, undefined);
  const over = parseKernelCommandLine(`${env} extra=1 later=2`).unknown;
  assert.equal(over.line, null);
  assert.equal(over.panic, "Too many boot env vars at `extra=1'");
  const args = Array.from({ length: 33 }, (_, i) => `a${i}`).join(' ');
  assert.equal(parseKernelCommandLine(args).unknown.panic, "Too many boot init vars at `a32'");
  assert.equal(parseKernelCommandLine(args.split(' ').slice(0, 32).join(' ')).unknown.panic, undefined);
});

test('the command line is cut at COMMAND_LINE_SIZE - 1 bytes, and huge hostile ones stay fast', () => {
  const long = `kho=on ${'x'.repeat(3000)} kho=off`;
  assert.equal(parseKernelCommandLine(long).kho, true); // "kho=off" is past byte 2047
  const t0 = cpuStart();
  const many = Array.from({ length: 200000 }, (_, i) => `v${i}=1`).join(' ');
  unknownParams(splitCommandLine(many).params);
  parseKernelCommandLine(many, undefined, many.length + 1);
  assert.ok(cpuMsSince(t0) < 5000);
});
