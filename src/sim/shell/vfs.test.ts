import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError } from '../../errors.ts';
import { createBaseVfs, createShell, MemDir, toText, type Vfs } from './index.ts';

const err = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(isKhoError(e), `not a KhoError: ${e}`);
    return e.code;
  }
  return 'no error';
};

test('dynamic files are computed at each read; size is the content length unless the provider says otherwise', () => {
  const vfs = createBaseVfs();
  let n = 0;
  vfs.addFile('/sys/kernel/debug/kho/out/scratch_len', {
    read: () => `0x${(++n).toString(16)}\n`,
    size: () => 0,
  });
  vfs.addFile('/sys/kernel/debug/kho/out/fdt', {
    read: () => new Uint8Array([0xd0, 0x0d, 0xfe, 0xed, 0, 0]),
  });
  assert.equal(toText(vfs.readFile('/sys/kernel/debug/kho/out/scratch_len')), '0x1\n');
  assert.equal(toText(vfs.readFile('/sys/kernel/debug/kho/out/scratch_len')), '0x2\n');
  assert.equal(vfs.stat('/sys/kernel/debug/kho/out/scratch_len').size, 0);
  assert.equal(vfs.stat('/sys/kernel/debug/kho/out/fdt').size, 6);
  assert.equal(vfs.stat('/sys/kernel/debug/kho/out/fdt').perm, 0o444);
  assert.deepEqual(vfs.readdir('/sys/kernel/debug/kho/out'), ['fdt', 'scratch_len']);
});

test('a writable dynamic file receives the bytes a redirection writes; a read-only one refuses', async () => {
  const sh = createShell();
  const got: string[] = [];
  sh.vfs.addFile('/sys/kernel/debug/knob', {
    read: () => '0\n',
    write: (d, append) => got.push(`${toText(d)}|${append}`),
  });
  sh.vfs.addFile('/proc/version', { read: () => 'Linux\n', size: () => 0 });
  const r = await sh.run(
    'echo 1 > /sys/kernel/debug/knob; echo 2 >> /sys/kernel/debug/knob; echo x > /proc/version',
  );
  // One write per `echo`, as a debugfs file sees it: `>` truncates (append false), `>>` appends.
  assert.deepEqual(got, ['1\n|false', '2\n|true']);
  assert.equal(toText(r.stderr), 'sh: /proc/version: Permission denied\n');
});

test('readdir sorts by bytes as ls does in the C locale', () => {
  const vfs = createBaseVfs();
  for (const n of ['b', 'B', 'a', '_x', '10', '9', '.dot', 'é']) vfs.writeFile(`/tmp/${n}`, '');
  assert.deepEqual(vfs.readdir('/tmp'), ['.dot', '10', '9', 'B', '_x', 'a', 'b', 'é']);
});

test('mount and unmount: debugfs appears and disappears; a mount point cannot be removed', async () => {
  const sh = createShell();
  const vfs = sh.vfs;
  vfs.mkdirp('/sys/kernel/debug');
  assert.deepEqual(vfs.readdir('/sys/kernel/debug'), []);
  const dbg = vfs.mount('/sys/kernel/debug', new MemDir());
  assert.ok(dbg instanceof MemDir);
  vfs.addFile('/sys/kernel/debug/kho/in/fdt', new Uint8Array(8));
  vfs.addFile('/sys/kernel/debug/kho/in/sub_fdts/memblock', new Uint8Array(4));
  assert.equal(
    toText((await sh.run('find /sys/kernel/debug')).stdout),
    [
      '/sys/kernel/debug',
      '/sys/kernel/debug/kho',
      '/sys/kernel/debug/kho/in',
      '/sys/kernel/debug/kho/in/fdt',
      '/sys/kernel/debug/kho/in/sub_fdts',
      '/sys/kernel/debug/kho/in/sub_fdts/memblock',
      '',
    ].join('\n'),
  );
  assert.equal(
    err(() => vfs.removeEntry('/sys/kernel/debug')),
    'SIM_EBUSY',
  );
  assert.equal(
    err(() => vfs.removeEntry('/sys/kernel')),
    'SIM_EBUSY',
  );
  // `in/` goes away once consumers are done; a shell inside it keeps its path but finds nothing.
  await sh.run('cd /sys/kernel/debug/kho/in');
  assert.equal(vfs.removeEntry('/sys/kernel/debug/kho/in'), true);
  const r = await sh.run('pwd; ls; ls /sys/kernel/debug/kho');
  assert.equal(toText(r.stdout), '/sys/kernel/debug/kho/in\n');
  assert.equal(toText(r.stderr), "ls: cannot access '.': No such file or directory\n");
  vfs.unmount('/sys/kernel/debug');
  assert.deepEqual(vfs.readdir('/sys/kernel/debug'), []);
  assert.equal(
    err(() => vfs.unmount('/sys/kernel/debug')),
    'SIM_EINVAL',
  );
});

test('user operations: writable only in /tmp and /root, EACCES elsewhere, EROFS on host mounts', async () => {
  const dir = mkdtempSync('/tmp/kho-vfs-');
  try {
    writeFileSync(`${dir}/f`, 'host\n');
    const sh = createShell();
    sh.vfs.mkdirp('/mnt/host');
    sh.vfs.mountHost('/mnt/host', dir);
    const r = await sh.run(
      [
        'mkdir -p /tmp/a/b/c && echo x > /tmp/a/b/c/f && cat /tmp/a/b/c/f',
        'mkdir /proc/d',
        'echo y > /mnt/host/f',
        'echo y > /mnt/host/new',
        'rm /mnt/host/f',
        'rmdir /tmp/a',
        'rm /tmp/a',
        'rm -r /tmp/a && ls /tmp',
        'cp /mnt/host/f /root/copy && cat /root/copy',
        'cp /mnt/host/f /proc/',
        'rm -rf /',
      ].join('\n'),
    );
    assert.equal(toText(r.stdout), 'x\nhost\n');
    assert.equal(
      toText(r.stderr),
      [
        "mkdir: cannot create directory '/proc/d': Permission denied",
        'sh: /mnt/host/f: Read-only file system',
        'sh: /mnt/host/new: Read-only file system',
        "rm: cannot remove '/mnt/host/f': Read-only file system",
        "rmdir: failed to remove '/tmp/a': Directory not empty",
        "rm: cannot remove '/tmp/a': Is a directory",
        "cp: cannot create regular file '/proc/f': Permission denied",
        "rm: it is dangerous to operate recursively on '/'",
        'rm: use --no-preserve-root to override this failsafe',
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('path resolution: . and .., symlinks, trailing slash, loops, NUL, over-long names', () => {
  const vfs = createBaseVfs();
  vfs.mkdir('/tmp/d');
  vfs.writeFile('/tmp/d/f', 'F');
  vfs.symlink('d', '/tmp/rel');
  vfs.symlink('/tmp/d/f', '/tmp/abs');
  vfs.symlink('loop', '/tmp/loop');
  vfs.symlink('../..', '/tmp/d/up');
  assert.equal(vfs.realpath('/tmp/./d/../d/f'), '/tmp/d/f');
  assert.equal(vfs.realpath('/../../tmp'), '/tmp');
  assert.equal(vfs.realpath('/tmp/rel/f'), '/tmp/d/f');
  // `..` after a symlinked directory is the target's parent (physical resolution).
  assert.equal(vfs.realpath('/tmp/rel/../d'), '/tmp/d');
  assert.equal(vfs.realpath('/tmp/d/up'), '/');
  assert.equal(toText(vfs.readFile('/tmp/abs')), 'F');
  assert.equal(vfs.lstat('/tmp/abs').type, 'symlink');
  assert.equal(
    err(() => vfs.readFile('/tmp/d/f/')),
    'SIM_ENOTDIR',
  );
  assert.equal(
    err(() => vfs.readFile('/tmp/d/f/x')),
    'SIM_ENOTDIR',
  );
  assert.equal(
    err(() => vfs.readFile('/tmp/loop')),
    'SIM_ELOOP',
  );
  assert.equal(
    err(() => vfs.readFile('/tmp/d')),
    'SIM_EISDIR',
  );
  assert.equal(
    err(() => vfs.readFile('/tmp/d\0/f')),
    'SIM_ENOENT',
  );
  assert.equal(
    err(() => vfs.readFile('')),
    'SIM_ENOENT',
  );
  assert.equal(
    err(() => vfs.readFile(`/tmp/${'n'.repeat(256)}`)),
    'SIM_ENAMETOOLONG',
  );
  assert.equal(
    err(() => vfs.writeFile(`/tmp/${'n'.repeat(256)}`, '')),
    'SIM_ENAMETOOLONG',
  );
  assert.equal(
    err(() => vfs.readFile(`/${'a/'.repeat(2100)}`)),
    'SIM_ENAMETOOLONG',
  );
  vfs.writeFile(`/tmp/${'n'.repeat(255)}`, 'ok');
  assert.equal(toText(vfs.readFile(`/tmp/${'n'.repeat(255)}`)), 'ok');
  // Writing through a dangling symlink creates its target, as open(O_CREAT) does.
  vfs.symlink('/tmp/d/new', '/tmp/dangling');
  vfs.writeFile('/tmp/dangling', 'N');
  assert.equal(toText(vfs.readFile('/tmp/d/new')), 'N');
});

/** A host tree with a secret outside the mounted root and many ways to try to reach it. */
function hostileTree(): { base: string; root: string; secretPath: string } {
  const base = mkdtempSync('/tmp/kho-host-');
  const root = `${base}/root`;
  mkdirSync(`${root}/d/e`, { recursive: true });
  mkdirSync(`${base}/outside`);
  const secretPath = `${base}/outside/SECRET_NAME`;
  writeFileSync(secretPath, 'TOP SECRET\n');
  writeFileSync(`${root}/ok.txt`, 'fine\n');
  symlinkSync('../outside/SECRET_NAME', `${root}/up`);
  symlinkSync(secretPath, `${root}/abs`);
  symlinkSync('..', `${root}/dirup`);
  symlinkSync(`${base}/outside`, `${root}/absdir`);
  symlinkSync('../../..', `${root}/d/back`);
  symlinkSync('/', `${root}/d/e/slash`);
  symlinkSync('loop', `${root}/loop`);
  symlinkSync('ok.txt', `${root}/good`);
  spawnSync('mkfifo', [`${root}/fifo`]);
  return { base, root, secretPath };
}

test('host mounts never reach outside the host root: hostile paths, symlinks and .. stay confined', async () => {
  const { base, root, secretPath } = hostileTree();
  try {
    const vfs: Vfs = createBaseVfs();
    vfs.mkdirp('/mnt/host');
    vfs.mountHost('/mnt/host', root);
    // What a user may legitimately reach.
    assert.equal(toText(vfs.readFile('/mnt/host/ok.txt')), 'fine\n');
    assert.equal(toText(vfs.readFile('/mnt/host/good')), 'fine\n');
    assert.equal(toText(vfs.readFile('/mnt/host/d/e/../../ok.txt')), 'fine\n');
    // `..` above the mount goes to the virtual parent, as on Linux.
    assert.deepEqual(vfs.readdir('/mnt/host/..'), ['host']);
    assert.equal(vfs.realpath('/mnt/host/dirup'), '/mnt');
    assert.equal(vfs.realpath('/mnt/host/d/back'), '/');
    assert.equal(vfs.realpath('/mnt/host/d/e/slash'), '/');
    // Absolute symlinks are resolved in the virtual namespace, where the host path does not exist.
    assert.equal(
      err(() => vfs.readFile('/mnt/host/abs')),
      'SIM_ENOENT',
    );
    assert.equal(
      err(() => vfs.readdir('/mnt/host/absdir')),
      'SIM_ENOENT',
    );
    assert.equal(
      err(() => vfs.readFile('/mnt/host/up')),
      'SIM_ENOENT',
    );
    assert.equal(
      err(() => vfs.readFile('/mnt/host/loop')),
      'SIM_ELOOP',
    );
    // FIFOs (and sockets, devices) are invisible, so reading never blocks.
    assert.ok(!vfs.readdir('/mnt/host').includes('fifo'));
    assert.equal(
      err(() => vfs.readFile('/mnt/host/fifo')),
      'SIM_ENOENT',
    );

    const comps = [
      '..',
      '.',
      'up',
      'abs',
      'dirup',
      'absdir',
      'd',
      'e',
      'back',
      'slash',
      'ok.txt',
      'outside',
      'SECRET_NAME',
      'root',
      'mnt',
      'host',
      base.slice(1),
      '',
      'a\0b',
      'n'.repeat(300),
    ];
    await fc.assert(
      fc.property(
        fc.constantFrom('/', '/mnt/host/', '/mnt/host/d/e/', ''),
        fc.array(fc.constantFrom(...comps), { maxLength: 8 }),
        (prefix, parts) => {
          const path = prefix + parts.join('/');
          vfs.chdir('/mnt/host/d');
          try {
            const data = toText(vfs.readFile(path));
            assert.notEqual(data, 'TOP SECRET\n', path);
          } catch (e) {
            assert.ok(isKhoError(e), `${path}: ${e}`);
          }
          try {
            const names = vfs.readdir(path);
            assert.ok(!names.includes('SECRET_NAME'), path);
          } catch (e) {
            assert.ok(isKhoError(e), `${path}: ${e}`);
          }
        },
      ),
      { numRuns: 300 },
    );
    // The host's own view of the same path would have reached the secret.
    assert.equal(spawnSync('cat', [`${root}/up`]).stdout.toString(), 'TOP SECRET\n');
    assert.ok(secretPath.startsWith(base));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a host file swapped for a symlink after lookup is not followed (O_NOFOLLOW)', () => {
  const { base, root } = hostileTree();
  try {
    const vfs = createBaseVfs();
    vfs.mkdirp('/mnt/host');
    vfs.mountHost('/mnt/host', root);
    const node = vfs.resolve('/mnt/host/ok.txt').node;
    assert.equal(node.type, 'file');
    renameSync(`${root}/ok.txt`, `${root}/ok.old`);
    symlinkSync(`${base}/outside/SECRET_NAME`, `${root}/ok.txt`);
    assert.equal(node.type === 'file' && err(() => node.read()), 'SIM_ELOOP');
    // A directory swapped for a symlink to outside the root is seen as empty, not followed.
    const d = vfs.resolve('/mnt/host/d').node;
    renameSync(`${root}/d`, `${root}/d.old`);
    symlinkSync(`${base}/outside`, `${root}/d`);
    assert.ok(d.type === 'dir');
    assert.deepEqual(d.type === 'dir' && d.list(), []);
    assert.equal(d.type === 'dir' && d.lookup('SECRET_NAME'), undefined);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('mountHost refuses a missing host directory or a file', () => {
  const vfs = createBaseVfs();
  vfs.mkdirp('/mnt/x');
  assert.equal(
    err(() => vfs.mountHost('/mnt/x', '/nonexistent/dir')),
    'SIM_ENOENT',
  );
  assert.equal(
    err(() => vfs.mountHost('/mnt/x', '/etc/hostname')),
    'SIM_ENOTDIR',
  );
  assert.equal(
    err(() => vfs.mount('/tmp/nonexistent', new MemDir())),
    'SIM_ENOENT',
  );
});
