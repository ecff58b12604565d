/**
 * Simulator benchmark: KHO kexec hops per second, and the memory cost of a 1 TiB machine.
 *
 * `node --import tsx bench/kexec.bench.ts [--hops N] [--folios N]`
 *
 * 1. Hops/s: a 4 GiB x86_64 machine, `kho=on kho_scratch=64M,256M,128M`, the vectors' kernel without the
 *    self-test, and a producer that owns 10 000 order-0 folios: on a cold boot it allocates, fills and
 *    preserves them; after each kexec it restores every one (checking the first word) and preserves it
 *    again, so the state really is carried hop after hop. A hop = `kexecLoad(-s)` + `kexecExec()` (the
 *    whole next boot: populate, map walk of 10 000 blocks, buddy, kho_init, producers). Timed after
 *    `--warmup` hops (default 30: the JIT and the heap settle over the first ~20 hops; the warm-up's
 *    own rate is reported too); timed without the invariant checker (plain `kexecExec`) and with it
 *    (`kexecChecked`: invariants on both sides, preserved pages snapshotted and compared). The time
 *    inside the producer's restore + re-preserve loop is reported apart from the rest of the hop.
 * 2. Memory: RSS growth (after GC) for `Machine.create({ memory: '1T' })` alone, then with a kernel booted
 *    on it (memblock, buddy free lists, KHO state). Run with `--expose-gc` for exact numbers (the script
 *    re-executes itself with it when missing).
 * Prints a small table and writes bench/kexec-results.json.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kexecChecked } from '../src/sim/kernel/invariants.ts';
import {
  DEFAULT_IMAGE,
  Kernel,
  type KernelImageSpec,
  VECTOR_KERNEL_CONFIG,
} from '../src/sim/kernel/kernel.ts';
import type { KhoProducer } from '../src/sim/kernel/producers.ts';
import { Machine } from '../src/sim/machine/machine.ts';

const here = fileURLToPath(import.meta.url);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', here, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(0);
}

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const HOPS = arg('--hops', 200);
const FOLIOS = arg('--folios', 10_000);
const WARMUP = arg('--warmup', 30);
/** Milliseconds spent inside the producer's onRestore (restore, check, re-preserve, save). */
let producerMs = 0;
const IMAGE: KernelImageSpec = {
  ...DEFAULT_IMAGE,
  config: { ...VECTOR_KERNEL_CONFIG, CONFIG_TEST_KEXEC_HANDOVER: false },
};
const CMD = 'kho=on kho_scratch=64M,256M,128M';

/** 10 000 folios carried forever; the list of addresses is a preserved vmalloc-free blob of u64s. */
function folioProducer(n: number): KhoProducer {
  const save = (kho: Parameters<NonNullable<KhoProducer['onBoot']>>[0]['kho'], pas: bigint[]) => {
    const list = new Uint8Array(n * 8);
    const dv = new DataView(list.buffer);
    pas.forEach((pa, i) => dv.setBigUint64(i * 8, pa, true));
    const order = Math.ceil(Math.log2(Math.ceil(list.length / 4096)));
    const blob = kho.allocPages(order);
    kho.machine.memory.write(blob, list);
    kho.preserveFolio(blob, order);
    kho.addSubtree('bench', blob, BigInt(list.length));
  };
  return {
    name: 'bench',
    onBoot(ctx) {
      const pas: bigint[] = [];
      const word = new Uint8Array(8);
      for (let i = 0; i < n; i++) {
        const pa = ctx.kho.allocPages(0);
        new DataView(word.buffer).setBigUint64(0, pa, true);
        ctx.kho.machine.memory.write(pa, word);
        ctx.kho.preserveFolio(pa, 0);
        pas.push(pa);
      }
      save(ctx.kho, pas);
    },
    onRestore(ctx, sub) {
      const t0 = performance.now();
      const kho = ctx.kho;
      const list = kho.machine.memory.read(sub.phys, Number(sub.size));
      const dv = new DataView(list.buffer);
      const pas: bigint[] = [];
      for (let i = 0; i < n; i++) {
        const pa = dv.getBigUint64(i * 8, true);
        const f = kho.restoreFolio(pa);
        if (!f) throw new Error(`folio ${i} lost`);
        if (kho.machine.memory.readU64(pa) !== pa) throw new Error(`folio ${i} changed`);
        kho.preserveFolio(pa, 0);
        pas.push(pa);
      }
      save(kho, pas);
      producerMs += performance.now() - t0;
    },
  };
}

interface HopTiming {
  hopsPerSec: number;
  msPerHop: number;
  /** Of msPerHop: the producer's restore + re-preserve of every folio (and its list blob). */
  producerMsPerHop: number;
  /** Of msPerHop: the rest (kexec load, handover, clobber, the whole next boot, checker). */
  kernelMsPerHop: number;
  /** The warm-up hops' own rate. */
  warmupHopsPerSec: number;
}

function hops(checked: boolean): HopTiming {
  let k = Kernel.boot(Machine.create({ memory: '4G' }), {
    image: IMAGE,
    cmdline: CMD,
    producers: [folioProducer(FOLIOS)],
  });
  const hop = () => {
    k.kexecLoad({ image: k.image, cmdline: CMD, fileLoad: true });
    k = checked ? kexecChecked(k).next : k.kexecExec();
    if (k.kexecCount < 1) throw new Error('handover lost');
  };
  const w0 = process.hrtime.bigint();
  for (let i = 0; i < WARMUP; i++) hop();
  const wns = Number(process.hrtime.bigint() - w0);
  producerMs = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < HOPS; i++) hop();
  const ns = Number(process.hrtime.bigint() - t0);
  const msPerHop = ns / 1e6 / HOPS;
  return {
    hopsPerSec: (HOPS * 1e9) / ns,
    msPerHop,
    producerMsPerHop: producerMs / HOPS,
    kernelMsPerHop: msPerHop - producerMs / HOPS,
    warmupHopsPerSec: WARMUP > 0 ? (WARMUP * 1e9) / wns : 0,
  };
}

function mem(): { rss: number; heap: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { rss: m.rss / 2 ** 20, heap: (m.heapUsed + m.arrayBuffers) / 2 ** 20 };
}

// memory first, in a fresh heap
const base = mem();
const m = Machine.create({ memory: '1T' });
const afterMachine = mem();
const k = Kernel.boot(m, { image: IMAGE, cmdline: 'kho=on kho_scratch=1G,4G,1G' });
const afterKernel = mem();
const machineOnly = afterMachine.rss - base.rss;
const withKernel = afterKernel.rss - base.rss;
const plain = hops(false);
const checked = hops(true);
const results = {
  date: new Date().toISOString(),
  node: process.version,
  kexec: {
    machine: '4G',
    folios: FOLIOS,
    hops: HOPS,
    warmupHops: WARMUP,
    plain,
    checked,
    target: '>= 1000 hops/s',
  },
  memory1T: {
    machineOnlyMiB: machineOnly,
    withKernelMiB: withKernel,
    heapMachineOnlyMiB: afterMachine.heap - base.heap,
    heapWithKernelMiB: afterKernel.heap - base.heap,
    rssTotalMiB: afterKernel.rss,
    freeBlocks: k.buddy.freeBlockCount,
    target: '< 256 MiB',
  },
};
console.log(`kexec hops (4 GiB, ${FOLIOS} folios restored and re-preserved per hop):`);
const row = (name: string, t: HopTiming) =>
  console.log(
    `  ${name.padEnd(17)} ${t.hopsPerSec.toFixed(1)} hops/s (${t.msPerHop.toFixed(2)} ms/hop: producer ${t.producerMsPerHop.toFixed(2)}, kernel ${t.kernelMsPerHop.toFixed(2)}); warm-up ${t.warmupHopsPerSec.toFixed(1)} hops/s`,
  );
row('plain:', plain);
row('with invariants:', checked);
console.log('1 TiB machine model, RSS growth after GC:');
console.log(
  `  machine only:     ${machineOnly.toFixed(1)} MiB RSS, ${(afterMachine.heap - base.heap).toFixed(1)} MiB heap`,
);
console.log(
  `  + booted kernel:  ${withKernel.toFixed(1)} MiB RSS, ${(afterKernel.heap - base.heap).toFixed(1)} MiB heap (${k.buddy.freeBlockCount} free buddy blocks); process RSS ${afterKernel.rss.toFixed(0)} MiB`,
);
writeFileSync(new URL('./kexec-results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
