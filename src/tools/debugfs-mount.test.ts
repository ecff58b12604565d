/**
 * `kho debugfs mount` with FUSE. The mount is served by a child `kho` process and read from this one
 * (reading a FUSE mount from its own process deadlocks: anchors.md §3). Oracles: the captured tree's
 * bytes on disk, `find` for its file list, and the names the export writes (hand-written in
 * debugfs-export.test.ts). Skipped, with a note, where FUSE is unavailable (no /dev/fuse, no
 * fuse-native, no libfuse2): the mount is optional by the issue's own words.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportTree } from './debugfs-export.ts';
import { loadFuse, mountTree, safeIndex } from './debugfs-mount.ts';
import type { DebugfsTree } from './debugfs-tree.ts';

const ROOT = join(import.meta.dirname, '../..');
const VEC = join(ROOT, 'test/vectors/linux-7.3.4');
const base = mkdtempSync(join(tmpdir(), 'kho-mount-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));

function fuseMissing(): string | undefined {
  try {
    loadFuse();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function mounted(dir: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);
}

/** Start `kho debugfs mount DIR ...args` and wait for its "mounted" line. */
async function startMount(dir: string, args: string[]): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'debugfs', 'mount', dir, ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.on('data', (d) => {
    out += String(d);
  });
  child.stderr?.on('data', (d) => {
    out += String(d);
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no mount after 15 s: ${out}`)), 15000);
    const check = () => {
      if (/^mounted /m.test(out)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`mount exited with ${code}: ${out}`));
    });
  });
  return { child, out: () => out };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return done;
}

test('a captured tree mounted read-only: the same files and bytes, 0400, writes refused, clean unmount', async (t) => {
  const why = fuseMissing();
  if (why) return t.skip(`FUSE unavailable here (${why}); the mount is optional`);
  const src = join(VEC, 'luo-memfd/stage2');
  const dir = join(base, 'm1');
  mkdirSync(dir);
  const { child, out } = await startMount(dir, ['--from', src]);
  try {
    const files = ['out', 'in']
      .flatMap((d) =>
        execFileSync('find', [d, '-type', 'f'], { cwd: src, encoding: 'utf8' }).trim().split('\n'),
      )
      .filter(Boolean)
      .sort();
    for (const f of files) {
      assert.deepEqual(await readFile(join(dir, 'kho', f)), readFileSync(join(src, f)), f);
      assert.equal((await stat(join(dir, 'kho', f))).mode & 0o777, 0o400, f);
    }
    assert.deepEqual((await readdir(join(dir, 'kho'))).sort(), ['in', 'out']);
    await assert.rejects(writeFile(join(dir, 'kho/in/fdt'), 'x'));
    await assert.rejects(writeFile(join(dir, 'kho/new'), 'x'));
  } finally {
    const code = await stop(child);
    assert.equal(code, 0, out());
  }
  assert.match(out(), /^unmounted /m);
  assert.equal(mounted(dir), false);
});

test('hostile producer names through the mount: encoded as the export writes them, nothing else appears', async (t) => {
  const why = fuseMissing();
  if (why) return t.skip(`FUSE unavailable here (${why}); the mount is optional`);
  const dir = join(base, 'm2');
  mkdirSync(dir);
  const { child, out } = await startMount(dir, ['--sim', '--sim-subtree', '../../etc/x', 'a/b', '..']);
  try {
    const names = (await readdir(join(dir, 'kho/in/sub_fdts'))).sort();
    assert.deepEqual(
      names,
      ['%2E%2E', '..%2F..%2Fetc%2Fx', 'a%2Fb', 'kexec-metadata', 'kho_test', 'memblock'].sort(),
    );
    // The user producer's blob: "user producer 1\n" (16 bytes) for the second name.
    assert.equal(await readFile(join(dir, 'kho/in/sub_fdts/a%2Fb'), 'latin1'), 'user producer 1\n');
    assert.match(out(), /renamed kho\/in\/sub_fdts\/"\.\.\/\.\.\/etc\/x" -> \.\.%2F\.\.%2Fetc%2Fx/);
  } finally {
    assert.equal(await stop(child), 0, out());
  }
  assert.equal(mounted(dir), false);
});

test('mount refuses a mount point that is missing, a file or not empty (before touching FUSE)', async () => {
  const fake = (() => {
    throw new Error('FUSE must not be reached');
  }) as unknown as Parameters<typeof mountTree>[2];
  const d = join(base, 'full');
  mkdirSync(d);
  writeFileSync(join(d, 'x'), '');
  await assert.rejects(mountTree({ entries: [] }, d, fake), { code: 'KHO_MOUNT_NOT_EMPTY' });
  await assert.rejects(mountTree({ entries: [] }, join(d, 'x'), fake), { code: 'KHO_MOUNT_NOT_A_DIR' });
  await assert.rejects(mountTree({ entries: [] }, join(base, 'nope'), fake), { code: 'KHO_MOUNT_NOT_A_DIR' });
  assert.equal(existsSync(join(base, 'nope')), false);
});

test('without FUSE too: the mount serves exactly the names the export writes (hostile names included)', () => {
  const names = ['../../etc/x', 'a/b', '\0', '\n', 'q'.repeat(300), '.', '..', 'LUO', 'luo', ''];
  const tree: DebugfsTree = {
    entries: names.map((n) => ({
      path: ['kho', 'out', 'sub_fdts', n],
      kind: 'file',
      content: new Uint8Array([1]),
    })),
  };
  const dir = join(base, 'cmp');
  exportTree(tree, dir);
  const onDisk = readdirSync(join(dir, 'kho/out/sub_fdts')).sort();
  const sub = safeIndex(tree).root.children.get('kho')?.children.get('out')?.children.get('sub_fdts');
  assert.deepEqual([...(sub?.children.keys() ?? [])].sort(), onDisk);
  assert.equal(onDisk.length, names.length);
});

test('FUSE unavailable (no device node): a clear message and exit 1, nothing mounted', () => {
  const dir = join(base, 'nofuse');
  mkdirSync(dir);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'debugfs', 'mount', dir, '--sim'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, KHO_FUSE_DEVICE: join(base, 'no-such-device') },
      timeout: 20000,
    },
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /KHO_FUSE_UNAVAILABLE: FUSE is not available: \S+no-such-device does not exist/);
  assert.match(r.stderr, /kho debugfs export/);
  assert.equal(mounted(dir), false);
});
