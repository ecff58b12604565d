import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isKhoError } from '../../errors.ts';
import { formatE820, formatIomem } from './firmware.ts';
import { Machine } from './machine.ts';
import { parseSize, resolveMachineSpec } from './spec.ts';

const VEC = new URL('../../../test/vectors/linux-7.3.4/', import.meta.url);
const vec = (p: string) => readFileSync(new URL(p, VEC), 'utf8');
const msgs = (dmesg: string) => dmesg.split('\n').map((l) => l.replace(/^\[[ \d.]+\] /, ''));

test('spec: sizes and derived constants', () => {
  assert.equal(parseSize('8G'), 8n << 30n);
  assert.equal(parseSize('512m'), 512n << 20n);
  assert.equal(parseSize('2GiB'), 2n << 30n);
  assert.equal(parseSize('4096'), 4096n);
  const x = resolveMachineSpec({ memory: '2G' });
  assert.deepEqual(
    [x.arch, x.pageSize, x.maxPageOrder, x.pageblockOrder, x.cmaMinAlignment, x.archLowAddressLimit],
    ['x86_64', 4096, 10, 9, 2n << 20n, 0xffffffffn],
  );
  const a16 = resolveMachineSpec({ memory: '4G', arch: 'arm64', pageSize: '16K' });
  assert.equal(a16.cmaMinAlignment, 32n << 20n); // 16 KiB << 11
  const a64 = resolveMachineSpec({ memory: '4G', arch: 'arm64', pageSize: 65536 });
  assert.equal(a64.cmaMinAlignment, 512n << 20n); // 64 KiB << 13
  assert.equal(a64.archLowAddressLimit, 0xffffffffn); // RAM [1G, 5G): DMA zone ends at 4 GiB
  // RAM [1G, 3G): the DMA zone ends with DRAM, so the limit is 3 GiB - 1
  assert.equal(resolveMachineSpec({ memory: '2G', arch: 'arm64' }).archLowAddressLimit, 0xbfffffffn);
});

test('spec: invalid machines are refused with SIM_BAD_SPEC naming the field', () => {
  const cases: [object, string][] = [
    [{ memory: '2G', pageSize: '16K' }, 'pageSize'], // 16K is arm64-only
    [{ memory: 'lots' }, 'memory'],
    [{ memory: '1M' }, 'memory'],
    [{ memory: '128T' }, 'memory'],
    [{ memory: (64 << 20) + 100 }, 'memory'],
    [{ memory: '2G', numa: 0 }, 'numa'],
    [{ memory: '2G', numa: 65 }, 'numa'],
    [{ memory: '64M', numa: 8 }, 'numa'],
    [{ memory: '2G', arch: 'riscv' }, 'arch'],
    [{ memory: '2G', numa: 1.5 }, 'numa'],
  ];
  for (const [input, field] of cases)
    assert.throws(
      () => resolveMachineSpec(input as never),
      (e) => isKhoError(e, 'SIM_BAD_SPEC') && e.path === field,
      JSON.stringify(input),
    );
});

test('2 GiB QEMU pc: the firmware e820 listing equals the vectors', () => {
  const m = Machine.create({ memory: '2G' });
  const lines = msgs(vec('flat-explicit/stage1/dmesg')).filter((l) => l.startsWith('BIOS-e820: '));
  assert.deepEqual(formatE820(m.layout.firmwareMap), lines);
});

test('2 GiB QEMU pc: /proc/iomem RAM and reserved lines equal the vectors', () => {
  const m = Machine.create({ memory: '2G' });
  const top = vec('flat-explicit/stage1/iomem')
    .split('\n')
    .filter((l) => /^[0-9a-f]+-[0-9a-f]+ : (System RAM|Reserved)$/.test(l));
  assert.deepEqual(formatIomem(m.layout.kernelMap), top);
});

test('memblock memory ranges per node equal the kernel\'s "Early memory node ranges" (flat and 2-node)', () => {
  for (const [scenario, numa] of [
    ['flat-explicit', 1],
    ['numa-explicit', 2],
  ] as const) {
    const m = Machine.create({ memory: '2G', numa });
    const expect = msgs(vec(`${scenario}/stage1/dmesg`))
      .map((l) => /^ {2}node +(\d+): \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\]$/.exec(l))
      .filter((x) => x !== null)
      .map((x) => ({ start: BigInt(`0x${x[2]}`), end: BigInt(`0x${x[3]}`) + 1n, nid: Number(x[1]) }));
    assert.equal(expect.length, numa === 1 ? 2 : 3);
    assert.deepEqual(m.ram, expect);
  }
});

test('2-node machine: node ranges match the SRAT (node 0 from 0, node 1 [1G, 2G))', () => {
  const m = Machine.create({ memory: '2G', numa: 2 });
  const srat = msgs(vec('numa-explicit/stage1/dmesg')).filter((l) => l.startsWith('ACPI: SRAT: Node 1 '));
  assert.deepEqual(srat, ['ACPI: SRAT: Node 1 PXM 1 [mem 0x40000000-0x7fffffff]']);
  assert.deepEqual(
    m.nodes.map((n) => [n.nid, n.start, n.end]),
    [
      [0, 0n, 0x40000000n],
      [1, 0x40000000n, 0x80000000n],
    ],
  );
  assert.equal(m.nodeOf(0x3fffffffn), 0);
  assert.equal(m.nodeOf(0x40000000n), 1);
});

test('8 GiB pc: 3 GiB below 4 GiB and 5 GiB from 4 GiB (QEMU pc gigabyte alignment)', () => {
  const m = Machine.create({ memory: '8G' });
  const ram = m.layout.firmwareMap.filter((r) => r.type === 'ram');
  assert.deepEqual(
    ram.map((r) => [r.start, r.end]),
    [
      [0n, 0x9fc00n],
      [0x100000n, 0xc0000000n - 0x23000n],
      [1n << 32n, (1n << 32n) + (5n << 30n)],
    ],
  );
  assert.equal(m.layout.ramTop, (1n << 32n) + (5n << 30n));
});

test('1 TiB pc: RAM above 4 GiB moves to 1 TiB because it would reach the HT window', () => {
  const m = Machine.create({ memory: '1T', numa: 4 });
  const hi = m.layout.firmwareMap.filter((r) => r.type === 'ram').at(-1)!;
  assert.equal(hi.start, 1n << 40n);
  assert.equal(hi.end, (1n << 40n) + (1n << 40n) - (3n << 30n));
  // every node range holds its share of RAM
  assert.equal(
    m.nodes.reduce((a, n) => a + n.ramBytes, 0n),
    1n << 40n,
  );
  assert.equal(m.memory.residentPages, 0);
});

test('arm64 virt: RAM at 1 GiB, one /memory node per NUMA node', () => {
  const m = Machine.create({ memory: '4G', arch: 'arm64', numa: 2, pageSize: '64K' });
  assert.deepEqual(m.layout.dtMemory, [
    { name: 'memory@40000000', base: 0x40000000n, size: 2n << 30n, numaNodeId: 0 },
    { name: 'memory@c0000000', base: 0xc0000000n, size: 2n << 30n, numaNodeId: 1 },
  ]);
  assert.deepEqual(
    m.ram.map((r) => [r.start, r.end, r.nid]),
    [
      [0x40000000n, 0xc0000000n, 0],
      [0xc0000000n, 0x140000000n, 1],
    ],
  );
});

test('power cycle loses memory contents; a warm path (no power cycle) keeps them', () => {
  const m = Machine.create({ memory: '2G' });
  m.memory.write(0x1000000n, Buffer.from('preserved'));
  assert.equal(Buffer.from(m.memory.read(0x1000000n, 9)).toString(), 'preserved');
  m.powerCycle();
  assert.equal(m.powerCycles, 1);
  assert.deepEqual(m.memory.read(0x1000000n, 9), new Uint8Array(9));
  assert.throws(
    () => m.memory.write(m.layout.ramTop, Uint8Array.of(1)),
    (e) => isKhoError(e, 'SIM_BAD_ADDRESS'),
  );
  assert.ok(m.isRam(0x100000n, 0x1000n));
  assert.ok(!m.isRam(0xa0000n, 0x1000n));
  assert.ok(!m.isRam(0x7ffdc000n, 0x2000n)); // runs into the SeaBIOS reserved range
  const two = Machine.create({ memory: '2G', numa: 2 });
  assert.ok(two.isRam(0x3ffff000n, 0x2000n)); // crosses the node boundary: still RAM
});
