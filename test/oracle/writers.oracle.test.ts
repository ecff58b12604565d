/**
 * Oracle tests for the three FDT writers: every expected byte comes from libfdt (pylibfdt 1.6.1, its
 * low-level fdt_* functions on a fixed bytearray, so whole buffers including stale bytes compare) or
 * from dtc 1.6.1 itself. Each property batches all its cases into one python or shell process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { FDT_ERROR_CODES, isKhoError } from '../../src/errors.ts';
import type { FdtNode, FdtTree } from '../../src/fdt/model.ts';
import { type DtcOptions, encodeDtc } from '../../src/fdt/write-dtc.ts';
import { FdtRw } from '../../src/fdt/write-rw.ts';
import { encodeSw, FdtSw } from '../../src/fdt/write-sw.ts';
import { oracle, runPython, withTempDir } from '../helpers/oracle.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
/** libfdt's error code name of a negative return (FDT_ERROR_CODES is in libfdt's numbering), or 'OK'. */
const rcName = (rc: number) => (rc >= 0 ? 'OK' : (FDT_ERROR_CODES[-rc - 1] ?? `rc${rc}`));

/** Run `fn`, returning 'OK' or the KhoError code (anything else is a bug and rethrown). */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    if (isKhoError(e)) return e.code;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Sequential write

type SwOp =
  | ['rsv', string, string]
  | ['finrsv']
  | ['begin', string]
  | ['prop', string, string]
  | ['propstr', string, string]
  | ['u32', string, number]
  | ['u64', string, string]
  | ['end']
  | ['finish']
  | ['resize', number];

interface SwCase {
  bufsize: number;
  flags: number;
  ops: SwOp[];
}

const SW_PY = `
import sys, json, libfdt
out = []
for case in json.load(sys.stdin):
    size = case['bufsize']
    buf = bytearray(size)
    rcs = [libfdt.fdt_create_with_flags(buf, size, case['flags'])]
    if rcs[0] == 0:
        for op in case['ops']:
            k = op[0]
            if k == 'rsv': rc = libfdt.fdt_add_reservemap_entry(buf, int(op[1]), int(op[2]))
            elif k == 'finrsv': rc = libfdt.fdt_finish_reservemap(buf)
            elif k == 'begin': rc = libfdt.fdt_begin_node(buf, op[1])
            elif k == 'prop':
                v = bytes.fromhex(op[2]); rc = libfdt.fdt_property_stub(buf, op[1], v, len(v))
            elif k == 'propstr': rc = libfdt.fdt_property_string(buf, op[1], op[2])
            elif k == 'u32': rc = libfdt.fdt_property_u32(buf, op[1], op[2])
            elif k == 'u64': rc = libfdt.fdt_property_u64(buf, op[1], int(op[2]))
            elif k == 'end': rc = libfdt.fdt_end_node(buf)
            elif k == 'finish': rc = libfdt.fdt_finish(buf)
            elif k == 'resize':
                nb = bytearray(op[1]); rc = libfdt.fdt_resize(buf, nb, op[1])
                if rc == 0: buf = nb
            rcs.append(rc)
    out.append({'rcs': rcs, 'buf': buf.hex()})
json.dump(out, sys.stdout)
`;

function runSwTs(c: SwCase): { rcs: string[]; buf: string } {
  let sw: FdtSw | undefined;
  const rcs = [outcome(() => (sw = FdtSw.create(c.bufsize, c.flags)))];
  if (!sw) return { rcs, buf: hex(new Uint8Array(c.bufsize)) };
  const s = sw;
  for (const op of c.ops) {
    rcs.push(
      outcome(() => {
        switch (op[0]) {
          case 'rsv':
            return s.addReservemapEntry(BigInt(op[1]), BigInt(op[2]));
          case 'finrsv':
            return s.finishReservemap();
          case 'begin':
            return s.beginNode(op[1]);
          case 'prop':
            return s.property(op[1], unhex(op[2]));
          case 'propstr':
            return s.propertyString(op[1], op[2]);
          case 'u32':
            return s.propertyU32(op[1], op[2]);
          case 'u64':
            return s.propertyU64(op[1], BigInt(op[2]));
          case 'end':
            return s.endNode();
          case 'finish':
            return s.finish();
          case 'resize':
            return s.resize(op[1]);
        }
      }),
    );
  }
  return { rcs, buf: hex(s.bytes()) };
}

/** Property names chosen so that suffix sharing happens (`size` in `blob-size`, `e` everywhere). */
const PROP_NAMES = [
  'size',
  'blob-size',
  '#size-cells',
  'reg',
  'compatible',
  'ble',
  'e',
  '',
  'preserved-data',
  'a,b',
];
const NODE_NAMES = ['', 'n', 'node@10', 'memblock', 'kho_test', 'x@1', 'kexec-metadata'];
const u64s = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.constantFrom(0n, 1n, (1n << 64n) - 1n),
);
const value = fc.uint8Array({ minLength: 0, maxLength: 20 });

const swOp: fc.Arbitrary<SwOp> = fc.oneof(
  { weight: 1, arbitrary: fc.tuple(u64s, u64s).map(([a, s]): SwOp => ['rsv', String(a), String(s)]) },
  { weight: 1, arbitrary: fc.constant<SwOp>(['finrsv']) },
  { weight: 4, arbitrary: fc.constantFrom(...NODE_NAMES).map((n): SwOp => ['begin', n]) },
  {
    weight: 6,
    arbitrary: fc.tuple(fc.constantFrom(...PROP_NAMES), value).map(([n, v]): SwOp => ['prop', n, hex(v)]),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...PROP_NAMES),
        fc.string({ unit: fc.constantFrom('a', 'k', '-', '4'), maxLength: 8 }),
      )
      .map(([n, s]): SwOp => ['propstr', n, s]),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...PROP_NAMES), fc.nat()).map(([n, v]): SwOp => ['u32', n, v]),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...PROP_NAMES), u64s).map(([n, v]): SwOp => ['u64', n, String(v)]),
  },
  { weight: 4, arbitrary: fc.constant<SwOp>(['end']) },
  { weight: 1, arbitrary: fc.constant<SwOp>(['finish']) },
  { weight: 1, arbitrary: fc.integer({ min: 40, max: 700 }).map((n): SwOp => ['resize', n]) },
);

const swCase: fc.Arbitrary<SwCase> = fc.record({
  bufsize: fc.oneof(fc.integer({ min: 40, max: 400 }), fc.constantFrom(47, 48, 64, 80, 4096)),
  flags: fc.constantFrom(0, 0, 0, 1, 2),
  ops: fc
    .tuple(
      fc.array(
        fc.tuple(u64s, u64s).map(([a, s]): SwOp => ['rsv', String(a), String(s)]),
        { maxLength: 3 },
      ),
      fc.array(swOp, { maxLength: 40 }),
      fc.boolean(),
    )
    .map(([rsv, rest, fin]) => [
      ...rsv,
      ['finrsv'] as SwOp,
      ['begin', ''] as SwOp,
      ...rest,
      ...(fin ? [['finish'] as SwOp] : []),
    ]),
});

test('FdtSw: random call sequences leave the same buffer and return codes as libfdt fdt_sw', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const cases = fc.sample(swCase, { numRuns: 300, seed: 0x5eed5 });
  const want = JSON.parse(runPython(SW_PY, cases).toString()) as { rcs: number[]; buf: string }[];
  let nospace = 0;
  let badstate = 0;
  cases.forEach((c, i) => {
    const got = runSwTs(c);
    const exp = want[i] as { rcs: number[]; buf: string };
    const expRcs = exp.rcs.map(rcName);
    nospace += expRcs.filter((r) => r === 'FDT_ERR_NOSPACE').length;
    badstate += expRcs.filter((r) => r === 'FDT_ERR_BADSTATE').length;
    assert.deepEqual(got.rcs, expRcs, `return codes of case ${i}: ${JSON.stringify(c)}`);
    assert.equal(got.buf, exp.buf, `buffer of case ${i}: ${JSON.stringify(c)}`);
  });
  // The sample must actually exercise the error paths it claims to check.
  assert.ok(nospace > 10 && badstate > 10, `nospace ${nospace}, badstate ${badstate}`);
});

// ---------------------------------------------------------------------------------------------
// Random trees (for encodeSw vs pylibfdt's FdtSw class, and for dtc)

interface GenNode {
  name: string;
  props: [string, Uint8Array][];
  children: GenNode[];
}

const DTC_NODE_NAMES = ['n', 'node@10', 'memblock', 'kho_test', 'x@1', 'a@1@2', 'bad!', 'n@10', 'size'];
const DTC_PROP_NAMES = [
  'size',
  'blob-size',
  '#size-cells',
  'reg',
  'compatible',
  'name',
  'phandle',
  'linux,phandle',
  'ze',
  'bad name',
];

function nodeArb(depth: number): fc.Arbitrary<GenNode> {
  const name = fc.constantFrom(...DTC_NODE_NAMES);
  const props = fc.array(
    fc.oneof(
      fc.tuple(fc.constantFrom(...DTC_PROP_NAMES), value),
      fc.tuple(
        fc.constant('name'),
        fc.constantFrom('n', 'node', 'memblock', 'x', 'a').map((s) => new TextEncoder().encode(`${s}\0`)),
      ),
    ),
    { maxLength: 5 },
  );
  const children: fc.Arbitrary<GenNode[]> =
    depth <= 0 ? fc.constant([]) : fc.array(nodeArb(depth - 1), { maxLength: depth >= 5 ? 3 : 2 });
  return fc
    .record({ name, props, children })
    .map((n) => ({ name: n.name, props: n.props as [string, Uint8Array][], children: n.children }));
}

/** Trees where sibling and property names are made unique in most samples (so dtc's checks pass). */
const treeArb: fc.Arbitrary<FdtTree> = fc
  .record({
    root: nodeArb(6),
    reserves: fc.array(
      fc.tuple(
        u64s,
        u64s.filter((s) => s !== 0n),
      ),
      { maxLength: 3 },
    ),
    boot: fc.oneof(fc.constant(0), fc.nat()),
    clean: fc.boolean(),
  })
  .map(({ root, reserves, boot, clean }) => {
    const conv = (g: GenNode, isRoot: boolean): FdtNode => {
      let props = g.props.map(([name, v]) => ({ name, value: v }));
      let children = g.children.map((c) => conv(c, false));
      if (clean) {
        props = props.filter(
          (p, i) => p.name !== 'bad name' && props.findIndex((q) => q.name === p.name) === i,
        );
        children = children.filter(
          (c, i) => !['bad!', 'a@1@2'].includes(c.name) && children.findIndex((d) => d.name === c.name) === i,
        );
      }
      return { name: isRoot ? '' : g.name, props, children };
    };
    return {
      root: conv(root, true),
      reserves: reserves.map(([address, size]) => ({ address, size })),
      bootCpuidPhys: boot,
    };
  });

const SWTREE_PY = `
import sys, json, libfdt
out = []
for t in json.load(sys.stdin):
    sw = libfdt.FdtSw()
    for a, s in t['rsv']: sw.add_reservemap_entry(int(a), int(s))
    sw.finish_reservemap()
    def emit(n):
        sw.begin_node(n['name'])
        for k, v in n['props']: sw.property(k, bytes.fromhex(v))
        for c in n['children']: emit(c)
        sw.end_node()
    emit(t['root'])
    fdt = sw.as_fdt()
    b = fdt.as_bytearray()
    out.append(bytes(b[:fdt.totalsize()]).hex())
json.dump(out, sys.stdout)
`;

const treeJson = (n: FdtNode): unknown => ({
  name: n.name,
  props: n.props.map((p) => [p.name, hex(p.value)]),
  children: n.children.map(treeJson),
});

test("encodeSw: random trees give the same blob as pylibfdt's auto-growing FdtSw class", (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  // pylibfdt's FdtSw starts with 1024 bytes and grows by 1024 on NOSPACE (fdt_resize); as_fdt()
  // finishes a copy. Only the first totalsize bytes are comparable (the rest is buffer slack), and
  // they do not depend on the buffer size, so encodeSw (an exactly-sized buffer) must match them.
  const trees = fc.sample(treeArb, { numRuns: 150, seed: 77 });
  const want = JSON.parse(
    runPython(
      SWTREE_PY,
      trees.map((tr) => ({
        rsv: tr.reserves.map((r) => [String(r.address), String(r.size)]),
        root: treeJson(tr.root),
      })),
    ).toString(),
  ) as string[];
  trees.forEach((tr, i) => {
    assert.equal(hex(encodeSw({ ...tr, bootCpuidPhys: 0 })), want[i], `tree ${i}`);
  });
});

// ---------------------------------------------------------------------------------------------
// dtc mode

function runDtc(dir: string, jobs: { input: Uint8Array; args: string[] }[]): Uint8Array[] {
  const lines: string[] = [];
  jobs.forEach((j, i) => {
    writeFileSync(join(dir, `${i}.in`), j.input);
    lines.push(
      `dtc -q -f -I dtb -O dtb ${j.args.join(' ')} -o ${i}.out ${i}.in 2>/dev/null || echo fail ${i}`,
    );
  });
  const res = execFileSync('sh', ['-c', lines.join('\n')], { cwd: dir }).toString();
  assert.equal(res.trim(), '', `dtc failed: ${res}`);
  return jobs.map((_, i) => new Uint8Array(readFileSync(join(dir, `${i}.out`))));
}

test('encodeDtc: random trees give the bytes `dtc -I dtb -O dtb` writes', (t) => {
  if (!oracle(t, 'dtc')) return;
  const trees = fc.sample(treeArb, { numRuns: 200, seed: 4242 });
  withTempDir((dir) => {
    const outs = runDtc(
      dir,
      trees.map((tr) => ({ input: encodeSw(tr), args: [] })),
    );
    let dropped = 0;
    trees.forEach((tr, i) => {
      const mine = encodeDtc(tr);
      if (mine.length < encodeDtc(tr, { dropNameProps: false }).length) dropped++;
      assert.equal(hex(mine), hex(outs[i] as Uint8Array), `tree ${i}: ${JSON.stringify(treeJson(tr.root))}`);
    });
    // Both sides of dtc's name-property rewrite must have been exercised.
    assert.ok(dropped > 5 && dropped < trees.length - 5, `name props dropped in ${dropped} trees`);
  });
});

test('encodeDtc options match dtc -p / -S / -a / -R / -b', (t) => {
  if (!oracle(t, 'dtc')) return;
  const trees = fc.sample(treeArb, { numRuns: 6, seed: 99 });
  const variants: { args: string[]; opts: DtcOptions }[] = [
    { args: ['-p', '13'], opts: { padSize: 13 } },
    { args: ['-S', '2000'], opts: { minSize: 2000 } },
    { args: ['-S', '10'], opts: { minSize: 10 } },
    { args: ['-a', '64'], opts: { align: 64 } },
    { args: ['-p', '10', '-a', '16'], opts: { padSize: 10, align: 16 } },
    { args: ['-R', '2'], opts: { reserveSlots: 2 } },
    { args: ['-b', '7'], opts: { bootCpuidPhys: 7 } },
  ];
  withTempDir((dir) => {
    const jobs = trees.flatMap((tr) =>
      variants.map((v) => ({ input: encodeSw(tr), args: v.args, tr, opts: v.opts })),
    );
    const outs = runDtc(dir, jobs);
    jobs.forEach((j, i) => {
      assert.equal(
        hex(encodeDtc(j.tr, j.opts)),
        hex(outs[i] as Uint8Array),
        `${j.args.join(' ')} on tree ${i}`,
      );
    });
  });
});

const DTS_FIXTURES: Record<string, string> = {
  kho: `/dts-v1/;
/ {
	compatible = "kho-v4";
	preserved-memory-map = /bits/ 64 <0x3c1e000>;
	memblock { blob-size = /bits/ 64 <0xda>; preserved-data = /bits/ 64 <0x4e6b000>; };
	kho_test { blob-size = /bits/ 64 <0xf0>; preserved-data = /bits/ 64 <0x3dbc000>; };
};`,
  refs: `/dts-v1/;
/memreserve/ 0x1000 0x2000;
/memreserve/ 0xffff0000 0x10;
/ {
	#address-cells = <2>;
	#size-cells = <1>;
	model = "test,board";
	intc: interrupt-controller@1000 { reg = <0 0x1000 0x100>; interrupt-controller; #interrupt-cells = <1>; };
	dev@2000 { reg = <0 0x2000 0x10>; interrupt-parent = <&intc>; interrupts = <5>; };
	aliases { i = &intc; };
	chosen { bootargs = "console=ttyS0"; stdout-path = "/dev@2000"; };
};`,
  mixed: `/dts-v1/;
/ {
	bytes = [01 02 03 04 05];
	strs = "a", "bb", "size";
	size = <1 2 3>;
	blob-size = /bits/ 8 <1 2 3>;
	empty;
	node { name = "node"; sub@1 { reg = <1>; sub2 { x = "y"; }; }; };
	gone { a = <1>; };
};
/ { /delete-node/ gone; };`,
  deep: `/dts-v1/;
/ { a { b { c { d { e { f { g { leaf = "deep"; size = <7>; }; }; }; }; }; }; }; };`,
};

const WALK_PY = `
import sys, json, libfdt
out = []
for h in json.load(sys.stdin):
    f = libfdt.Fdt(bytes.fromhex(h))
    def walk(off):
        props = []
        p = f.first_property_offset(off, [libfdt.FDT_ERR_NOTFOUND])
        while p >= 0:
            pr = f.get_property_by_offset(p)
            props.append([pr.name, bytes(pr).hex()])
            p = f.next_property_offset(p, [libfdt.FDT_ERR_NOTFOUND])
        kids = []
        c = f.first_subnode(off, [libfdt.FDT_ERR_NOTFOUND])
        while c >= 0:
            kids.append(walk(c))
            c = f.next_subnode(c, [libfdt.FDT_ERR_NOTFOUND])
        return {'name': f.get_name(off), 'props': props, 'children': kids}
    rsv = [[str(a), str(s)] for a, s in (f.get_mem_rsv(i) for i in range(f.num_mem_rsv()))]
    out.append({'root': walk(0), 'rsv': rsv, 'boot': f.boot_cpuid_phys()})
json.dump(out, sys.stdout)
`;

interface Walked {
  root: { name: string; props: [string, string][]; children: Walked['root'][] };
  rsv: [string, string][];
  boot: number;
}

test('encodeDtc of a tree walked by libfdt equals dtc -I dts -O dtb output (DTS fixtures)', (t) => {
  if (!oracle(t, 'dtc', 'pylibfdt')) return;
  withTempDir((dir) => {
    const names = Object.keys(DTS_FIXTURES);
    const lines = names.map((n) => {
      writeFileSync(join(dir, `${n}.dts`), DTS_FIXTURES[n] as string);
      return `dtc -q -I dts -O dtb -o ${n}.dtb ${n}.dts || echo fail ${n}`;
    });
    assert.equal(
      execFileSync('sh', ['-c', lines.join('\n')], { cwd: dir })
        .toString()
        .trim(),
      '',
    );
    const blobs = names.map((n) => new Uint8Array(readFileSync(join(dir, `${n}.dtb`))));
    const walked = JSON.parse(runPython(WALK_PY, blobs.map(hex)).toString()) as Walked[];
    const toNode = (w: Walked['root']): FdtNode => ({
      name: w.name,
      props: w.props.map(([name, v]) => ({ name, value: unhex(v) })),
      children: w.children.map(toNode),
    });
    walked.forEach((w, i) => {
      const tree: FdtTree = {
        root: toNode(w.root),
        reserves: w.rsv.map(([a, s]) => ({ address: BigInt(a), size: BigInt(s) })),
        bootCpuidPhys: w.boot,
      };
      assert.equal(hex(encodeDtc(tree)), hex(blobs[i] as Uint8Array), `fixture ${names[i]}`);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Read-write mode

type RwOp =
  | ['setprop', string, string, string]
  | ['append', string, string, string]
  | ['inplace', string, string, string]
  | ['delprop', string, string]
  | ['nopprop', string, string]
  | ['add', string, string]
  | ['del', string]
  | ['nopnode', string]
  | ['pack']
  | ['reopen', number]
  | ['resize', number]
  | ['addrsv', string, string]
  | ['delrsv', number];

interface RwCase {
  size: number;
  ops: RwOp[];
}

const RW_PY = `
import sys, json, libfdt
PATHOPS = ('setprop', 'append', 'inplace', 'delprop', 'nopprop', 'add', 'del', 'nopnode')
out = []
for case in json.load(sys.stdin):
    size = case['size']
    buf = bytearray(size)
    rcs = [libfdt.fdt_create_empty_tree(buf, size)]
    if rcs[0] == 0:
        for op in case['ops']:
            k = op[0]
            if k in PATHOPS:
                off = libfdt.fdt_path_offset(buf, op[1])
                if off < 0:
                    rcs.append(off); continue
            if k == 'setprop':
                v = bytes.fromhex(op[3]); rc = libfdt.fdt_setprop(buf, off, op[2], v, len(v))
            elif k == 'append':
                v = bytes.fromhex(op[3]); rc = libfdt.fdt_appendprop(buf, off, op[2], v, len(v))
            elif k == 'inplace':
                v = bytes.fromhex(op[3])
                f = libfdt.fdt_setprop_inplace_u32 if len(v) == 4 else libfdt.fdt_setprop_inplace_u64
                rc = f(buf, off, op[2], int.from_bytes(v, 'big'))
            elif k == 'delprop': rc = libfdt.fdt_delprop(buf, off, op[2])
            elif k == 'nopprop': rc = libfdt.fdt_nop_property(buf, off, op[2])
            elif k == 'add': rc = libfdt.fdt_add_subnode(buf, off, op[2])
            elif k == 'del': rc = libfdt.fdt_del_node(buf, off)
            elif k == 'nopnode': rc = libfdt.fdt_nop_node(buf, off)
            elif k == 'pack': rc = libfdt.fdt_pack(buf)
            elif k == 'reopen': rc = libfdt.fdt_open_into(buf, buf, op[1])
            elif k == 'resize':
                nb = bytearray(op[1]); rc = libfdt.fdt_open_into(buf, nb, op[1])
                if rc == 0: buf = nb
            elif k == 'addrsv': rc = libfdt.fdt_add_mem_rsv(buf, int(op[1]), int(op[2]))
            elif k == 'delrsv': rc = libfdt.fdt_del_mem_rsv(buf, op[1])
            rcs.append(rc)
    out.append({'rcs': rcs, 'buf': buf.hex()})
json.dump(out, sys.stdout)
`;

function runRwTs(c: RwCase): { rcs: string[]; buf: string } {
  let rw: FdtRw | undefined;
  const rcs = [outcome(() => (rw = FdtRw.createEmptyTree(c.size)))];
  // A failed fdt_create_empty_tree leaves a half-written buffer that FdtRw never exposes.
  if (!rw) return { rcs, buf: '' };
  const r = rw;
  for (const op of c.ops) {
    rcs.push(
      outcome(() => {
        switch (op[0]) {
          case 'setprop':
            return r.setprop(r.pathOffset(op[1]), op[2], unhex(op[3]));
          case 'append':
            return r.appendprop(r.pathOffset(op[1]), op[2], unhex(op[3]));
          case 'inplace':
            return r.setpropInplace(r.pathOffset(op[1]), op[2], unhex(op[3]));
          case 'delprop':
            return r.delprop(r.pathOffset(op[1]), op[2]);
          case 'nopprop':
            return r.nopProperty(r.pathOffset(op[1]), op[2]);
          case 'add':
            return r.addSubnode(r.pathOffset(op[1]), op[2]);
          case 'del':
            return r.delNode(r.pathOffset(op[1]));
          case 'nopnode':
            return r.nopNode(r.pathOffset(op[1]));
          case 'pack':
            return r.pack();
          case 'reopen':
            return r.reopen(op[1]);
          case 'resize':
            return r.resize(op[1]);
          case 'addrsv':
            return r.addMemRsv(BigInt(op[1]), BigInt(op[2]));
          case 'delrsv':
            return r.delMemRsv(op[1]);
        }
      }),
    );
  }
  return { rcs, buf: hex(r.bytes()) };
}

const RW_PATHS = [
  '/',
  '/',
  '/',
  '/',
  '/',
  '/',
  '/a',
  '/a',
  '/a',
  '/b',
  '/b',
  '/a@1',
  '/a/c',
  '/b/c',
  '/a/c/d',
  '/x',
];
const RW_NODES = ['a', 'b', 'c', 'd', 'a@1', 'c@2'];
const path = fc.constantFrom(...RW_PATHS);
const pname = fc.constantFrom('size', 'blob-size', 'reg', 'e', 'compatible', 'preserved-data', '');
/** Deleting or NOP-ing the root would leave nothing to edit: sub-node paths only. */
const subpath = fc.constantFrom(...RW_PATHS.filter((p) => p !== '/'));
const rwOp: fc.Arbitrary<RwOp> = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(path, pname, value).map(([p, n, v]): RwOp => ['setprop', p, n, hex(v)]) },
  { weight: 1, arbitrary: fc.tuple(path, pname, value).map(([p, n, v]): RwOp => ['append', p, n, hex(v)]) },
  {
    // pylibfdt has only the u32/u64 forms of fdt_setprop_inplace: values of 4 or 8 bytes.
    weight: 1,
    arbitrary: fc
      .tuple(
        path,
        pname,
        fc.oneof(
          fc.uint8Array({ minLength: 4, maxLength: 4 }),
          fc.uint8Array({ minLength: 8, maxLength: 8 }),
        ),
      )
      .map(([p, n, v]): RwOp => ['inplace', p, n, hex(v)]),
  },
  { weight: 3, arbitrary: fc.tuple(path, pname).map(([p, n]): RwOp => ['delprop', p, n]) },
  { weight: 1, arbitrary: fc.tuple(path, pname).map(([p, n]): RwOp => ['nopprop', p, n]) },
  {
    weight: 10,
    arbitrary: fc.tuple(path, fc.constantFrom(...RW_NODES)).map(([p, n]): RwOp => ['add', p, n]),
  },
  { weight: 2, arbitrary: subpath.map((p): RwOp => ['del', p]) },
  { weight: 1, arbitrary: subpath.map((p): RwOp => ['nopnode', p]) },
  { weight: 1, arbitrary: fc.constant<RwOp>(['pack']) },
  { weight: 1, arbitrary: fc.integer({ min: 40, max: 700 }).map((n): RwOp => ['reopen', n]) },
  { weight: 1, arbitrary: fc.integer({ min: 40, max: 900 }).map((n): RwOp => ['resize', n]) },
  { weight: 1, arbitrary: fc.tuple(u64s, u64s).map(([a, s]): RwOp => ['addrsv', String(a), String(s)]) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }).map((n): RwOp => ['delrsv', n]) },
);
const rwCase: fc.Arbitrary<RwCase> = fc.record({
  size: fc.oneof(
    fc.integer({ min: 78, max: 400 }),
    fc.integer({ min: 400, max: 2000 }),
    fc.constantFrom(79, 80, 4096),
  ),
  ops: fc.array(rwOp, { minLength: 15, maxLength: 60 }),
});

test('FdtRw: random edit sequences leave the same buffer and return codes as libfdt fdt_rw', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  // reopen(n) only shrinks within the buffer (libfdt would write past a smaller real buffer).
  const cases = fc.sample(rwCase, { numRuns: 300, seed: 0xfd7 }).map((c) => {
    let len = c.size;
    const ops = c.ops.filter((op) => {
      if (op[0] === 'resize') len = op[1];
      return op[0] !== 'reopen' || op[1] <= len;
    });
    return { ...c, ops };
  });
  const want = JSON.parse(runPython(RW_PY, cases).toString()) as { rcs: number[]; buf: string }[];
  const seen = new Map<string, number>();
  cases.forEach((c, i) => {
    const got = runRwTs(c);
    const exp = want[i] as { rcs: number[]; buf: string };
    const expRcs = exp.rcs.map(rcName);
    expRcs.forEach((r, k) => {
      const key = `${k === 0 ? 'create' : (c.ops[k - 1] as RwOp)[0]}:${r}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    });
    assert.deepEqual(got.rcs, expRcs, `return codes of case ${i}: ${JSON.stringify(c)}`);
    if (got.rcs[0] === 'OK') assert.equal(got.buf, exp.buf, `buffer of case ${i}: ${JSON.stringify(c)}`);
  });
  t.diagnostic(`outcomes by call: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
  for (const code of [
    'add:OK',
    'setprop:OK',
    'add:FDT_ERR_NOSPACE',
    'add:FDT_ERR_EXISTS',
    'delprop:OK',
    'del:OK',
  ]) {
    assert.ok((seen.get(code) ?? 0) > 10, `too few ${code}: ${JSON.stringify([...seen])}`);
  }
});

test('FdtRw.openInto relocates dtc and sequential-write blobs like fdt_open_into', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const trees = fc.sample(treeArb, { numRuns: 40, seed: 5 });
  const blobs = trees.flatMap((tr) => [encodeSw(tr), encodeDtc(tr)]);
  const sizes = blobs.map((b, i) => b.length + (i % 3) * 37);
  const OPEN_PY = `
import sys, json, libfdt
out = []
for h, size in json.load(sys.stdin):
    src = bytearray.fromhex(h); nb = bytearray(size)
    rc = libfdt.fdt_open_into(src, nb, size)
    out.append([rc, nb.hex()])
json.dump(out, sys.stdout)
`;
  const want = JSON.parse(
    runPython(
      OPEN_PY,
      blobs.map((b, i) => [hex(b), sizes[i]]),
    ).toString(),
  ) as [number, string][];
  blobs.forEach((b, i) => {
    const [rc, buf] = want[i] as [number, string];
    let got = '';
    const code = outcome(() => {
      got = hex(FdtRw.openInto(b, sizes[i] as number).bytes());
    });
    assert.equal(code, rcName(rc), `blob ${i}`);
    if (rc === 0) assert.equal(got, buf, `blob ${i}`);
  });
});

/** The blocks of a blob whose reservation map runs up to its structure block (dtc and libfdt layouts). */
function blocks(b: Uint8Array): { rsv: Uint8Array; struct: Uint8Array; strings: Uint8Array; boot: number } {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const offStruct = dv.getUint32(8);
  const offStrings = dv.getUint32(12);
  return {
    rsv: b.slice(dv.getUint32(16), offStruct),
    struct: b.slice(offStruct, offStruct + dv.getUint32(36)),
    strings: b.slice(offStrings, offStrings + dv.getUint32(32)),
    boot: dv.getUint32(28),
  };
}

/** A blob with the three blocks in `order`, `gap` zero bytes before each, header version `version`. */
function relayout(
  b: Uint8Array,
  order: ('rsv' | 'struct' | 'strings')[],
  gap: number,
  version: number,
): Uint8Array {
  const bl = blocks(b);
  const parts: Uint8Array[] = [];
  const offs: Record<string, number> = {};
  let at = 40;
  for (const k of order) {
    at += gap;
    parts.push(new Uint8Array(gap));
    offs[k] = at;
    parts.push(bl[k]);
    at += bl[k].length;
  }
  const out = new Uint8Array(at);
  let p = 40;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  const dv = new DataView(out.buffer);
  const fields = [
    0xd00dfeed,
    at,
    offs.struct,
    offs.strings,
    offs.rsv,
    version,
    16,
    bl.boot,
    bl.strings.length,
  ];
  fields.forEach((v, i) => dv.setUint32(i * 4, v as number));
  // Version 16 headers end before size_dt_struct: put junk there that libfdt must not use.
  dv.setUint32(36, version >= 17 ? bl.struct.length : 0xdeadbeef);
  return out;
}

test('FdtRw.openInto / openInPlace: reordered, gapped and version-16 layouts relocate like fdt_open_into', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const trees = fc.sample(treeArb, { numRuns: 12, seed: 11 });
  type Order = ('rsv' | 'struct' | 'strings')[];
  const orders: Order[] = [
    ['rsv', 'struct', 'strings'],
    ['rsv', 'strings', 'struct'],
    ['struct', 'rsv', 'strings'],
    ['strings', 'struct', 'rsv'],
  ];
  const cases: { blob: Uint8Array; size: number; inPlace: boolean }[] = [];
  trees.forEach((tr, i) => {
    const base = encodeDtc(tr);
    for (const order of orders) {
      for (const gap of [0, 8]) {
        const blob = relayout(base, order, gap, i % 2 ? 16 : 17);
        for (const extra of [0, 40, 400]) {
          cases.push({ blob, size: blob.length + extra, inPlace: false });
          cases.push({ blob, size: blob.length + extra, inPlace: true });
        }
      }
    }
  });
  const PY = `
import sys, json, libfdt
out = []
for h, size, inplace in json.load(sys.stdin):
    src = bytearray.fromhex(h)
    if inplace:
        buf = src + bytearray(max(0, size - len(src)))
        rc = libfdt.fdt_open_into(buf, buf, size)
    else:
        buf = bytearray(size)
        rc = libfdt.fdt_open_into(src, buf, size)
    out.append([rc, buf.hex()])
json.dump(out, sys.stdout)
`;
  const want = JSON.parse(
    runPython(
      PY,
      cases.map((c) => [hex(c.blob), c.size, c.inPlace]),
    ).toString(),
  ) as [number, string][];
  let reordered = 0;
  cases.forEach((c, i) => {
    const [rc, buf] = want[i] as [number, string];
    let got = '';
    const code = outcome(() => {
      if (c.inPlace) {
        const b = new Uint8Array(Math.max(c.size, c.blob.length));
        b.set(c.blob);
        got = hex(FdtRw.openInPlace(b, c.size).bytes());
      } else {
        got = hex(FdtRw.openInto(c.blob, c.size).bytes());
      }
    });
    assert.equal(code, rcName(rc), `case ${i}`);
    if (rc === 0) {
      assert.equal(got, buf, `case ${i}: in place ${c.inPlace}, size ${c.size}`);
      if (got.slice(32, 40) === '00000028' && hex(c.blob).slice(32, 40) !== '00000028') reordered++;
    }
  });
  assert.ok(reordered > 20, `reordering path taken ${reordered} times`);
});

test('dtc ignores the input layout and version: reordered and version-16 inputs give encodeDtc bytes', (t) => {
  if (!oracle(t, 'dtc')) return;
  const trees = fc.sample(treeArb, { numRuns: 20, seed: 21 });
  const jobs = trees.map((tr, i) => ({
    tr,
    input: relayout(
      encodeSw(tr),
      i % 2 ? ['strings', 'struct', 'rsv'] : ['rsv', 'struct', 'strings'],
      8,
      i % 4 < 2 ? 16 : 17,
    ),
    args: [] as string[],
  }));
  withTempDir((dir) => {
    const outs = runDtc(dir, jobs);
    jobs.forEach((j, i) => assert.equal(hex(encodeDtc(j.tr)), hex(outs[i] as Uint8Array), `tree ${i}`));
  });
});
