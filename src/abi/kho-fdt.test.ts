/**
 * Root KHO FDT: the real Linux 7.3.4 root FDTs decode to what libfdt reads in them and re-encode, through
 * the kernel's calls, to the very same bytes; the cut-short debugfs `out/fdt` decodes as far as it goes;
 * the kernel's refusals (duplicate name, full page, missing blob-size) come out as its error codes and
 * warning texts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { oracle } from '../../test/helpers/oracle.ts';
import { pyWalk } from '../../test/helpers/pywalk.ts';
import { VECTORS } from '../../test/helpers/vectors.ts';
import { isKhoError } from '../errors.ts';
import { parseFdt } from '../fdt/reader.ts';
import { FdtRw } from '../fdt/write-rw.ts';
import { decodeKhoRoot, encodeKhoRoot, KhoRootBuilder, khoRootState, validateKhoRoot } from './kho-fdt.ts';

const STAGES = [
  'bad-scratch/stage1',
  'default-scale/stage1',
  'default-scale/stage2',
  'flat-explicit/stage1',
  'flat-explicit/stage2',
  'luo-memfd/stage1',
  'luo-memfd/stage2',
  'numa-explicit/stage1',
  'numa-explicit/stage2',
  'three-hops/stage1',
  'three-hops/stage2',
  'three-hops/stage3',
];

/** Every whole root FDT of the vectors: stage1 `out/fdt.whole`, later stages `in/fdt`. */
function wholeRoots(): { path: string; bytes: Buffer; meta: { out_root?: number; in_root?: number } }[] {
  const out = [];
  for (const s of STAGES) {
    const meta = JSON.parse(readFileSync(join(VECTORS, s, 'meta.json'), 'utf8'));
    for (const f of ['out/fdt.whole', 'in/fdt']) {
      const p = join(VECTORS, s, f);
      if (existsSync(p)) out.push({ path: `${s}/${f}`, bytes: readFileSync(p), meta });
    }
  }
  return out;
}

test('vector set: 12 whole root FDTs are present in the project', () => {
  assert.equal(wholeRoots().length, 12);
});

test('every real root FDT decodes to the values libfdt reads (names, order, native-endian u64s)', (t) => {
  if (!oracle(t, 'pylibfdt')) return;
  const roots = wholeRoots();
  const walks = pyWalk(roots.map((r) => r.bytes));
  roots.forEach((r, i) => {
    const w = walks[i]!;
    assert.equal(w.error, null, r.path);
    const dec = decodeKhoRoot(r.bytes);
    assert.deepEqual(dec.findings, [], r.path);
    const rootNode = w.nodes.find((n) => n.depth === 1)!;
    const prop = (n: (typeof w.nodes)[number], name: string) => n.props.find((p) => p.name === name)?.value;
    const le64 = (h: string | undefined) => Buffer.from(h!, 'hex').readBigUInt64LE(0);
    assert.equal(Buffer.from(prop(rootNode, 'compatible')!, 'hex').toString('latin1'), `${dec.compatible}\0`);
    assert.equal(dec.compatible, 'kho-v4');
    assert.equal(dec.profile.name, 'kho-v4');
    assert.equal(dec.memoryMap, le64(prop(rootNode, 'preserved-memory-map')));
    // meta.json records the radix root address independently (captured from the running kernel).
    assert.equal(dec.memoryMap, BigInt(r.meta.out_root ?? r.meta.in_root!), r.path);
    const kids = w.nodes.filter((n) => n.depth === 2);
    assert.deepEqual(
      dec.subtrees.map((s) => [s.name, s.phys, s.size]),
      kids.map((k) => [k.name, le64(prop(k, 'preserved-data')), le64(prop(k, 'blob-size'))]),
      r.path,
    );
  });
});

test('sub-tree sizes equal the lengths of the blobs read from memory at their addresses', () => {
  for (const s of ['flat-explicit/stage1', 'luo-memfd/stage1', 'bad-scratch/stage1']) {
    const dec = decodeKhoRoot(readFileSync(join(VECTORS, s, 'out/fdt.whole')));
    for (const st of dec.subtrees) {
      assert.equal(
        st.size,
        BigInt(readFileSync(join(VECTORS, s, 'out/blobs', st.name)).length),
        `${s} ${st.name}`,
      );
    }
  }
});

test('flat-explicit: blob order memblock, kho_test, kexec-metadata (reverse of registration)', () => {
  const dec = decodeKhoRoot(readFileSync(join(VECTORS, 'flat-explicit/stage1/out/fdt.whole')));
  assert.deepEqual(
    dec.subtrees.map((s) => s.name),
    ['memblock', 'kho_test', 'kexec-metadata'],
  );
  assert.equal(dec.blob.header.totalsize, 353);
});

test('re-encoding every real root FDT through the kernel call order gives the same bytes', () => {
  for (const r of wholeRoots()) {
    const enc = encodeKhoRoot(khoRootState(decodeKhoRoot(r.bytes)));
    assert.ok(Buffer.from(enc).equals(r.bytes), `${r.path}: ${enc.length} vs ${r.bytes.length} bytes`);
  }
});

test('out/fdt (233 B): the size after the first add, and the first 233 bytes of the live page', () => {
  const outFdt = readFileSync(join(VECTORS, 'flat-explicit/stage1/out/fdt'));
  const whole = decodeKhoRoot(readFileSync(join(VECTORS, 'flat-explicit/stage1/out/fdt.whole')));
  const b = new KhoRootBuilder('kho-v4', whole.memoryMap!);
  const [memblock, khoTest, meta] = whole.subtrees;
  b.addSubtree(meta!.name, meta!.phys!, meta!.size);
  assert.equal(b.blob().length, 233);
  assert.equal(outFdt.length, 233);
  b.addSubtree(khoTest!.name, khoTest!.phys!, khoTest!.size);
  b.addSubtree(memblock!.name, memblock!.phys!, memblock!.size);
  assert.ok(Buffer.from(b.page().subarray(0, 233)).equals(outFdt));
  assert.equal(b.blob().length, 353);
});

test('a fresh kho-v4 root (before any add) is the spec-§1.3 unpacked layout: rsvmap 48, struct 64', () => {
  const b = new KhoRootBuilder('kho-v4', 0x3c1e000n);
  const blob = parseFdt(b.blob());
  assert.equal(blob.header.offMemRsvmap, 48);
  assert.equal(blob.header.offDtStruct, 64);
  // struct: BEGIN_NODE "" (8) + compatible (12 + 8 for "kho-v4\0") + map (12 + 8) + END_NODE + END = 56
  assert.equal(blob.header.sizeDtStruct, 56);
  // strings: sequential write prepends, so "preserved-memory-map\0compatible\0" (21 + 11)
  assert.equal(
    Buffer.from(b.blob().subarray(blob.header.offDtStrings)).toString('latin1'),
    'preserved-memory-map\0compatible\0',
  );
  assert.equal(blob.header.totalsize, 64 + 56 + 32);
});

test('cut-short out/fdt of every scenario: said plainly, readable sub-trees decoded, names inferred', () => {
  for (const s of STAGES) {
    const p = join(VECTORS, s, 'out/fdt');
    if (!existsSync(p)) continue;
    const cut = readFileSync(p);
    const wholeBytes = readFileSync(join(VECTORS, s, 'out/fdt.whole'));
    assert.ok(cut.length < wholeBytes.length, s);
    const dec = decodeKhoRoot(cut);
    const whole = decodeKhoRoot(wholeBytes);
    const f = dec.findings.find((x) => x.code === 'KHO_FDT_CUT_SHORT');
    assert.ok(f, s);
    assert.match(
      f.message,
      new RegExp(
        `holds ${cut.length} of the blob's ${wholeBytes.length} bytes \\(${wholeBytes.length - cut.length} bytes cut off\\)`,
      ),
    );
    assert.equal(dec.compatible, 'kho-v4', s);
    assert.equal(dec.memoryMap, whole.memoryMap, s);
    // Whatever sub-trees were read match the whole blob's first ones.
    assert.ok(dec.subtrees.length >= 1, s);
    assert.deepEqual(
      dec.subtrees,
      whole.subtrees.slice(0, dec.subtrees.length).map((x) => ({ ...x })),
      s,
    );
    assert.equal(dec.findings.filter((x) => x.severity === 'error').length, 0, JSON.stringify(dec.findings));
  }
});

test('addSubtree of an existing name is the kernel -EEXIST, and the blob is unchanged', () => {
  const b = new KhoRootBuilder('kho-v4', 0x1000n);
  b.addSubtree('memblock', 0x2000n, 218n);
  const before = b.page();
  assert.throws(
    () => b.addSubtree('memblock', 0x3000n, 10n),
    (e) => isKhoError(e, 'KHO_EEXIST'),
  );
  assert.ok(Buffer.from(b.page()).equals(Buffer.from(before)));
});

test('a full page: kho-v4 deletes the half-built node (-ENOMEM); kho-v2 leaves it, with the raw libfdt error', () => {
  // Fill the page, then try ever shorter names: at some length add_subnode still fits but the
  // preserved-data setprop does not. The Apr 2026 fix (kho-v3+) deletes that node and returns -ENOMEM;
  // before it (kho-v2) the node stays, without preserved-data, and libfdt's -FDT_ERR_NOSPACE is returned.
  const outcome = (profile: 'kho-v4' | 'kho-v2') => {
    const b = new KhoRootBuilder(profile, 0x1000n);
    for (let i = 0; ; i++) {
      try {
        b.addSubtree(`n${String(i).padStart(40, '0')}`, BigInt(0x100000 + i * 0x1000), 16n);
      } catch {
        break;
      }
    }
    for (let len = 60; len >= 1; len--) {
      const name = 'x'.repeat(len);
      try {
        b.addSubtree(name, 0x42000n, 8n);
        return { len, code: 'ok', node: true, size: b.blob().length };
      } catch (e) {
        if (!isKhoError(e)) throw e;
        const dec = decodeKhoRoot(b.blob(), { profile });
        const node = dec.subtrees.some((s) => s.name === name);
        if (e.code !== 'KHO_ENOMEM' || node) return { len, code: e.code, node, size: b.blob().length };
        if (profile === 'kho-v4' && len <= 41) return { len, code: e.code, node, size: b.blob().length };
      }
    }
    return undefined;
  };
  const v2 = outcome('kho-v2');
  assert.ok(v2);
  assert.equal(v2.code, 'FDT_ERR_NOSPACE');
  assert.equal(v2.node, true);
  assert.ok(v2.size <= 4096);
  const v4 = outcome('kho-v4');
  assert.ok(v4);
  assert.equal(v4.code, 'KHO_ENOMEM');
  assert.equal(v4.node, false);
});

test('removeSubtree deletes the node whose address matches and gives the bytes of never having added it', () => {
  const a = new KhoRootBuilder('kho-v4', 0x1000n);
  a.addSubtree('kexec-metadata', 0x5000n, 73n);
  a.addSubtree('kho_test', 0x6000n, 240n);
  a.addSubtree('memblock', 0x7000n, 218n);
  assert.equal(a.removeSubtree(0x6000n), true);
  assert.equal(a.removeSubtree(0x9999000n), false);
  const dec = decodeKhoRoot(a.blob());
  assert.deepEqual(
    dec.subtrees.map((s) => s.name),
    ['memblock', 'kexec-metadata'],
  );
  // Strings stay (libfdt never removes them); the structure is that of the two remaining adds.
  const b = new KhoRootBuilder('kho-v4', 0x1000n);
  b.addSubtree('kexec-metadata', 0x5000n, 73n);
  b.addSubtree('memblock', 0x7000n, 218n);
  assert.ok(Buffer.from(a.blob()).equals(Buffer.from(b.blob())));
});

test("missing blob-size gives the kernel's warning text; missing preserved-data and map are errors", () => {
  const b = new KhoRootBuilder('kho-v4', 0x1000n);
  b.addSubtree('a', 0x5000n, 73n);
  b.addSubtree('b', 0x6000n, 1n);
  const rw = FdtRw.openInto(b.blob(), 4096);
  rw.delprop(rw.pathOffset('/a'), 'blob-size');
  rw.delprop(rw.pathOffset('/b'), 'preserved-data');
  rw.delprop(0, 'preserved-memory-map');
  rw.pack();
  const findings = validateKhoRoot(rw.blob());
  const codes = findings.map((f) => `${f.severity}:${f.code}:${f.path}`);
  assert.deepEqual(codes.sort(), [
    'error:KHO_ROOT_NO_MEMORY_MAP:/:preserved-memory-map',
    'error:KHO_SUBTREE_NO_BLOB_SIZE:/a:blob-size',
    'error:KHO_SUBTREE_NO_DATA:/b:preserved-data',
  ]);
  assert.equal(
    findings.find((f) => f.code === 'KHO_SUBTREE_NO_BLOB_SIZE')!.message,
    "broken KHO subnode 'a': missing or invalid blob-size property",
  );
});

test('a kho-v4 blob judged by a kho-v3 kernel is incompatible; unknown compatible is reported', () => {
  const v4 = readFileSync(join(VECTORS, 'flat-explicit/stage1/out/fdt.whole'));
  const f = validateKhoRoot(v4, { profile: 'kho-v3' });
  assert.deepEqual(
    f.map((x) => x.code),
    ['KHO_ROOT_INCOMPATIBLE'],
  );
  const rw = FdtRw.openInto(v4, 4096);
  rw.setpropString(0, 'compatible', 'kho-v9');
  rw.pack();
  assert.ok(validateKhoRoot(rw.blob()).some((x) => x.code === 'KHO_ROOT_UNKNOWN_COMPATIBLE'));
});

test('non-FDT input: one typed finding from validate, a KhoError from decode', () => {
  const junk = new Uint8Array(64).fill(0x41);
  assert.deepEqual(
    validateKhoRoot(junk).map((f) => f.code),
    ['FDT_ERR_BADMAGIC'],
  );
  assert.throws(
    () => decodeKhoRoot(junk),
    (e) => isKhoError(e, 'FDT_ERR_BADMAGIC'),
  );
});

test('every scenario’s cut-short out/fdt is the prefix of the re-encoded whole blob, its length the size after the first add', () => {
  let n = 0;
  for (const s of STAGES) {
    const p = join(VECTORS, s, 'out/fdt');
    if (!existsSync(p)) continue;
    const cut = readFileSync(p);
    const whole = decodeKhoRoot(readFileSync(join(VECTORS, s, 'out/fdt.whole')));
    const enc = encodeKhoRoot(khoRootState(whole));
    assert.ok(Buffer.from(enc.subarray(0, cut.length)).equals(cut), s);
    const first = new KhoRootBuilder('kho-v4', whole.memoryMap!);
    const reg = whole.subtrees[whole.subtrees.length - 1]!;
    first.addSubtree(reg.name, reg.phys!, reg.size);
    assert.equal(first.blob().length, cut.length, s);
    n++;
  }
  assert.equal(n, 6);
});
