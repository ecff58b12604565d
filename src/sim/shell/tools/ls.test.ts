import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { createShell } from '../index.ts';
import { gnu, runGnu, runTool } from './gnu-oracle.ts';

interface Spec {
  name: string;
  kind: 'file' | 'dir' | 'link';
  size: number;
  mode: number;
  /** Seconds before now. */
  age: number;
  children: Spec[];
}

const nameArb = fc
  .array(fc.constantFrom('a', 'b', 'B', 'z', '.', '_', '-', '1', 'x', 'Q'), { minLength: 1, maxLength: 6 })
  .map((c) => c.join(''))
  .filter((n) => n !== '.' && n !== '..');
const ageArb = fc.oneof(
  fc.integer({ min: 0, max: 3600 * 24 * 30 }),
  fc.integer({ min: 3600 * 24 * 200, max: 3600 * 24 * 2000 }),
);
const modeArb = fc.constantFrom(0o644, 0o600, 0o755, 0o444, 0o4755, 0o1777, 0o2750, 0o700);
const specArb: fc.Arbitrary<Spec[]> = fc.letrec<{ list: Spec[]; node: Spec }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 2, depthSize: 'small' },
    fc.record({
      name: nameArb,
      kind: fc.constant('file' as const),
      size: fc.integer({ min: 0, max: 9000 }),
      mode: modeArb,
      age: ageArb,
      children: fc.constant<Spec[]>([]),
    }),
    fc.record({
      name: nameArb,
      kind: fc.constant('link' as const),
      size: fc.constant(0),
      mode: fc.constant(0o777),
      age: ageArb,
      children: fc.constant<Spec[]>([]),
    }),
    fc.record({
      name: nameArb,
      kind: fc.constant('dir' as const),
      size: fc.constant(0),
      mode: fc.constantFrom(0o755, 0o700, 0o1777),
      age: ageArb,
      children: tie('list'),
    }),
  ),
  list: fc.uniqueArray(tie('node'), { maxLength: 5, selector: (s) => s.name }),
})).list;

function build(dir: string, specs: Spec[], now: number): void {
  for (const s of specs) {
    const p = `${dir}/${s.name}`;
    const when = new Date(now - s.age * 1000);
    if (s.kind === 'file') {
      writeFileSync(p, Buffer.alloc(s.size, 0x61));
      chmodSync(p, s.mode);
      utimesSync(p, when, when);
    } else if (s.kind === 'link') {
      symlinkSync(s.size % 2 ? '../elsewhere' : (specs[0]?.name ?? 'x'), p);
    } else {
      mkdirSync(p);
      build(p, s.children, now);
      chmodSync(p, s.mode);
      utimesSync(p, when, when);
    }
  }
}

async function withTree(
  specs: Spec[],
  fn: (dir: string, sh: ReturnType<typeof createShell>) => Promise<void>,
) {
  const root = mkdtempSync('/tmp/kho-ls-');
  const dir = `${root}/t`;
  try {
    mkdirSync(dir);
    const now = Date.now();
    build(dir, specs, now);
    const sh = createShell();
    sh.vfs.mkdirp('/mnt/h');
    sh.vfs.mountHost('/mnt/h', root);
    sh.vfs.chdir('/mnt/h/t');
    await fn(dir, sh);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('ls (-l -a -A -R -1 -r -S -t -d, -C -w) matches GNU ls on random host trees', async (t) => {
  if (!gnu(t, 'ls')) return;
  const optsArb = fc.oneof(
    fc.subarray(['-l', '-a', '-R', '-r', '-A', '-S', '-t', '-d']),
    fc
      .tuple(fc.integer({ min: 1, max: 60 }), fc.subarray(['-a', '-r']))
      .map(([w, o]) => ['-C', '-w', String(w), ...o]),
  );
  await fc.assert(
    fc.asyncProperty(specArb, optsArb, fc.boolean(), async (specs, opts, withOperands) => {
      await withTree(specs, async (dir, sh) => {
        const operands = withOperands ? [...specs.map((s) => s.name).slice(0, 3), 'missing'] : [];
        const args = [...opts, ...(operands.length ? ['--', ...operands] : [])];
        const ours = await runTool(sh, ['ls', ...args]);
        const real = runGnu('ls', args, { cwd: dir });
        assert.deepEqual(ours, real, `ls ${args.join(' ')}`);
      });
    }),
    { numRuns: 120 },
  );
});

test('find (-type, -name, -maxdepth, -mindepth, !) prints the same paths as GNU find', async (t) => {
  if (!gnu(t, 'find')) return;
  const exprArb = fc
    .tuple(
      fc.option(fc.integer({ min: 0, max: 3 })),
      fc.option(fc.integer({ min: 0, max: 2 })),
      fc.option(fc.tuple(fc.boolean(), fc.constantFrom('f', 'd', 'l'))),
      fc.option(fc.tuple(fc.boolean(), fc.constantFrom('*', 'a*', '*.*', '[ab]*', '?', 'b?', '*[!a]', 'x'))),
    )
    .map(([max, min, type, name]) => [
      ...(max === null ? [] : ['-maxdepth', String(max)]),
      ...(min === null ? [] : ['-mindepth', String(min)]),
      ...(type === null ? [] : [...(type[0] ? ['!'] : []), '-type', type[1]]),
      ...(name === null ? [] : [...(name[0] ? ['-not'] : []), '-name', name[1]]),
    ]);
  const startArb = fc.constantFrom([], ['.'], ['./'], ['..'], ['missing', '.']);
  await fc.assert(
    fc.asyncProperty(specArb, startArb, exprArb, async (specs, starts, expr) => {
      await withTree(specs, async (dir, sh) => {
        const args = [...starts, ...expr];
        const ours = await runTool(sh, ['find', ...args]);
        const real = runGnu('find', args, { cwd: dir });
        // GNU find lists a directory in readdir order; ours in byte order: compare as sorted sets.
        const sorted = (s: string) => s.split('\n').sort().join('\n');
        assert.equal(sorted(ours.stdout), sorted(real.stdout), `find ${args.join(' ')}`);
        assert.equal(ours.stderr, real.stderr);
        assert.equal(ours.status, real.status);
      });
    }),
    { numRuns: 120 },
  );
});

test('stat -c formats match GNU stat for files, directories and symlinks', async (t) => {
  if (!gnu(t, 'stat')) return;
  await withTree(
    [
      { name: 'f', kind: 'file', size: 5000, mode: 0o640, age: 10, children: [] },
      { name: 'e', kind: 'file', size: 0, mode: 0o644, age: 10, children: [] },
      { name: 'd', kind: 'dir', size: 0, mode: 0o755, age: 10, children: [] },
      { name: 'l', kind: 'link', size: 0, mode: 0o777, age: 10, children: [] },
    ],
    async (dir, sh) => {
      const args = ['-c', '%n %s %b %B %F %a %A %h %U %G %u %g %Y %N %%', 'f', 'e', 'd', 'l', 'missing'];
      const ours = await runTool(sh, ['stat', ...args]);
      const real = runGnu('stat', args, { cwd: dir });
      assert.deepEqual(ours, real);
    },
  );
});

test('ls -lh sizes and totals match GNU ls -lh (sparse files up to terabytes)', async (t) => {
  if (!gnu(t, 'ls', 'truncate')) return;
  const { spawnSync } = await import('node:child_process');
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(
        fc.oneof(
          fc.integer({ min: 0, max: 5000 }),
          fc.integer({ min: 0, max: 2 ** 44 }),
          fc.constantFrom(1023, 1024, 1025, 10239, 10240, 1048575, 1048576),
        ),
        { minLength: 1, maxLength: 6 },
      ),
      async (sizes) => {
        await withTree([], async (dir, sh) => {
          for (const n of sizes) spawnSync('truncate', ['-s', String(n), `${dir}/f${n}`]);
          writeFileSync(`${dir}/real`, Buffer.alloc(sizes[0] % 70000, 1));
          for (const args of [['-lh'], ['-lhS'], ['-lh', '-a']]) {
            const ours = await runTool(sh, ['ls', ...args]);
            const real = runGnu('ls', args, { cwd: dir });
            assert.deepEqual(ours, real, `ls ${args.join(' ')} ${sizes.join(',')}`);
          }
        });
      },
    ),
    { numRuns: 40 },
  );
});
