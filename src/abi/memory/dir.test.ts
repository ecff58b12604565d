import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { withTempDir } from '../../../test/helpers/oracle.ts';
import { isKhoError } from '../../errors.ts';
import { memFileName, openMemoryDir, parseMemFileName } from './dir.ts';
import { openMemoryImage } from './open.ts';

const MEM = join(import.meta.dirname, '../../../test/vectors/linux-7.3.4/flat-explicit/stage1/mem');

test('file names: 16 hex digits + .bin', () => {
  assert.equal(parseMemFileName('0000000003c1e000.bin'), 0x3c1e000n);
  assert.equal(parseMemFileName('0000000003C1E000.bin'), 0x3c1e000n);
  assert.equal(parseMemFileName('3c1e000.bin'), undefined);
  assert.equal(parseMemFileName('0000000003c1e000.bin.orig'), undefined);
  assert.equal(memFileName(0x3c1e000n), '0000000003c1e000.bin');
});

test('the vectors mem/ directory: every file readable at its address, adjacent files joined', () => {
  const mem = openMemoryImage(MEM);
  try {
    assert.equal(mem.kind, 'dir');
    for (const name of readdirSync(MEM)) {
      const pa = parseMemFileName(name)!;
      const want = new Uint8Array(readFileSync(join(MEM, name)));
      assert.deepEqual(mem.read(pa, want.length), want, name);
    }
    // 0x3c1e000..0x3c25fff are eight 4 KiB files: one range, and a read across two of them.
    const first = mem.ranges()[0];
    assert.deepEqual(first, { start: 0x3c1e000n, size: 0x8000n });
    const a = new Uint8Array(readFileSync(join(MEM, '0000000003c1e000.bin')));
    const b = new Uint8Array(readFileSync(join(MEM, '0000000003c1f000.bin')));
    assert.deepEqual(mem.read(0x3c1eff8n, 16), new Uint8Array([...a.subarray(4088), ...b.subarray(0, 8)]));
    assert.throws(
      () => mem.read(0x3c26000n, 1),
      (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'),
    );
    const total = mem.ranges().reduce((n, r) => n + r.size, 0n);
    const onDisk = readdirSync(MEM).reduce((n, f) => n + BigInt(statSync(join(MEM, f)).size), 0n);
    assert.equal(total, onDisk);
  } finally {
    mem.close();
  }
});

test('other names are ignored; a missing directory is an IO error', () => {
  withTempDir((dir) => {
    writeFileSync(join(dir, '0000000000001000.bin'), new Uint8Array(16).fill(7));
    writeFileSync(join(dir, 'notes.txt'), 'x');
    const mem = openMemoryDir(dir);
    assert.deepEqual(mem.ranges(), [{ start: 0x1000n, size: 16n }]);
    mem.close();
    assert.throws(
      () => openMemoryDir(join(dir, 'nope')),
      (e) => isKhoError(e, 'IO_OPEN_FAILED'),
    );
  });
});
