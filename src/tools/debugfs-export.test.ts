/**
 * `kho debugfs export`. Oracles: hand-written encodings of hostile names (the scheme in
 * debugfs-tree.ts), the parent directory snapshotted before and after (nothing outside DIR may
 * change), `find` listing the real captured tree and the bytes of its files, the vectors' meta.json
 * (the file set the real 7.3.4 kernel showed for the same command line), and fast-check round trips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { captureAll } from '../../test/helpers/cli.ts';
import { oracle } from '../../test/helpers/oracle.ts';
import { runDebugfsExport } from '../cli/commands/debugfs.ts';
import { exportTree, RENAMES_FILE } from './debugfs-export.ts';
import {
  type DebugfsTree,
  decodeName,
  encodeName,
  MAX_NAME_BYTES,
  safeNames,
  simulatedTree,
  treeFromDir,
} from './debugfs-tree.ts';

const VEC = join(import.meta.dirname, '../../test/vectors/linux-7.3.4');
const base = mkdtempSync(join(tmpdir(), 'kho-export-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const d = join(base, `case${n++}`);
  mkdirSync(d);
  return d;
};

/** Every entry under `root`: relative path → type, mode, link target or content hash. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const s = lstatSync(p);
      const rel = relative(root, p);
      if (s.isSymbolicLink()) out.set(rel, `link ${readlinkSync(p)}`);
      else if (s.isDirectory()) {
        out.set(rel, `dir ${s.mode.toString(8)}`);
        walk(p);
      } else
        out.set(
          rel,
          `file ${s.mode.toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`,
        );
    }
  };
  walk(root);
  return out;
}

const without = (m: Map<string, string>, prefix: string) =>
  new Map([...m].filter(([k]) => k !== prefix && !k.startsWith(`${prefix}/`)));

test('hostile names are percent-encoded as the scheme says, and decode back', () => {
  const cases: [string, string][] = [
    ['memblock', 'memblock'],
    ['kexec-metadata', 'kexec-metadata'],
    ['LUO', 'LUO'],
    ['../../etc/x', '..%2F..%2Fetc%2Fx'],
    ['a/b', 'a%2Fb'],
    ['\0', '%00'],
    ['\n', '%0A'],
    ['.', '%2E'],
    ['..', '%2E%2E'],
    ['', '%'],
    ['100%', '100%25'],
    ['a b', 'a%20b'],
    ['\x7f', '%7F'],
    ['caf\xe9', 'caf%E9'],
  ];
  for (const [raw, enc] of cases) {
    assert.equal(encodeName(raw), enc, JSON.stringify(raw));
    assert.equal(decodeName(enc), raw);
  }
  assert.equal(decodeName('%tmp-1'), undefined); // kho's own names never decode
  assert.equal(decodeName(RENAMES_FILE), undefined);
});

test('property: every byte string encodes to a safe, reversible name', () => {
  const byteString = fc
    .array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 })
    .map((a) => String.fromCharCode(...a));
  fc.assert(
    fc.property(byteString, (raw) => {
      const e = encodeName(raw);
      assert.match(e, /^[A-Za-z0-9\-_.,+=@~%]+$/);
      assert.ok(e !== '.' && e !== '..');
      assert.equal(decodeName(e), raw);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      fc.array(fc.oneof(byteString, fc.constantFrom('a', 'A', 'x'.repeat(300), 'X'.repeat(300))), {
        maxLength: 12,
      }),
      (raws) => {
        const { names } = safeNames(raws);
        assert.equal(new Set(names.map((x) => x.toLowerCase())).size, names.length);
        for (const x of names) assert.ok(Buffer.byteLength(x) <= 255, x);
      },
    ),
    { numRuns: 200 },
  );
});

const HOSTILE = ['../../etc/x', 'a/b', '\0', '\n', 'n'.repeat(300), '.', '..', 'Memblock', 'memblock'];

function hostileTree(): DebugfsTree {
  const entries: DebugfsTree['entries'] = HOSTILE.map((name, i) => ({
    path: ['kho', 'out', 'sub_fdts', name],
    kind: 'file',
    content: new TextEncoder().encode(`blob ${i}\n`),
  }));
  // Hostile directory segments too: a producer-chosen name used as a directory.
  entries.push({ path: ['..', '..', 'escaped'], kind: 'file', content: new TextEncoder().encode('no') });
  entries.push({
    path: ['kho', '/', 'etc', 'passwd'],
    kind: 'file',
    content: new TextEncoder().encode('no'),
  });
  return { entries };
}

test('hostile sub-blob names never escape DIR: the parent is unchanged, each file is where the scheme puts it', () => {
  const parent = fresh();
  writeFileSync(join(parent, 'x'), 'outside');
  mkdirSync(join(parent, 'etc'));
  const before = snapshot(parent);
  const dir = join(parent, 'export');
  const r = exportTree(hostileTree(), dir);
  assert.equal(r.ok, true);
  assert.deepEqual(without(snapshot(parent), 'export'), before);
  const sub = join(dir, 'kho/out/sub_fdts');
  const expected: Record<string, string> = {
    '..%2F..%2Fetc%2Fx': 'blob 0\n',
    'a%2Fb': 'blob 1\n',
    '%00': 'blob 2\n',
    '%0A': 'blob 3\n',
    '%2E': 'blob 5\n',
    '%2E%2E': 'blob 6\n',
    Memblock: 'blob 7\n',
    'memblock%~2': 'blob 8\n',
  };
  for (const [name, content] of Object.entries(expected))
    assert.equal(readFileSync(join(sub, name), 'utf8'), content, name);
  // 300 bytes: cut to 200 with '%~' and 16 hex digits of the name's SHA-256.
  const digest = createHash('sha256').update('n'.repeat(300)).digest('hex').slice(0, 16);
  const long = `${'n'.repeat(MAX_NAME_BYTES - 18)}%~${digest}`;
  assert.equal(readFileSync(join(sub, long), 'utf8'), 'blob 4\n');
  assert.equal(readdirSync(sub).length, HOSTILE.length);
  assert.equal(readFileSync(join(dir, '%2E%2E/%2E%2E/escaped'), 'utf8'), 'no');
  assert.equal(readFileSync(join(dir, 'kho/%2F/etc/passwd'), 'utf8'), 'no');
  // Each rename is reported and recorded in DIR/%kho-renames.json with the raw bytes.
  const doc = JSON.parse(readFileSync(join(dir, RENAMES_FILE), 'utf8')) as {
    name: string;
    raw: string;
    rawHex: string;
  }[];
  assert.equal(doc.length, r.renamings.length);
  for (const d of doc) assert.equal(Buffer.from(d.rawHex, 'hex').toString('latin1'), d.raw);
  assert.ok(doc.some((d) => d.raw === '\0' && d.name === '%00'));
  assert.equal(lstatSync(join(sub, 'a%2Fb')).mode & 0o777, 0o400);
});

test('a symlink planted in DIR is never followed: the outside stays unchanged', () => {
  const parent = fresh();
  const outside = join(parent, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'victim'), 'precious');
  const dir = join(parent, 'export');
  mkdirSync(dir);
  symlinkSync(outside, join(dir, 'kho'));
  const before = snapshot(parent);
  const tree: DebugfsTree = {
    entries: [
      { path: ['kho', 'out', 'victim'], kind: 'file', content: new TextEncoder().encode('overwritten') },
    ],
  };
  const r = exportTree(tree, dir, { force: true });
  assert.equal(r.ok, false);
  assert.deepEqual(r.refused, [{ path: 'kho', why: 'a symbolic link is in the way (not followed)' }]);
  assert.deepEqual(snapshot(parent), before);
  // A file symlink where a debugfs file goes is replaced by the file, its target untouched.
  const dir2 = join(parent, 'export2');
  mkdirSync(join(dir2, 'kho/out'), { recursive: true });
  symlinkSync(join(outside, 'victim'), join(dir2, 'kho/out/victim'));
  const r2 = exportTree(tree, dir2, { force: true });
  assert.equal(r2.ok, true);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'precious');
  assert.equal(lstatSync(join(dir2, 'kho/out/victim')).isSymbolicLink(), false);
  assert.equal(readFileSync(join(dir2, 'kho/out/victim'), 'utf8'), 'overwritten');
  // DIR itself a symlink: refused outright.
  const link = join(parent, 'link');
  symlinkSync(outside, link);
  assert.throws(() => exportTree(tree, link, { force: true }), { code: 'KHO_EXPORT_NOT_A_DIR' });
  assert.equal(readdirSync(outside).join(), 'victim');
});

function cli(dir: string | undefined, o: Record<string, unknown>) {
  return captureAll((io) => runDebugfsExport(dir, o, io));
}

test('a real captured tree is copied byte for byte (find lists the files); a non-empty DIR needs --force', () => {
  const src = join(VEC, 'flat-explicit/stage1');
  const dir = join(fresh(), 'e');
  const r = cli(dir, { from: src, json: true });
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  const files = ['out', 'in']
    .flatMap((d) => {
      try {
        return execFileSync('find', [d, '-type', 'f'], { cwd: src, encoding: 'utf8' }).trim().split('\n');
      } catch {
        return [];
      }
    })
    .filter(Boolean)
    .sort();
  assert.equal(j.files, files.length);
  for (const f of files) assert.deepEqual(readFileSync(join(dir, 'kho', f)), readFileSync(join(src, f)), f);
  assert.deepEqual(j.renamings, []);
  const again = cli(dir, { from: src });
  assert.equal(again.code, 1);
  assert.match(again.err, /KHO_EXPORT_NOT_EMPTY/);
  assert.equal(cli(dir, { from: src, force: true }).code, 0);
  assert.equal(cli(dir, {}).code, 2);
  assert.equal(cli(dir, { from: src, sim: true }).code, 2);
  assert.equal(cli(undefined, { sim: true }).code, 2);
  // Symlinks in a captured tree are skipped, not followed.
  const cap = fresh();
  mkdirSync(join(cap, 'out'));
  writeFileSync(join(cap, 'out/scratch_len'), '0x1000000\n');
  symlinkSync('/etc/passwd', join(cap, 'out/fdt'));
  const t = treeFromDir(cap);
  assert.deepEqual(
    t.entries.filter((e) => e.kind === 'file').map((e) => e.path.join('/')),
    ['kho/out/scratch_len'],
  );
  assert.equal(t.skipped?.[0]?.why, 'symbolic link (not followed)');
});

test('a simulated machine after one kexec exports the file set the real kernel showed (flat-explicit stage 2)', (t) => {
  if (!oracle(t, 'fdtget')) return;
  const meta = JSON.parse(readFileSync(join(VEC, 'flat-explicit/stage2/meta.json'), 'utf8')) as {
    tree: string[];
  };
  const dir = join(fresh(), 'sim');
  const { tree } = simulatedTree();
  const r = exportTree(tree, dir);
  assert.equal(r.ok, true);
  const got = [...snapshot(dir).keys()].map((p) => `/sys/kernel/debug/${p}`).sort();
  assert.deepEqual(got, [...meta.tree].sort());
  // The content is the simulated kernel's: in/fdt is a KHO root FDT of the vectors' ABI.
  const fdt = readFileSync(join(dir, 'kho/in/fdt'));
  assert.equal(fdt.readUInt32BE(0), 0xd00dfeed);
  assert.equal(
    execFileSync('fdtget', ['-t', 's', join(dir, 'kho/in/fdt'), '/', 'compatible'], {
      encoding: 'utf8',
    }).trim(),
    'kho-v4',
  );
});

test('hostile producer names from a simulated kernel: renamed, reported, nothing outside DIR', () => {
  const parent = fresh();
  const before = snapshot(parent);
  const dir = join(parent, 'e');
  const r = cli(dir, { sim: true, simSubtree: ['../../etc/x', 'a/b', '..'] });
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(without(snapshot(parent), 'e'), before);
  for (const name of ['..%2F..%2Fetc%2Fx', 'a%2Fb', '%2E%2E']) {
    assert.equal(lstatSync(join(dir, 'kho/out/sub_fdts', name)).isFile(), true, name);
    assert.equal(lstatSync(join(dir, 'kho/in/sub_fdts', name)).isFile(), true, name);
  }
  assert.match(r.out, /renamed kho\/out\/sub_fdts\/"a\/b" -> a%2Fb/);
  assert.match(r.out, /renamed kho\/in\/sub_fdts\/"\.\." -> %2E%2E/);
});

test('a reader that throws and a tree nested absurdly deep are refused per entry, the rest is written', () => {
  const dir = join(fresh(), 'e');
  const deep = Array.from({ length: 5000 }, (_, i) => `d${i}`);
  const r = exportTree(
    {
      entries: [
        { path: ['kho', 'ok'], kind: 'file', content: new TextEncoder().encode('fine') },
        {
          path: ['kho', 'bad'],
          kind: 'file',
          content: () => {
            throw new Error('page reused');
          },
        },
        { path: [...deep, 'f'], kind: 'file', content: new Uint8Array(1) },
      ],
    },
    dir,
  );
  assert.equal(r.ok, false);
  assert.equal(readFileSync(join(dir, 'kho/ok'), 'utf8'), 'fine');
  assert.deepEqual(
    r.refused.map((x) => x.why),
    ['cannot read it: page reused', 'nested deeper than 32 levels'],
  );
});

test('simulated machines of several shapes export the file sets the real kernel showed (meta.json), scratch_len byte-exact', () => {
  const shapes: { vec: string; numa: number; kexecs: number; scratchLen: boolean }[] = [
    { vec: 'flat-explicit/stage1', numa: 1, kexecs: 0, scratchLen: true },
    { vec: 'numa-explicit/stage2', numa: 2, kexecs: 1, scratchLen: true },
    { vec: 'three-hops/stage3', numa: 1, kexecs: 2, scratchLen: true },
    { vec: 'bad-scratch/stage1', numa: 1, kexecs: 0, scratchLen: false },
    { vec: 'kho-off/stage1', numa: 1, kexecs: 0, scratchLen: false },
  ];
  for (const sh of shapes) {
    const meta = JSON.parse(readFileSync(join(VEC, sh.vec, 'meta.json'), 'utf8')) as {
      cmdline: string;
      tree: string[];
    };
    const dir = join(fresh(), 'sim');
    const r = cli(dir, {
      sim: true,
      simNuma: String(sh.numa),
      simKexec: String(sh.kexecs),
      simCmdline: meta.cmdline,
    });
    assert.equal(r.code, 0, `${sh.vec}: ${r.err}`);
    const got = [...snapshot(dir).keys()].map((p) => `/sys/kernel/debug/${p}`).sort();
    assert.deepEqual(got, [...meta.tree].sort(), sh.vec);
    if (meta.tree.length === 0) assert.match(r.out, /the source has no kho\/ tree: KHO is off/);
    if (sh.scratchLen)
      assert.equal(
        readFileSync(join(dir, 'kho/out/scratch_len'), 'latin1'),
        readFileSync(join(VEC, sh.vec, 'out/scratch_len'), 'latin1'),
        sh.vec,
      );
  }
});
