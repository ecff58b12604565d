import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError } from '../errors.ts';
import { FdtRw } from './write-rw.ts';
import { FdtSw } from './write-sw.ts';

const VEC = new URL('../../test/vectors/linux-7.3.4/flat-explicit/stage1/', import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, VEC)));
const le64 = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
};
const be32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off);
const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');

test('KHO v4 root FDT of a real Linux 7.3.4 boot is reproduced byte for byte (sw build, then rw edits)', () => {
  const whole = read('out/fdt.whole');
  const debugfs = read('out/fdt');
  const meta = JSON.parse(readFileSync(new URL('meta.json', VEC), 'utf8')) as { out_root: number };
  // Producers in registration order (the kernel's add_subnode puts each new one first, so the blob
  // lists them in reverse: memblock, kho_test, kexec-metadata). preserved-data addresses are the
  // sub-blob addresses the kernel stored (phys pages also captured under mem/), sizes are the
  // lengths of the sub-blobs captured from those addresses.
  const producers: [string, bigint][] = [
    ['kexec-metadata', 0x3c25000n],
    ['kho_test', 0x3dbc000n],
    ['memblock', 0x4e6b000n],
  ];
  const sw = FdtSw.create(4096);
  sw.finishReservemap();
  sw.beginNode('');
  sw.propertyString('compatible', 'kho-v4');
  sw.property('preserved-memory-map', le64(BigInt(meta.out_root)));
  sw.endNode();
  sw.finish();
  const rw = FdtRw.openInPlace(sw.buffer, 4096);
  const sizes: number[] = [];
  producers.forEach(([name, addr], i) => {
    if (i > 0) rw.reopen(4096);
    const off = rw.addSubnode(0, name);
    rw.setprop(off, 'preserved-data', le64(addr));
    rw.setprop(off, 'blob-size', le64(BigInt(read(`out/blobs/${name}`).length)));
    rw.pack();
    sizes.push(rw.totalsize);
  });
  assert.deepEqual(Buffer.from(rw.blob()), Buffer.from(whole));
  // The debugfs file got its length (233) when the first producer was added, and shows the first
  // 233 bytes of the final blob.
  assert.equal(sizes[0], debugfs.length);
  assert.deepEqual(Buffer.from(rw.blob().subarray(0, debugfs.length)), Buffer.from(debugfs));
  assert.deepEqual(sizes, [233, 293, 353]);
});

test('setprop inserts new properties first and addSubnode inserts new children first', () => {
  const rw = FdtRw.createEmptyTree(512);
  rw.setprop(0, 'first', new Uint8Array([1]));
  rw.setprop(0, 'second', new Uint8Array([2]));
  rw.addSubnode(0, 'one');
  rw.addSubnode(0, 'two');
  assert.deepEqual(
    rw.properties(0).map((p) => p.name),
    ['second', 'first'],
  );
  // Hand-derived layout: struct at 48+16=64 (sw header 48, one terminator entry): BEGIN_NODE "" (8),
  // prop second (12+4), prop first (12+4), then node two at 8+16+16=40.
  assert.equal(rw.pathOffset('/two'), 40);
  assert.equal(rw.pathOffset('/one'), 40 + 12);
  // Strings are appended in first-use order.
  const strings = rw.blob().subarray(be32(rw.buffer, 12), be32(rw.buffer, 12) + be32(rw.buffer, 32));
  assert.equal(latin1(strings), 'first\0second\0');
});

test('resizing an existing property keeps it in place; strings share tails of longer names', () => {
  const rw = FdtRw.createEmptyTree(512);
  rw.setprop(0, 'blob-size', new Uint8Array(8));
  rw.setprop(0, 'size', new Uint8Array([1, 2, 3]));
  rw.setprop(0, 'blob-size', new Uint8Array([9]));
  const props = rw.properties(0);
  assert.deepEqual(
    props.map((p) => [p.name, [...p.value]]),
    [
      ['size', [1, 2, 3]],
      ['blob-size', [9]],
    ],
  );
  // 'size' reuses the tail of 'blob-size\0' (offset 5): the strings block stays 10 bytes.
  assert.equal(be32(rw.buffer, 32), 10);
});

test('libfdt error codes: EXISTS (also for foo vs foo@1), NOTFOUND, NOSPACE, BADOFFSET, BADPATH', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'OK';
    } catch (e) {
      assert.ok(isKhoError(e), String(e));
      return e.code;
    }
  };
  const rw = FdtRw.createEmptyTree(200);
  rw.addSubnode(0, 'mem@1000');
  assert.equal(
    code(() => rw.addSubnode(0, 'mem@1000')),
    'FDT_ERR_EXISTS',
  );
  assert.equal(
    code(() => rw.addSubnode(0, 'mem')),
    'FDT_ERR_EXISTS',
  );
  assert.equal(rw.pathOffset('/mem'), rw.pathOffset('/mem@1000'));
  assert.equal(
    code(() => rw.delprop(0, 'nothing')),
    'FDT_ERR_NOTFOUND',
  );
  assert.equal(
    code(() => rw.pathOffset('/nope')),
    'FDT_ERR_NOTFOUND',
  );
  assert.equal(
    code(() => rw.pathOffset('mem')),
    'FDT_ERR_BADPATH',
  );
  assert.equal(
    code(() => rw.setprop(4, 'x', new Uint8Array())),
    'FDT_ERR_BADOFFSET',
  );
  assert.equal(
    code(() => rw.setprop(0, 'big', new Uint8Array(200))),
    'FDT_ERR_NOSPACE',
  );
  rw.pack();
  assert.equal(
    code(() => rw.setprop(0, 'x', new Uint8Array(1))),
    'FDT_ERR_NOSPACE',
  );
  assert.equal(
    code(() => FdtRw.createEmptyTree(79)),
    'FDT_ERR_NOSPACE',
  );
});

test('a NOSPACE setprop rolls back a newly added name but leaves its bytes (as libfdt)', () => {
  // Empty tree in 80 + 8 bytes: 8 bytes free; name 'abc\0' (4) fits, the property (12+4) does not.
  const rw = FdtRw.createEmptyTree(88);
  const before = rw.bytes();
  assert.throws(() => rw.setprop(0, 'abc', new Uint8Array(1)), { code: 'FDT_ERR_NOSPACE' });
  const after = rw.bytes();
  assert.equal(be32(after, 32), 0, 'size_dt_strings rolled back');
  assert.equal(latin1(after.subarray(80, 84)), 'abc\0', 'stale name bytes stay');
  assert.deepEqual(after.subarray(0, 80), before.subarray(0, 80));
});

test('openInto rejects hostile blobs with KhoError, never a crash', () => {
  const good = FdtRw.createEmptyTree(100).blob();
  const inputs: Uint8Array[] = [new Uint8Array(0), new Uint8Array(40), good.subarray(0, 50)];
  for (let i = 0; i < 40; i += 4) {
    const b = good.slice();
    new DataView(b.buffer).setUint32(i, 0xfffffff0);
    inputs.push(b);
  }
  for (const b of inputs) {
    try {
      const rw = FdtRw.openInto(b, 200);
      rw.addSubnode(0, 'x');
      rw.pack();
    } catch (e) {
      assert.ok(isKhoError(e), `not a KhoError: ${e}`);
    }
  }
});

test('openInto and edits on randomly corrupted blobs only ever throw KhoError', () => {
  const rw0 = FdtRw.createEmptyTree(400);
  const a = rw0.addSubnode(0, 'a@1');
  rw0.setprop(a, 'reg', new Uint8Array([1, 2, 3, 4]));
  rw0.setprop(0, 'compatible', new Uint8Array([0x6b, 0]));
  rw0.addMemRsv(0x1000n, 0x10n);
  rw0.pack();
  const good = rw0.blob();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.integer({ min: 0, max: 600 }),
      (flips, size) => {
        const b = good.slice();
        for (const [i, v] of flips) b[i] = v;
        try {
          const rw = FdtRw.openInto(b, size);
          for (const path of ['/', '/a']) {
            try {
              const off = rw.pathOffset(path);
              rw.properties(off);
              rw.setprop(off, 'reg', new Uint8Array(6));
              rw.addSubnode(off, 'n');
              rw.delprop(off, 'compatible');
              rw.delNode(rw.pathOffset(`${path === '/' ? '' : path}/n`));
            } catch (e) {
              if (!isKhoError(e)) throw e;
            }
          }
          rw.pack();
          rw.reopen(Math.min(size, rw.buffer.length));
        } catch (e) {
          if (!isKhoError(e)) throw e;
        }
      },
    ),
    { numRuns: 400, seed: 1 },
  );
});
