/**
 * The validator and the reader against libfdt 1.6.1 itself (`fdt_check_full` through the C harness
 * test/helpers/fdtcheck.c): for dtc-compiled random trees, the real KHO vectors, real DTBs, and many
 * mutations of them (header bit flips, fields near 2^31 and 2^32, truncations, swapped or overwritten
 * tags, cut strings blocks, name offsets past the block, NOPs, property lengths near 2^32), kho's verdict
 * (any 'error' finding) and first error code must be libfdt's, and `parseFdt` must throw exactly when
 * libfdt fails, with the same code.
 *
 * Named exceptions (kho deliberately differs from libfdt), each checked in its own right below:
 * - OLD_VERSION: versions 2..15. kho reads 16 and 17 only (validator error and reader throw
 *   FDT_ERR_BADVERSION); libfdt walks them with old rules and crashes on most (fdt_get_name on a root
 *   name without '/' returns NULL, which fdt_check_full dereferences).
 * - LENGTH_LOOP: a property length of 0xfffffff4 makes libfdt's 32-bit `12 + len` step zero, so
 *   fdt_check_full never returns; kho reports FDT_ERR_BADSTRUCTURE.
 * - READER_REJECTS (FDT_READER_REJECTS warnings, libfdt accepts, reader throws): no root node (FDT_END first),
 *   a property outside any node, nesting deeper than maxDepth, a property length that wraps 2^32 (libfdt
 *   steps 12 + len mod 2^32 and carries on; kho's reader has no value to give).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKhoError, type KhoErrorCode } from '../../src/errors.ts';
import { parseFdt } from '../../src/fdt/reader.ts';
import { assertValidFdt, checkFdt, FDT_READER_REJECTS, firstError } from '../../src/fdt/validate.ts';
import { asmFdt, fdtCheck, type Tok, tok } from '../helpers/fdtcheck.ts';
import { arbTree, toDtsSource } from '../helpers/gen.ts';
import { dtcCompile, oracle } from '../helpers/oracle.ts';
import { ourWalk, pyWalk } from '../helpers/pywalk.ts';

const VECTORS = new URL('../vectors/linux-7.3.4/flat-explicit/stage1/out/', import.meta.url).pathname;
const REAL_DTBS = new URL('../fixtures/dtb-real/', import.meta.url).pathname;

function realBlobs(): Uint8Array[] {
  const out = ['fdt.whole', ...readdirSync(join(VECTORS, 'sub_fdts')).map((f) => `sub_fdts/${f}`)].map(
    (f) => new Uint8Array(readFileSync(join(VECTORS, f))),
  );
  const dtbs = readdirSync(REAL_DTBS)
    .filter((f) => f.endsWith('.dtb'))
    .sort()
    .slice(0, 6);
  for (const f of dtbs) out.push(new Uint8Array(readFileSync(join(REAL_DTBS, f))));
  return out.filter((b) => b.length >= 4 && Buffer.from(b).readUInt32BE(0) === 0xd00dfeed);
}

/** Where the tags of a valid blob are (absolute offsets), to aim mutations at. */
function tagSites(blob: Uint8Array): { tags: number[]; props: number[]; base: number } {
  const b = parseFdt(blob);
  const base = b.header.offDtStruct;
  const tags: number[] = [];
  const props: number[] = [];
  for (const n of b.nodes()) {
    tags.push(base + n.offset);
    for (const p of n.props) {
      tags.push(base + p.offset);
      props.push(base + p.offset);
    }
  }
  tags.push(base + b.header.sizeDtStruct - 4);
  return { tags, props, base };
}

const NEAR = [
  0, 1, 3, 4, 0x7ffffffc, 0x7fffffff, 0x80000000, 0x80000004, 0xfffffff0, 0xfffffff4, 0xfffffff5, 0xfffffff8,
  0xfffffffc, 0xffffffff,
];

interface Rng {
  nextInt(lo: number, hi: number): number;
  nextBoolean(): boolean;
}
type Mutation = (b: Buffer, r: Rng) => Buffer;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.nextInt(0, xs.length - 1)]!;

function mutations(blob: Uint8Array): Mutation[] {
  const { tags, props, base } = tagSites(blob);
  const sizeStruct = Buffer.from(blob).readUInt32BE(36);
  const words = (r: Rng) => base + 4 * r.nextInt(0, sizeStruct / 4 - 1);
  return [
    // one bit of one header field
    (b, r) => {
      const bit = r.nextInt(0, 40 * 8 - 1);
      b[bit >> 3]! ^= 1 << (bit & 7);
      return b;
    },
    // a header field near 2^31 / 2^32 or off by a little
    (b, r) => {
      const f = 4 * r.nextInt(1, 9);
      const v = r.nextBoolean() ? pick(r, NEAR) : (b.readUInt32BE(f) + r.nextInt(-8, 8)) >>> 0;
      b.writeUInt32BE(v, f);
      return b;
    },
    // truncation
    (b, r) => b.subarray(0, r.nextInt(0, b.length - 1)),
    // swap two tags
    (b, r) => {
      const x = pick(r, tags);
      const y = pick(r, tags);
      const t = b.readUInt32BE(x);
      b.writeUInt32BE(b.readUInt32BE(y), x);
      b.writeUInt32BE(t, y);
      return b;
    },
    // overwrite a structure word with a tag value (or garbage)
    (b, r) => {
      b.writeUInt32BE(r.nextBoolean() ? pick(r, [1, 2, 3, 4, 9, 0, 5]) : r.nextInt(0, 0xffff), words(r));
      return b;
    },
    // cut the strings block (size_dt_strings smaller) or unterminate its last string
    (b, r) => {
      const size = b.readUInt32BE(32);
      if (r.nextBoolean()) b.writeUInt32BE(Math.max(0, size - r.nextInt(1, 8)), 32);
      else if (size > 0) b[b.readUInt32BE(12) + size - 1] = 0x41;
      return b;
    },
    // a property's nameoff or length near or beyond its block
    (b, r) => {
      if (!props.length) return b;
      const p = pick(r, props);
      const sizeStrings = b.readUInt32BE(32);
      if (r.nextBoolean()) {
        b.writeUInt32BE(pick(r, [sizeStrings, sizeStrings - 1, sizeStrings + 7, ...NEAR]) >>> 0, p + 8);
      } else {
        b.writeUInt32BE(pick(r, [sizeStruct, 1 << 20, ...NEAR]) >>> 0, p + 4);
      }
      return b;
    },
    // insert NOPs before a tag (sizes and offsets follow)
    (b, r) => {
      const at = pick(r, tags);
      const k = r.nextInt(1, 3);
      const out = Buffer.concat([b.subarray(0, at), Buffer.alloc(4 * k), b.subarray(at)]);
      for (let i = 0; i < k; i++) out.writeUInt32BE(4, at + 4 * i);
      out.writeUInt32BE(out.readUInt32BE(4) + 4 * k, 4);
      out.writeUInt32BE(out.readUInt32BE(12) + 4 * k, 12);
      out.writeUInt32BE(out.readUInt32BE(36) + 4 * k, 36);
      return out;
    },
    // random bytes anywhere
    (b, r) => {
      for (let i = r.nextInt(1, 4); i > 0; i--) b[r.nextInt(0, b.length - 1)] = r.nextInt(0, 255);
      return b;
    },
    // trailing garbage, or version 16 (no size_dt_struct)
    (b, r) => {
      if (r.nextBoolean()) return Buffer.concat([b, Buffer.alloc(r.nextInt(1, 9), r.nextInt(0, 255))]);
      b.writeUInt32BE(16, 20);
      return b;
    },
  ];
}

function mutate(bases: Uint8Array[], count: number, seed: number): Uint8Array[] {
  const all = bases.map((b) => ({ blob: b, muts: mutations(b) }));
  const r = rng(seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const { blob, muts } = all[r.nextInt(0, all.length - 1)]!;
    let b = Buffer.from(blob);
    for (let k = r.nextInt(0, 2); k >= 0; k--) {
      // a later mutation may aim past an earlier truncation: then it does nothing
      try {
        b = Buffer.from(pick(r, muts)(Buffer.from(b), r));
      } catch {}
    }
    out.push(new Uint8Array(b));
  }
  return out;
}

/** mulberry32: a seeded generator, so every run mutates the same way. */
function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    nextInt: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    nextBoolean: () => next() < 0.5,
  };
}

function version(b: Uint8Array): number | null {
  if (b.length < 28 || Buffer.from(b).readUInt32BE(0) !== 0xd00dfeed) return null;
  return Buffer.from(b).readUInt32BE(20);
}

/** Compare kho with libfdt on each blob; returns how many fell under each named exception. */
function compare(blobs: Uint8Array[], verdicts = fdtCheck(blobs)): Record<string, number> {
  const tally: Record<string, number> = {
    same: 0,
    OLD_VERSION: 0,
    LENGTH_LOOP: 0,
    READER_REJECTS: 0,
    rwBadLayout: 0,
    khoOnlyBadLayout: 0,
  };
  blobs.forEach((blob, i) => {
    const libfdt = verdicts[i]!.full;
    const findings = checkFdt(blob);
    const first = firstError(findings)?.code ?? 'OK';
    let reader: string;
    try {
      parseFdt(blob);
      reader = 'OK';
    } catch (e) {
      assert.ok(isKhoError(e), `blob ${i}: parseFdt threw a non-KhoError ${e}`);
      reader = e.code;
    }
    const why = () =>
      `blob ${i} (${blob.length} bytes ${Buffer.from(blob).toString('hex').slice(0, 400)}): libfdt ${libfdt}, ` +
      `checkFdt ${JSON.stringify(findings.slice(0, 6))}, parseFdt ${reader}`;
    const v = version(blob);
    if (v !== null && v >= 2 && v < 16 && first === 'FDT_ERR_BADVERSION') {
      // OLD_VERSION: kho refuses; libfdt's verdict on old versions is not comparable (it may crash).
      assert.equal(reader === 'OK', false, why());
      tally.OLD_VERSION!++;
      return;
    }
    assert.notEqual(libfdt, 'CRASH', why());
    if (libfdt === 'HANG') {
      assert.equal(first, 'FDT_ERR_BADSTRUCTURE', why());
      assert.ok(
        findings.some((f) => f.code === 'KHO_FDT_LENGTH_WRAPS'),
        why(),
      );
      assert.notEqual(reader, 'OK', why());
      tally.LENGTH_LOOP!++;
      return;
    }
    assert.equal(first, libfdt, `first error: ${why()}`);
    if (libfdt === 'OK' && blob.length > 40) {
      // no prefix of a blob libfdt accepts has an error in the bytes present
      const cut = blob.subarray(0, 40 + ((i * 7919) % (blob.length - 40)));
      assert.equal(
        firstError(checkFdt(cut, { allowTruncated: true })),
        undefined,
        `prefix ${cut.length}: ${why()}`,
      );
    }
    // a layout libfdt's read-write functions refuse is a BADLAYOUT warning (kho also warns about
    // overlaps libfdt's coarser check misses: a reservation list running into the structure block)
    const warnsLayout = findings.some((f) => f.code === 'FDT_ERR_BADLAYOUT');
    if (verdicts[i]!.rw === 'FDT_ERR_BADLAYOUT') {
      assert.ok(warnsLayout, `libfdt rw says BADLAYOUT: ${why()}`);
      tally.rwBadLayout!++;
    } else if (warnsLayout && libfdt === 'OK') tally.khoOnlyBadLayout!++;
    if (findings.some((f) => FDT_READER_REJECTS.has(f.code))) {
      assert.notEqual(reader, 'OK', `reader must refuse: ${why()}`);
      tally.READER_REJECTS!++;
      return;
    }
    assert.equal(reader, libfdt, `parseFdt: ${why()}`);
    tally.same!++;
  });
  return tally;
}

test('dtc-compiled random trees and real blobs: libfdt accepts, kho finds no error', (t) => {
  if (!oracle(t, 'dtc', 'cc', 'libfdt-dev')) return;
  const trees = fc.sample(arbTree, { numRuns: 120, seed: 0x76616c });
  const blobs = [...dtcCompile(trees.map(toDtsSource)), ...realBlobs()];
  const verdicts = fdtCheck(blobs);
  blobs.forEach((b, i) => {
    assert.equal(verdicts[i]!.header, 'OK');
    assert.equal(verdicts[i]!.full, 'OK');
    assert.notEqual(verdicts[i]!.rw, 'FDT_ERR_BADLAYOUT');
    const fs = checkFdt(b);
    assert.deepEqual(
      fs.filter((f) => f.severity === 'error' || f.code === 'FDT_ERR_BADLAYOUT'),
      [],
      `blob ${i}`,
    );
    parseFdt(b);
  });
});

test('mutated blobs: kho’s verdict and first error code are libfdt’s', (t) => {
  if (!oracle(t, 'dtc', 'cc', 'libfdt-dev')) return;
  const trees = fc.sample(arbTree, { numRuns: 40, seed: 0x6d7574 });
  const bases = [...dtcCompile(trees.map(toDtsSource)), ...realBlobs().filter((b) => b.length < 40000)];
  const blobs = mutate(bases, 3000, 0x4b484f);
  const libfdt = fdtCheck(blobs);
  const tally = compare(blobs, libfdt);
  t.diagnostic(`outcomes: ${JSON.stringify(tally)}`);
  // the mutations must exercise libfdt's failures, not only its successes
  const verdicts = new Set(libfdt.map((v) => v.full));
  for (const code of [
    'OK',
    'FDT_ERR_TRUNCATED',
    'FDT_ERR_BADSTRUCTURE',
    'FDT_ERR_BADOFFSET',
    'FDT_ERR_BADMAGIC',
    'FDT_ERR_BADVERSION',
  ])
    assert.ok(verdicts.has(code), `no mutation made libfdt answer ${code}`);
});

test('every truncation of a small real KHO blob', (t) => {
  if (!oracle(t, 'cc', 'libfdt-dev')) return;
  const blob = new Uint8Array(readFileSync(join(VECTORS, 'sub_fdts/memblock')));
  const cuts = Array.from({ length: blob.length }, (_, n) => blob.subarray(0, n));
  const tally = compare(cuts);
  assert.equal(tally.same, blob.length);
});

/**
 * Hand-assembled fixtures, one per libfdt error the validator reports, with offsets and paths derived
 * by hand from the layout. Base layout: header 0..40, rsvmap 40..56 (terminator only), structure
 * from 56: BEGIN_NODE "" @56, PROP compatible="x" @64, BEGIN_NODE "a" @80, PROP b=<1> @88,
 * END_NODE @104, END_NODE @108, END @112 (size 60); strings "compatible\0b\0" at 116 (13 bytes),
 * totalsize 129.
 */
const one = new Uint8Array([0, 0, 0, 1]);
function base(
  over: { rootName?: string; b?: Tok; inner?: Tok[]; tail?: Tok[]; patch?: (b: Buffer) => void } = {},
) {
  return asmFdt({
    struct: [
      tok.begin(over.rootName ?? ''),
      tok.prop('compatible', 'x'),
      tok.begin('a'),
      over.b ?? tok.prop('b', one),
      ...(over.inner ?? []),
      tok.end(),
      tok.end(),
      ...(over.tail ?? [tok.fin()]),
    ],
    patch: over.patch
      ? (b) => {
          over.patch!(b);
          return b;
        }
      : undefined,
  }).bytes;
}

const FIXTURES: { name: string; blob: Uint8Array; code: string; offset: number; path?: string }[] = [
  { name: 'bad magic', blob: base({ patch: (b) => (b[0] = 0) }), code: 'FDT_ERR_BADMAGIC', offset: 0 },
  {
    name: 'last_comp_version 18',
    blob: base({ patch: (b) => b.writeUInt32BE(18, 24) }),
    code: 'FDT_ERR_BADVERSION',
    offset: 24,
  },
  { name: 'buffer cut at 100', blob: base().subarray(0, 100), code: 'FDT_ERR_TRUNCATED', offset: 100 },
  {
    name: 'size_dt_struct 48: the block ends after PROP b, inside /a',
    blob: base({ patch: (b) => b.writeUInt32BE(48, 36) }),
    code: 'FDT_ERR_TRUNCATED',
    offset: 104,
    path: '/a',
  },
  {
    name: 'unknown tag 7 in /a',
    blob: base({ inner: [tok.word(7)] }),
    code: 'FDT_ERR_BADSTRUCTURE',
    offset: 104,
    path: '/a',
  },
  {
    name: 'nameoff 100 in /a',
    blob: base({ b: tok.prop(100, one) }),
    code: 'FDT_ERR_BADOFFSET',
    offset: 96,
    path: '/a',
  },
  {
    name: 'last name unterminated',
    blob: base({ patch: (b) => (b[128] = 0x63) }),
    code: 'FDT_ERR_TRUNCATED',
    offset: 127,
    path: '/a',
  },
  {
    name: 'root named "r"',
    blob: base({ rootName: 'r' }),
    code: 'FDT_ERR_BADSTRUCTURE',
    offset: 60,
    path: '/',
  },
  {
    name: 'NOP after the root',
    blob: base({ tail: [tok.nop(), tok.fin()] }),
    code: 'FDT_ERR_BADSTRUCTURE',
    offset: 112,
  },
  {
    name: 'value of 1000 bytes',
    blob: base({ b: tok.prop('b', one, 1000) }),
    code: 'FDT_ERR_BADSTRUCTURE',
    offset: 100,
    path: '/a',
  },
  {
    name: 'rsvmap moved to 120: no terminator inside totalsize',
    blob: base({ patch: (b) => b.writeUInt32BE(120, 16) }),
    code: 'FDT_ERR_TRUNCATED',
    offset: 120,
  },
  {
    name: 'strings block past totalsize',
    blob: base({ patch: (b) => b.writeUInt32BE(14, 32) }),
    code: 'FDT_ERR_TRUNCATED',
    offset: 32,
  },
];

test('hand-assembled fixtures: each libfdt error with its offset and path', (t) => {
  if (!oracle(t, 'cc', 'libfdt-dev')) return;
  const libfdt = fdtCheck(FIXTURES.map((f) => f.blob));
  FIXTURES.forEach((f, i) => {
    assert.equal(libfdt[i]!.full, f.code, `${f.name}: libfdt agrees with the hand-derived code`);
    const e = firstError(checkFdt(f.blob));
    assert.deepEqual(
      { code: e?.code, offset: e?.offset, path: e?.path },
      { code: f.code, offset: f.offset, path: f.path },
      f.name,
    );
    assert.throws(
      () => assertValidFdt(f.blob),
      (x: unknown) => isKhoError(x, f.code as KhoErrorCode) && x.offset === f.offset,
      f.name,
    );
    assert.throws(
      () => parseFdt(f.blob),
      (x: unknown) => isKhoError(x, f.code as KhoErrorCode),
      f.name,
    );
  });
  const valid = base();
  assert.equal(fdtCheck([valid])[0]!.full, 'OK');
  assert.deepEqual(checkFdt(valid), []);
});

test('layouts libfdt accepts: strings before an unaligned structure block, blocks out of order', (t) => {
  if (!oracle(t, 'cc', 'libfdt-dev', 'pylibfdt')) return;
  const { bytes, layout } = asmFdt({
    struct: [
      tok.begin(''),
      tok.prop('x', one),
      tok.begin('n@1'),
      tok.prop('reg', 'ab'),
      tok.end(),
      tok.end(),
      tok.fin(),
    ],
  });
  const b = Buffer.from(bytes);
  const struct = b.subarray(layout.offStruct, layout.offStrings);
  const strings = b.subarray(layout.offStrings); // "x\0reg\0": 6 bytes, so the structure block lands at 62
  const moved = Buffer.concat([b.subarray(0, layout.offStruct), strings, struct]);
  moved.writeUInt32BE(layout.offStruct, 12);
  moved.writeUInt32BE(layout.offStruct + strings.length, 8);
  const blobs = [new Uint8Array(moved)];
  // libfdt's read-only functions accept this layout, its read-write ones refuse it
  assert.deepEqual(fdtCheck(blobs)[0], { header: 'OK', full: 'OK', rw: 'FDT_ERR_BADLAYOUT' });
  const fs = checkFdt(blobs[0]!);
  assert.equal(firstError(fs), undefined);
  assert.deepEqual(
    fs.map((f) => [f.code, f.offset]),
    [
      ['FDT_ERR_ALIGNMENT', 8],
      ['FDT_ERR_BADLAYOUT', 12],
    ],
  );
  const [walk] = pyWalk(blobs);
  const ours = parseFdt(blobs[0]!);
  assert.deepEqual(
    ourWalk(ours).nodes.map((n) => ({ offset: n.offset, name: n.name, props: n.props })),
    walk!.nodes.map((n) => ({ offset: n.offset, name: n.name, props: n.props })),
  );
});

test('what kho only warns about, libfdt accepts', (t) => {
  if (!oracle(t, 'cc', 'libfdt-dev')) return;
  const root = (...inner: Tok[]) => [tok.begin(''), ...inner, tok.end(), tok.fin()];
  const cases: [string, Uint8Array][] = [
    [
      'KHO_FDT_DUPLICATE_NODE',
      asmFdt({ struct: root(tok.begin('a'), tok.end(), tok.begin('a'), tok.end()) }).bytes,
    ],
    ['KHO_FDT_DUPLICATE_PROP', asmFdt({ struct: root(tok.prop('x'), tok.prop('x')) }).bytes],
    ['KHO_FDT_NODE_NAME', asmFdt({ struct: root(tok.begin('A B/c'), tok.end()) }).bytes],
    ['KHO_FDT_PROP_NAME', asmFdt({ struct: root(tok.prop('with space')) }).bytes],
    ['KHO_FDT_NOP', asmFdt({ struct: root(tok.nop()) }).bytes],
    ['KHO_FDT_UNUSED_STRINGS', asmFdt({ strings: 'unused\0', struct: root(tok.prop('x')) }).bytes],
    ['KHO_FDT_STRINGS_UNTERMINATED', asmFdt({ struct: root(tok.prop('x')), strings: 'x\0ab' }).bytes],
    ['KHO_FDT_TRAILING_DATA', Buffer.concat([asmFdt({ struct: root() }).bytes, Buffer.from([1, 2, 3])])],
    ['KHO_FDT_STRUCT_SLACK', asmFdt({ struct: [...root(), tok.nop()] }).bytes],
    ['KHO_FDT_NO_ROOT', asmFdt({ struct: [tok.nop(), tok.fin()] }).bytes],
    ['KHO_FDT_PROP_OUTSIDE_NODE', asmFdt({ struct: [tok.prop('x'), ...root()] }).bytes],
    ['KHO_FDT_LENGTH_WRAPS', asmFdt({ struct: root(tok.prop('x', new Uint8Array(0), 0xffffffff)) }).bytes],
    [
      'KHO_FDT_RSVMAP_TERMINATOR',
      asmFdt({
        struct: root(),
        patch: (b) => {
          b.writeUInt32BE(0x1000, 40);
          return b;
        },
      }).bytes,
    ],
    [
      'KHO_FDT_VERSION',
      asmFdt({
        struct: root(),
        patch: (b) => {
          b.writeUInt32BE(16, 20);
          return b;
        },
      }).bytes,
    ],
  ];
  const libfdt = fdtCheck(cases.map(([, b]) => b));
  cases.forEach(([code, b], i) => {
    assert.equal(libfdt[i]!.full, 'OK', code);
    const fs = checkFdt(b);
    assert.equal(firstError(fs), undefined, code);
    assert.ok(
      fs.some((f) => f.code === code && f.severity !== 'error'),
      `${code}: ${JSON.stringify(fs)}`,
    );
  });
});
