import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell, toText, type Vfs } from '../index.ts';
import { gnu, runGnu, runTool } from './gnu-oracle.ts';

test('echo (-n -e -E and escapes) matches bash builtin echo', async (t) => {
  if (!gnu(t, 'bash')) return;
  const argArb = fc.oneof(
    fc.constantFrom('-n', '-e', '-E', '-ne', '-en', '-nE', '-x', '--', '-', '-nn'),
    fc
      .array(
        fc.constantFrom(
          'a',
          ' ',
          '\\n',
          '\\t',
          '\\c',
          '\\0101',
          '\\01',
          '\\x41',
          '\\x4',
          '\\xZ',
          '\\\\',
          '\\e',
          '\\a',
          '\\q',
          '\\',
          '\\0',
          '\\v',
          '\\r',
        ),
        { maxLength: 5 },
      )
      .map((p) => p.join('')),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(argArb, { maxLength: 4 }), async (args) => {
      const ours = await runTool(createShell(), ['echo', ...args]);
      const r = spawnSync('bash', ['--norc', '-c', 'echo "$@"', 'bash', ...args]);
      assert.equal(ours.stdout, r.stdout.toString('latin1'), JSON.stringify(args));
      assert.equal(ours.status, 0);
    }),
    { numRuns: 250 },
  );
});

/** The same tree in a host directory and in the VFS's /tmp/w. */
function twinTrees(): { host: string; vfs: Vfs; sh: ReturnType<typeof createShell> } {
  const host = mkdtempSync('/tmp/kho-basic-');
  const sh = createShell();
  sh.vfs.mkdir('/tmp/w');
  sh.vfs.chdir('/tmp/w');
  for (const d of ['a', 'a/b', 'e']) {
    mkdirSync(`${host}/${d}`);
    sh.vfs.mkdir(`/tmp/w/${d}`);
  }
  for (const [f, c] of [
    ['f', 'eff\n'],
    ['a/g', 'gee\n'],
    ['a/b/h', 'aitch\n'],
  ]) {
    writeFileSync(`${host}/${f}`, c);
    sh.vfs.writeFile(`/tmp/w/${f}`, c);
  }
  return { host, vfs: sh.vfs, sh };
}

function hostListing(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(`${dir}/${rel}`).sort()) {
    const p = rel ? `${rel}/${n}` : n;
    if (statSync(`${dir}/${p}`).isDirectory()) out.push(`${p}/`, ...hostListing(dir, p));
    else out.push(`${p}=${readFileSync(`${dir}/${p}`, 'latin1')}`);
  }
  return out;
}

function vfsListing(vfs: Vfs, dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of vfs.readdir(`${dir}/${rel}`)) {
    const p = rel ? `${rel}/${n}` : n;
    if (vfs.stat(`${dir}/${p}`).type === 'dir') out.push(`${p}/`, ...vfsListing(vfs, dir, p));
    else out.push(`${p}=${toText(vfs.readFile(`${dir}/${p}`))}`);
  }
  return out;
}

test('mkdir, rm, rmdir, cp, touch and cat: same output, errors and resulting tree as GNU coreutils', async (t) => {
  if (!gnu(t, 'mkdir', 'rm', 'rmdir', 'cp', 'touch', 'cat')) return;
  const pathArb = fc.constantFrom(
    'a',
    'a/b',
    'a/b/c',
    'e',
    'f',
    'a/g',
    'a/b/h',
    'x',
    'x/y',
    'missing/z',
    '.',
    'a/',
    'f/',
  );
  const cmdArb = fc.oneof(
    fc
      .tuple(fc.subarray(['-p']), fc.array(pathArb, { minLength: 1, maxLength: 2 }))
      .map(([o, p]) => ['mkdir', ...o, ...p]),
    fc
      .tuple(fc.subarray(['-r', '-f']), fc.array(pathArb, { minLength: 1, maxLength: 2 }))
      .map(([o, p]) => ['rm', ...o, ...p]),
    pathArb.map((p) => ['rmdir', p]),
    // Copies of a directory into itself are left out: GNU stops at the copy being made, and what it copied
    // before that depends on the host's readdir order. (We print the same error.)
    fc
      .tuple(
        fc.subarray(['-r']),
        pathArb.filter((p) => p !== '.'),
        pathArb,
      )
      .filter(([, a, b]) => {
        const [na, nb] = [a.replace(/\/$/, ''), b.replace(/\/$/, '')];
        return nb !== na && !nb.startsWith(`${na}/`);
      })
      .map(([o, a, b]) => ['cp', ...o, a, b]),
    pathArb.map((p) => ['touch', p]),
    fc.array(pathArb, { minLength: 1, maxLength: 2 }).map((p) => ['cat', ...p]),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 5 }), async (cmds) => {
      const { host, vfs, sh } = twinTrees();
      try {
        for (const argv of cmds) {
          const ours = await runTool(sh, argv);
          const real = runGnu(argv[0], argv.slice(1), { cwd: host });
          assert.deepEqual(ours, real, argv.join(' '));
        }
        assert.deepEqual(
          vfsListing(vfs, '/tmp/w'),
          hostListing(host),
          cmds.map((c) => c.join(' ')).join('; '),
        );
      } finally {
        rmSync(host, { recursive: true, force: true });
      }
    }),
    { numRuns: 100 },
  );
});
