/**
 * The DTS printer against dtc itself: for every blob, `toDts(parseFdt(blob))` must equal the bytes
 * `dtc -f -q -I dtb -O dts` (Debian's dtc 1.6.1) writes for the same blob. The blobs come from dtc
 * compiling our DTS fixtures and random trees, from hand-built hostile blobs (odd names, props after
 * sub-nodes, `name` properties, zero-size reservations), from the real Linux 7.3.4 KHO captures and
 * from real DTBs (the checked-in `test/fixtures/dtb-real/` and, when present, `/work/corpus/dtb`).
 * `-f` only matters for blobs that fail dtc's checks (dtc otherwise refuses to print them).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { toDts, toDtsBytes } from '../../src/fdt/dts.ts';
import { parseFdt } from '../../src/fdt/reader.ts';
import { arbTree, toDtsSource } from '../helpers/gen.ts';
import { oracle, withTempDir } from '../helpers/oracle.ts';

const FIXTURES = new URL('../fixtures/dts/', import.meta.url).pathname;
const REAL = new URL('../fixtures/dtb-real/', import.meta.url).pathname;
const KHO = new URL('../vectors/linux-7.3.4/flat-explicit/stage1/out/', import.meta.url).pathname;
const CORPUS = process.env.KHO_DTB_CORPUS ?? '/work/corpus/dtb';
/** Random cases per property test; raise it (KHO_DTS_RUNS=5000) for a deeper one-off search. */
const RUNS = Number(process.env.KHO_DTS_RUNS ?? 200);
/** Seed offset, so that deeper searches can also explore other samples. */
const SEED = Number(process.env.KHO_DTS_SEED ?? 0);

/** Compile DTS files with dtc (-f: some fixtures fail dtc's checks on purpose). */
function dtcCompileFiles(paths: string[]): Uint8Array[] {
  return withTempDir((dir) => {
    const script = paths
      .map((p, i) => `dtc -f -q -I dts -O dtb -o '${dir}/${i}.dtb' '${p}' 2>/dev/null || exit 1`)
      .join('\n');
    execFileSync('sh', ['-s'], { input: script });
    return paths.map((_, i) => new Uint8Array(readFileSync(join(dir, `${i}.dtb`))));
  });
}

function dtcCompileSources(sources: string[]): Uint8Array[] {
  return withTempDir((dir) => {
    const paths = sources.map((s, i) => {
      const p = join(dir, `${i}.dts`);
      writeFileSync(p, s);
      return p;
    });
    return dtcCompileFiles(paths);
  });
}

/** Shell script running `lines` in `jobs` parallel sub-shells; it fails if any line fails. */
function parallelScript(lines: string[], jobs: number): string {
  const groups: string[][] = Array.from({ length: Math.min(jobs, lines.length) }, () => []);
  lines.forEach((l, i) => groups[i % groups.length]!.push(l));
  return [
    ...groups.map((g, j) => `(\n${g.join('\n')}\n) & p${j}=$!`),
    ...groups.map((_, j) => `wait $p${j} || exit 1`),
  ].join('\n');
}

/** `dtc -f -q -I dtb -O dts` of each blob, in one shell call running one dtc per CPU. */
function dtcDecompile(blobs: Uint8Array[]): Buffer[] {
  return withTempDir((dir) => {
    blobs.forEach((b, i) => writeFileSync(join(dir, `${i}.dtb`), b));
    const lines = blobs.map(
      (_, i) => `dtc -f -q -I dtb -O dts -o '${dir}/${i}.dts' '${dir}/${i}.dtb' 2>/dev/null || exit 1`,
    );
    execFileSync('sh', ['-s'], { input: parallelScript(lines, Math.max(1, availableParallelism())) });
    return blobs.map((_, i) => readFileSync(join(dir, `${i}.dts`)));
  });
}

/** Assert our output equals dtc's for every blob; `label(i)` names a blob in failures. */
function assertSameAsDtc(blobs: Uint8Array[], label: (i: number) => string): void {
  const expected = dtcDecompile(blobs);
  blobs.forEach((blob, i) => {
    const ours = Buffer.from(toDtsBytes(parseFdt(blob)));
    if (!ours.equals(expected[i]!)) {
      assert.equal(ours.toString('latin1'), expected[i]!.toString('latin1'), label(i));
      assert.fail(`${label(i)}: bytes differ`);
    }
  });
}

// --- A minimal blob builder for shapes dtc's DTS compiler cannot produce. -----------------------

type Tok =
  | { t: 'begin'; name: string }
  | { t: 'prop'; name: string; value: Uint8Array }
  | { t: 'end' }
  | { t: 'nop' };

/** A version-17 blob holding exactly these tokens (names are latin1 binary strings). */
function buildBlob(toks: Tok[], reserves: [bigint, bigint][] = []): Uint8Array {
  const strings: number[] = [];
  const nameOff = new Map<string, number>();
  const struct: number[] = [];
  const u32 = (v: number) => struct.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  const pad = () => {
    while (struct.length % 4) struct.push(0);
  };
  for (const k of toks) {
    if (k.t === 'begin') {
      u32(1);
      struct.push(...Buffer.from(k.name, 'latin1'), 0);
      pad();
    } else if (k.t === 'prop') {
      let off = nameOff.get(k.name);
      if (off === undefined) {
        off = strings.length;
        nameOff.set(k.name, off);
        strings.push(...Buffer.from(k.name, 'latin1'), 0);
      }
      u32(3);
      u32(k.value.length);
      u32(off);
      struct.push(...k.value);
      pad();
    } else u32(k.t === 'end' ? 2 : 4);
  }
  u32(9);
  const rsv = Buffer.alloc((reserves.length + 1) * 16);
  reserves.forEach(([a, s], i) => {
    rsv.writeBigUInt64BE(a, i * 16);
    rsv.writeBigUInt64BE(s, i * 16 + 8);
  });
  const offRsv = 40;
  const offStruct = offRsv + rsv.length;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const h = Buffer.alloc(40);
  [0xd00dfeed, total, offStruct, offStrings, offRsv, 17, 16, 0, strings.length, struct.length].forEach(
    (v, i) => h.writeUInt32BE(v, i * 4),
  );
  return new Uint8Array(Buffer.concat([h, rsv, Buffer.from(struct), Buffer.from(strings)]));
}

const str = (s: string) => new Uint8Array(Buffer.from(`${s}\0`, 'latin1'));
const begin = (name: string): Tok => ({ t: 'begin', name });
const prop = (name: string, value: Uint8Array = new Uint8Array(0)): Tok => ({ t: 'prop', name, value });
const end: Tok = { t: 'end' };

// --- Tests ---------------------------------------------------------------------------------------

test('DTS fixtures compiled by dtc: toDts equals dtc -O dts byte for byte', (t) => {
  if (!oracle(t, 'dtc')) return;
  const files = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.dts'))
    .sort();
  assert.ok(files.length >= 10, `fixtures found: ${files.join(', ')}`);
  const blobs = dtcCompileFiles(files.map((f) => join(FIXTURES, f)));
  assertSameAsDtc(blobs, (i) => `fixture ${files[i]}`);
});

test('random dtc-compiled trees: toDts equals dtc -O dts', (t) => {
  if (!oracle(t, 'dtc')) return;
  const trees = fc.sample(arbTree, { numRuns: RUNS, seed: 0x647473 + SEED });
  const blobs = dtcCompileSources(trees.map(toDtsSource));
  assertSameAsDtc(blobs, (i) => `tree ${i}:\n${toDtsSource(trees[i]!)}`);
});

test('hand-built blobs: name properties, props after sub-nodes, odd names, NOPs, reservations', (t) => {
  if (!oracle(t, 'dtc')) return;
  const cases: [string, Uint8Array][] = [
    [
      'redundant name properties are dropped (root, unit address, empty base name)',
      buildBlob([
        begin(''),
        prop('name', str('')),
        begin('cpu@0'),
        prop('name', str('cpu')),
        prop('x', str('cpu')),
        end,
        begin('uart@1,2'),
        prop('reg', new Uint8Array(4)),
        prop('name', str('uart@1,2')),
        end,
        begin('other'),
        prop('name', str('others')),
        end,
        begin('@1'),
        prop('name', str('')),
        end,
        end,
      ]),
    ],
    [
      'a duplicate property name stops dtc before its name check: nothing dropped',
      buildBlob([
        begin(''),
        prop('name', str('')),
        begin('cpu@0'),
        prop('name', str('cpu')),
        prop('name', str('cpu')),
        end,
        end,
      ]),
    ],
    [
      'a bad character in a node name stops dtc before its name check: nothing dropped',
      buildBlob([begin(''), begin('a'), prop('name', str('a')), end, begin('b c'), end, end]),
    ],
    [
      'two @ in a node name stops dtc before its name check: nothing dropped',
      buildBlob([begin(''), begin('a'), prop('name', str('a')), end, begin('b@1@2'), end, end]),
    ],
    [
      'a bad character in a property name stops dtc before its name check: nothing dropped',
      buildBlob([begin(''), begin('a'), prop('name', str('a')), prop('b@c'), end, end]),
    ],
    [
      'one non-string name property keeps every name property',
      buildBlob([
        begin(''),
        begin('a'),
        prop('name', str('a')),
        end,
        begin('b'),
        prop('name', Uint8Array.of(0x62, 0, 0x63, 0)),
        end,
        end,
      ]),
    ],
    [
      'name property without NUL terminator',
      buildBlob([begin(''), begin('ab'), prop('name', Uint8Array.of(0x61, 0x62)), end, end]),
    ],
    [
      'properties after sub-nodes print first; NOPs vanish',
      buildBlob([
        begin(''),
        prop('first', str('1')),
        { t: 'nop' },
        begin('child'),
        { t: 'nop' },
        end,
        prop('late', Uint8Array.of(1, 2, 3, 4)),
        begin('child2'),
        end,
        prop('later'),
        end,
      ]),
    ],
    [
      'odd and non-ASCII names, empty names, duplicates',
      buildBlob([
        begin(''),
        prop('', str('empty prop name')),
        prop('caf\xe9', str('x')),
        prop('sp ace', new Uint8Array(0)),
        prop('q"uote{', Uint8Array.of(0xff)),
        prop('dup', str('1')),
        prop('dup', str('2')),
        begin(''),
        end,
        begin('n\xf6de@\xff'),
        begin('x;y'),
        end,
        end,
        begin('dup'),
        end,
        begin('dup'),
        end,
        end,
      ]),
    ],
    [
      'reservation map ends at the first size-0 entry',
      buildBlob(
        [begin(''), end],
        [
          [0n, 0x1000n],
          [0xffffffffffffffffn, 0xffffffffffffffffn],
          [0x5000n, 0n],
          [0x9000n, 0x1000n],
        ],
      ),
    ],
    ['reservation map starting with a size-0 entry', buildBlob([begin(''), end], [[0x1000n, 0n]])],
  ];
  assertSameAsDtc(
    cases.map((c) => c[1]),
    (i) => cases[i]![0],
  );
});

/**
 * Random blobs with names, values and shapes chosen to hit every branch of dtc's value guess and of
 * its `name` check. `clean` keeps names valid and unique (so dtc's checks pass and it deletes
 * redundant `name` properties); otherwise names are odd, duplicated and non-ASCII, and properties may
 * follow sub-nodes.
 */
function arbBlob(clean: boolean): fc.Arbitrary<Uint8Array> {
  const byte = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 0x07, max: 0x0d }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  );
  const nodeName = clean
    ? fc.constantFrom('n', 'node@1', 'x', 'name@0', 'a,b', 'foo@1,2', 'z_y.w+v-u')
    : fc.constantFrom('n', 'node@1', 'node@1@2', 'x', '', 'caf\xe9', 'a b', 'q"{', 'dup', 'name@0');
  const propName = clean
    ? fc.constantFrom('name', 'a', 'b', 'x,y', 'data', '#c', 'q?', 'p*')
    : fc.constantFrom('name', 'a', 'b', 'x,y', 'data', '', '\xe9t\xe9', 'with space', 'dup');
  const anyValue = (nodeNameOf: string) =>
    fc.oneof(
      fc.uint8Array({ maxLength: 0 }),
      fc.array(byte, { minLength: 1, maxLength: 12 }).map((a) => Uint8Array.from(a)),
      fc.array(byte, { minLength: 1, maxLength: 3 }).map((a) => Uint8Array.from([...a, ...a, ...a, ...a])),
      fc.constant(str(nodeNameOf.split('@')[0]!)),
      fc.constant(str(nodeNameOf)),
    );
  // In clean trees a `name` property is always one string, so that dtc's name_is_string check passes.
  const nameValue = (nodeNameOf: string) =>
    fc.constantFrom(str(nodeNameOf.split('@')[0]!), str(nodeNameOf), str('other'));
  const props = (name: string, maxLength: number): fc.Arbitrary<[string, Uint8Array][]> =>
    clean
      ? fc.uniqueArray(
          propName.chain((n) => fc.tuple(fc.constant(n), n === 'name' ? nameValue(name) : anyValue(name))),
          { maxLength, selector: (p) => p[0] },
        )
      : fc.array(fc.tuple(propName, anyValue(name)), { maxLength });
  type N = { name: string; toks: Tok[] };
  const nodeAt = (depth: number): fc.Arbitrary<N> =>
    (depth === 0 ? fc.constant('') : nodeName).chain((name) =>
      fc
        .record({
          props: props(name, 5),
          kids:
            depth >= 4
              ? fc.constant<N[]>([])
              : clean
                ? fc.uniqueArray(nodeAt(depth + 1), { maxLength: 3, selector: (k) => k.name })
                : fc.array(nodeAt(depth + 1), { maxLength: 3 }),
          lateProps: clean ? props(name, 0) : props(name, 1),
          nops: fc.boolean(),
        })
        .map(({ props, kids, lateProps, nops }) => ({
          name,
          toks: [
            begin(name),
            ...props.map(([n, v]) => prop(n, v)),
            ...(nops ? [{ t: 'nop' } as Tok] : []),
            ...kids.flatMap((k) => k.toks),
            ...lateProps.map(([n, v]) => prop(n, v)),
            end,
          ],
        })),
    );
  return fc
    .tuple(
      nodeAt(0),
      fc.array(fc.tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 0x1000n)), {
        maxLength: 3,
      }),
    )
    .map(([n, rsv]) => buildBlob(n.toks, rsv));
}

test('random hostile blobs: toDts equals dtc -O dts', (t) => {
  if (!oracle(t, 'dtc')) return;
  const blobs = fc.sample(arbBlob(false), { numRuns: RUNS, seed: 0x686f73 + SEED });
  assertSameAsDtc(blobs, (i) => `hostile blob ${i}: ${Buffer.from(blobs[i]!).toString('hex')}`);
});

test('random blobs that pass dtc checks (name properties dropped): toDts equals dtc -O dts', (t) => {
  if (!oracle(t, 'dtc')) return;
  const blobs = fc.sample(arbBlob(true), { numRuns: RUNS, seed: 0x636c6e + SEED });
  assertSameAsDtc(blobs, (i) => `clean blob ${i}: ${Buffer.from(blobs[i]!).toString('hex')}`);
  // The sample must exercise the deletion, or this test proves nothing about it.
  const dropped = blobs.filter((b) => {
    const tree = parseFdt(b);
    return toDts(tree) !== toDts(tree, { dtcChecks: false });
  }).length;
  assert.ok(dropped >= RUNS / 10, `only ${dropped} blobs had a redundant name property dropped`);
});

test('a named root node (which the reader refuses, as libfdt does) prints as dtc prints it', (t) => {
  if (!oracle(t, 'dtc')) return;
  const blob = buildBlob([begin('rootname'), prop('a', str('b')), begin('c'), end, end]);
  const [expected] = dtcDecompile([blob]);
  const tree = {
    reserves: [],
    bootCpuidPhys: 0,
    root: {
      name: 'rootname',
      props: [{ name: 'a', value: str('b') }],
      children: [{ name: 'c', props: [], children: [] }],
    },
  };
  assert.equal(toDts(tree), expected!.toString('latin1'));
});

test('real KHO blobs from Linux 7.3.4: toDts equals dtc -O dts', (t) => {
  if (!oracle(t, 'dtc')) return;
  const names = ['fdt.whole', ...readdirSync(join(KHO, 'sub_fdts')).map((f) => `sub_fdts/${f}`)];
  const found = names
    .map((f) => ({ f, b: new Uint8Array(readFileSync(join(KHO, f))) }))
    .filter(({ b }) => b.length >= 4 && Buffer.from(b).readUInt32BE(0) === 0xd00dfeed);
  assert.ok(found.length >= 3, 'the root FDT and at least two FDT sub-blobs');
  assertSameAsDtc(
    found.map((x) => x.b),
    (i) => found[i]!.f,
  );
  // The KHO root is what the kernel's user guide shows: spot-check that it is printed as text.
  const root = toDts(parseFdt(found[0]!.b));
  assert.match(root, /^\/dts-v1\/;\n\n\/ \{\n\tcompatible = "kho-v\d+";\n/);
});

test('real DTBs checked into test/fixtures/dtb-real: toDts equals dtc -O dts', (t) => {
  if (!oracle(t, 'dtc')) return;
  const files = readdirSync(REAL)
    .filter((f) => f.endsWith('.dtb'))
    .sort();
  assert.ok(files.length >= 30, `expected at least 30 real DTBs, found ${files.length}`);
  assertSameAsDtc(
    files.map((f) => new Uint8Array(readFileSync(join(REAL, f)))),
    (i) => files[i]!,
  );
});

test('DTB corpus (scripts/fetch-dtb-corpus.sh), when present: toDts equals dtc -O dts', (t) => {
  if (!existsSync(CORPUS)) {
    t.skip(`no DTB corpus at ${CORPUS} (run scripts/fetch-dtb-corpus.sh)`);
    return;
  }
  if (!oracle(t, 'dtc')) return;
  const files = (readdirSync(CORPUS, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.dtb'))
    .sort();
  if (files.length === 0) {
    t.skip(`the DTB corpus at ${CORPUS} is empty`);
    return;
  }
  for (let i = 0; i < files.length; i += 200) {
    const chunk = files.slice(i, i + 200);
    assertSameAsDtc(
      chunk.map((f) => new Uint8Array(readFileSync(join(CORPUS, f)))),
      (j) => chunk[j]!,
    );
  }
});
