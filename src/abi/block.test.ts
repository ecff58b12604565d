import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { codeOf } from '../../test/helpers/errors.ts';
import {
  blockChain,
  blockEntriesPerBlock,
  decodeBlockSet,
  decodeBlockSetEntries,
  encodeBlockSet,
  KHO_BLOCK_ABI_COMPATIBLE,
  validateBlockSet,
} from './block.ts';
import { memoryFromBytes, type PhysMemory, SparseMemory, u64Bytes } from './memory/image.ts';

/** Hand-built block pages: [pa, next, count, entry bytes...]. */
function blocks(spec: Array<[bigint, bigint, bigint, number[]?]>): PhysMemory {
  return memoryFromBytes(
    spec.map(([pa, next, count, body]) => {
      const b = new Uint8Array(4096);
      b.set(u64Bytes(next), 0);
      b.set(u64Bytes(count), 8);
      if (body) b.set(body, 16);
      return { start: pa, bytes: b };
    }),
  );
}

test('constants and capacity: (PAGE_SIZE - 16) / entry_size', () => {
  assert.equal(KHO_BLOCK_ABI_COMPATIBLE, 'kho-block-v1');
  assert.equal(blockEntriesPerBlock(8), 510);
  assert.equal(blockEntriesPerBlock(80), 51); // luo_session_ser
  assert.equal(blockEntriesPerBlock(64), 63); // luo_file_ser
  assert.equal(blockEntriesPerBlock(8, 65536), 8190);
  assert.equal(
    codeOf(() => blockEntriesPerBlock(0)),
    'KHO_BLOCK_BAD_ENTRY_SIZE',
  );
  assert.equal(
    codeOf(() => blockEntriesPerBlock(4081)),
    'KHO_BLOCK_BAD_ENTRY_SIZE',
  );
});

test('decode a hand-built two-block chain', () => {
  const mem = blocks([
    [0x5000n, 0x9000n, 2n, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]],
    [0x9000n, 0n, 1n, [3, 0, 0, 0, 0, 0, 0, 0]],
  ]);
  const d = decodeBlockSet(mem, 0x5000n, 8);
  assert.deepEqual(
    d.map((b) => [b.pa, b.next, b.count]),
    [
      [0x5000n, 0x9000n, 2],
      [0x9000n, 0n, 1],
    ],
  );
  assert.deepEqual(
    decodeBlockSetEntries(mem, 0x5000n, 8).map((e) => e[0]),
    [1, 2, 3],
  );
  assert.deepEqual(decodeBlockSet(mem, 0n, 8), []); // head 0: empty set
  assert.deepEqual(validateBlockSet(mem, 0x5000n, 8), []);
});

test('encode fills blocks in order and links them (hand-checked bytes)', () => {
  const mem = new SparseMemory({ allocBase: 0x20000n });
  const entries = Array.from({ length: 511 }, (_, i) => u64Bytes(BigInt(i + 1)));
  const { head, blocks: pages } = encodeBlockSet(mem, entries, 8);
  assert.deepEqual(pages, [0x20000n, 0x21000n]);
  assert.equal(head, 0x20000n);
  assert.deepEqual(
    mem.read(0x20000n, 16),
    Uint8Array.of(0, 0x10, 2, 0, 0, 0, 0, 0, 254, 1, 0, 0, 0, 0, 0, 0),
  ); // next 0x21000, count 510
  assert.deepEqual(
    mem.read(0x21000n, 24),
    Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 1, 0, 0, 0, 0, 0, 0),
  ); // end, count 1, entry 511
  assert.deepEqual(encodeBlockSet(mem, [], 8), { head: 0n, blocks: [] });
  assert.equal(
    codeOf(() => encodeBlockSet(mem, [new Uint8Array(3)], 8)),
    'KHO_BLOCK_BAD_ENTRY_SIZE',
  );
});

test('hostile chains: cycles (Floyd), bad counts, wild pointers, too many blocks', () => {
  assert.equal(
    codeOf(() => decodeBlockSet(blocks([[0x5000n, 0x5000n, 1n]]), 0x5000n, 8)),
    'KHO_BLOCK_LOOP',
  );
  const tailLoop = blocks([
    [0x1000n, 0x2000n, 1n],
    [0x2000n, 0x3000n, 1n],
    [0x3000n, 0x4000n, 1n],
    [0x4000n, 0x2000n, 1n],
  ]);
  assert.equal(
    codeOf(() => blockChain(tailLoop, 0x1000n)),
    'KHO_BLOCK_LOOP',
  );
  assert.equal(
    codeOf(() => decodeBlockSet(blocks([[0x5000n, 0n, 0n]]), 0x5000n, 8)),
    'KHO_BLOCK_BAD_COUNT',
  );
  assert.equal(
    codeOf(() => decodeBlockSet(blocks([[0x5000n, 0n, 511n]]), 0x5000n, 8)),
    'KHO_BLOCK_BAD_COUNT',
  );
  assert.equal(
    codeOf(() => decodeBlockSet(blocks([[0x5000n, 0n, 1n << 63n]]), 0x5000n, 8)),
    'KHO_BLOCK_BAD_COUNT',
  );
  assert.equal(
    codeOf(() => decodeBlockSet(blocks([[0x5000n, 0x7000n, 1n]]), 0x5000n, 8)),
    'KHO_PTR_OUTSIDE_MEMORY',
  );
  assert.equal(
    codeOf(() => decodeBlockSet(blocks([[0x5000n, 0x5008n, 1n]]), 0x5000n, 8)),
    'KHO_BLOCK_UNALIGNED',
  );
  const chain = blocks([
    [0x1000n, 0x2000n, 1n],
    [0x2000n, 0x3000n, 1n],
    [0x3000n, 0n, 1n],
  ]);
  assert.equal(
    codeOf(() => blockChain(chain, 0x1000n, { maxBlocks: 2 })),
    'KHO_BLOCK_TOO_MANY',
  );
  assert.deepEqual(blockChain(chain, 0x1000n, { maxBlocks: 3 }), [0x1000n, 0x2000n, 0x3000n]);
  // validate: every bad count, not only the first.
  const bad = blocks([
    [0x1000n, 0x2000n, 0n],
    [0x2000n, 0x3000n, 1n],
    [0x3000n, 0n, 600n],
  ]);
  assert.deepEqual(
    validateBlockSet(bad, 0x1000n, 8).map((f) => f.path),
    ['block[0] (phys:0x1000)', 'block[2] (phys:0x3000)'],
  );
  assert.deepEqual(
    validateBlockSet(tailLoop, 0x1000n, 8).map((f) => f.code),
    ['KHO_BLOCK_LOOP'],
  );
});

test('property: encode/decode round trip for any entry size', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 700 }),
      fc.integer({ min: 0, max: 40 }),
      fc.constantFrom('little' as const, 'big' as const),
      (size, n, endian) => {
        const mem = new SparseMemory();
        const entries = Array.from({ length: n }, (_, i) => new Uint8Array(size).fill((i * 7 + 1) & 0xff));
        const { head } = encodeBlockSet(mem, entries, size, { endian });
        assert.deepEqual(decodeBlockSetEntries(mem, head, size, { endian }), entries);
      },
    ),
    { numRuns: 150 },
  );
});
