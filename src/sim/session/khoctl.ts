/**
 * `khoctl`: a small user producer driven from the shell, so a person can preserve state by hand and see
 * it come back after a kexec.
 *
 * Contract:
 * - `khoctlProducer` is a `KhoProducer` named `khoctl` (its sub-blob name). Its state, per kernel, is a
 *   list of named regions, each one folio (`2^order` pages, at most PAGE_SIZE << MAX_PAGE_ORDER) that is
 *   preserved with `kho_preserve_folio` and described in a sub-FDT: root `compatible = "kho-sim,khoctl-v1"`,
 *   one child node per region (node name = region name) with `phys` (u64), `size` (u64) and `order` (u32),
 *   big-endian as FDT cells are. The sub-FDT is rewritten (a fresh preserved page) whenever the list changes.
 * - On a KHO boot whose handover has a `khoctl` sub-tree, `onRestore` decodes it, restores every region's
 *   folio (`kho_restore_folio`: refused memory is logged by the kernel and the region is dropped with a
 *   `khoctl: region '<name>' lost` error line), leaves the incoming sub-FDT page as it is (reserved, so
 *   debugfs `in/sub_fdts/khoctl` keeps showing it), preserves the regions
 *   again and writes a new sub-FDT, so they survive any number of kexecs. It logs
 *   `khoctl: restored N region(s) from KHO`.
 * - `khoctlCommand(getKernel)` is the shell command: `preserve NAME SIZE`, `write NAME OFFSET TEXT`,
 *   `read NAME [OFFSET [LEN]]` (raw bytes, for `| sha256sum` or `| xxd`), `show`, `unpreserve NAME`.
 *   Kernel errors (`-EINVAL`, `-ENOMEM`) are printed as `khoctl: <message>` with status 1.
 */
import { createHash } from 'node:crypto';
import { KhoError } from '../../errors.ts';
import { parseFdt } from '../../fdt/reader.ts';
import { FdtSw } from '../../fdt/write-sw.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { getOrder, type KhoCore, type KhoSubtreeInfo } from '../kernel/kho.ts';
import type { KhoProducer, ProducerContext } from '../kernel/producers.ts';
import type { CommandHandler } from '../shell/engine.ts';

export const KHOCTL_NAME = 'khoctl';
export const KHOCTL_COMPATIBLE = 'kho-sim,khoctl-v1';
/** Region names: what an FDT node name may hold, short. */
export const KHOCTL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.,+-]{0,30}$/;

export interface KhoctlRegion {
  name: string;
  phys: bigint;
  /** Bytes asked for (the folio is `pageSize << order`). */
  size: bigint;
  order: number;
  /** `restored` when it came back from the previous kernel, else `new`. */
  origin: 'new' | 'restored';
}

export interface KhoctlState {
  regions: KhoctlRegion[];
  /** The current outgoing sub-FDT page (0n when none). */
  blob: bigint;
}

/** The producer's state in a kernel (created on first use). */
export function khoctlState(k: { producerState: Map<string, unknown> }): KhoctlState {
  let s = k.producerState.get(KHOCTL_NAME) as KhoctlState | undefined;
  if (!s) {
    s = { regions: [], blob: 0n };
    k.producerState.set(KHOCTL_NAME, s);
  }
  return s;
}

const u64 = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return b;
};
const u32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, false);
  return b;
};

/** The sub-FDT describing `regions`. */
export function encodeKhoctlFdt(regions: readonly KhoctlRegion[]): Uint8Array {
  const sw = FdtSw.create(4096 + regions.length * 128);
  sw.finishReservemap();
  sw.beginNode('');
  sw.propertyString('compatible', KHOCTL_COMPATIBLE);
  for (const r of regions) {
    sw.beginNode(r.name);
    sw.property('phys', u64(r.phys));
    sw.property('size', u64(r.size));
    sw.property('order', u32(r.order));
    sw.endNode();
  }
  sw.endNode();
  sw.finish();
  return sw.blob();
}

/** Decode a khoctl sub-FDT; throws `KHO_KHOCTL_BAD` (or the FDT error) when it is not one. */
export function decodeKhoctlFdt(
  bytes: Uint8Array,
): { name: string; phys: bigint; size: bigint; order: number }[] {
  const blob = parseFdt(bytes);
  const compat = blob.root.props.find((p) => p.name === 'compatible');
  const text = compat ? Buffer.from(compat.value).toString('latin1').replace(/\0$/, '') : '';
  if (text !== KHOCTL_COMPATIBLE)
    throw new KhoError('KHO_KHOCTL_BAD', `compatible '${text}' is not '${KHOCTL_COMPATIBLE}'`, {
      path: '/compatible',
      expected: KHOCTL_COMPATIBLE,
    });
  return blob.root.children.map((n) => {
    const prop = (name: string, len: number) => {
      const p = n.props.find((x) => x.name === name);
      if (!p || p.value.length !== len)
        throw new KhoError('KHO_KHOCTL_BAD', `node '${n.name}' lacks a ${len}-byte '${name}'`, {
          path: `/${n.name}/${name}`,
          expected: `${len} bytes`,
        });
      return new DataView(p.value.buffer, p.value.byteOffset, p.value.byteLength);
    };
    return {
      name: n.name,
      phys: prop('phys', 8).getBigUint64(0, false),
      size: prop('size', 8).getBigUint64(0, false),
      order: prop('order', 4).getUint32(0, false),
    };
  });
}

/** Rewrite the outgoing sub-FDT for the current region list (drop it when the list is empty). */
function publish(kho: KhoCore, s: KhoctlState): void {
  if (s.blob !== 0n) {
    kho.removeSubtree(s.blob);
    kho.unpreserveFree(s.blob);
    s.blob = 0n;
  }
  if (s.regions.length === 0) return;
  const fdt = encodeKhoctlFdt(s.regions);
  const pa = kho.allocPreserve(fdt.length);
  kho.machine.memory.write(pa, fdt);
  try {
    kho.addSubtree(KHOCTL_NAME, pa, BigInt(fdt.length));
  } catch (e) {
    kho.unpreserveFree(pa);
    throw e;
  }
  s.blob = pa;
}

function restore(ctx: ProducerContext, sub: KhoSubtreeInfo): void {
  const kho = ctx.kho;
  const s = khoctlState({ producerState: ctx.state });
  let entries: ReturnType<typeof decodeKhoctlFdt>;
  try {
    const len = Math.min(Number(sub.size), 1 << 20);
    entries = decodeKhoctlFdt(kho.machine.memory.read(sub.phys, len));
  } catch (e) {
    if (!(e instanceof KhoError)) throw e;
    ctx.log.err(`khoctl: cannot decode the incoming sub-tree: ${e.message}`);
    return;
  }
  // The incoming sub-FDT page stays reserved (debugfs in/sub_fdts/khoctl keeps showing it, as memblock's).
  let restored = 0;
  for (const e of entries) {
    const f = kho.restoreFolio(e.phys);
    if (!f || f.order !== e.order) {
      ctx.log.err(`khoctl: region '${e.name}' lost (phys 0x${e.phys.toString(16)} was not restored)`);
      continue;
    }
    kho.preserveFolio(f.pa, f.order);
    s.regions.push({ name: e.name, phys: f.pa, size: e.size, order: f.order, origin: 'restored' });
    restored++;
  }
  publish(kho, s);
  ctx.log.info(`khoctl: restored ${restored} region(s) from KHO`);
}

export const khoctlProducer: KhoProducer = {
  name: KHOCTL_NAME,
  level: 'device',
  onRestore: restore,
};

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** Parse a size/offset: decimal, 0x hex, or K/M suffix. */
export function parseNumber(text: string): bigint | undefined {
  const m = /^(?:0x([0-9a-fA-F]{1,16})|(\d{1,20})([KMkm]?))$/.exec(text);
  if (!m) return undefined;
  if (m[1] !== undefined) return BigInt(`0x${m[1]}`);
  const shift = { '': 0n, K: 10n, M: 20n }[(m[3] ?? '').toUpperCase()] ?? 0n;
  return BigInt(m[2]) << shift;
}

export const KHOCTL_USAGE = `usage: khoctl preserve NAME SIZE       allocate and preserve SIZE bytes (up to one max-order folio)
       khoctl write NAME OFFSET TEXT  write TEXT into the region at OFFSET
       khoctl read NAME [OFFSET [LEN]]  print the region's bytes (raw: pipe into sha256sum or xxd)
       khoctl show                    list the regions (new or restored from the previous kernel)
       khoctl unpreserve NAME         unpreserve and free a region
`;

/** The `khoctl` shell command over the running kernel. */
export function khoctlCommand(getKernel: () => Kernel): CommandHandler {
  return ({ argv }) => {
    const k = getKernel();
    const kho = k.kho;
    const s = khoctlState(k);
    const [, sub, ...args] = argv;
    const fail = (m: string, status = 1) => ({ stderr: `khoctl: ${m}\n`, status });
    const find = (name: string | undefined) => s.regions.find((r) => r.name === name);
    try {
      switch (sub) {
        case 'preserve': {
          const [name, sizeText] = args;
          if (args.length !== 2) return { stderr: KHOCTL_USAGE, status: 2 };
          if (!KHOCTL_NAME_RE.test(name))
            return fail(`'${name}' is not a region name (letters, digits, _.,+- ; at most 31)`, 2);
          if (find(name)) return fail(`region '${name}' exists`);
          const size = parseNumber(sizeText);
          const max = kho.pageSize << BigInt(k.machine.spec.maxPageOrder);
          if (size === undefined || size === 0n || size > max)
            return fail(
              `size '${sizeText}' must be 1 to ${max} bytes (one folio of at most order ${k.machine.spec.maxPageOrder})`,
              2,
            );
          if (!kho.enabled || !kho.initialized)
            return fail('KHO is not enabled in this kernel (boot with kho=on): nothing can be preserved');
          const order = getOrder(size, kho.pageSize);
          const pa = kho.allocPages(order);
          try {
            kho.preserveFolio(pa, order);
          } catch (e) {
            kho.freePages(pa, order);
            throw e;
          }
          const r: KhoctlRegion = { name, phys: pa, size, order, origin: 'new' };
          s.regions.push(r);
          try {
            publish(kho, s);
          } catch (e) {
            s.regions.pop();
            kho.unpreserveFolio(pa, order);
            kho.freePages(pa, order);
            throw e;
          }
          return { stdout: `${name}: ${size} bytes preserved at ${hex(pa)} (order ${order})\n` };
        }
        case 'write': {
          if (args.length !== 3) return { stderr: KHOCTL_USAGE, status: 2 };
          const r = find(args[0]);
          if (!r) return fail(`no region '${args[0]}'`);
          const off = parseNumber(args[1]);
          const data = Buffer.from(args[2], 'latin1');
          if (off === undefined || off + BigInt(data.length) > r.size)
            return fail(`${args[2].length} bytes at offset '${args[1]}' do not fit in ${r.size} bytes`);
          k.machine.memory.write(r.phys + off, data);
          return {};
        }
        case 'read': {
          if (args.length < 1 || args.length > 3) return { stderr: KHOCTL_USAGE, status: 2 };
          const r = find(args[0]);
          if (!r) return fail(`no region '${args[0]}'`);
          const off = args[1] === undefined ? 0n : parseNumber(args[1]);
          const len = args[2] === undefined ? r.size - (off ?? 0n) : parseNumber(args[2]);
          if (off === undefined || len === undefined || off + len > r.size || len < 0n)
            return fail(`range '${args.slice(1).join(' ')}' is outside the ${r.size}-byte region`);
          return { stdout: k.machine.memory.read(r.phys + off, Number(len)) };
        }
        case 'show': {
          if (s.regions.length === 0) return { stdout: 'no khoctl regions\n' };
          const rows = s.regions.map((r) => {
            const sha = createHash('sha256')
              .update(k.machine.memory.read(r.phys, Number(r.size)))
              .digest('hex');
            return `${r.name.padEnd(16)} ${hex(r.phys).padEnd(12)} ${String(r.size).padStart(10)} ${String(r.order).padStart(5)}  ${r.origin.padEnd(8)}  ${sha.slice(0, 16)}`;
          });
          return {
            stdout: `${'NAME'.padEnd(16)} ${'PHYS'.padEnd(12)} ${'SIZE'.padStart(10)} ${'ORDER'.padStart(5)}  ${'ORIGIN'.padEnd(8)}  SHA256\n${rows.join('\n')}\n`,
          };
        }
        case 'unpreserve': {
          if (args.length !== 1) return { stderr: KHOCTL_USAGE, status: 2 };
          const i = s.regions.findIndex((r) => r.name === args[0]);
          if (i < 0) return fail(`no region '${args[0]}'`);
          const [r] = s.regions.splice(i, 1);
          kho.unpreserveFolio(r.phys, r.order);
          kho.freePages(r.phys, r.order);
          publish(kho, s);
          return {};
        }
        case '-h':
        case '--help':
          return { stdout: KHOCTL_USAGE };
        case undefined:
          return { stderr: KHOCTL_USAGE, status: 2 };
        default:
          return { stderr: `khoctl: unknown command '${sub}'\n${KHOCTL_USAGE}`, status: 2 };
      }
    } catch (e) {
      if (e instanceof KhoError) return fail(e.message);
      throw e;
    }
  };
}
