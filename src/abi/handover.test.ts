/**
 * Whole handovers of the real 7.3.4 vectors: preserved memory equal to the independent decoder's
 * preserved.json and meta.json counts, metadata equal to the next kernel's `KHO: exec from:` line,
 * reserve_mem regions equal to the next kernel's `Revived memory reservation` line and its in/ blob,
 * the cut-short out/fdt found whole in memory at the address the capture notes give, and the debugfs
 * quirks (no out/fdt after a KHO boot, a reused LUO page) reported instead of trusted.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { cpuMsSince, cpuStart } from '../../test/helpers/cpu.ts';
import { preservedJson, SCENARIOS, VECTORS } from '../../test/helpers/vectors.ts';
import { encodeBitmapChunks } from './bitmap-chunks.ts';
import { decodeHandover, diffHandovers, loadHandoverPath, subtractRanges } from './handover.ts';
import { KhoRootBuilder } from './kho-fdt.ts';
import { encodeMemblockFdt } from './memblock.ts';
import { memoryFromBytes, SparseMemory } from './memory/image.ts';
import { openMemoryImage } from './memory/open.ts';
import { getProfile } from './profile.ts';
import { encodeRadixTree } from './radix-tree.ts';

interface Meta {
  notes?: string[];
  preserved?: { count: number; by_order: Record<string, number>; bytes: number; ranges: number };
  out_root?: number;
}
const meta = (p: string): Meta => JSON.parse(readFileSync(join(VECTORS, p, 'meta.json'), 'utf8'));
const dmesg = (p: string) =>
  existsSync(join(VECTORS, p, 'dmesg')) ? readFileSync(join(VECTORS, p, 'dmesg'), 'utf8') : '';

for (const sc of SCENARIOS) {
  test(`${sc} stage1 out/ + mem/: preserved memory, whole root, metadata, reserve_mem`, () => {
    const s1 = `${sc}/stage1`;
    const h = loadHandoverPath(join(VECTORS, s1, 'out'), { memoryPath: join(VECTORS, s1, 'mem') });
    const m = meta(s1);
    // Preserved blocks: exactly the independent decoder's list.
    const expected = preservedJson(s1);
    assert.ok(h.preserved, JSON.stringify(h.findings));
    assert.deepEqual(
      h.preserved.list.map((b) => [`0x${b.pa.toString(16)}`, b.order]),
      expected,
    );
    assert.equal(h.preserved.blocks, m.preserved!.count);
    assert.equal(h.preserved.bytes, BigInt(m.preserved!.bytes));
    assert.equal(h.preserved.ranges.length, m.preserved!.ranges);
    assert.deepEqual(
      Object.fromEntries(Object.entries(h.preserved.byOrder).map(([k, v]) => [k, v])),
      Object.fromEntries(Object.entries(m.preserved!.by_order).sort(([a], [b]) => Number(a) - Number(b))),
    );
    assert.equal(h.root?.memoryMap, BigInt(m.out_root!));
    // The cut-short out/fdt: said so, and the whole blob found where the capture found it.
    const note = m.notes!.find((n) => n.includes('whole blob found at phys'))!;
    const at = BigInt(note.match(/0x[0-9a-f]+/)![0]);
    assert.equal(h.root?.wholeAt, at);
    const cut = h.findings.find((f) => f.code === 'KHO_FDT_CUT_SHORT')!;
    const [, have, total] = m.notes![0]!.match(/has (\d+) bytes, header totalsize (\d+)/)!;
    assert.match(
      cut.message,
      new RegExp(`${have} of ${total} bytes \\(${Number(total) - Number(have)} missing\\)`),
    );
    assert.ok(Buffer.from(readFileSync(join(VECTORS, s1, 'out/fdt.whole'))).length === Number(total));
    assert.deepEqual(
      h.subBlobs.map((s) => [s.name, s.source]),
      h.root!.subtrees.map((s) => [s.name, 'memory']),
    );
    // Sub-blobs read from memory equal the capture's blobs/ files.
    for (const s of h.subBlobs) {
      assert.equal(s.length, readFileSync(join(VECTORS, s1, 'out/blobs', s.name)).length, s.name);
    }
    // Metadata: the count the next kernel logs.
    const next = dmesg(`${sc}/stage2`);
    if (next) {
      const line = next.match(/KHO: exec from: .*\(count \d+\)/)![0];
      assert.equal(h.metadata?.logLine, line);
    }
    assert.equal(h.metadata?.kexecCount, 1);
    // reserve_mem: the next kernel revives each region by name, at the same address.
    for (const r of h.reserveMem) {
      if (next) assert.match(next, new RegExp(`Revived memory reservation '${r.name}' from KHO`));
      const nextIn = loadHandoverPath(join(VECTORS, `${sc}/stage2/in`));
      assert.deepEqual(nextIn.reserveMem, h.reserveMem);
    }
    // Everything the kernel hands over is inside preserved memory: no error findings.
    assert.deepEqual(
      h.findings.filter((f) => f.severity === 'error'),
      [],
    );
  });
}

test('reserve_mem regions are the command lines: khovec_region 4 MiB, trace_buf 8 MiB; none without reserve_mem', () => {
  const r = (s: string) =>
    loadHandoverPath(join(VECTORS, s, 'out'), { memoryPath: join(VECTORS, s, 'mem') }).reserveMem.map((x) => [
      x.name,
      x.size,
    ]);
  assert.deepEqual(r('flat-explicit/stage1'), [['khovec_region', 4n << 20n]]);
  assert.deepEqual(r('default-scale/stage1'), [['trace_buf', 8n << 20n]]);
  assert.deepEqual(r('three-hops/stage1'), []);
});

test('in/ of every later stage: metadata count equals the kernel’s own exec-from line', () => {
  for (const s of [
    'flat-explicit/stage2',
    'numa-explicit/stage2',
    'default-scale/stage2',
    'three-hops/stage2',
    'three-hops/stage3',
    'luo-memfd/stage2',
  ]) {
    const h = loadHandoverPath(join(VECTORS, s, 'in'));
    const line = dmesg(s).match(/KHO: exec from: .*\(count \d+\)/)![0];
    assert.equal(h.metadata?.logLine, line, s);
    assert.equal(h.source.kind, 'debugfs-dir');
    assert.ok(!h.findings.some((f) => f.code === 'KHO_FDT_CUT_SHORT'), s);
  }
});

test('after a KHO boot there is no out/fdt: said so; the sub_fdts still decode', () => {
  const h = loadHandoverPath(join(VECTORS, 'flat-explicit/stage2/out'));
  assert.equal(h.root, undefined);
  assert.equal(h.findings[0]?.code, 'KHO_DEBUGFS_NO_FDT');
  assert.match(h.findings[0]!.message, /no out\/fdt/);
  assert.deepEqual(h.subBlobs.map((s) => s.kind).sort(), ['kexec-metadata', 'memblock']);
  // The outgoing metadata of the second kernel carries the count the third kernel will log.
  assert.equal(h.metadata?.kexecCount, 2);
  assert.match(dmesg('three-hops/stage3'), /KHO: exec from: 7\.3\.4-khovec \(count 2\)/);
});

test('luo-memfd: the outgoing LUO blob decodes; the reused in/sub_fdts/LUO page is reported, not trusted', () => {
  const out = loadHandoverPath(join(VECTORS, 'luo-memfd/stage1/out'), {
    memoryPath: join(VECTORS, 'luo-memfd/stage1/mem'),
  });
  const luo = out.subBlobs.find((s) => s.name === 'LUO')!;
  assert.equal(luo.kind, 'LUO');
  assert.equal(luo.luo?.compatible, 'luo-v5');
  assert.equal(luo.luo?.liveupdateNumber, 1n);
  assert.equal(luo.luo?.sessions, 0n);
  const inn = loadHandoverPath(join(VECTORS, 'luo-memfd/stage2/in'));
  const stale = inn.findings.find((f) => f.code === 'KHO_SUBBLOB_STALE');
  assert.ok(stale);
  assert.equal(stale.path, '/LUO');
  assert.equal(inn.subBlobs.find((s) => s.name === 'LUO')!.kind, 'raw');
});

test('a cut-short out/fdt without memory: what was given, by how much, and how to get the rest', () => {
  const h = loadHandoverPath(join(VECTORS, 'flat-explicit/stage1/out/fdt'));
  assert.equal(h.source.kind, 'fdt');
  assert.equal(h.root?.have, 233);
  assert.equal(h.root?.totalsize, 353);
  const f = h.findings.find((x) => x.code === 'KHO_FDT_CUT_SHORT')!;
  assert.match(f.message, /233 of 353 bytes \(120 missing/);
  assert.match(f.message, /--memory/);
  assert.deepEqual(
    h.subBlobs.map((s) => s.name),
    ['memblock', 'kho_test'],
  );
});

test('single sub-blob files decode by kind', () => {
  const mb = loadHandoverPath(join(VECTORS, 'flat-explicit/stage1/out/sub_fdts/memblock'));
  assert.equal(mb.source.kind, 'sub-blob');
  assert.equal(mb.subBlobs[0]?.kind, 'memblock');
  const md = loadHandoverPath(join(VECTORS, 'flat-explicit/stage1/out/sub_fdts/kexec-metadata'));
  assert.equal(md.metadata?.kexecCount, 1);
  const kt = loadHandoverPath(join(VECTORS, 'flat-explicit/stage1/out/sub_fdts/kho_test'));
  assert.equal(kt.subBlobs[0]?.khoTest?.nrFolios, 30);
});

test('hostile handovers: blob-size beyond the image, pointers outside memory, blobs not preserved', () => {
  const whole = readFileSync(join(VECTORS, 'flat-explicit/stage1/out/fdt.whole'));
  // Memory holding only the kexec-metadata page: the radix root is outside it.
  const metaBlob = readFileSync(join(VECTORS, 'flat-explicit/stage1/out/blobs/kexec-metadata'));
  const mem = memoryFromBytes([{ start: 0x3c25000n, bytes: metaBlob }]);
  const h = decodeHandover({ fdt: whole, memory: mem });
  assert.ok(h.findings.some((f) => f.code === 'KHO_PTR_OUTSIDE_MEMORY'));
  assert.equal(h.subBlobs.find((s) => s.name === 'kexec-metadata')?.source, 'memory');
  assert.equal(h.preserved, undefined);
  // Random bytes as the root: one typed finding.
  const junk = decodeHandover({ fdt: new Uint8Array(100).fill(7) });
  assert.deepEqual(
    junk.findings.map((f) => f.code),
    ['FDT_ERR_BADMAGIC'],
  );
});

test('diff: three-hops stage2/in -> stage3/in: kho_test gone, metadata count 1 -> 2, new map address', () => {
  const a = loadHandoverPath(join(VECTORS, 'three-hops/stage2/in'));
  const b = loadHandoverPath(join(VECTORS, 'three-hops/stage3/in'));
  const d = diffHandovers(a, b);
  assert.deepEqual(
    d.subBlobs.removed.map((s) => s.name),
    ['kho_test'],
  );
  assert.deepEqual(d.metadata, [{ field: 'kexecCount', a: 1, b: 2 }]);
  assert.equal(d.root.find((r) => r.field === 'memoryMap')?.b, 0x1844000n);
  assert.equal(d.same, false);
  assert.equal(diffHandovers(a, a).same, true);
});

test('subtractRanges: hand-computed interval differences', () => {
  const r = (s: number, e: number) => ({ start: BigInt(s), size: BigInt(e - s) });
  assert.deepEqual(subtractRanges([r(0, 100)], [r(10, 20), r(50, 60)]), [r(0, 10), r(20, 50), r(60, 100)]);
  assert.deepEqual(subtractRanges([r(0, 10)], [r(0, 10)]), []);
  assert.deepEqual(subtractRanges([r(0, 10)], [r(20, 30)]), [r(0, 10)]);
});

test('synthetic handovers of other eras: kho-v1 (bitmap chunks, fdt) and kho-v2 (radix) decode whole', () => {
  // Hand-chosen preserved blocks (address, order); the sub-blobs live in preserved pages.
  const blocks = [
    { pa: 0x200000n, order: 0 },
    { pa: 0x204000n, order: 2 },
    { pa: 0x400000n, order: 9 },
  ];
  const memblock = encodeMemblockFdt([{ name: 'trace', start: 0x400000n, size: 0x200000n }]);
  for (const profile of ['kho-v1', 'kho-v2'] as const) {
    const mem = new SparseMemory({ allocBase: 0x1000000n });
    mem.write(0x200000n, memblock);
    const map =
      profile === 'kho-v1' ? encodeBitmapChunks(blocks, mem).head : encodeRadixTree(blocks, mem).root;
    const b = new KhoRootBuilder(profile, map);
    b.addSubtree('memblock', 0x200000n);
    if (profile === 'kho-v1') b.finalize(map);
    const h = decodeHandover({ fdt: b.blob(), memory: mem });
    assert.equal(h.profile, profile);
    assert.deepEqual(h.findings, []);
    assert.deepEqual(h.preserved?.list, blocks);
    assert.equal(h.preserved?.format, profile === 'kho-v1' ? 'bitmap-chunks' : 'radix-tree');
    // No blob-size before kho-v3: the FDT's own totalsize is read.
    assert.equal(h.subBlobs[0]?.length, memblock.length);
    assert.deepEqual(h.reserveMem, [{ name: 'trace', start: 0x400000n, size: 0x200000n }]);
  }
});

test('fuzz: mutated real roots and sub-blobs never crash decodeHandover (findings only, bounded time)', () => {
  const whole = readFileSync(join(VECTORS, 'flat-explicit/stage1/out/fdt.whole'));
  const mem = openMemoryImage(join(VECTORS, 'flat-explicit/stage1/mem'));
  const files = new Map(
    ['memblock', 'kho_test', 'kexec-metadata'].map((n) => [
      n,
      readFileSync(join(VECTORS, 'flat-explicit/stage1/out/sub_fdts', n)),
    ]),
  );
  fc.assert(
    fc.property(
      fc.constantFrom('root', 'memblock', 'kho_test', 'kexec-metadata'),
      fc.array(fc.tuple(fc.nat({ max: 352 }), fc.nat({ max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      (target, muts, withMem) => {
        const root = Uint8Array.from(whole);
        const subs = new Map([...files].map(([k, v]) => [k, Uint8Array.from(v)]));
        const buf = target === 'root' ? root : subs.get(target)!;
        for (const [i, v] of muts) if (i < buf.length) buf[i] = v;
        const t0 = cpuStart();
        const h = decodeHandover({ fdt: root, subBlobFiles: subs, ...(withMem ? { memory: mem } : {}) });
        assert.ok(cpuMsSince(t0) < 2000);
        assert.ok(h.findings.every((f) => typeof f.code === 'string'));
      },
    ),
    { numRuns: 150 },
  );
});

test('fdt.whole and the next kernel’s in/ decoded with the stage-1 image: preserved.json again', () => {
  for (const sc of ['flat-explicit', 'numa-explicit', 'default-scale', 'luo-memfd']) {
    const expected = preservedJson(`${sc}/stage1`);
    const mem = join(VECTORS, sc, 'stage1/mem');
    for (const p of [join(VECTORS, sc, 'stage1/out/fdt.whole'), join(VECTORS, sc, 'stage2/in')]) {
      const h = loadHandoverPath(p, { memoryPath: mem });
      assert.deepEqual(
        h.preserved?.list.map((b) => [`0x${b.pa.toString(16)}`, b.order]),
        expected,
        p,
      );
    }
  }
});

test('in/ with its own (later) image: the consumed map is explained, not called invalid', () => {
  const h = loadHandoverPath(join(VECTORS, 'flat-explicit/stage2/in'), {
    memoryPath: join(VECTORS, 'flat-explicit/stage2/mem'),
  });
  assert.equal(h.preserved, undefined);
  assert.ok(h.findings.some((f) => f.code === 'KHO_MAP_STALE'));
  assert.deepEqual(
    h.findings.filter((f) => f.severity === 'error'),
    [],
  );
});

test('64 KiB pages: radix geometry and root page follow the page size; 16 KiB: the map is reported undefined', () => {
  const blocks = [
    { pa: 0x800000n, order: 0 },
    { pa: 0x1000000n, order: 3 },
  ];
  const meta = Buffer.alloc(73);
  meta.writeUInt32LE(1, 0);
  meta.write('6.99-arm64', 4, 'latin1');
  meta.writeUInt32LE(3, 69);
  const mem = new SparseMemory({ pageSize: 65536, allocBase: 0x4000000n });
  mem.write(0x800000n, meta);
  const { root } = encodeRadixTree(blocks, mem, { pageSize: 65536 });
  const b = new KhoRootBuilder(getProfile('kho-v4', { pageSize: 65536 }), root);
  b.addSubtree('kexec-metadata', 0x800000n, 73n);
  assert.equal(b.page().length, 65536);
  const h = decodeHandover({ fdt: b.blob(), memory: mem, pageSize: 65536 });
  assert.deepEqual(h.findings, []);
  assert.deepEqual(h.preserved?.list, blocks);
  assert.equal(h.preserved?.bytes, 65536n + 8n * 65536n);
  assert.equal(h.metadata?.logLine, 'KHO: exec from: 6.99-arm64 (count 3)');
  // 16 KiB: the radix depth is ambiguous; the handover says so instead of guessing, the rest decodes.
  const b16 = new KhoRootBuilder(getProfile('kho-v4', { pageSize: 16384 }), 0x4000000n);
  b16.addSubtree('kexec-metadata', 0x800000n, 73n);
  const m16 = new SparseMemory({ pageSize: 16384 });
  m16.write(0x800000n, meta);
  m16.write(0x4000000n, new Uint8Array(16384));
  const h16 = decodeHandover({ fdt: b16.blob(), memory: m16, pageSize: 16384 });
  assert.equal(h16.preserved, undefined);
  assert.ok(h16.findings.some((f) => f.code === 'KHO_UNSUPPORTED_PAGE_SIZE'));
  assert.equal(h16.metadata?.kexecCount, 3);
});

test('kho_test: every folio the self-test recorded is a preserved block of its order (preserved.json), as its restore needs', () => {
  for (const sc of SCENARIOS) {
    const s1 = `${sc}/stage1`;
    const h = loadHandoverPath(join(VECTORS, s1, 'out'), { memoryPath: join(VECTORS, s1, 'mem') });
    const kt = h.subBlobs.find((s) => s.name === 'kho_test')!.khoTest!;
    const expected = new Set(preservedJson(s1).map(([pa, o]) => `${BigInt(pa)}:${o}`));
    assert.equal(kt.folios?.length, kt.nrFolios, sc);
    for (const f of kt.folios!)
      assert.ok(expected.has(`${f.pa}:${f.order}`), `${sc} ${f.pa.toString(16)}/${f.order}`);
  }
});

test('kho_test: a recorded folio whose order differs from the preserved block is reported', () => {
  const s1 = 'flat-explicit/stage1';
  const img = openMemoryImage(join(VECTORS, s1, 'mem'));
  const mem = new SparseMemory();
  for (const r of img.ranges()) mem.write(r.start, img.read(r.start, Number(r.size)));
  img.close();
  const h0 = loadHandoverPath(join(VECTORS, s1, 'out'), { memory: mem });
  const kt = h0.subBlobs.find((s) => s.name === 'kho_test')!.khoTest!;
  const first = kt.foliosInfo!.first;
  // The chunk's first entry is the data page holding the folio list; bump entry 0's order by one.
  const dataPage = mem.read(first + 8n, 8);
  const data = new DataView(dataPage.buffer, dataPage.byteOffset, 8).getBigUint64(0, true);
  const e0 = mem.read(data, 8);
  const v = new DataView(e0.buffer, e0.byteOffset, 8).getBigUint64(0, true);
  const patched = new Uint8Array(8);
  new DataView(patched.buffer).setBigUint64(0, v + 1n, true);
  mem.write(data, patched);
  const h = loadHandoverPath(join(VECTORS, s1, 'out'), { memory: mem });
  const f = h.findings.filter((x) => x.code === 'KHO_TEST_FOLIO_NOT_PRESERVED');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.path, '/kho_test/data:folios_info[0]');
});

test('a sub-blob or reserve_mem region outside preserved memory is an error (the next kernel may overwrite it)', () => {
  const mem = new SparseMemory({ allocBase: 0x1000000n });
  const memblock = encodeMemblockFdt([{ name: 'trace', start: 0x400000n, size: 0x200000n }]);
  mem.write(0x200000n, memblock);
  // Only the memblock page is preserved: neither the region nor anything else.
  const { root } = encodeRadixTree([{ pa: 0x200000n, order: 0 }], mem);
  const b = new KhoRootBuilder('kho-v4', root);
  b.addSubtree('memblock', 0x200000n, BigInt(memblock.length));
  b.addSubtree('kho_test', 0x300000n, 240n);
  const h = decodeHandover({ fdt: b.blob(), memory: mem });
  assert.deepEqual(
    h.findings.filter((f) => f.severity === 'error').map((f) => `${f.code} ${f.path}`),
    ['KHO_SUBBLOB_NOT_PRESERVED /kho_test', 'KHO_RESERVE_MEM_NOT_PRESERVED /memblock/trace'],
  );
});
