import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { codeOf } from '../../test/helpers/errors.ts';
import { encodeBlockSet } from './block.ts';
import {
  decodeLuoFlbs,
  decodeLuoSer,
  decodeLuoState,
  decodeMemfdLuoSer,
  encodeLuoSer,
  LUO_ABI_COMPATIBLE,
  validateLuoSer,
  validateLuoState,
} from './luo.ts';
import { openMemoryDir } from './memory/dir.ts';
import { memoryFromBytes, SparseMemory, u64Bytes } from './memory/image.ts';

const LUO = join(import.meta.dirname, '../../test/vectors/linux-7.3.4/luo-memfd');

test('vectors: stage-1 LUO blob is luo-v5, liveupdate 1, no sessions yet, FLB page', () => {
  const blob = new Uint8Array(readFileSync(join(LUO, 'stage1/out/blobs/LUO')));
  const s = decodeLuoSer(blob);
  assert.deepEqual(s, { compatible: 'luo-v5', liveupdateNum: 1n, sessionsPa: 0n, flbsPa: 0x4dd3000n });
  assert.deepEqual(encodeLuoSer(s), blob);
  assert.deepEqual(validateLuoSer(blob), []);
  // The next kernel logged the number it read.
  const dmesg = readFileSync(join(LUO, 'stage2/dmesg'), 'utf8');
  assert.match(
    dmesg,
    new RegExp(`luo: Retrieved live update data, liveupdate number: ${s.liveupdateNum}\\n`),
  );
  // Stage 2 writes its own: number 2.
  const out2 = decodeLuoSer(new Uint8Array(readFileSync(join(LUO, 'stage2/out/sub_fdts/LUO'))));
  assert.equal(out2.liveupdateNum, 2n);
  assert.equal(LUO_ABI_COMPATIBLE, 'luo-v5');
});

test('vectors: the FLB region of stage 1 holds pgcnt 1, no FLBs', () => {
  const mem = openMemoryDir(join(LUO, 'stage1/mem'));
  try {
    assert.deepEqual(decodeLuoFlbs(mem, 0x4dd3000n), { pgcnt: 1n, flbs: [] });
    const st = decodeLuoState(mem, new Uint8Array(readFileSync(join(LUO, 'stage1/out/blobs/LUO'))));
    assert.deepEqual(st.sessions, []);
  } finally {
    mem.close();
  }
});

test('vectors: after LUO consumed it, in/blobs/LUO is unrelated text and is rejected, not trusted', () => {
  const blob = new Uint8Array(readFileSync(join(LUO, 'stage2/in/blobs/LUO')));
  assert.equal(
    codeOf(() => decodeLuoSer(blob)),
    'KHO_LUO_BAD_COMPATIBLE',
  );
  assert.deepEqual(
    validateLuoSer(blob).map((f) => f.code),
    ['KHO_LUO_BAD_COMPATIBLE'],
  );
  assert.equal(
    codeOf(() => decodeLuoSer(blob.subarray(0, 31))),
    'KHO_LUO_TOO_SMALL',
  );
  // strncmp over 8 bytes: "luo-v50" differs, "luo-v4" differs.
  assert.equal(
    codeOf(() =>
      decodeLuoSer(encodeLuoSer({ liveupdateNum: 1n, sessionsPa: 0n, flbsPa: 0n, compatible: 'luo-v4' })),
    ),
    'KHO_LUO_BAD_COMPATIBLE',
  );
  assert.equal(
    codeOf(() => encodeLuoSer({ liveupdateNum: 1n, sessionsPa: 0n, flbsPa: 0n, compatible: 'luo-v500' })),
    'KHO_LUO_STRING_TOO_LONG',
  );
});

/** A C string field of `len` bytes. */
function cstr(s: string, len: number): Uint8Array {
  const b = new Uint8Array(len);
  b.set(new TextEncoder().encode(s));
  return b;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u32(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24);
}

test('sessions, files, a memfd and its folios, from entries built by hand from the headers', () => {
  const mem = new SparseMemory({ allocBase: 0x100000n });
  // The memfd's folio array (vmalloc area of 1 page) and its chunk.
  mem.write(0x200000n, cat(u64Bytes(0x12345n | (3n << 52n)), u64Bytes(0n))); // pfn 0x12345, dirty|uptodate, index 0
  mem.write(0x201000n, cat(u64Bytes(0n), u64Bytes(0x200000n))); // chunk: next 0, phys[0]
  // struct memfd_luo_ser (memfd-v2): pos, size, seals, flags, nr_folios, kho_vmalloc {first, total, flags, order}.
  const memfdSer = cat(
    u64Bytes(5n),
    u64Bytes(17n),
    u32(0x8),
    u32(0),
    u64Bytes(1n),
    u64Bytes(0x201000n),
    u32(1),
    Uint8Array.of(1, 0, 0, 0),
  );
  assert.equal(memfdSer.length, 48);
  mem.write(0x202000n, memfdSer);
  const file = cat(cstr('memfd-v2', 48), u64Bytes(0x202000n), u64Bytes(0x1an));
  const other = cat(cstr('other-v1', 48), u64Bytes(0xdead000n), u64Bytes(7n));
  const files = encodeBlockSet(mem, [file, other], 64);
  const session = cat(cstr('test-session', 64), u64Bytes(files.head), u64Bytes(2n));
  const empty = cat(cstr('empty', 64), u64Bytes(0n), u64Bytes(0n));
  const sessions = encodeBlockSet(mem, [session, empty], 80);
  const flb = cat(u64Bytes(1n), u64Bytes(1n), cstr('iommu-v1', 48), u64Bytes(0x300000n), u64Bytes(2n));
  mem.write(0x203000n, flb);
  const blob = encodeLuoSer({ liveupdateNum: 3n, sessionsPa: sessions.head, flbsPa: 0x203000n });
  const st = decodeLuoState(mem, blob);
  assert.equal(st.luo.liveupdateNum, 3n);
  assert.deepEqual(
    st.sessions.map((s) => [s.name, s.fileCount, s.files.length]),
    [
      ['test-session', 2n, 2],
      ['empty', 0n, 0],
    ],
  );
  const [memfd, plain] = st.sessions[0].files;
  assert.deepEqual(
    [memfd.compatible, memfd.token, plain.compatible, plain.token],
    ['memfd-v2', 0x1an, 'other-v1', 7n],
  );
  assert.deepEqual(memfd.memfd!.ser, {
    pos: 5n,
    size: 17n,
    seals: 8,
    flags: 0,
    nrFolios: 1n,
    folios: { first: 0x201000n, totalPages: 1, flags: 1, order: 0 },
  });
  assert.deepEqual(memfd.memfd!.folios, [{ pfn: 0x12345n, flags: 3, index: 0n }]);
  assert.equal(plain.memfd, undefined);
  assert.deepEqual(st.flbs, { pgcnt: 1n, flbs: [{ name: 'iommu-v1', data: 0x300000n, count: 2n }] });
  // memfd-v1 layout: no seals/flags, 40 bytes.
  const v1 = decodeMemfdLuoSer(
    cat(u64Bytes(1n), u64Bytes(2n), u64Bytes(3n), u64Bytes(0x4000n), u32(7), Uint8Array.of(1, 0, 0, 0)),
    'memfd-v1',
  );
  assert.deepEqual(v1, {
    pos: 1n,
    size: 2n,
    nrFolios: 3n,
    folios: { first: 0x4000n, totalPages: 7, flags: 1, order: 0 },
  });
  assert.equal(
    codeOf(() => decodeMemfdLuoSer(new Uint8Array(40))),
    'KHO_MEMFD_TOO_SMALL',
  );
});

test('hostile FLB headers and session pointers give typed errors', () => {
  const page = (b: Uint8Array) =>
    memoryFromBytes([{ start: 0x1000n, bytes: cat(b, new Uint8Array(4096 - b.length)) }]);
  assert.equal(
    codeOf(() => decodeLuoFlbs(page(cat(u64Bytes(0n), u64Bytes(0n))), 0x1000n)),
    'KHO_LUO_BAD_FLB',
  );
  assert.equal(
    codeOf(() => decodeLuoFlbs(page(cat(u64Bytes(1n), u64Bytes(64n))), 0x1000n)),
    'KHO_LUO_BAD_FLB',
  );
  assert.equal(
    codeOf(() => decodeLuoFlbs(page(cat(u64Bytes(2n), u64Bytes(64n))), 0x1000n)),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
  assert.equal(
    codeOf(() => decodeLuoFlbs(page(new Uint8Array(16)), 0x9000n)),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
  const blob = encodeLuoSer({ liveupdateNum: 1n, sessionsPa: 0x1000n, flbsPa: 0n });
  // A session block that points to itself.
  assert.equal(
    codeOf(() => decodeLuoState(page(cat(u64Bytes(0x1000n), u64Bytes(1n))), blob)),
    'KHO_BLOCK_LOOP',
  );
  assert.deepEqual(
    validateLuoSer(encodeLuoSer({ liveupdateNum: 0n, sessionsPa: 0x10n, flbsPa: 0n })).map((f) => f.code),
    ['KHO_LUO_ZERO_NUMBER', 'KHO_LUO_UNALIGNED'],
  );
});

test('validateLuoState reports problems in every part', () => {
  const mem = new SparseMemory({ allocBase: 0x100000n });
  const file = (tok: bigint, data: bigint, compat = 'other-v1') =>
    cat(cstr(compat, 48), u64Bytes(data), u64Bytes(tok));
  const files = encodeBlockSet(mem, [file(1n, 0n), file(1n, 0n), file(2n, 0x9990000n, 'memfd-v2')], 64);
  const s1 = cat(cstr('a', 64), u64Bytes(files.head), u64Bytes(5n));
  const s2 = cat(cstr('a', 64), u64Bytes(0n), u64Bytes(0n));
  const sessions = encodeBlockSet(mem, [s1, s2], 80);
  const blob = encodeLuoSer({ liveupdateNum: 1n, sessionsPa: sessions.head, flbsPa: 0x7770000n });
  assert.deepEqual(
    validateLuoState(mem, blob).map((f) => [f.code, f.path]),
    [
      ['KHO_LUO_FILE_COUNT', 'session "a"'],
      ['KHO_LUO_DUPLICATE_TOKEN', 'session "a" token 0x1'],
      ['KHO_PTR_OUTSIDE_MEMORY', 'session "a" token 0x2 phys:0x9990000'],
      ['KHO_LUO_DUPLICATE_SESSION', 'session "a"'],
      ['KHO_PTR_OUTSIDE_MEMORY', 'flbs phys:0x7770000'],
    ],
  );
  const vec = new Uint8Array(readFileSync(join(LUO, 'stage1/out/blobs/LUO')));
  const m = openMemoryDir(join(LUO, 'stage1/mem'));
  try {
    assert.deepEqual(validateLuoState(m, vec), []);
  } finally {
    m.close();
  }
});
