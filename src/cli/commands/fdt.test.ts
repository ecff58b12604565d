/**
 * `kho fdt get` against fdtget on hand-written values (compiled by dtc), fdtget's type strings, and the
 * batch error contract of `kho fdt dts|dtb|check` run in-process through `main()`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../../../test/helpers/cli.ts';
import { oracle } from '../../../test/helpers/oracle.ts';
import { decodeFdtgetType, isPrintableString, outputPath } from './fdt.ts';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/dtb-real');
const ROCKPRO = join(FIXTURES, 'linux-arm64-rockchip-rk3399-rockpro64.dtb');

/** A scratch directory removed after the async `fn` settles. */
async function withTempDirAsync(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kho-fdt-test-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("fdtget's type strings: size prefixes hh/b = 1, h = 2, l = 4, none = guess; s ignores the size", () => {
  // Expected values written out from fdtget's usage text ("hh or b=byte, h=2 byte, l=4 byte").
  const cases: [string, string, number][] = [
    ['s', 's', -1],
    ['i', 'i', -1],
    ['u', 'u', -1],
    ['x', 'x', -1],
    ['hhx', 'x', 1],
    ['bx', 'x', 1],
    ['hx', 'x', 2],
    ['lx', 'x', 4],
    ['hhu', 'u', 1],
    ['hi', 'i', 2],
    ['lu', 'u', 4],
    ['hs', 's', -1],
  ];
  for (const [fmt, type, size] of cases) assert.deepEqual(decodeFdtgetType(fmt), { type, size }, fmt);
  for (const bad of ['', 'q', 'h', 'hhhx', 'xs', 'd', 'lxx', 'bh']) {
    assert.throws(() => decodeFdtgetType(bad), { code: 'CLI_BAD_TYPE' }, bad);
  }
});

test('printable strings as fdtget judges them', () => {
  const b = (...x: number[]) => Uint8Array.from(x);
  assert.equal(isPrintableString(b(0x61, 0)), true);
  assert.equal(isPrintableString(b(0x61, 0, 0x62, 0)), true);
  assert.equal(isPrintableString(b()), false); // empty
  assert.equal(isPrintableString(b(0)), false); // one empty segment
  assert.equal(isPrintableString(b(0x61, 0, 0, 0x62, 0)), false); // an empty segment inside
  assert.equal(isPrintableString(b(0x61, 0x62)), false); // unterminated
  assert.equal(isPrintableString(b(0x61, 9, 0)), false); // a tab is not isprint
  assert.equal(isPrintableString(b(0xc3, 0xa9, 0)), false); // bytes >= 0x80 are not, in the C locale
});

const TRICKY_DTS = `/dts-v1/;
/ {
	empty;
	str = "hello world";
	strlist = "a", "bc", "def";
	emptyseg = [61 00 00 62 00];
	unterminated = [61 62 63];
	nonprint = [01 02 03 00];
	highbyte = [c3 a9 00];
	tabstr = [61 09 62 00];
	nul1 = [00];
	neg = <0xffffffff 0x80000000 0x7fffffff 0x0>;
	cell = <0x12345678>;
	bytes3 = [01 02 03];
	bytes6 = [01 02 03 04 05 ff];
	half = [ff fe 00 01];
	u64 = /bits/ 64 <0x1122334455667788>;
	node@1 {
		x = <1>;
	};
	node@2 {
		y = "two";
	};
};
`;

test('kho fdt get prints what fdtget prints, value by value and type by type', async (t) => {
  if (!oracle(t, 'dtc', 'fdtget')) return;
  await withTempDirAsync(async (dir) => {
    const dts = join(dir, 'v.dts');
    const dtb = join(dir, 'v.dtb');
    writeFileSync(dts, TRICKY_DTS);
    const c = spawnSync('dtc', ['-q', '-I', 'dts', '-O', 'dtb', '-o', dtb, dts]);
    assert.equal(c.status, 0, c.stderr.toString());
    const props = [
      'empty',
      'str',
      'strlist',
      'emptyseg',
      'unterminated',
      'nonprint',
      'highbyte',
      'tabstr',
      'nul1',
      'neg',
      'cell',
      'bytes3',
      'bytes6',
      'half',
      'u64',
      'missing',
    ];
    const types = [
      undefined,
      's',
      'i',
      'u',
      'x',
      'hhx',
      'bx',
      'hx',
      'lx',
      'hhu',
      'hhi',
      'hi',
      'hu',
      'lu',
      'li',
    ];
    let compared = 0;
    let refusals = 0;
    for (const type of types) {
      for (const prop of props) {
        const args = [...(type ? ['-t', type] : []), dtb, '/', prop];
        const want = spawnSync('fdtget', args);
        const got = await runCli(['fdt', 'get', ...args]);
        const label = `fdtget ${args.join(' ')}`;
        assert.equal(got.code === 0, want.status === 0, `${label}: exit ${got.code} vs ${want.status}`);
        assert.deepEqual(got.stdout, want.stdout, label);
        if (want.status !== 0) {
          refusals++;
          assert.match(
            got.stderr,
            /^kho: [^\n]*v\.dtb: (FDT_ERR_NOTFOUND|FDT_ERR_BADVALUE): [^\n]+\n$/,
            label,
          );
        } else assert.equal(got.stderr, '', label);
        compared++;
      }
    }
    assert.equal(compared, types.length * props.length);
    assert.ok(refusals > types.length, 'the refusals (missing, unterminated, bad sizes) were exercised');

    // Several pairs in one call, -p, -l and -d, also against fdtget.
    for (const args of [
      [dtb, '/', 'str', '/node@1', 'x', '/node@2', 'y'],
      ['-p', dtb, '/', '/node@1'],
      ['-l', dtb, '/'],
      ['-d', 'DEF', dtb, '/', 'missing', '/nonode', 'x', '/', 'cell'],
      ['-t', 'x', dtb, '/node', 'x'],
    ]) {
      const want = spawnSync('fdtget', args);
      const got = await runCli(['fdt', 'get', ...args]);
      assert.equal(want.status, 0, args.join(' '));
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(got.stdout.toString('latin1'), want.stdout.toString('latin1'), args.join(' '));
    }
  });
});

test('kho fdt get: an odd NODE PROP list or a bad -t is a usage error (exit 2, one line)', async () => {
  const r = await runCli(['fdt', 'get', ROCKPRO, '/']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^kho: CLI_USAGE: NODE and PROP come in pairs[^\n]*\n$/);
  const t = await runCli(['fdt', 'get', '-t', 'q', ROCKPRO, '/', 'model']);
  assert.equal(t.code, 2);
  assert.match(t.stderr, /^kho: CLI_BAD_TYPE: invalid type string 'q'[^\n]*\n$/);
});

test('output names: NAME.dtb becomes DIR/NAME.dts or DIR/NAME.dtb, other names get the extension added', () => {
  assert.equal(outputPath('/a/b/board.dtb', '/out', 'dts'), '/out/board.dts');
  assert.equal(outputPath('board.DTB', 'o', 'dtb'), 'o/board.dtb');
  assert.equal(outputPath('/sys/kernel/debug/kho/out/fdt', '/x', 'dts'), '/x/fdt.dts');
});

test('kho fdt dts/dtb/check: bad files get one error line each and exit 1; good files are still written', async (t) => {
  if (!oracle(t, 'dtc')) return;
  await withTempDirAsync(async (dir) => {
    const good = readFileSync(ROCKPRO);
    const truncated = join(dir, 'truncated.dtb');
    writeFileSync(truncated, good.subarray(0, 1000));
    const badMagic = join(dir, 'badmagic.dtb');
    const bm = Buffer.from(good);
    bm.writeUInt32BE(0xd00dfeee, 0);
    writeFileSync(badMagic, bm);
    const missing = join(dir, 'missing.dtb');
    const second = join(dir, 'second.dtb');
    writeFileSync(second, readFileSync(join(FIXTURES, 'qemu-bamboo.dtb')));
    const out = join(dir, 'out');

    const expectErrors = (stderr: string) => {
      const lines = stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 3, stderr);
      assert.match(lines[0] as string, /^kho: .*truncated\.dtb: FDT_ERR_TRUNCATED: /);
      assert.match(lines[1] as string, /^kho: .*badmagic\.dtb: FDT_ERR_BADMAGIC: /);
      assert.match(lines[2] as string, /^kho: .*missing\.dtb: IO_ENOENT: /);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    };

    const dts = await runCli(['fdt', 'dts', ROCKPRO, truncated, badMagic, missing, second, '--out-dir', out]);
    assert.equal(dts.code, 1);
    expectErrors(dts.stderr);
    for (const [src, name] of [
      [ROCKPRO, 'linux-arm64-rockchip-rk3399-rockpro64.dts'],
      [second, 'second.dts'],
    ] as const) {
      const want = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', src]).stdout;
      assert.deepEqual(readFileSync(join(out, name)), want, name);
    }
    assert.equal(existsSync(join(out, 'truncated.dts')), false);

    const dtb = await runCli(['fdt', 'dtb', truncated, badMagic, missing, second, '-o', out]);
    assert.equal(dtb.code, 1);
    expectErrors(dtb.stderr);
    const want = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dtb', second]).stdout;
    assert.deepEqual(readFileSync(join(out, 'second.dtb')), want);

    const check = await runCli(['fdt', 'check', '--json', ROCKPRO, truncated, badMagic, missing]);
    assert.equal(check.code, 1);
    expectErrors(check.stderr);
    const results = JSON.parse(check.stdout.toString()) as { file: string; valid: boolean; errors: number }[];
    assert.deepEqual(
      results.map((r) => [r.file, r.valid]),
      [
        [ROCKPRO, true],
        [truncated, false],
        [badMagic, false],
      ],
    );
  });
});

test('kho fdt dts: one file goes to stdout; more than one needs --out-dir (exit 2)', async (t) => {
  if (!oracle(t, 'dtc')) return;
  const one = await runCli(['fdt', 'dts', ROCKPRO]);
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(one.stdout, spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', ROCKPRO]).stdout);
  const two = await runCli(['fdt', 'dts', ROCKPRO, ROCKPRO]);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /^kho: CLI_USAGE: 2 input files need --out-dir DIR/);
  assert.equal(two.stdout.length, 0);
});

test('kho fdt dts --out-dir: two inputs with one name do not overwrite each other (CLI_OUTPUT_CLASH)', async (t) => {
  if (!oracle(t, 'dtc')) return;
  await withTempDirAsync(async (dir) => {
    const x = join(dir, 'x', 'board.dtb');
    const y = join(dir, 'y', 'board.dtb');
    mkdirSync(join(dir, 'x'));
    mkdirSync(join(dir, 'y'));
    writeFileSync(x, readFileSync(ROCKPRO));
    writeFileSync(y, readFileSync(join(FIXTURES, 'qemu-bamboo.dtb')));
    const r = await runCli(['fdt', 'dts', x, y, '-o', join(dir, 'out')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^kho: .*y\/board\.dtb: CLI_OUTPUT_CLASH: [^\n]+\n$/);
    const want = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', x]).stdout;
    assert.deepEqual(readFileSync(join(dir, 'out', 'board.dts')), want);
  });
});
