/**
 * The invariant checker (spec §10, issue "Faults and invariants"): what must hold after every step of a
 * simulation, checked against the kernel model's state and the bytes in simulated memory.
 *
 * Contract:
 * - `checkKernel(k)` returns every violation in a running kernel:
 *   `SIM_INVARIANT_PRESERVED_FREE` (a page the kernel preserves for the next kernel, or an incoming
 *   preserved page not yet restored, is free in the page allocator), `SIM_INVARIANT_PRESERVED_REUSED`
 *   (an incoming preserved page not restored was handed out), `SIM_INVARIANT_PRESERVED_IN_SCRATCH`
 *   (a preserved block intersects a scratch area), `SIM_INVARIANT_SEGMENT_OUTSIDE_SCRATCH` (a loaded
 *   kexec_file segment that hands over KHO state is not entirely inside one scratch area).
 * - `snapshotPreserved(k)` copies every preserved range's pages that hold data (merged blocks) before a kexec;
 *   `verifySnapshot(next, snap)` compares after the next kernel's mm init (before any producer ran):
 *   `SIM_INVARIANT_PRESERVED_CHANGED` (bytes differ) and `SIM_INVARIANT_BLOCKS_LOST` (the next kernel's
 *   map lacks a block). If the next kernel did not accept the handover (profile mismatch, corrupted FDT)
 *   nothing was promised: the result is `{ accepted: false }` with its reason, not a violation.
 * - `kexecChecked(k)` = `k.kexecExec()` with the snapshot and verification around it and `checkKernel`
 *   on both sides; the first violation is thrown as a `KhoError` with its code, message and `path`.
 * Every check is a sweep over sorted intervals: cost O(n log n) in blocks, never per page.
 */
import { mergeBlockRanges } from '../../abi/radix-tree.ts';
import { KhoError } from '../../errors.ts';
import type { Kernel, PreservedSnapshot } from './kernel.ts';

export interface InvariantViolation {
  code: `SIM_INVARIANT_${string}`;
  message: string;
  path?: string;
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

type Iv = [number, number]; // [start, end) pfns

/** Pairs of overlapping intervals of two sorted lists (first overlap per `a` interval). */
function overlaps(a: Iv[], b: Iv[]): [Iv, Iv][] {
  const out: [Iv, Iv][] = [];
  let j = 0;
  for (const x of a) {
    while (j < b.length && b[j][1] <= x[0]) j++;
    if (j < b.length && b[j][0] < x[1]) out.push([x, b[j]]);
  }
  return out;
}

/** Sorted intervals of the blocks `each` reports as (head, order), without an intermediate list. */
function collectIv(each: (fn: (head: number, order: number) => void) => void): Iv[] {
  const out: Iv[] = [];
  each((h, o) => {
    out.push([h, h + 2 ** o]);
  });
  return out.sort((x, y) => x[0] - y[0]);
}

/** Every invariant violation of a running kernel. */
export function checkKernel(k: Kernel): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const ps = BigInt(k.machine.spec.pageSize);
  const shift = k.machine.spec.pageShift;
  const pfnOf = (pa: bigint) => Number(pa >> BigInt(shift));
  const free = collectIv((fn) => k.buddy.forEachFree(fn));
  const allocated = collectIv((fn) => k.buddy.forEachAllocated(fn));
  const outgoing = collectIv((fn) => k.kho.preservedPfns().forEach((o, h) => fn(h, o)));
  const incoming = collectIv((fn) => k.kho.unrestored().forEach((o, h) => fn(h, o)));
  for (const [p, f] of overlaps(outgoing, free))
    out.push({
      code: 'SIM_INVARIANT_PRESERVED_FREE',
      message: `preserved block at ${hex(BigInt(p[0]) * ps)} (${p[1] - p[0]} pages) has free pages at pfn ${hex(Math.max(p[0], f[0]))}: the next kernel would get whatever reuses them`,
      path: `phys:${hex(BigInt(Math.max(p[0], f[0])) * ps)}`,
    });
  for (const [p, f] of overlaps(incoming, free))
    out.push({
      code: 'SIM_INVARIANT_PRESERVED_FREE',
      message: `incoming preserved block at ${hex(BigInt(p[0]) * ps)} not restored yet is free at pfn ${hex(Math.max(p[0], f[0]))}`,
      path: `phys:${hex(BigInt(Math.max(p[0], f[0])) * ps)}`,
    });
  for (const [p, a] of overlaps(incoming, allocated))
    out.push({
      code: 'SIM_INVARIANT_PRESERVED_REUSED',
      message: `incoming preserved block at ${hex(BigInt(p[0]) * ps)} not restored yet was handed out (block at pfn ${hex(a[0])})`,
      path: `phys:${hex(BigInt(p[0]) * ps)}`,
    });
  const scratch = k.scratch
    .filter((a) => a.size > 0n)
    .map((a) => [pfnOf(a.addr), pfnOf(a.addr + a.size)] as Iv)
    .sort((x, y) => x[0] - y[0]);
  for (const [p, s] of overlaps(outgoing, scratch))
    out.push({
      code: 'SIM_INVARIANT_PRESERVED_IN_SCRATCH',
      message: `preserved block at ${hex(BigInt(p[0]) * ps)} (${p[1] - p[0]} pages) intersects scratch [${hex(BigInt(s[0]) * ps)}, ${hex(BigInt(s[1]) * ps)})`,
      path: `phys:${hex(BigInt(p[0]) * ps)}`,
    });
  const loaded = k.loaded;
  if (loaded?.handover)
    for (const seg of loaded.plan.segments) {
      const inside = k.scratch.some((a) => seg.mem >= a.addr && seg.mem + seg.memsz <= a.addr + a.size);
      if (!inside)
        out.push({
          code: 'SIM_INVARIANT_SEGMENT_OUTSIDE_SCRATCH',
          message: `kexec segment '${seg.name}' [${hex(seg.mem)}, ${hex(seg.mem + seg.memsz)}) is not inside one scratch area`,
          path: `phys:${hex(seg.mem)}`,
        });
    }
  return out;
}

/**
 * Every outgoing preserved range with each of its pages that holds data (pages never written are zeros
 * and cost nothing), before a kexec. The pages are shared with memory, not copied
 * (`PhysicalMemory.sharePages`: memory copies a shared page before changing it), so a page still
 * stored as the same array afterwards is unchanged without comparing a byte.
 */
export function snapshotPreserved(k: Kernel): PreservedSnapshot {
  const mem = k.machine.memory;
  const ps = k.machine.spec.pageSize;
  const ranges = mergePreserved(k.kho.preservedPfns(), ps).map((r) => ({
    start: r.start,
    size: r.size,
    runs: mem.sharePages(r.start, r.size).map(([pfn, bytes]) => ({ pfn, bytes })),
  }));
  return { ranges, rootFdt: k.kho.rootFdtPhys };
}

/** Outgoing preserved blocks (pfn → order) merged into sorted physical ranges. */
function mergePreserved(
  pfns: ReadonlyMap<number, number>,
  pageSize: number,
): { start: bigint; size: bigint }[] {
  const iv = collectIv((fn) => pfns.forEach((o, h) => fn(h, o)));
  const out: { start: bigint; size: bigint }[] = [];
  const ps = BigInt(pageSize);
  let s = -1;
  let e = -1;
  for (const [b, end] of iv) {
    if (b <= e) {
      if (end > e) e = end;
      continue;
    }
    if (s >= 0) out.push({ start: BigInt(s) * ps, size: BigInt(e - s) * ps });
    s = b;
    e = end;
  }
  if (s >= 0) out.push({ start: BigInt(s) * ps, size: BigInt(e - s) * ps });
  return out;
}

export interface HandoverVerdict {
  accepted: boolean;
  reason?: string;
  violations: InvariantViolation[];
}

/** Compare a snapshot with memory as the next kernel found it (call after its mm init). */
export function verifySnapshot(next: Kernel, snap: PreservedSnapshot): HandoverVerdict {
  if (snap.ranges.length === 0) return { accepted: next.kho.isKhoBoot, violations: [] };
  if (!next.kho.incoming)
    return { accepted: false, reason: next.handoverRejected ?? 'nothing was handed over', violations: [] };
  const violations: InvariantViolation[] = [];
  const ps = next.machine.spec.pageSize;
  const mem = next.machine.memory;
  const psb = BigInt(ps);
  const zero = new Uint8Array(ps);
  for (const r of snap.ranges) {
    let changed: number | undefined;
    for (const run of r.runs) {
      const now = mem.residentPage(run.pfn);
      if (now === run.bytes) continue; // still the shared page: unchanged
      const pages = run.bytes.length / ps;
      const got = mem.read(BigInt(run.pfn) * psb, run.bytes.length);
      if (Buffer.compare(got, run.bytes) === 0) continue;
      for (let i = 0; i < pages && changed === undefined; i++)
        if (
          Buffer.compare(got.subarray(i * ps, (i + 1) * ps), run.bytes.subarray(i * ps, (i + 1) * ps)) !== 0
        )
          changed = run.pfn + i;
      if (changed !== undefined) break;
    }
    // pages that held nothing before must still hold nothing (both lists ascending)
    if (changed === undefined) {
      let j = 0;
      for (const pfn of mem.residentPfnsIn(r.start, r.size)) {
        while (j < r.runs.length && r.runs[j].pfn + r.runs[j].bytes.length / ps <= pfn) j++;
        if (j < r.runs.length && r.runs[j].pfn <= pfn) continue;
        if (Buffer.compare(mem.read(BigInt(pfn) * psb, ps), zero) !== 0) {
          changed = pfn;
          break;
        }
      }
    }
    if (changed !== undefined)
      violations.push({
        code: 'SIM_INVARIANT_PRESERVED_CHANGED',
        message: `preserved range [${hex(r.start)}, ${hex(r.start + r.size)}) changed across the kexec (first changed page ${hex(BigInt(changed) * psb)})`,
        path: `phys:${hex(r.start)}`,
      });
  }
  const got = next.kho.incoming.ranges ?? mergeBlockRanges(next.kho.incoming.blocks, ps);
  let j = 0;
  for (const r of snap.ranges) {
    while (j < got.length && got[j].start + got[j].size <= r.start) j++;
    const g = got[j];
    if (!g || g.start > r.start || g.start + g.size < r.start + r.size)
      violations.push({
        code: 'SIM_INVARIANT_BLOCKS_LOST',
        message: `preserved range [${hex(r.start)}, ${hex(r.start + r.size)}) is not in the next kernel's memory map`,
        path: `phys:${hex(r.start)}`,
      });
  }
  return { accepted: true, violations };
}

function throwFirst(v: InvariantViolation[], extra = ''): void {
  if (v.length === 0) return;
  const more = v.length > 1 ? ` (and ${v.length - 1} more)` : '';
  throw new KhoError(v[0].code, `${v[0].message}${more}${extra}`, v[0].path ? { path: v[0].path } : {});
}

/** Throw the first violation of `checkKernel(k)`. */
export function assertInvariants(k: Kernel): void {
  throwFirst(checkKernel(k));
}

/** `kexec -e` under the checker; returns the next kernel and whether it accepted the handover. */
export function kexecChecked(
  k: Kernel,
  opts: { fault?: (k: Kernel) => void } = {},
): { next: Kernel; verdict: HandoverVerdict } {
  assertInvariants(k);
  let verdict: HandoverVerdict = { accepted: false, violations: [] };
  const next = k.kexecExec({
    ...opts,
    snapshot: snapshotPreserved,
    verify: (n, s) => {
      verdict = verifySnapshot(n, s);
    },
  });
  throwFirst(verdict.violations);
  assertInvariants(next);
  return { next, verdict };
}
