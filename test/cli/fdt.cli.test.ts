/**
 * `kho fdt` on real blobs, against the tools it imitates: every node and property of the checked-in
 * real DTBs (test/fixtures/dtb-real) and of the Linux 7.3.4 KHO vectors through `fdtget` (default
 * type and -t x / hhx / hx / s, -p, -l), `dtc -I dtb -O dts` and `dtc -I dtb -O dtb`; plus a few
 * spawned `node bin/kho.js` runs for the end-to-end contract (exit status, one error line per bad
 * file, --help with examples).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { isPrintableString } from '../../src/cli/commands/fdt.ts';
import { type FdtBlob, lookupPath, nodePath, parseFdt } from '../../src/fdt/reader.ts';
import { runCli } from '../helpers/cli.ts';
import { oracle } from '../helpers/oracle.ts';

const ROOT = join(import.meta.dirname, '../..');
const FIXTURES = join(ROOT, 'test/fixtures/dtb-real');
const VECTORS = join(ROOT, 'test/vectors/linux-7.3.4');
const KHO = join(ROOT, 'bin/kho.js');

function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walkFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** The real DTBs and every distinct whole FDT among the KHO vectors (cut-short ones are not whole). */
function realBlobs(): { file: string; blob: FdtBlob }[] {
  const seen = new Set<string>();
  const out: { file: string; blob: FdtBlob }[] = [];
  const candidates = [
    ...walkFiles(FIXTURES).filter((f) => f.endsWith('.dtb')),
    ...walkFiles(VECTORS).filter((f) => statSync(f).size >= 40 && !f.includes('/mem/')),
  ];
  for (const file of candidates) {
    const bytes = readFileSync(file);
    if (bytes.readUInt32BE(0) !== 0xd00dfeed) continue;
    let blob: FdtBlob;
    try {
      blob = parseFdt(bytes);
    } catch {
      continue; // cut-short debugfs files: covered by the bad-input tests
    }
    const h = createHash('sha256').update(bytes).digest('hex');
    if (seen.has(h)) continue;
    seen.add(h);
    out.push({ file, blob });
  }
  return out;
}

const BLOBS = realBlobs();

test('the oracle corpus holds the real DTBs and the KHO vectors', () => {
  assert.ok(BLOBS.filter((b) => b.file.startsWith(FIXTURES)).length >= 40);
  assert.ok(BLOBS.filter((b) => b.file.startsWith(VECTORS)).length >= 5);
});

test('every real DTB in test/fixtures/dtb-real has its origin and license in the README there', () => {
  const readme = readFileSync(join(FIXTURES, 'README.md'), 'utf8');
  const dtbs = readdirSync(FIXTURES).filter((f) => f.endsWith('.dtb'));
  assert.ok(dtbs.length >= 30);
  for (const f of dtbs) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${f}\` |`));
    assert.ok(row, `${f} is listed`);
    assert.match(
      row,
      /^\| `[^`]+` \| (linux-source-6\.1 |qemu-system-data|u-boot-qemu)[^|]*\| [^|]*(GPL|MIT|BSD)[^|]*\|$/,
      row,
    );
  }
});

test('kho fdt get = fdtget for every property of every real blob (default, x, hhx, hu, s; -p; -l)', async (t) => {
  if (!oracle(t, 'fdtget')) return;
  let queries = 0;
  let ambiguousSeen = 0;
  for (const { file, blob } of BLOBS) {
    const name = relative(ROOT, file);
    const all: [string, string, Uint8Array][] = [];
    const paths: string[] = [];
    const ambiguous: string[] = [];
    for (const n of blob.nodes()) {
      const p = nodePath(n);
      // A path whose lookup lands elsewhere (`/foo` finding an earlier `/foo@1`, as libfdt's
      // unit-address-blind match does) would stop fdtget at the first missing property: skip it here;
      // the ambiguous case itself is compared below.
      if (lookupPath(blob.root, p) !== n) {
        ambiguous.push(p);
        continue;
      }
      paths.push(p);
      for (const prop of n.props) all.push([p, prop.name, prop.value]);
    }
    const pick = (keep: (v: Uint8Array) => boolean) =>
      all.filter((q) => keep(q[2])).flatMap((q) => [q[0], q[1]]);
    const runs: string[][] = [
      [file, ...pick(() => true)],
      ['-t', 'x', file, ...pick((v) => v.length % 4 === 0)],
      ['-t', 'hhx', file, ...pick((v) => v.length <= 32)],
      ['-t', 'hu', file, ...pick((v) => v.length % 2 === 0 && v.length <= 32)],
      // -t s matters where the guess would not pick a string: NUL-terminated but not printable.
      ['-t', 's', file, ...pick((v) => v.length > 0 && v[v.length - 1] === 0 && !isPrintableString(v))],
      ['-p', file, ...paths],
      ['-l', file, ...paths],
    ];
    ambiguousSeen += ambiguous.length;
    for (const p of ambiguous) runs.push(['-p', file, p], ['-l', file, p], [file, p, 'compatible']);
    for (const args of runs) {
      const want = spawnSync('fdtget', args, { maxBuffer: 1 << 26 });
      const got = await runCli(['fdt', 'get', ...args]);
      if (args.length > 3)
        assert.equal(want.status, 0, `fdtget ${args.slice(0, 3).join(' ')}: ${want.stderr}`);
      assert.equal(got.code === 0, want.status === 0, `${name} ${args.slice(-2).join(' ')}: ${got.stderr}`);
      if (want.status === 0) assert.equal(got.stderr, '');
      else assert.match(got.stderr, /^kho: [^\n]+: FDT_ERR_NOTFOUND: [^\n]+\n$/);
      assert.ok(
        got.stdout.equals(want.stdout),
        `${name}: kho fdt get ${args.slice(0, 2).join(' ')} differs from fdtget`,
      );
      queries += args.length;
    }
  }
  assert.ok(queries > 40_000, `${queries} arguments compared`);
  assert.ok(ambiguousSeen > 0, 'a real blob with a unit-address-blind path match was compared');
});

test('kho fdt dts = dtc -I dtb -O dts and kho fdt dtb = dtc -I dtb -O dtb for every real blob', async (t) => {
  if (!oracle(t, 'dtc')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kho-fdt-cli-'));
  try {
    // Copy under distinct names, convert all in one call each, then compare with dtc file by file.
    const inputs = BLOBS.map(({ file }, i) => {
      const p = join(dir, `in${i}.dtb`);
      writeFileSync(p, readFileSync(file));
      return p;
    });
    const dts = await runCli(['fdt', 'dts', ...inputs, '--out-dir', join(dir, 'dts')]);
    assert.equal(dts.code, 0, dts.stderr);
    const dtb = await runCli(['fdt', 'dtb', ...inputs, '--out-dir', join(dir, 'dtb')]);
    assert.equal(dtb.code, 0, dtb.stderr);
    inputs.forEach((p, i) => {
      const label = relative(ROOT, (BLOBS[i] as { file: string }).file);
      const wantDts = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', p], { maxBuffer: 1 << 26 });
      assert.equal(wantDts.status, 0, `${label}: ${wantDts.stderr}`);
      assert.ok(readFileSync(join(dir, 'dts', `in${i}.dts`)).equals(wantDts.stdout), `dts of ${label}`);
      const wantDtb = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dtb', p], { maxBuffer: 1 << 26 });
      assert.equal(wantDtb.status, 0, `${label}: ${wantDtb.stderr}`);
      assert.ok(readFileSync(join(dir, 'dtb', `in${i}.dtb`)).equals(wantDtb.stdout), `dtb of ${label}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kho fdt check: every real blob is valid (libfdt and dtc accept them all)', async (t) => {
  if (!oracle(t, 'dtc')) return;
  const r = await runCli(['fdt', 'check', '--json', ...BLOBS.map((b) => b.file)]);
  assert.equal(r.code, 0, r.stderr);
  const results = JSON.parse(r.stdout.toString()) as { file: string; valid: boolean; errors: number }[];
  assert.equal(results.length, BLOBS.length);
  for (const res of results) {
    assert.equal(spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dtb', '-o', '/dev/null', res.file]).status, 0);
    assert.equal(res.valid, true, res.file);
  }
});

function kho(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [KHO, ...args], { cwd: ROOT, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

test('spawned: kho fdt get and dts print what fdtget and dtc print', (t) => {
  if (!oracle(t, 'dtc', 'fdtget')) return;
  const f = join(FIXTURES, 'linux-arm64-broadcom-bcm2711-rpi-4-b.dtb');
  const args = [f, '/', 'compatible', '/', 'model', '/chosen', 'stdout-path', '/aliases', 'serial0'];
  const get = kho(['fdt', 'get', ...args]);
  assert.equal(get.status, 0, get.stderr);
  assert.deepEqual(get.stdout, spawnSync('fdtget', args).stdout);
  const dts = kho(['fdt', 'dts', f]);
  assert.equal(dts.status, 0, dts.stderr);
  assert.deepEqual(dts.stdout, spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', f]).stdout);
});

test('spawned: bad files (cut-short KHO fdt, bad magic, missing) give one line each, exit 1; good output still comes', (t) => {
  if (!oracle(t, 'dtc')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kho-fdt-cli-'));
  try {
    const cut = join(VECTORS, 'flat-explicit/stage1/out/fdt'); // debugfs file shorter than totalsize
    const bad = join(dir, 'garbage.dtb');
    writeFileSync(bad, Buffer.alloc(64, 0x41));
    const good = join(FIXTURES, 'qemu-canyonlands.dtb');
    const r = kho(['fdt', 'dts', cut, bad, join(dir, 'nope.dtb'), good, '--out-dir', join(dir, 'o')]);
    assert.equal(r.status, 1);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0] as string, /^kho: .*stage1\/out\/fdt: FDT_ERR_TRUNCATED: /);
    assert.match(lines[1] as string, /^kho: .*garbage\.dtb: FDT_ERR_BADMAGIC: /);
    assert.match(lines[2] as string, /^kho: .*nope\.dtb: IO_ENOENT: /);
    assert.deepEqual(
      readFileSync(join(dir, 'o', 'qemu-canyonlands.dts')),
      spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', good]).stdout,
    );
    const g = kho(['fdt', 'get', join(dir, 'nope.dtb'), '/', 'model']);
    assert.equal(g.status, 1);
    assert.match(g.stderr, /^kho: .*nope\.dtb: IO_ENOENT: [^\n]*\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spawned: a reader that stops early (| head) ends kho quietly, no EPIPE stack trace', () => {
  const big = join(FIXTURES, 'linux-arm64-qcom-sc7280-herobrine-crd.dtb'); // 160 KB of DTS text: more than a pipe holds
  const r = spawnSync(
    'bash',
    ['-c', `set -o pipefail; "${process.execPath}" "${KHO}" fdt dts "${big}" | head -c 16`],
    {
      cwd: ROOT,
    },
  );
  assert.equal(r.stdout.toString(), '/dts-v1/;\n\n/ {\n\t');
  assert.equal(r.stderr.toString(), '');
  assert.equal(r.status, 0);
});

test('--help of every fdt command shows examples (in-process; one spawned)', async () => {
  for (const cmd of [[], ['dts'], ['dtb'], ['get'], ['check']]) {
    const r = await runCli(['fdt', ...cmd, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /Examples:\n {2}kho fdt /, `kho fdt ${cmd.join(' ')} --help`);
  }
  const spawned = kho(['fdt', 'get', '--help']);
  assert.equal(spawned.status, 0, spawned.stderr);
  assert.match(spawned.stdout.toString(), /Examples:\n {2}kho fdt get /);
});
