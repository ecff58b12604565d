import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { withTempDir } from '../../../test/helpers/oracle.ts';
import { isKhoError } from '../../errors.ts';
import { openMemoryImage } from './open.ts';
import { openRawMemory } from './raw.ts';

test('a raw image covers [base, base + size) and reads lazily at file offsets', () => {
  withTempDir((dir) => {
    const p = join(dir, 'mem.raw');
    writeFileSync(
      p,
      Uint8Array.from({ length: 0x3000 }, (_, i) => (i >> 12) + 1),
    );
    const mem = openRawMemory(p, 0x7000_0000n);
    try {
      assert.deepEqual(mem.ranges(), [{ start: 0x7000_0000n, size: 0x3000n }]);
      assert.deepEqual(mem.read(0x7000_0fffn, 2), Uint8Array.of(1, 2));
      assert.throws(
        () => mem.read(0x6fff_ffffn, 1),
        (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'),
      );
      assert.throws(
        () => mem.read(0x7000_2fffn, 2),
        (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY'),
      );
    } finally {
      mem.close();
    }
    const sniffed = openMemoryImage(p, { base: 0x1000n });
    assert.equal(sniffed.kind, 'raw');
    assert.deepEqual(sniffed.read(0x1000n, 1), Uint8Array.of(1));
    sniffed.close();
    assert.throws(
      () => openRawMemory(join(dir, 'missing')),
      (e) => isKhoError(e, 'IO_OPEN_FAILED'),
    );
  });
});
