import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { VECTORS } from '../../test/helpers/vectors.ts';
import { isKhoError } from '../errors.ts';
import {
  acceptKexecMetadata,
  decodeKexecMetadata,
  encodeKexecMetadata,
  KEXEC_METADATA_SIZE,
  parseExecFromLine,
  validateKexecMetadata,
} from './kexec-metadata.ts';

function stages(): Array<{ sc: string; st: number; dir: string }> {
  const out: Array<{ sc: string; st: number; dir: string }> = [];
  for (const sc of readdirSync(VECTORS)) {
    for (const st of [1, 2, 3]) {
      const dir = join(VECTORS, sc, `stage${st}`);
      if (existsSync(dir)) out.push({ sc, st, dir });
    }
  }
  return out;
}

test('the 73-byte layout, hand-derived from the spec table', () => {
  const b = encodeKexecMetadata({ previousRelease: 'abc', kexecCount: 0x01020304 });
  assert.equal(b.length, 73);
  const expected = new Uint8Array(73);
  expected.set([1, 0, 0, 0], 0); // u32 version 1, LE
  expected.set([0x61, 0x62, 0x63], 4); // "abc", NUL and zero padding after
  expected.set([4, 3, 2, 1], 69); // unaligned u32 count
  assert.deepEqual(b, expected);
  const be = encodeKexecMetadata({ previousRelease: 'abc', kexecCount: 0x01020304 }, 'big');
  assert.deepEqual([...be.subarray(0, 4), ...be.subarray(69)], [0, 0, 0, 1, 1, 2, 3, 4]);
  assert.deepEqual(decodeKexecMetadata(be, 'big'), {
    version: 1,
    previousRelease: 'abc',
    kexecCount: 0x01020304,
  });
});

test('vectors: every outgoing blob of stage N carries count N and the release; encode reproduces it', () => {
  let n = 0;
  for (const { st, dir } of stages()) {
    const p = join(dir, 'out/sub_fdts/kexec-metadata');
    if (!existsSync(p)) continue;
    const blob = new Uint8Array(readFileSync(p));
    assert.equal(blob.length, KEXEC_METADATA_SIZE);
    assert.deepEqual(decodeKexecMetadata(blob), {
      version: 1,
      previousRelease: '7.3.4-khovec',
      kexecCount: st,
    });
    assert.deepEqual(encodeKexecMetadata({ previousRelease: '7.3.4-khovec', kexecCount: st }), blob);
    assert.deepEqual(validateKexecMetadata(blob), []);
    n++;
  }
  assert.ok(n >= 12);
});

test('vectors: the incoming blob is accepted and the kernel logged exactly our line', () => {
  let n = 0;
  for (const { dir } of stages()) {
    const p = join(dir, 'in/blobs/kexec-metadata');
    if (!existsSync(p)) continue;
    const acc = acceptKexecMetadata(new Uint8Array(readFileSync(p)));
    assert.equal(acc.accepted, true);
    const dmesg = readFileSync(join(dir, 'dmesg'), 'utf8');
    assert.ok(dmesg.includes(`] ${acc.logLine}\n`), `${dir}: ${acc.logLine}`);
    assert.deepEqual(parseExecFromLine(dmesg), {
      previousRelease: acc.metadata!.previousRelease,
      kexecCount: acc.metadata!.kexecCount,
    });
    n++;
  }
  assert.ok(n >= 6);
});

test('rejections follow the kernel order and texts (spec §6)', () => {
  assert.deepEqual(acceptKexecMetadata(undefined), { accepted: false });
  assert.deepEqual(acceptKexecMetadata(Uint8Array.of(1, 0, 0)), {
    accepted: false,
    warning: 'KHO: kexec-metadata blob too small (3 bytes)',
  });
  // Version is checked before the v1 size: a 10-byte version-2 blob is a version problem.
  assert.deepEqual(acceptKexecMetadata(Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0, 0, 0)), {
    accepted: false,
    warning: 'KHO: kexec-metadata version 2 not supported (expected 1)',
  });
  assert.deepEqual(acceptKexecMetadata(Uint8Array.of(1, 0, 0, 0, 0x41)), {
    accepted: false,
    warning: 'KHO: kexec-metadata blob too small for v1 (5 < 73)',
  });
  const code = (b: Uint8Array) => {
    try {
      decodeKexecMetadata(b);
      return 'ok';
    } catch (e) {
      assert.ok(isKhoError(e));
      return e.code;
    }
  };
  assert.equal(code(new Uint8Array(2)), 'KHO_METADATA_TOO_SMALL');
  assert.equal(code(new Uint8Array(73)), 'KHO_METADATA_BAD_VERSION');
  assert.equal(code(Uint8Array.of(1, 0, 0, 0)), 'KHO_METADATA_TOO_SMALL');
  assert.throws(
    () => encodeKexecMetadata({ previousRelease: 'x'.repeat(65), kexecCount: 1 }),
    (e) => isKhoError(e, 'KHO_METADATA_RELEASE_TOO_LONG'),
  );
  encodeKexecMetadata({ previousRelease: 'x'.repeat(64), kexecCount: 1 }); // 64 + NUL fits
});

test('validate reports every oddity: missing NUL, dirty padding, zero count, trailing bytes', () => {
  const b = new Uint8Array(80);
  b[0] = 1;
  b.fill(0x41, 4, 69); // 65 bytes, no NUL
  assert.deepEqual(
    validateKexecMetadata(b).map((f) => f.code),
    ['KHO_METADATA_UNTERMINATED', 'KHO_METADATA_TRAILING', 'KHO_METADATA_ZERO_COUNT'],
  );
  const c = encodeKexecMetadata({ previousRelease: 'a', kexecCount: 3 });
  c[10] = 7;
  assert.deepEqual(
    validateKexecMetadata(c).map((f) => [f.code, f.offset]),
    [['KHO_METADATA_NOT_ZERO_PADDED', 5]],
  );
  assert.deepEqual(
    validateKexecMetadata(new Uint8Array(3)).map((f) => f.code),
    ['KHO_METADATA_TOO_SMALL'],
  );
});

test('property: encode/decode round trip', () => {
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_+'), maxLength: 64 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.constantFrom('little' as const, 'big' as const),
      (rel, count, endian) => {
        const m = decodeKexecMetadata(
          encodeKexecMetadata({ previousRelease: rel, kexecCount: count }, endian),
          endian,
        );
        assert.deepEqual(m, { version: 1, previousRelease: rel, kexecCount: count });
      },
    ),
    { numRuns: 200 },
  );
});
