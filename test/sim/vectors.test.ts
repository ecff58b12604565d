/**
 * The simulated kernel side by side with the real Linux 7.3.4 captures (test/vectors/linux-7.3.4):
 * same machine shape and command line → same debugfs file set and formats, same scratch sizes and
 * order (explicit grammar and the default scale), the same KHO / self-test / reserve_mem log lines in
 * the same order, and sub-blobs that decode to the same content. Expected values are read from the
 * vectors; physical addresses are only checked against the placement rules (they depend on everything
 * a real kernel allocates early).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeKexecMetadata } from '../../src/abi/kexec-metadata.ts';
import { decodeKhoRoot } from '../../src/abi/kho-fdt.ts';
import { decodeMemblockFdt } from '../../src/abi/memblock.ts';
import { debugfsKhoTree, procCmdline, procIomem, treePaths } from '../../src/sim/kernel/debugfs.ts';
import { Kernel } from '../../src/sim/kernel/kernel.ts';
import { Machine } from '../../src/sim/machine/machine.ts';

const VEC = new URL('../vectors/linux-7.3.4/', import.meta.url);
const vecText = (p: string) => readFileSync(new URL(p, VEC), 'utf8');
const vecBytes = (p: string) => new Uint8Array(readFileSync(new URL(p, VEC)));
const meta = (p: string) =>
  JSON.parse(vecText(`${p}/meta.json`)) as { cmdline: string; uname: string; tree: string[] };
const hexLines = (t: string) =>
  t
    .trimEnd()
    .split('\n')
    .map((l) => BigInt(l));

/** The vectors' debugfs tree, relative to /sys/kernel/debug. */
const vecTree = (p: string) =>
  meta(p)
    .tree.map((x) => x.replace('/sys/kernel/debug/', ''))
    .sort();
/** KHO-related messages (no timestamps) in log order. */
const KHO_RE = /KHO|test_kho|Revived memory reservation|Malformed early option|reserve_mem/;
const khoLines = (dmesg: string) =>
  dmesg
    .split('\n')
    .map((l) => l.replace(/^\[[ \d.]+\] /, ''))
    .filter((l) => KHO_RE.test(l));

const file = (k: Kernel, p: string) => {
  const f = debugfsKhoTree(k).files.get(p);
  assert.ok(f, `debugfs ${p} exists`);
  return f();
};
const txt = (b: Uint8Array) => new TextDecoder().decode(b);

/** Boot stage 1 of a scenario and kexec through the rest, with the vectors' command lines. */
function runScenario(name: string, stages: number, machine: { memory: string; numa?: number }): Kernel[] {
  const m = Machine.create(machine);
  const out = [Kernel.boot(m, { cmdline: meta(`${name}/stage1`).cmdline })];
  for (let s = 2; s <= stages; s++) {
    const prev = out[out.length - 1];
    const r = prev.kexecLoad({
      image: prev.image,
      cmdline: meta(`${name}/stage${s}`).cmdline,
      fileLoad: true,
    });
    assert.equal(r.handover, true);
    out.push(prev.kexecExec());
  }
  return out;
}

const MiB = 1n << 20n;
const A = 2n * MiB; // CMA_MIN_ALIGNMENT_BYTES on x86_64 4K

/** Placement rules the vectors obey: 2 MiB aligned, lowmem below 4 GiB, node areas in their node, disjoint. */
function checkPlacement(k: Kernel): void {
  const areas = k.scratch;
  assert.equal(areas.length, 2 + k.machine.nodes.length);
  for (const a of areas) assert.equal(a.addr % A, 0n, `area 0x${a.addr.toString(16)} aligned`);
  assert.ok(areas[0].addr + areas[0].size <= 0xffffffffn);
  k.machine.nodes.forEach((n, i) => {
    const a = areas[2 + i];
    assert.ok(a.addr >= n.start && a.addr + a.size <= n.end, `node ${n.nid} area inside its node`);
  });
  const sorted = [...areas].filter((a) => a.size > 0n).sort((x, y) => (x.addr < y.addr ? -1 : 1));
  for (let i = 1; i < sorted.length; i++)
    assert.ok(sorted[i - 1].addr + sorted[i - 1].size <= sorted[i].addr);
}

test('flat-explicit: debugfs file set, scratch sizes and formats, out/fdt cut short, log lines, sub-blobs', () => {
  const [k1, k2] = runScenario('flat-explicit', 2, { memory: '2G' });
  // stage 1
  assert.deepEqual(treePaths(debugfsKhoTree(k1)), vecTree('flat-explicit/stage1'));
  assert.equal(txt(file(k1, 'kho/out/scratch_len')), vecText('flat-explicit/stage1/out/scratch_len'));
  assert.match(txt(file(k1, 'kho/out/scratch_phys')), /^(0x[0-9a-f]+\n){3}$/);
  checkPlacement(k1);
  // out/fdt: fixed at 233 bytes, the whole root is longer (the vector: 233 against 353)
  const outFdt = file(k1, 'kho/out/fdt');
  assert.equal(outFdt.length, vecBytes('flat-explicit/stage1/out/fdt').length);
  const whole = k1.kho.rootFdt();
  assert.equal(whole.length, vecBytes('flat-explicit/stage1/out/fdt.whole').length);
  const ours = decodeKhoRoot(whole);
  const theirs = decodeKhoRoot(vecBytes('flat-explicit/stage1/out/fdt.whole'));
  assert.equal(ours.compatible, theirs.compatible);
  assert.deepEqual(
    ours.subtrees.map((s) => s.name),
    theirs.subtrees.map((s) => s.name),
  );
  assert.ok(decodeKhoRoot(outFdt).truncation, 'out/fdt is cut short');
  // sub-blobs decode to the same content
  const mbOurs = decodeMemblockFdt(file(k1, 'kho/out/sub_fdts/memblock'));
  const mbVec = decodeMemblockFdt(vecBytes('flat-explicit/stage1/out/sub_fdts/memblock'));
  assert.deepEqual(
    mbOurs.regions.map((r) => [r.name, r.size]),
    mbVec.regions.map((r) => [r.name, r.size]),
  );
  assert.equal(
    file(k1, 'kho/out/sub_fdts/memblock').length,
    vecBytes('flat-explicit/stage1/out/sub_fdts/memblock').length,
  );
  const mdOurs = decodeKexecMetadata(file(k1, 'kho/out/sub_fdts/kexec-metadata'));
  const mdVec = decodeKexecMetadata(vecBytes('flat-explicit/stage1/out/sub_fdts/kexec-metadata'));
  assert.deepEqual(mdOurs, mdVec);
  assert.deepEqual(khoLines(k1.dmesg()), khoLines(vecText('flat-explicit/stage1/dmesg')));

  // stage 2
  assert.deepEqual(treePaths(debugfsKhoTree(k2)), vecTree('flat-explicit/stage2'));
  assert.equal(txt(file(k2, 'kho/out/scratch_len')), vecText('flat-explicit/stage2/out/scratch_len'));
  // the scratch areas are inherited byte for byte
  assert.equal(txt(file(k2, 'kho/out/scratch_phys')), txt(file(k1, 'kho/out/scratch_phys')));
  assert.deepEqual(khoLines(k2.dmesg()), khoLines(vecText('flat-explicit/stage2/dmesg')));
  assert.deepEqual(
    decodeKexecMetadata(file(k2, 'kho/in/sub_fdts/kexec-metadata')),
    decodeKexecMetadata(vecBytes('flat-explicit/stage2/in/sub_fdts/kexec-metadata')),
  );
  assert.deepEqual(
    decodeKexecMetadata(file(k2, 'kho/out/sub_fdts/kexec-metadata')),
    decodeKexecMetadata(vecBytes('flat-explicit/stage2/out/sub_fdts/kexec-metadata')),
  );
  // in/fdt is the whole incoming root (no cut), and the region was revived at the same address
  assert.deepEqual(file(k2, 'kho/in/fdt'), whole);
  assert.equal(file(k2, 'kho/in/fdt').length, vecBytes('flat-explicit/stage2/in/fdt').length);
  const r1 = k1.reserveMem.findByName('khovec_region');
  const r2 = k2.reserveMem.findByName('khovec_region');
  assert.ok(r1 && r2);
  assert.equal(r2.start, r1.start);
  assert.equal(txt(new TextEncoder().encode(procCmdline(k2))), `${meta('flat-explicit/stage2').cmdline}\n`);
});

test('numa-explicit: one scratch area per node, inside its node; same sizes and log lines', () => {
  const [k1, k2] = runScenario('numa-explicit', 2, { memory: '2G', numa: 2 });
  assert.equal(txt(file(k1, 'kho/out/scratch_len')), vecText('numa-explicit/stage1/out/scratch_len'));
  assert.equal(hexLines(txt(file(k1, 'kho/out/scratch_phys'))).length, 4);
  checkPlacement(k1);
  assert.deepEqual(treePaths(debugfsKhoTree(k1)), vecTree('numa-explicit/stage1'));
  assert.deepEqual(treePaths(debugfsKhoTree(k2)), vecTree('numa-explicit/stage2'));
  assert.deepEqual(khoLines(k2.dmesg()), khoLines(vecText('numa-explicit/stage2/dmesg')));
});

test('default-scale: 200 % of the early reservations gives the vectors 164 MiB, 0 and 140 MiB', () => {
  const [k1, k2] = runScenario('default-scale', 2, { memory: '2G' });
  assert.equal(txt(file(k1, 'kho/out/scratch_len')), vecText('default-scale/stage1/out/scratch_len'));
  // global is 0 bytes but still listed with an address
  assert.equal(hexLines(txt(file(k1, 'kho/out/scratch_len')))[1], 0n);
  assert.equal(hexLines(txt(file(k1, 'kho/out/scratch_phys'))).length, 3);
  checkPlacement(k1);
  assert.deepEqual(khoLines(k1.dmesg()), khoLines(vecText('default-scale/stage1/dmesg')));
  assert.deepEqual(khoLines(k2.dmesg()), khoLines(vecText('default-scale/stage2/dmesg')));
  const mb = decodeMemblockFdt(file(k2, 'kho/in/sub_fdts/memblock'));
  const mbVec = decodeMemblockFdt(vecBytes('default-scale/stage2/in/sub_fdts/memblock'));
  assert.deepEqual(
    mb.regions.map((r) => [r.name, r.size]),
    mbVec.regions.map((r) => [r.name, r.size]),
  );
  // reserve_mem=8M:2M: the revived region keeps its 2 MiB alignment and address
  const r = k2.reserveMem.findByName('trace_buf');
  assert.ok(r && r.start % A === 0n && r.start === k1.reserveMem.findByName('trace_buf')?.start);
});

test('bad-scratch: `kho_scratch=16M,64M` is malformed, the default scale applies', () => {
  const [k1] = runScenario('bad-scratch', 1, { memory: '2G' });
  assert.deepEqual(khoLines(k1.dmesg()), khoLines(vecText('bad-scratch/stage1/dmesg')));
  assert.ok(k1.dmesg().includes("Malformed early option 'kho_scratch'"));
  assert.equal(txt(file(k1, 'kho/out/scratch_len')), vecText('bad-scratch/stage1/out/scratch_len'));
  assert.deepEqual(treePaths(debugfsKhoTree(k1)), vecTree('bad-scratch/stage1'));
});

test('kho-off: no /sys/kernel/debug/kho at all, no KHO lines', () => {
  const [k1] = runScenario('kho-off', 1, { memory: '2G' });
  assert.deepEqual(treePaths(debugfsKhoTree(k1)), vecTree('kho-off/stage1'));
  assert.deepEqual(treePaths(debugfsKhoTree(k1)), []);
  assert.deepEqual(khoLines(k1.dmesg()), khoLines(vecText('kho-off/stage1/dmesg')));
});

test('three-hops: counts 1 then 2, kho_test saved, restored, saved again; file sets per stage', () => {
  const ks = runScenario('three-hops', 3, { memory: '2G' });
  ks.forEach((k, i) => {
    const st = `three-hops/stage${i + 1}`;
    assert.deepEqual(treePaths(debugfsKhoTree(k)), vecTree(st), st);
    assert.deepEqual(khoLines(k.dmesg()), khoLines(vecText(`${st}/dmesg`)), st);
    assert.equal(txt(file(k, 'kho/out/scratch_len')), vecText(`${st}/out/scratch_len`));
  });
  assert.deepEqual(
    decodeKexecMetadata(file(ks[2], 'kho/in/sub_fdts/kexec-metadata')),
    decodeKexecMetadata(vecBytes('three-hops/stage3/in/sub_fdts/kexec-metadata')),
  );
  assert.equal(ks[2].kexecCount, 2);
});

test("/proc/iomem: the vectors' format, firmware lines, and the kernel image where the kernel runs", () => {
  const [k1, k2] = runScenario('flat-explicit', 2, { memory: '2G' });
  const lineRe = /^( {2})*[0-9a-f]{8,}-[0-9a-f]{8,} : \S.*$/;
  for (const k of [k1, k2]) {
    const lines = procIomem(k).trimEnd().split('\n');
    for (const l of lines) assert.match(l, lineRe);
  }
  const vec = vecText('flat-explicit/stage1/iomem').split('\n');
  const ours = procIomem(k1).split('\n');
  // the first lines (page 0 reserved, low RAM, EBDA) and the kernel image lines at 16 MiB on a cold boot
  assert.deepEqual(ours.slice(0, 3), vec.slice(0, 3));
  for (const name of ['Kernel code', 'Kernel rodata', 'Kernel data', 'Kernel bss']) {
    const v = vec.find((l) => l.endsWith(`: ${name}`));
    assert.ok(ours.includes(v!), `${name} line as in the vector: ${v}`);
  }
  // after the kexec the kernel runs where kexec put it: inside a scratch area (the vector: global)
  const code = procIomem(k2)
    .split('\n')
    .find((l) => l.endsWith(': Kernel code'))!;
  const start = BigInt(`0x${code.trim().split('-')[0]}`);
  assert.ok(k1.scratch.some((a) => start >= a.addr && start < a.addr + a.size));
});
