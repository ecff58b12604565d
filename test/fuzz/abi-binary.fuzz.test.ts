/**
 * Fuzz: mutated real vector bytes and hostile random memory into every binary decoder of src/abi.
 * What must hold: only KhoError escapes, every case finishes in bounded time (asserted per case), and
 * outputs stay within the caps (no unbounded allocation).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeBitmapChunks, validateBitmapChunks } from '../../src/abi/bitmap-chunks.ts';
import { decodeBlockSet, validateBlockSet } from '../../src/abi/block.ts';
import {
  acceptKexecMetadata,
  decodeKexecMetadata,
  validateKexecMetadata,
} from '../../src/abi/kexec-metadata.ts';
import {
  decodeLuoSer,
  decodeLuoState,
  decodeMemfdLuoSer,
  validateLuoSer,
  validateLuoState,
} from '../../src/abi/luo.ts';
import { openMemoryDir } from '../../src/abi/memory/dir.ts';
import { parseElfCore } from '../../src/abi/memory/elfcore.ts';
import { memoryFromBytes, type PhysMemory } from '../../src/abi/memory/image.ts';
import { decodeRadixTree, validateRadixTree } from '../../src/abi/radix-tree.ts';
import { decodeScratchArray, parseScratchText, scratchFromDebugfs } from '../../src/abi/scratch.ts';
import { decodeKhoVmalloc, decodeVmalloc, readVmallocData, validateVmalloc } from '../../src/abi/vmalloc.ts';
import { isKhoError } from '../../src/errors.ts';

const VEC = join(import.meta.dirname, '../vectors/linux-7.3.4');
const RUNS = 150;
/**
 * Per-call CPU-time limit (ms; CPU rather than wall time so a loaded machine does not fail the test).
 * Typical calls take well under a millisecond.
 */
const LIMIT_MS = 250;
let slowest = 0;
let calls = 0;

/** Run `fn`; anything but a KhoError fails; returns nothing useful. */
function only(fn: () => unknown): void {
  const t0 = process.cpuUsage();
  try {
    fn();
  } catch (e) {
    if (!isKhoError(e)) throw e;
  }
  const used = process.cpuUsage(t0);
  const dt = (used.user + used.system) / 1000;
  calls++;
  slowest = Math.max(slowest, dt);
  assert.ok(dt < LIMIT_MS, `case took ${dt.toFixed(1)} ms`);
}

/** A small deterministic PRNG (xorshift32). */
function rng(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const PAGES = 12;
const BASE = 0x100000n;
/**
 * Hostile memory: pages at BASE + k*4K whose u64 words are mostly 0, valid page addresses of the image,
 * near-misses (unaligned, just outside), small counts, or random bits.
 */
function hostileMemory(seed: number): { mem: PhysMemory; addrs: bigint[]; pick: () => bigint } {
  const r = rng(seed);
  const addrs = Array.from({ length: PAGES }, (_, k) => BASE + BigInt(k) * 0x1000n);
  const word = (): bigint => {
    const x = r();
    if (x < 0.55) return 0n;
    if (x < 0.75) return addrs[Math.floor(r() * PAGES)];
    if (x < 0.8) return addrs[Math.floor(r() * PAGES)] + 8n;
    if (x < 0.85) return BASE + BigInt(PAGES) * 0x1000n;
    if (x < 0.95) return BigInt(Math.floor(r() * 600));
    return (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
  };
  const pieces = addrs.map((start) => {
    const b = new Uint8Array(4096);
    const dv = new DataView(b.buffer);
    for (let i = 0; i < 512; i++) dv.setBigUint64(i * 8, word(), true);
    return { start, bytes: b };
  });
  return { mem: memoryFromBytes(pieces), addrs, pick: word };
}

function mutate(bytes: Uint8Array, seed: number, n: number): Uint8Array {
  const r = rng(seed);
  const out = bytes.slice();
  for (let i = 0; i < n && out.length > 0; i++) {
    const at = Math.floor(r() * out.length);
    const how = r();
    if (how < 0.5) out[at] ^= 1 << Math.floor(r() * 8);
    else if (how < 0.8) out[at] = Math.floor(r() * 256);
    else out[at] = 0;
  }
  const cut = r();
  return cut < 0.1 ? out.subarray(0, Math.floor(r() * out.length)) : out;
}

test('radix tree: mutated real trees and hostile memory', () => {
  const meta = JSON.parse(readFileSync(join(VEC, 'flat-explicit/stage1/meta.json'), 'utf8'));
  const dir = openMemoryDir(join(VEC, 'flat-explicit/stage1/mem'));
  const root = BigInt(meta.out_root);
  const tree = decodeRadixTree(dir, root).nodes.map((n) => ({ start: n.pa, bytes: dir.read(n.pa, 4096) }));
  dir.close();
  fc.assert(
    fc.property(fc.integer(), fc.integer({ min: 1, max: 64 }), (seed, n) => {
      const r = rng(seed);
      const pieces = tree.map((p) =>
        r() < 0.3 ? { start: p.start, bytes: mutate(p.bytes, seed ^ Number(p.start), n) } : p,
      );
      const mem = memoryFromBytes(pieces);
      only(() => decodeRadixTree(mem, root));
      only(() => validateRadixTree(mem, root, { maxBlocks: 100000 }));
      const h = hostileMemory(seed);
      only(() => decodeRadixTree(h.mem, h.pick()));
      only(() => validateRadixTree(h.mem, h.addrs[0]));
      only(() => decodeRadixTree(h.mem, h.addrs[1], { endian: 'big' }));
    }),
    { numRuns: RUNS },
  );
});

test('bitmap chunks, block sets, vmalloc: hostile memory', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer({ min: 1, max: 200 }), (seed, entrySize) => {
      const h = hostileMemory(seed);
      const head = h.addrs[seed & 3];
      only(() => decodeBitmapChunks(h.mem, head));
      only(() => validateBitmapChunks(h.mem, h.pick()));
      only(() => decodeBlockSet(h.mem, head, entrySize));
      only(() => validateBlockSet(h.mem, h.pick(), entrySize));
      const r = rng(seed);
      const desc = {
        first: h.pick(),
        totalPages: Math.floor(r() * 5000),
        flags: Math.floor(r() * 4),
        order: Math.floor(r() * 12),
      };
      only(() => {
        const d = decodeVmalloc(h.mem, desc);
        readVmallocData(h.mem, d, { maxBytes: 1 << 24 });
      });
      only(() => validateVmalloc(h.mem, desc));
      only(() => decodeKhoVmalloc(h.mem.read(head, Math.floor(r() * 20))));
    }),
    { numRuns: RUNS },
  );
});

test('kexec-metadata, scratch, LUO, memfd: mutated vector blobs and random bytes', () => {
  const meta = new Uint8Array(readFileSync(join(VEC, 'flat-explicit/stage1/out/blobs/kexec-metadata')));
  const luo = new Uint8Array(readFileSync(join(VEC, 'luo-memfd/stage1/out/blobs/LUO')));
  const phys = readFileSync(join(VEC, 'numa-explicit/stage1/out/scratch_phys'), 'utf8');
  const len = readFileSync(join(VEC, 'numa-explicit/stage1/out/scratch_len'), 'utf8');
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: 1, max: 16 }),
      fc.uint8Array({ maxLength: 120 }),
      (seed, n, random) => {
        for (const b of [mutate(meta, seed, n), random]) {
          only(() => decodeKexecMetadata(b));
          only(() => acceptKexecMetadata(b));
          only(() => validateKexecMetadata(b));
          only(() => decodeScratchArray(b));
          only(() => decodeMemfdLuoSer(b));
          only(() => decodeMemfdLuoSer(b, 'memfd-v1'));
        }
        const h = hostileMemory(seed);
        for (const b of [mutate(luo, seed, n), random]) {
          only(() => decodeLuoSer(b));
          only(() => validateLuoSer(b));
        }
        // A valid LUO blob whose pointers lead into hostile memory.
        const blob = luo.slice();
        const dv = new DataView(blob.buffer);
        dv.setBigUint64(16, h.pick(), true);
        dv.setBigUint64(24, h.pick(), true);
        only(() => decodeLuoState(h.mem, blob));
        only(() => validateLuoState(h.mem, blob));
        const text = new TextDecoder().decode(mutate(new TextEncoder().encode(phys), seed, n));
        only(() => parseScratchText(text));
        only(() => scratchFromDebugfs(text, len));
      },
    ),
    { numRuns: RUNS },
  );
});

test('ELF64 core headers: mutated and random', () => {
  // A minimal valid core: header + 2 PT_LOADs + 0x2000 bytes of data.
  const core = new Uint8Array(0x3000);
  const dv = new DataView(core.buffer);
  core.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, 4, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 2, true);
  for (const [i, off, pa] of [
    [0, 0x1000n, 0n],
    [1, 0x2000n, 0x100000n],
  ] as const) {
    const o = 64 + i * 56;
    dv.setUint32(o, 1, true);
    dv.setBigUint64(o + 8, off, true);
    dv.setBigUint64(o + 24, pa, true);
    dv.setBigUint64(o + 32, 0x1000n, true);
    dv.setBigUint64(o + 40, 0x1000n, true);
  }
  assert.equal(parseElfCore((o, l) => core.subarray(o, o + l), core.length).loads.length, 2);
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: 1, max: 24 }),
      fc.uint8Array({ maxLength: 300 }),
      (seed, n, random) => {
        const head = mutate(core.subarray(0, 0xb0), seed, n);
        const b = new Uint8Array(core.length);
        b.set(core);
        b.set(head);
        for (const x of [b, random]) only(() => parseElfCore((o, l) => x.subarray(o, o + l), x.length));
      },
    ),
    { numRuns: RUNS },
  );
});

test('report: slowest fuzz case', () => {
  assert.ok(slowest < LIMIT_MS);
  console.log(`fuzz: ${calls} decoder calls, slowest ${slowest.toFixed(2)} ms CPU`);
});
