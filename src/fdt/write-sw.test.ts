import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyTree } from './model.ts';
import { encodeSw, FDT_CREATE_FLAG_NO_NAME_DEDUP, FdtSw } from './write-sw.ts';

const be32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off);
const header = (b: Uint8Array) => Array.from({ length: 10 }, (_, i) => be32(b, i * 4));
const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');

test('fdt_create keeps its state in the header: SW magic, flags in last_comp_version, rsvmap at 48', () => {
  const sw = FdtSw.create(100, FDT_CREATE_FLAG_NO_NAME_DEDUP);
  // magic ~0xd00dfeed, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap, version, flags, ...
  assert.deepEqual(header(sw.bytes()), [0x2ff20112, 100, 48, 0, 48, 17, 1, 0, 0, 0]);
  assert.throws(() => FdtSw.create(47), { code: 'FDT_ERR_NOSPACE' });
  assert.throws(() => FdtSw.create(100, 2), { code: 'FDT_ERR_BADFLAGS' });
});

test('strings grow down from the end, so the first-seen name ends up last (hand-derived)', () => {
  const sw = FdtSw.create(4096);
  sw.finishReservemap();
  sw.beginNode('');
  sw.propertyString('compatible', 'kho-v4');
  sw.propertyU64('preserved-memory-map', 0x0102030405060708n);
  sw.endNode();
  const blob = sw.finish();
  // struct at 64: BEGIN_NODE ""(8) + compatible(12+8) + pmm(12+8) + END_NODE(4) + END(4) = 56.
  const h = header(blob);
  assert.deepEqual(h, [0xd00dfeed, 152, 64, 120, 48, 17, 16, 0, 32, 56]);
  assert.equal(latin1(blob.subarray(120, 152)), 'preserved-memory-map\0compatible\0');
  assert.equal(be32(blob, 64 + 8 + 8), 21, 'compatible nameoff');
  assert.equal(be32(blob, 64 + 28 + 8), 0, 'preserved-memory-map nameoff');
  assert.deepEqual([...blob.subarray(64 + 28 + 12, 64 + 28 + 20)], [1, 2, 3, 4, 5, 6, 7, 8]);
  // The relocated strings' old copy stays at the end of the buffer.
  assert.equal(latin1(sw.bytes().subarray(4096 - 32)), 'preserved-memory-map\0compatible\0');
  assert.equal(sw.blob().length, 152);
});

test('calls out of order fail with FDT_ERR_BADSTATE', () => {
  const sw = FdtSw.create(200);
  assert.throws(() => sw.beginNode(''), { code: 'FDT_ERR_BADSTATE' });
  sw.finishReservemap();
  assert.throws(() => sw.addReservemapEntry(1n, 1n), { code: 'FDT_ERR_BADSTATE' });
  sw.beginNode('');
  sw.endNode();
  sw.finish();
  assert.throws(() => sw.property('x', new Uint8Array()), { code: 'FDT_ERR_BADSTATE' });
  assert.throws(() => sw.finish(), { code: 'FDT_ERR_BADSTATE' });
});

test('a property that does not fit rolls its new name back (FDT_ERR_NOSPACE)', () => {
  // 48 hdr + 16 rsv + 8 root = 72 used; 24 free: name 'abc\0' fits, then 12+12 struct does not.
  const sw = FdtSw.create(96);
  sw.finishReservemap();
  sw.beginNode('');
  assert.throws(() => sw.property('abc', new Uint8Array(12)), { code: 'FDT_ERR_NOSPACE' });
  assert.equal(be32(sw.buffer, 32), 0, 'size_dt_strings back to 0');
  sw.property('abc', new Uint8Array(4));
  assert.equal(be32(sw.buffer, 32), 4);
});

test('NO_NAME_DEDUP stores a repeated name twice; default mode shares it', () => {
  const build = (flags: number) => {
    const sw = FdtSw.create(300, flags);
    sw.finishReservemap();
    sw.beginNode('');
    sw.propertyU32('blob-size', 1);
    sw.propertyU32('size', 2);
    sw.propertyU32('size', 3);
    sw.endNode();
    return sw.finish();
  };
  assert.equal(be32(build(0), 32), 'blob-size\0'.length);
  assert.equal(be32(build(FDT_CREATE_FLAG_NO_NAME_DEDUP), 32), 'blob-size\0size\0size\0'.length);
});

test('encodeSw writes boot_cpuid_phys and reservations from the tree', () => {
  const tree = emptyTree();
  tree.bootCpuidPhys = 3;
  tree.reserves.push({ address: 0x1000n, size: 0x2000n });
  const b = encodeSw(tree);
  assert.equal(be32(b, 28), 3);
  assert.deepEqual([be32(b, 48), be32(b, 52), be32(b, 56), be32(b, 60)], [0, 0x1000, 0, 0x2000]);
  assert.equal(b.length, be32(b, 4));
  assert.throws(() => encodeSw(tree, 60), { code: 'FDT_ERR_NOSPACE' });
});
