/**
 * Human-readable rendering of handovers, findings and diffs for `kho inspect|validate|diff`.
 *
 * Contract: pure functions from the library's decoded values to text lines. Native-endian u64 values
 * are shown as numbers: addresses in hex, sizes in hex with a binary unit (`0x400000 (4 MiB)`),
 * counts in decimal. Names appear as the kernel wrote them (JSON-quoted when not printable).
 */

import type { Handover, HandoverDiff, SubBlob } from '../../abi/handover.ts';
import type { PhysRange } from '../../abi/memory/image.ts';
import type { Finding } from '../../errors.ts';

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** `4 MiB`, `218 B`, `1.5 KiB`. */
export function unit(v: bigint | number): string {
  const n = typeof v === 'bigint' ? v : BigInt(v);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let whole = n;
  while (whole >= 1024n && i < units.length - 1) {
    whole /= 1024n;
    i++;
  }
  if (i === 0) return `${n} B`;
  const scaled = Number(n) / 1024 ** i;
  const text = Number.isInteger(scaled) ? String(scaled) : scaled.toFixed(1);
  return `${text} ${units[i]}`;
}

/** A size: bytes below 4 KiB as `218 B`, else `0x400000 (4 MiB)`. */
export function size(v: bigint | number): string {
  const n = typeof v === 'bigint' ? v : BigInt(v);
  return n < 4096n ? `${n} B` : `${hex(n)} (${unit(n)})`;
}

function name(s: string): string {
  return /^[\x21-\x7e]+$/.test(s) ? s : JSON.stringify(s);
}

export function rangeLine(r: PhysRange): string {
  return `[${hex(r.start)}, ${hex(r.start + r.size)})  ${unit(r.size)}`;
}

export function findingLine(f: Finding): string {
  const where = f.path !== undefined ? ` at ${f.path}` : '';
  const off = f.offset !== undefined ? ` (offset ${hex(f.offset)})` : '';
  const exp = f.expected !== undefined ? ` [expected ${f.expected}]` : '';
  return `${f.severity.padEnd(7)} ${f.code}${where}${off}: ${f.message}${exp}`;
}

function subBlobLines(s: SubBlob, direction: 'in' | 'out' | undefined): string[] {
  const head = `  ${name(s.name).padEnd(16)} ${s.phys !== undefined ? hex(s.phys).padEnd(12) : '?'.padEnd(12)} ${
    s.size !== undefined ? size(s.size).padEnd(20) : ''.padEnd(20)
  }`;
  const src = s.source === 'none' ? ' [not available]' : ` [from ${s.source}]`;
  const out: string[] = [];
  if (s.memblock) {
    const m = s.memblock;
    out.push(`${head}memblock FDT (${m.compatible ?? 'no compatible'}), ${m.regions.length} region(s)${src}`);
    for (const r of m.regions) out.push(`      ${name(r.name)}: start ${hex(r.start)}, size ${size(r.size)}`);
  } else if (s.khoTest) {
    const t = s.khoTest;
    const fi = t.foliosInfo;
    out.push(
      `${head}self-test FDT (${t.compatible ?? 'no compatible'}): ${t.nrFolios ?? '?'} folios, csum ${
        t.csum !== undefined ? hex(t.csum) : '?'
      }${src}`,
    );
    if (fi) {
      out.push(
        `      folios_info: vmalloc chunk list at ${hex(fi.first)}, ${fi.totalPages} page(s), order ${fi.order}, flags ${hex(fi.flags)}`,
      );
    }
    if (t.folios) {
      const by = new Map<number, number>();
      for (const f of t.folios) by.set(f.order, (by.get(f.order) ?? 0) + 1);
      const orders = [...by].sort((a, b) => a[0] - b[0]).map(([o, n]) => `order ${o}: ${n}`);
      out.push(`      recorded folios: ${t.folios.length} (${orders.join(', ')})`);
      if (t.csumComputed !== undefined) {
        out.push(
          `      checksum over the folios: ${hex(t.csumComputed)} (${t.csumComputed === t.csum ? 'matches' : 'DIFFERS from'} the recorded csum)`,
        );
      }
    }
  } else if (s.metadata) {
    const m = s.metadata;
    const who =
      direction === 'out'
        ? 'the next kernel will log'
        : direction === 'in'
          ? 'this kernel logged'
          : 'the receiving kernel logs';
    out.push(
      `${head}kexec metadata v${m.version}: previous release ${JSON.stringify(m.previousRelease)}, kexec_count ${m.kexecCount}${src}`,
    );
    if (m.logLine) out.push(`      ${who}: ${m.logLine}`);
  } else if (s.luo) {
    const l = s.luo;
    out.push(
      `${head}LUO (${l.compatible}): liveupdate number ${l.liveupdateNumber}, sessions at ${hex(l.sessions)}, FLB at ${hex(l.flb)}${src}`,
    );
    if (l.state) {
      out.push(`      ${l.state.sessions.length} session(s), ${l.state.flbs} FLB(s)`);
      for (const x of l.state.sessions)
        out.push(`      session ${JSON.stringify(x.name)}: ${x.files.length} file(s) ${x.files.join(', ')}`);
    }
  } else if (s.fdt) {
    out.push(
      `${head}FDT (${s.fdt.compatible ?? 'no compatible'}), ${s.fdt.nodes} node(s), ${s.fdt.totalsize} B${src}`,
    );
  } else {
    out.push(
      `${head}${s.source === 'none' ? 'not read' : `raw ${s.kind === 'raw' ? 'blob' : s.kind}, ${s.length} B`}${src}`,
    );
    if (s.preview) out.push(`      first bytes: ${s.preview}`);
  }
  return out;
}

/** The `kho inspect` text for a handover. */
export function formatHandover(h: Handover, opts: { maxRanges?: number } = {}): string {
  const lines: string[] = [];
  const dirName = h.source.path ? h.source.path.replace(/\/+$/, '').split('/').pop() : undefined;
  const direction = dirName === 'in' || dirName === 'out' ? dirName : undefined;
  const what =
    h.source.kind === 'debugfs-dir'
      ? 'debugfs directory'
      : h.source.kind === 'sub-blob'
        ? 'sub-blob file'
        : h.source.kind === 'fdt'
          ? 'root FDT file'
          : h.source.kind === 'memory'
            ? 'root FDT in the memory image'
            : 'bytes';
  lines.push(`${h.source.path ?? '(input)'}: ${what}, profile ${h.profile}`);
  const r = h.root;
  if (r) {
    const also = r.detected.filter((d) => d !== r.profile);
    lines.push(
      `Root FDT: compatible ${r.compatible !== undefined ? JSON.stringify(r.compatible) : '(missing)'} -> profile ${r.profile}` +
        (also.length ? ` (the compatible also matches ${also.join(', ')})` : ''),
    );
    lines.push(
      `  totalsize ${r.totalsize} B${r.have < r.totalsize ? `, only ${r.have} B given (${r.totalsize - r.have} B cut off)` : ''}`,
    );
    if (r.wholeAt !== undefined) {
      lines.push(`  whole blob found in the memory image at ${hex(r.wholeAt)} and decoded from there`);
    }
    lines.push(`  preserved-memory-map: ${r.memoryMap !== undefined ? hex(r.memoryMap) : '(missing)'}`);
  } else if (h.source.kind === 'debugfs-dir') {
    lines.push('Root FDT: none given');
  }
  if (h.subBlobs.length) {
    lines.push(`Sub-blobs (${h.subBlobs.length}, in blob order):`);
    for (const s of h.subBlobs) lines.push(...subBlobLines(s, direction));
  }
  if (h.preserved) {
    const p = h.preserved;
    lines.push(
      `Preserved memory (${p.format} at ${hex(p.root)}): ${p.blocks} blocks, ${p.bytes} bytes (${unit(p.bytes)}), ${p.ranges.length} merged ranges`,
    );
    const orders = Object.keys(p.byOrder)
      .map(Number)
      .sort((a, b) => a - b);
    lines.push(`  by order: ${orders.map((o) => `order ${o}: ${p.byOrder[o]}`).join(', ')}`);
    const max = opts.maxRanges ?? 64;
    for (const rg of p.ranges.slice(0, max)) lines.push(`  ${rangeLine(rg)}`);
    if (p.ranges.length > max) lines.push(`  ... ${p.ranges.length - max} more ranges (use --json for all)`);
  }
  if (h.reserveMem.length) {
    lines.push('reserve_mem regions:');
    for (const m of h.reserveMem) lines.push(`  ${name(m.name)}: ${hex(m.start)}, ${size(m.size)}`);
  }
  if (h.metadata) {
    lines.push(
      `Kexec metadata: previous release ${JSON.stringify(h.metadata.previousRelease)}, kexec_count ${h.metadata.kexecCount}`,
    );
  }
  if (h.scratch) {
    lines.push('Scratch areas:');
    for (const s of h.scratch) lines.push(`  ${s.role.padEnd(7)} ${hex(s.addr)}, ${size(s.size)}`);
  }
  lines.push(h.findings.length ? `Findings (${h.findings.length}):` : 'Findings: none');
  for (const f of h.findings) lines.push(`  ${findingLine(f)}`);
  return `${lines.join('\n')}\n`;
}

function change(c: { field: string; a?: unknown; b?: unknown }): string {
  const show = (v: unknown) =>
    v === undefined
      ? '(none)'
      : typeof v === 'bigint'
        ? hex(v)
        : JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? hex(x) : x));
  return `${c.field}: ${show(c.a)} -> ${show(c.b)}`;
}

/** The `kho diff` text. */
export function formatDiff(d: HandoverDiff, a: string, b: string): string {
  const lines: string[] = [`--- ${a}`, `+++ ${b}`];
  for (const c of d.root) lines.push(`root ${change(c)}`);
  for (const s of d.subBlobs.added)
    lines.push(`+ sub-blob ${name(s.name)}${s.phys !== undefined ? ` at ${hex(s.phys)}` : ''} (${s.kind})`);
  for (const s of d.subBlobs.removed)
    lines.push(`- sub-blob ${name(s.name)}${s.phys !== undefined ? ` at ${hex(s.phys)}` : ''} (${s.kind})`);
  for (const c of d.subBlobs.changed)
    for (const x of c.changes) lines.push(`~ sub-blob ${name(c.name)} ${change(x)}`);
  if (d.preserved) {
    for (const r of d.preserved.gained) lines.push(`+ preserved ${rangeLine(r)}`);
    for (const r of d.preserved.lost) lines.push(`- preserved ${rangeLine(r)}`);
  } else {
    lines.push('  (preserved memory not compared: give --memory-a/--memory-b images to decode both maps)');
  }
  for (const c of d.metadata) lines.push(`~ metadata ${change(c)}`);
  for (const r of d.reserveMem.added)
    lines.push(`+ reserve_mem ${name(r.name)} ${hex(r.start)}, ${size(r.size)}`);
  for (const r of d.reserveMem.removed)
    lines.push(`- reserve_mem ${name(r.name)} ${hex(r.start)}, ${size(r.size)}`);
  for (const n of d.reserveMem.changed) lines.push(`~ reserve_mem ${name(n)} changed`);
  if (d.same) lines.push('no differences');
  return `${lines.join('\n')}\n`;
}
