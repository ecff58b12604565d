/**
 * The memory map of every real Linux 7.3.4 stage-1 handover (test/vectors/linux-7.3.4/<scenario>/stage1):
 * every preserved block, every tracker page, every scratch area and reserve_mem region is in the map,
 * attributed to the right producer. Oracles, none of them our decoders:
 * - `preserved.json` (an independent decoder's block list) and `meta.json` (radix page count and root);
 * - the debugfs `scratch_phys` / `scratch_len` text, read here line by line;
 * - `fdtget` on the captured blobs: each sub-blob's `preserved-data` in `out/fdt.whole`, reserve_mem's
 *   `start`/`size` in `out/blobs/memblock`, the self-test's `nr_folios` in `out/blobs/kho_test`;
 * - the kernel command line in `dmesg` (`reserve_mem=SIZE:ALIGN:NAME`), the next kernel's `Revived memory
 *   reservation '<name>' from KHO` lines (7.3.4 logs no reserve_mem addresses), `iomem`, dmesg's node lines.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { oracle } from '../../test/helpers/oracle.ts';
import { preservedJson, SCENARIOS, stage1MemoryMap, VECTORS } from '../../test/helpers/vectors.ts';
import { loadHandoverPath } from '../abi/handover.ts';
import { openMemoryImage } from '../abi/memory/open.ts';
import { allRegions, buildMemoryMap } from './model.ts';
import { mapInputFromHandover } from './sources.ts';

/** fdtget -t bx of (node, prop) pairs in one run; each value as little-endian unsigned. */
function fdtgetLe(file: string, pairs: [string, string][]): bigint[] {
  const out = execFileSync('fdtget', ['-t', 'bx', file, ...pairs.flat()], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .map((line) =>
      line
        .trim()
        .split(/\s+/)
        .reduceRight((acc, b) => (acc << 8n) | BigInt(`0x${b}`), 0n),
    );
}
function fdtSubnodes(file: string, node: string): string[] {
  return execFileSync('fdtget', ['-l', file, node], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
}

const SIZE_UNITS: Record<string, bigint> = { K: 1n << 10n, M: 1n << 20n, G: 1n << 30n };

for (const scenario of SCENARIOS) {
  test(`${scenario} stage 1: every preserved block, tracker page, scratch area and reserve_mem region, attributed`, (t) => {
    if (!oracle(t, 'fdtget')) return;
    const d = join(VECTORS, scenario, 'stage1');
    const map = stage1MemoryMap(scenario);
    const regions = allRegions(map);
    const kho = regions.filter((r) => r.lane.startsWith('kho'));

    // Preserved blocks (independent decoder): each exactly once, as a preserved or root-FDT region.
    const preserved = preservedJson(`${scenario}/stage1`);
    const blocks = kho.filter((r) => r.kind === 'preserved' || r.kind === 'kho-fdt');
    assert.equal(blocks.length, preserved.length);
    const byStart = new Map(blocks.map((r) => [r.start, r]));
    for (const [pa, order] of preserved) {
      const r = byStart.get(BigInt(pa));
      assert.ok(r, `block ${pa} is in the map`);
      assert.equal(r.end - r.start, 4096n << BigInt(order), `block ${pa} has order ${order}`);
    }
    assert.equal(map.summary.preservedBlocks, preserved.length);

    // Tracker pages: meta.json's radix page count, the root among them; none is a preserved block.
    const meta = JSON.parse(readFileSync(join(d, 'meta.json'), 'utf8')) as {
      out_root: number;
      radix_pages: number;
      notes?: string[];
    };
    // luo-memfd's capture counts the page it followed from LUO's pointers among its radix pages
    // ("out/LUO: 1 pages captured by pointer closure"): 37 = 36 tree pages + 1.
    const closure = (meta.notes ?? [])
      .map((n) => /(\d+) pages captured by pointer closure/.exec(n))
      .reduce((a, m) => a + (m ? Number(m[1]) : 0), 0);
    const radix = kho.filter((r) => r.kind === 'radix');
    assert.equal(radix.length, meta.radix_pages - closure);
    assert.ok(radix.some((r) => r.start === BigInt(meta.out_root)));
    for (const r of radix) assert.equal(byStart.has(r.start), false);

    // Scratch areas from the debugfs text: lowmem, global, then one per node, each in the map.
    const lines = (f: string) =>
      readFileSync(join(d, 'out', f), 'utf8')
        .trim()
        .split('\n')
        .map(BigInt);
    const phys = lines('scratch_phys');
    const len = lines('scratch_len');
    const scratch = regions.filter((r) => r.kind.startsWith('scratch-'));
    assert.equal(scratch.length, phys.length);
    phys.forEach((p, i) => {
      const kind = i === 0 ? 'scratch-lowmem' : i === 1 ? 'scratch-global' : 'scratch-node';
      const r = scratch.find((s) => s.start === p && s.end === p + len[i]! && s.kind === kind);
      assert.ok(r, `scratch area ${i} [0x${p.toString(16)}, +0x${len[i]!.toString(16)}) as ${kind}`);
      if (i >= 2) assert.equal(r.node, i - 2);
    });

    // Sub-blobs (fdtget on the whole root FDT): the block holding each one is attributed to it.
    const whole = join(d, 'out', 'fdt.whole');
    const names = fdtSubnodes(whole, '/');
    const addrs = fdtgetLe(
      whole,
      names.map((n) => [`/${n}`, 'preserved-data']),
    );
    names.forEach((n, i) => {
      const a = addrs[i]!;
      const r = blocks.find((b) => b.start <= a && a < b.end);
      assert.ok(r, `sub-blob ${n} at 0x${a.toString(16)} is in a preserved block`);
      assert.equal(r.producer, n);
    });

    // reserve_mem (command line for name and size, fdtget of the memblock blob for the address).
    const cmd = /Command line: (.*)/.exec(readFileSync(join(d, 'dmesg'), 'utf8'))![1]!;
    const rm = /reserve_mem=(\d+)([KMG]):(\w+):(\w+)/.exec(cmd);
    const rmRegions = regions.filter((r) => r.kind === 'reserve_mem');
    const memblockBlob = join(d, 'out', 'blobs', 'memblock');
    if (rm && existsSync(memblockBlob)) {
      const name = rm[4]!;
      const size = BigInt(rm[1]!) * SIZE_UNITS[rm[2]!]!;
      const [start, fsize] = fdtgetLe(memblockBlob, [
        [`/${name}`, 'start'],
        [`/${name}`, 'size'],
      ]);
      assert.equal(fsize, size);
      assert.equal(rmRegions.length, 1);
      assert.equal(rmRegions[0]!.start, start);
      assert.equal(rmRegions[0]!.end, start! + size);
      assert.match(rmRegions[0]!.label, new RegExp(name));
      const inside = blocks.filter((b) => b.start >= start! && b.end <= start! + size);
      assert.ok(inside.length > 0);
      for (const b of inside) assert.equal(b.producer, 'memblock');
    } else {
      assert.equal(rmRegions.length, 0);
    }
    // The next kernel's log names what it revived: "Revived memory reservation 'khovec_region' from KHO".
    const next = join(VECTORS, scenario, 'stage2', 'dmesg');
    if (existsSync(next)) {
      const revived = [
        ...readFileSync(next, 'utf8').matchAll(/Revived memory reservation '([^']+)' from KHO/g),
      ].map((m) => `reserve_mem '${m[1]}'`);
      assert.deepEqual(
        rmRegions.map((r) => r.label),
        revived,
      );
    }

    // The self-test's folios: as many as its nr_folios says, all attributed to kho_test.
    const [nr] = fdtgetLe(join(d, 'out', 'blobs', 'kho_test'), [['/data', 'nr_folios']]);
    assert.equal(blocks.filter((b) => b.label.startsWith('kho_test folio ')).length, Number(nr));

    // Only LUO preserves memory none of our decoders attributes (its sessions and memfd folios).
    if (scenario === 'luo-memfd') assert.ok(map.summary.unattributedBlocks > 0);
    else assert.equal(map.summary.unattributedBlocks, 0);
    const attributed = Object.values(map.summary.byProducer).reduce((a, p) => a + p.blocks, 0);
    assert.equal(attributed + map.summary.unattributedBlocks, preserved.length);
  });
}

test('iomem: every top-level and nested line is a region; dmesg gives the NUMA nodes', () => {
  const map = stage1MemoryMap('numa-explicit');
  const regions = allRegions(map);
  const text = readFileSync(join(VECTORS, 'numa-explicit/stage1/iomem'), 'utf8').trim().split('\n');
  const top = text.filter((l) => !l.startsWith(' '));
  const nested = text.filter((l) => /^ {2}\S/.test(l));
  assert.equal(
    regions.filter((r) => r.lane.startsWith('iomem') && !r.lane.startsWith('iomem detail')).length,
    top.length,
  );
  assert.equal(regions.filter((r) => r.lane.startsWith('iomem detail')).length, nested.length);
  // "  01000000-01e34e47 : Kernel code" (end inclusive in /proc/iomem).
  assert.ok(regions.some((r) => r.kind === 'kernel' && r.start === 0x1000000n && r.end === 0x1e34e48n));
  // "00100000-7ffdcfff : System RAM" spans both nodes, so it belongs to none.
  const ram = regions.find((r) => r.kind === 'ram' && r.start === 0x100000n);
  assert.equal(ram?.end, 0x7ffdd000n);
  assert.equal(ram?.node, undefined);
  // "Initmem setup node 1 [mem 0x0000000040000000-0x000000007ffdcfff]"
  assert.deepEqual(map.nodes, [
    { nid: 0, start: 0x1000n, end: 0x40000000n },
    { nid: 1, start: 0x40000000n, end: 0x7ffdd000n },
  ]);
  // The reserve_mem region at 0x7e400000 is in node 1.
  assert.equal(regions.find((r) => r.kind === 'reserve_mem')?.node, 1);
});

test('without a memory image the map still shows scratch and says preserved memory needs --memory', () => {
  const d = join(VECTORS, 'flat-explicit/stage1');
  const map = buildMemoryMap(mapInputFromHandover(loadHandoverPath(join(d, 'out'))));
  assert.equal(allRegions(map).filter((r) => r.kind.startsWith('scratch-')).length, 3);
  assert.equal(map.summary.preservedBlocks, 0);
  assert.ok(map.notes.some((n) => /--memory/.test(n)));
});

test('after the kexec (stage 2): in/ says why preserved memory is not shown; out/ says there is no out/fdt', () => {
  const d = join(VECTORS, 'flat-explicit/stage2');
  const mem = openMemoryImage(join(d, 'mem'));
  try {
    const inMap = buildMemoryMap(
      mapInputFromHandover(loadHandoverPath(join(d, 'in'), { memory: mem }), { memory: mem }),
    );
    assert.equal(inMap.summary.preservedBlocks, 0);
    assert.ok(inMap.notes.some((n) => /consumed at boot/.test(n)));
    const outMap = buildMemoryMap(
      mapInputFromHandover(loadHandoverPath(join(d, 'out'), { memory: mem }), { memory: mem }),
    );
    assert.ok(outMap.notes.some((n) => /no out\/fdt/.test(n)));
    // The scratch areas are still listed by out/ (scratch_phys lines: 0x7c000000, 0x78000000, 0x76000000).
    assert.deepEqual(
      allRegions(outMap)
        .filter((r) => r.kind.startsWith('scratch-'))
        .map((r) => r.start)
        .sort((a, b) => (a < b ? -1 : 1)),
      [0x76000000n, 0x78000000n, 0x7c000000n],
    );
  } finally {
    mem.close();
  }
});
