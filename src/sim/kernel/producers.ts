/**
 * KHO producers of the simulated kernel, and the API for users' own producers.
 *
 * Contract:
 * - A producer is `{ name, level?, config?, onBoot?(ctx), onRestore?(ctx, sub) }`. The kernel runs every
 *   producer at its initcall level (`fs` < `device` (default, = module_init) < `late`), only when KHO is
 *   enabled and the producer's Kconfig option (if any) is set. If the incoming handover has a sub-tree
 *   named `name` and the producer has `onRestore`, that runs (it restores what it needs through
 *   `ctx.kho` and may preserve again); otherwise `onBoot`. A `KhoError` thrown by a producer is logged
 *   as a failed initcall (`initcall <name> returned -N`) and the boot goes on, as in the kernel.
 * - Built in (Linux 7.3 behaviour, spec §5, §6, §8.1):
 *   - `kexec-metadata` (in `kho_init`, not a producer object): `kexecMetadataIn` reads and checks the
 *     incoming blob with `acceptKexecMetadata` (its warnings verbatim) and returns the incoming count;
 *     `kexecMetadataOut` writes a 73-byte blob with count + 1 into `kho_alloc_preserve(73)` and adds it.
 *   - `reserve_mem` (memblock sub-FDT): `reserveMemRevive` is the `reserve_mem=` handler's KHO hook
 *     (`Revived memory reservation '<name>' from KHO`); `reserveMemProducer` is `reserve_mem_init`
 *     (late_initcall): one page, preserved, holding `encodeMemblockFdt(regions)`, added as `memblock`,
 *     then every region preserved with `kho_preserve_pages`.
 *   - `kho_test` (CONFIG_TEST_KEXEC_HANDOVER, `lib/test_kho.c`): random-order folios up to `max_mem`
 *     (8 MiB with 4 KiB pages), filled from a deterministic PRNG, a 32-bit ones'-complement checksum
 *     (the kernel's unfolded `__wsum` of csum_partial, our own implementation), the folio list in a
 *     preserved vmalloc area, and its sub-FDT (`compatible` with its NUL as a raw property, `magic`,
 *     `/data` with `nr_folios`, `folios_info`, `csum`) built with the sequential-write calls in that
 *     order. After kexec it restores and checks everything and logs `test_kho: KHO restore succeeded`
 *     (or `test_kho: KHO restore failed`).
 */
import {
  acceptKexecMetadata,
  encodeKexecMetadata,
  KEXEC_METADATA_SIZE,
  KHO_METADATA_NODE_NAME,
} from '../../abi/kexec-metadata.ts';
import { decodeKhoTestFdt, KHO_TEST_COMPAT, KHO_TEST_FDT, KHO_TEST_MAGIC } from '../../abi/kho-test.ts';
import {
  decodeMemblockFdt,
  encodeMemblockFdt,
  MEMBLOCK_KHO_FDT,
  type MemblockFdt,
  reviveReserveMem,
} from '../../abi/memblock.ts';
import { encodeKhoVmalloc } from '../../abi/vmalloc.ts';
import { KhoError } from '../../errors.ts';
import { FdtSw } from '../../fdt/write-sw.ts';
import { errnoOf, getOrder, type KhoCore, type KhoSubtreeInfo } from './kho.ts';
import type { ReserveMemEntry } from './memblock.ts';
import type { KernelLog } from './printk.ts';

export type InitcallLevel = 'fs' | 'device' | 'late';
export const INITCALL_ORDER: readonly InitcallLevel[] = ['fs', 'device', 'late'];

export type KernelConfig = Readonly<Record<string, boolean | string | number>>;

/** What a producer sees of the running kernel. */
export interface ProducerContext {
  readonly kho: KhoCore;
  readonly log: KernelLog;
  /** `uname -r`. */
  readonly release: string;
  readonly config: KernelConfig;
  /** The `reserve_mem=` table. */
  readonly reserveMem: readonly ReserveMemEntry[];
  /** Deterministic 32-bit random numbers (seeded per boot). */
  random(): number;
  /** State a producer keeps for later steps of this kernel (e.g. what it preserved), by producer name. */
  readonly state: Map<string, unknown>;
}

export interface KhoProducer {
  /** Sub-tree name (also the debugfs file name). */
  name: string;
  level?: InitcallLevel;
  /** Kconfig option that must be set for the producer to run. */
  config?: string;
  onBoot?(ctx: ProducerContext): void;
  onRestore?(ctx: ProducerContext, sub: KhoSubtreeInfo): void;
}

/** Run one producer as its initcall would. */
export function runProducer(p: KhoProducer, ctx: ProducerContext): void {
  if (!ctx.kho.enabled) return;
  if (p.config !== undefined && !ctx.config[p.config]) return;
  let sub: KhoSubtreeInfo | undefined;
  try {
    if (ctx.kho.incoming) sub = ctx.kho.retrieveSubtree(p.name);
  } catch (e) {
    if (!(e instanceof KhoError)) throw e;
    if (errnoOf(e) !== -2) {
      ctx.log.warn(`${p.name}: failed to retrieve ${p.name} FDT: ${errnoOf(e) ?? -22}`);
      return;
    }
  }
  try {
    if (sub && p.onRestore) p.onRestore(ctx, sub);
    else p.onBoot?.(ctx);
  } catch (e) {
    if (!(e instanceof KhoError)) throw e;
    ctx.log.warn(`initcall ${p.name} returned ${errnoOf(e) ?? -22}: ${e.message}`);
  }
}

// ---- kexec metadata (inside kho_init) ----

/** `kho_in_kexec_metadata()`: the incoming count (0 when absent or rejected); logs what the kernel logs. */
export function kexecMetadataIn(kho: KhoCore, log: KernelLog): number {
  if (!kho.incoming || !kho.profile.hasKexecMetadata) return 0;
  let sub: KhoSubtreeInfo;
  try {
    sub = kho.retrieveSubtree(KHO_METADATA_NODE_NAME);
  } catch (e) {
    if (e instanceof KhoError) return 0;
    throw e;
  }
  if (sub.size > 1n << 20n || !kho.phys.has(sub.phys, sub.size)) return 0;
  const blob = kho.machine.memory.read(sub.phys, Number(sub.size));
  const r = acceptKexecMetadata(blob, kho.profile.endian);
  if (r.warning) log.warn(r.warning);
  if (!r.accepted || !r.metadata) return 0;
  log.info(r.logLine!);
  return r.metadata.kexecCount;
}

/** `kho_out_kexec_metadata()`: returns the blob's address. Throws (and frees) when the add fails. */
export function kexecMetadataOut(kho: KhoCore, release: string, count: number): bigint {
  const pa = kho.allocPreserve(KEXEC_METADATA_SIZE);
  kho.machine.memory.write(
    pa,
    encodeKexecMetadata({ previousRelease: release, kexecCount: count >>> 0 }, kho.profile.endian),
  );
  try {
    kho.addSubtree(KHO_METADATA_NODE_NAME, pa, BigInt(KEXEC_METADATA_SIZE));
  } catch (e) {
    kho.unpreserveFree(pa);
    throw e;
  }
  return pa;
}

// ---- reserve_mem ----

/**
 * The `reserve_mem=` handler's KHO part (`reserve_mem_kho_revive`): the region's start when the
 * incoming memblock FDT has a matching node, else undefined (allocate afresh). Logs as the kernel.
 */
export function reserveMemRevive(
  kho: KhoCore,
  log: KernelLog,
  cache: { fdt?: MemblockFdt | null },
  name: string,
  size: bigint,
  align: bigint,
): bigint | undefined {
  if (cache.fdt === undefined) {
    cache.fdt = null;
    let sub: KhoSubtreeInfo | undefined;
    try {
      if (kho.incoming) sub = kho.retrieveSubtree(MEMBLOCK_KHO_FDT);
    } catch (e) {
      if (!(e instanceof KhoError)) throw e;
      if (errnoOf(e) !== -2)
        log.warn(`KHO: failed to retrieve FDT '${MEMBLOCK_KHO_FDT}' from KHO: ${errnoOf(e)}`);
    }
    if (sub) {
      try {
        const bytes = kho.machine.memory.read(sub.phys, Math.min(Number(sub.size), Number(kho.pageSize)));
        cache.fdt = decodeMemblockFdt(bytes, kho.profile);
      } catch (e) {
        if (!(e instanceof KhoError)) throw e;
        log.warn(`KHO: FDT '${MEMBLOCK_KHO_FDT}' is invalid: ${e.message}`);
      }
    }
  }
  if (!cache.fdt) return undefined;
  const r = reviveReserveMem(cache.fdt, name, size, align);
  if (r.revived) {
    log.info(r.log);
    return r.region!.start;
  }
  log.warn(r.log);
  return undefined;
}

/** `reserve_mem_init()` (late_initcall): the memblock sub-FDT and every region preserved. */
export const reserveMemProducer: KhoProducer = {
  name: MEMBLOCK_KHO_FDT,
  level: 'late',
  // The incoming blob stays reserved; the outgoing one is built afresh either way.
  onRestore(ctx) {
    prepareMemblock(ctx);
  },
  onBoot(ctx) {
    prepareMemblock(ctx);
  },
};

function prepareMemblock(ctx: ProducerContext): void {
  const regions = ctx.reserveMem.filter((e) => e.size !== 0n);
  if (regions.length === 0) return;
  const kho = ctx.kho;
  const done: (() => void)[] = [];
  try {
    const page = kho.allocPages(0);
    done.push(() => kho.freePages(page, 0));
    kho.preservePages(page, 1);
    done.push(() => kho.unpreservePages(page, 1));
    const fdt = encodeMemblockFdt(
      regions.map((r) => ({ name: r.name, start: r.start, size: r.size })),
      kho.profile,
    );
    kho.machine.memory.write(page, fdt);
    kho.addSubtree(MEMBLOCK_KHO_FDT, page, BigInt(fdt.length));
    done.push(() => kho.removeSubtree(page));
    for (const r of regions) {
      const nr = Number(r.size / kho.pageSize);
      kho.preservePages(r.start, nr);
      done.push(() => kho.unpreservePages(r.start, nr));
    }
  } catch (e) {
    if (!(e instanceof KhoError)) throw e;
    for (const undo of done.reverse()) undo();
    ctx.log.err(`failed to prepare memblock FDT for KHO: ${errnoOf(e) ?? -22}`);
  }
}

// ---- kho_test ----

/** The self-test's checksum: 32-bit ones'-complement sum of little-endian u32 words (unfolded). */
export function csumPartial(data: Uint8Array, sum: number): number {
  let s = sum >>> 0;
  const n = data.length & ~3;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < n; i += 4) {
    s += dv.getUint32(i, true);
    if (s > 0xffffffff) s -= 0xffffffff;
  }
  let tail = 0;
  for (let i = n; i < data.length; i++) tail |= data[i] << (8 * (i - n));
  if (data.length > n) {
    s += tail;
    if (s > 0xffffffff) s -= 0xffffffff;
  }
  return s >>> 0;
}

/** `max_mem` default: `(PAGE_SIZE << MAX_PAGE_ORDER) * 2`. */
export function khoTestMaxMem(pageSize: number, maxPageOrder: number): number {
  return pageSize * 2 ** maxPageOrder * 2;
}

interface KhoTestState {
  folios: { pa: bigint; order: number }[];
  fdt: bigint;
  csum: number;
}

function fillRandom(ctx: ProducerContext, pa: bigint, bytes: number): Uint8Array {
  const buf = new Uint8Array(bytes);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < bytes; i += 4) dv.setUint32(i, ctx.random(), true);
  ctx.kho.machine.memory.write(pa, buf);
  return buf;
}

function khoTestSave(ctx: ProducerContext): void {
  const kho = ctx.kho;
  const spec = kho.machine.spec;
  const ps = spec.pageSize;
  const maxMem = khoTestMaxMem(ps, spec.maxPageOrder);
  const folios: { pa: bigint; order: number }[] = [];
  let csum = 0;
  let left = maxMem;
  try {
    while (left > 0) {
      let order = ctx.random() % (spec.maxPageOrder + 1);
      while (ps * 2 ** order > left) order--;
      const pa = kho.allocPages(order);
      folios.push({ pa, order });
      csum = csumPartial(fillRandom(ctx, pa, ps * 2 ** order), csum);
      left -= ps * 2 ** order;
    }
    const nr = folios.length;
    const fdtSize = nr * 8 + ps;
    const fdtOrder = getOrder(BigInt(fdtSize), BigInt(ps));
    const fdtPa = kho.allocPages(fdtOrder);
    kho.preserveFolio(fdtPa, fdtOrder);
    const info = new Uint8Array(nr * 8);
    const idv = new DataView(info.buffer);
    folios.forEach((f, i) =>
      idv.setBigUint64(i * 8, f.pa | BigInt(f.order), kho.profile.endian === 'little'),
    );
    const area = kho.vmalloc(info.length);
    kho.writeVmalloc(area, info);
    const desc = kho.preserveVmalloc(area);
    for (const f of folios) kho.preserveFolio(f.pa, f.order);
    const le = kho.profile.endian === 'little';
    const u32 = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, v >>> 0, le);
      return b;
    };
    const sw = FdtSw.create(fdtSize);
    sw.finishReservemap();
    sw.beginNode('');
    sw.property('compatible', new TextEncoder().encode(`${KHO_TEST_COMPAT}\0`));
    sw.property('magic', u32(KHO_TEST_MAGIC));
    sw.beginNode('data');
    sw.property('nr_folios', u32(nr));
    sw.property('folios_info', encodeKhoVmalloc(desc, kho.profile.endian));
    sw.property('csum', u32(csum));
    sw.endNode();
    sw.endNode();
    sw.finish();
    const blob = sw.blob();
    kho.machine.memory.write(fdtPa, blob);
    kho.addSubtree(KHO_TEST_FDT, fdtPa, BigInt(blob.length));
    ctx.state.set(KHO_TEST_FDT, { folios, fdt: fdtPa, csum } satisfies KhoTestState);
  } catch (e) {
    if (e instanceof KhoError) ctx.log.err(`test_kho: KHO test failed: ${errnoOf(e) ?? e.code}`);
    throw e;
  }
}

function khoTestRestore(ctx: ProducerContext, sub: KhoSubtreeInfo): boolean {
  const kho = ctx.kho;
  const fail = (why: string): false => {
    ctx.log.err(`test_kho: KHO restore failed: ${why}`);
    return false;
  };
  let t: ReturnType<typeof decodeKhoTestFdt>;
  try {
    const len = Math.min(Number(sub.size), 1 << 24);
    t = decodeKhoTestFdt(kho.machine.memory.read(sub.phys, len), kho.profile);
  } catch (e) {
    if (!(e instanceof KhoError)) throw e;
    return fail(e.message);
  }
  if (t.findings.length > 0 || t.foliosInfo === undefined || t.nrFolios === undefined)
    return fail(t.findings[0]?.message ?? 'incomplete FDT');
  const area = kho.restoreVmalloc(t.foliosInfo);
  if (!area) return fail('kho_restore_vmalloc');
  const nr = t.nrFolios;
  if (nr * 8 > area.size) return fail('folios_info shorter than nr_folios');
  const info = kho.readVmalloc(area, nr * 8);
  const dv = new DataView(info.buffer);
  let csum = 0;
  const ps = kho.pageSize;
  for (let i = 0; i < nr; i++) {
    const v = dv.getBigUint64(i * 8, kho.profile.endian === 'little');
    const order = Number(v & (ps - 1n));
    const pa = v & ~(ps - 1n);
    const f = kho.restoreFolio(pa);
    if (!f || f.order !== order) return fail(`folio ${i} at 0x${pa.toString(16)}`);
    csum = csumPartial(kho.machine.memory.read(f.pa, Number(ps << BigInt(order))), csum);
    kho.freePages(f.pa, f.order);
  }
  for (const b of area.blocks) kho.freePages(b, area.order);
  if (csum !== t.csum) return fail(`checksum 0x${csum.toString(16)} != 0x${t.csum?.toString(16)}`);
  ctx.log.info('test_kho: KHO restore succeeded');
  return true;
}

/** `lib/test_kho.c` (module_init). */
export const khoTestProducer: KhoProducer = {
  name: KHO_TEST_FDT,
  level: 'device',
  config: 'CONFIG_TEST_KEXEC_HANDOVER',
  onBoot: khoTestSave,
  onRestore: khoTestRestore,
};

/** The built-in producers a kernel runs (each gated by its own condition). */
export const BUILTIN_PRODUCERS: readonly KhoProducer[] = [khoTestProducer, reserveMemProducer];
