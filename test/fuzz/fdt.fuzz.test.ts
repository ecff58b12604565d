/**
 * Fuzzing the FDT reader and validator with hostile blobs: mutations of real blobs (the Linux 7.3.4 KHO
 * vectors and real dtc-compiled DTBs), every truncation of the small ones, header fields near 2^31 and
 * 2^32, random garbage, and 4 MB pathological structures. For every input, `parseFdt` (strict and
 * `allowTruncated`) returns or throws a `KhoError` only, `checkFdt` never throws, each call stays under
 * a time bound, and memory use stays proportional to the input.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { isKhoError } from '../../src/errors.ts';
import { parseFdt } from '../../src/fdt/reader.ts';
import { checkFdt, FDT_FINDING, firstError } from '../../src/fdt/validate.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const OUT = new URL('../vectors/linux-7.3.4/flat-explicit/stage1/out/', import.meta.url).pathname;
const DTBS = new URL('../fixtures/dtb-real/', import.meta.url).pathname;
const read = (p: string) => new Uint8Array(readFileSync(p));

/** The KHO vectors (fdt is the debugfs file, shorter than its totalsize) and a few real DTBs. */
const SMALL = ['fdt', 'fdt.whole', 'sub_fdts/kho_test', 'sub_fdts/memblock'].map((f) => read(join(OUT, f)));
const DTB = ['qemu-bamboo.dtb', 'linux-arm64-cavium-thunder2-99xx.dtb', 'linux-arm64-arm-fvp-base-revc.dtb']
  .filter((f) => readdirSync(DTBS).includes(f))
  .map((f) => read(join(DTBS, f)));
const BASES = [...SMALL, ...DTB];

const NEAR = [
  0, 1, 4, 0x28, 0x7ffffff0, 0x7ffffffc, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffff0, 0xfffffff4,
  0xfffffff8, 0xfffffffc, 0xffffffff,
];

/** Per-call bound. CPU time, not wall time: a shared CI machine's load must not fail the test, a hang must. */
const BOUND_MS = 500;

/** CPU milliseconds (user + system) of this process since `t0` (from process.cpuUsage()). */
function cpuMsSince(t0: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / 1000;
}

/** Run one API call on a hostile input: a KhoError is fine, anything else fails; returns ms taken. */
function guarded(what: string, blob: Uint8Array, fn: () => unknown, mayThrow = true): number {
  const t0 = process.cpuUsage();
  try {
    fn();
  } catch (e) {
    if (!mayThrow || !isKhoError(e)) {
      const hex = Buffer.from(blob.subarray(0, 256)).toString('hex');
      throw new Error(`${what} threw ${e instanceof Error ? e.stack : e} on ${blob.length} bytes ${hex}`);
    }
  }
  return cpuMsSince(t0);
}

function exercise(blob: Uint8Array): void {
  for (const [what, fn, mayThrow] of [
    [
      'parseFdt',
      () => {
        const b = parseFdt(blob);
        // walk what was decoded, as consumers do
        for (const n of b.nodes()) for (const p of n.props) void p.value.length;
        b.toTree();
      },
      true,
    ],
    ['parseFdt allowTruncated', () => parseFdt(blob, { allowTruncated: true }).toTree(), true],
    ['checkFdt', () => checkFdt(blob), false],
    ['checkFdt allowTruncated', () => checkFdt(blob, { allowTruncated: true }), false],
  ] as const) {
    const ms = guarded(what, blob, fn, mayThrow);
    assert.ok(ms < BOUND_MS, `${what} took ${ms.toFixed(1)} ms on ${blob.length} bytes`);
  }
}

const arbBase = fc.constantFrom(...BASES);

test('bit flips anywhere in real blobs', () => {
  fc.assert(
    fc.property(arbBase, fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), (base, bits) => {
      const b = Uint8Array.from(base);
      for (const bit of bits) b[(bit >> 3) % b.length]! ^= 1 << (bit & 7);
      exercise(b);
    }),
    { numRuns: 300 },
  );
});

test('header fields near 2^31 and 2^32, and off by a little', () => {
  fc.assert(
    fc.property(
      arbBase,
      fc.array(
        fc.tuple(
          fc.integer({ min: 1, max: 9 }),
          fc.oneof(fc.constantFrom(...NEAR), fc.integer({ min: -16, max: 16 })),
          fc.boolean(),
        ),
        { minLength: 1, maxLength: 3 },
      ),
      (base, edits) => {
        const b = Buffer.from(base);
        for (const [field, v, relative] of edits) {
          const off = 4 * field;
          b.writeUInt32BE(relative ? (b.readUInt32BE(off) + v) >>> 0 : v >>> 0, off);
        }
        exercise(new Uint8Array(b));
      },
    ),
    { numRuns: 300 },
  );
});

test('structure words overwritten with tags, lengths and name offsets near the limits', () => {
  fc.assert(
    fc.property(
      arbBase,
      fc.array(fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(1, 2, 3, 4, 9, ...NEAR), fc.nat())), {
        minLength: 1,
        maxLength: 6,
      }),
      (base, edits) => {
        const b = Buffer.from(base);
        const off = b.readUInt32BE(8);
        const words = Math.max(1, Math.floor((b.length - off) / 4));
        for (const [w, v] of edits) {
          const at = off + 4 * (w % words);
          if (at + 4 <= b.length) b.writeUInt32BE(v >>> 0, at);
        }
        exercise(new Uint8Array(b));
      },
    ),
    { numRuns: 300 },
  );
});

test('random garbage, with and without a valid-looking header', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 4096 }),
      fc.boolean(),
      fc.constantFrom(16, 17, 0x11, 2, 0xffffffff),
      (bytes, header, version) => {
        if (header && bytes.length >= 40) {
          const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
          b.writeUInt32BE(0xd00dfeed, 0);
          b.writeUInt32BE(bytes.length, 4);
          b.writeUInt32BE(version, 20);
          b.writeUInt32BE(16, 24);
        }
        exercise(bytes);
      },
    ),
    { numRuns: 300 },
  );
});

test('every truncation of the small KHO vectors', () => {
  for (const base of SMALL) for (let n = 0; n <= base.length; n++) exercise(base.subarray(0, n));
});

/** A 40-byte header + empty rsvmap + the given structure + strings, version 17. */
function blob(struct: Buffer, strings: Buffer = Buffer.alloc(0)): Uint8Array {
  const h = Buffer.alloc(56);
  const offStruct = 56;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  [0xd00dfeed, total, offStruct, offStrings, 40, 17, 16, 0, strings.length, struct.length].forEach((v, i) =>
    h.writeUInt32BE(v, 4 * i),
  );
  return new Uint8Array(Buffer.concat([h, struct, strings]));
}

function words(count: number, fill: (b: Buffer, i: number) => void, size: number): Buffer {
  const b = Buffer.alloc(count * size);
  for (let i = 0; i < count; i++) fill(b, i);
  return b;
}

/** Allocation while `fn` runs (heap plus array buffers), after a full GC before it. */
function measure<T>(fn: () => T): { result: T; ms: number; grew: number } {
  gc();
  const m0 = process.memoryUsage();
  const t0 = process.cpuUsage();
  const result = fn();
  const ms = cpuMsSince(t0);
  const m1 = process.memoryUsage();
  return { result, ms, grew: m1.heapUsed + m1.arrayBuffers - (m0.heapUsed + m0.arrayBuffers) };
}

const MB = 1 << 20;

test('4 MB pathological blobs: deep nesting, 1M NOPs, many tiny properties', (t) => {
  const depth = Math.floor((4 * MB) / 12); // BEGIN_NODE "a" (8 bytes) + END_NODE (4) per level
  const nested = blob(
    Buffer.concat([
      Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]),
      words(
        depth - 1,
        (b, i) => {
          b.writeUInt32BE(1, 8 * i);
          b.writeUInt32BE(0x61000000, 8 * i + 4);
        },
        8,
      ),
      words(depth, (b, i) => b.writeUInt32BE(2, 4 * i), 4),
      Buffer.from([0, 0, 0, 9]),
    ]),
  );
  const nops = blob(
    Buffer.concat([
      Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]),
      words(MB, (b, i) => b.writeUInt32BE(4, 4 * i), 4),
      Buffer.from([0, 0, 0, 2, 0, 0, 0, 9]),
    ]),
  );
  const nprops = Math.floor((4 * MB) / 12);
  const props = (nameoff: (i: number) => number, strings: Buffer) =>
    blob(
      Buffer.concat([
        Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]),
        words(
          nprops,
          (b, i) => {
            b.writeUInt32BE(3, 12 * i);
            b.writeUInt32BE(nameoff(i), 12 * i + 8);
          },
          12,
        ),
        Buffer.from([0, 0, 0, 2, 0, 0, 0, 9]),
      ]),
      strings,
    );
  const sameName = props(() => 0, Buffer.from('x\0'));
  // every property names a different suffix of one 64 KB string: a naive scan would be quadratic
  const longName = Buffer.alloc(64 * 1024 + 1, 0x61);
  longName[64 * 1024] = 0;
  const suffixes = props((i) => i % (64 * 1024), longName);
  // the same, but the string has no NUL: every lookup fails
  const unterminated = props((i) => i % (64 * 1024), Buffer.alloc(64 * 1024, 0x61));

  const cases: [string, Uint8Array, (fs: ReturnType<typeof checkFdt>) => void][] = [
    ['nested', nested, (fs) => assert.equal(firstError(fs), undefined)],
    [
      'nops',
      nops,
      (fs) =>
        assert.deepEqual(
          fs.map((f) => f.code),
          [FDT_FINDING.nop],
        ),
    ],
    ['same name', sameName, (fs) => assert.ok(fs.some((f) => f.code === FDT_FINDING.tooManyFindings))],
    ['suffixes', suffixes, (fs) => assert.equal(firstError(fs), undefined)],
    ['unterminated', unterminated, (fs) => assert.equal(firstError(fs)?.code, 'FDT_ERR_TRUNCATED')],
  ];
  for (const [name, b, verdict] of cases) {
    const c = measure(() => checkFdt(b));
    verdict(c.result);
    assert.ok(c.result.length <= 2 * 1000 + 1, `${name}: findings are capped`);
    const p = measure(() => {
      try {
        return parseFdt(b);
      } catch (e) {
        assert.ok(isKhoError(e), `${name}: parseFdt threw ${e}`);
        return e;
      }
    });
    t.diagnostic(
      `${name} (${(b.length / MB).toFixed(1)} MB): checkFdt ${c.ms.toFixed(0)} ms +${(c.grew / MB).toFixed(0)} MB, ` +
        `parseFdt ${p.ms.toFixed(0)} ms +${(p.grew / MB).toFixed(0)} MB`,
    );
    for (const [what, m] of [
      ['checkFdt', c],
      ['parseFdt', p],
    ] as const) {
      assert.ok(m.ms < 3000, `${name}: ${what} took ${m.ms.toFixed(0)} ms`);
      assert.ok(m.grew < 64 * b.length, `${name}: ${what} grew memory by ${(m.grew / MB).toFixed(0)} MB`);
    }
  }
  // kho's reader refuses the deep nesting (maxDepth 4096) instead of building 350k levels
  assert.throws(
    () => parseFdt(nested),
    (e: unknown) => isKhoError(e, 'FDT_ERR_BADSTRUCTURE'),
  );
});

test('a 1 MB hostile blob validates in well under a second', () => {
  // 1 MB of random tag-like words inside a valid header, twice
  for (const seed of [1, 2]) {
    let s = seed;
    const struct = words(
      MB / 4,
      (b, i) => {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        b.writeUInt32BE(i === 0 ? 1 : [1, 2, 3, 4, 0x61626300][s % 5]!, 4 * i);
      },
      4,
    );
    const b = blob(struct, Buffer.from('x\0'));
    const t0 = process.cpuUsage();
    checkFdt(b);
    assert.ok(cpuMsSince(t0) < 500);
  }
});
