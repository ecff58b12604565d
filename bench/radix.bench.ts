/**
 * Preserved-memory map benchmark at 1 TiB scale (KHO ABI issue: "encode and decode for a 1 TiB machine
 * with 64 Mi preserved pages ... both directions under 1 s and under 512 MiB RSS").
 *
 * `npm run bench:radix -- [--runs R] [--no-chunks] [--no-shuffled] [--json FILE]`
 *
 * The preserved set (deterministic, `generate()`): a 1 TiB machine (2^28 4 KiB pages) with exactly
 * 2^26 preserved pages (256 GiB), walked in ascending address order as a mix of
 * - contiguous runs of 1..2047 pages at unaligned starts (~55% of the pages), decomposed as the kernel's
 *   `kho_preserve_pages` does: `order = min(ctz(pfn), ilog2(remaining))` (orders 0..10);
 * - batches of 2 MiB huge-page folios (order 9, ~25%), some frames of a batch left out;
 * - scattered order-0 pages, a quarter of the pages of 16 MiB windows (~20%: about 13 M blocks).
 *
 * Each direction of each format runs in its own child process (`--child TASK`), so its peak RSS
 * (`process.resourceUsage().maxRSS`, the whole child: node itself, the input, the output) is not mixed
 * with the others':
 * - radix encode: generate packed blocks (not timed), then `encodeRadixTreePacked` into a fresh
 *   `SparseMemory` (blocks → tree pages in memory); the tree pages go to a temporary file.
 * - radix decode: load the tree pages into a `SparseMemory` (not timed), then `decodeRadixTreePacked`
 *   (walk → blocks sorted by address). Its checksum of the sorted blocks must equal the generator's.
 * - bitmap chunks (kho-v1) encode/decode the same way with `encodeBitmapChunksPacked` /
 *   `decodeBitmapChunksPacked`.
 * - baseline: the irreducible cost of the same work on the simplest layout: encode sets the same
 *   bits in one flat bitmap per order over the whole 1 TiB (bit = pfn >> order), decode scans those
 *   bitmaps word by word into the same packed arrays (orders one after another, no sort).
 * - shuffled rows: the same encodes with the blocks in a random order (fixed seed): the kernel
 *   preserves blocks in whatever order subsystems ask, e.g. a memfd's folios in file order, which is
 *   no address order. The encoder keeps insertion order (it decides page allocation, as in the
 *   kernel), so this costs a leaf lookup and a likely cache miss per block.
 * - idle: node + tsx + these modules and nothing else, the floor under every peak RSS.
 * Each timed operation runs once first for JIT warm-up (encoders and the baseline decoder on a 1/64
 * sample, the map decoders on the whole map), then R times (default 3) with a GC in between; the table shows the fastest run's wall time, the median, and the lowest CPU time
 * (user + system of the whole process, GC threads included: the machine may be shared, and load
 * stretches wall time more than CPU time). pages/s counts preserved 4 KiB pages,
 * "map MB/s" the bytes of the map's own pages, "mem GB/s" the preserved memory described.
 * Prints a table and writes bench/radix-results.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBitmapChunksPacked, encodeBitmapChunksPacked } from '../src/abi/bitmap-chunks.ts';
import { SparseMemory } from '../src/abi/memory/image.ts';
import { decodeRadixTreePacked, encodeRadixTreePacked, type PackedBlocks } from '../src/abi/radix-tree.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const PAGE = 4096;
const MEM_PAGES = 2 ** 28; // 1 TiB
const PRESERVED_PAGES = 2 ** 26; // 256 GiB
const MAX_BLOCKS = 1 << 26;

/** mulberry32: a small deterministic PRNG, [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ctz(v: number): number {
  if (v === 0) return 64;
  let n = 0;
  while (v % 2 === 0) {
    v /= 2;
    n++;
  }
  return n;
}

/** The preserved set, ascending by address (so also sorted by (pfn, order): nothing overlaps). */
export function generate(seed = 0x6b686f): PackedBlocks & { pages: number; endPfn: number } {
  const rand = prng(seed);
  let cap = 1 << 24;
  let pfn = new Float64Array(cap);
  let order = new Uint8Array(cap);
  let n = 0;
  const emit = (p: number, o: number) => {
    if (n === cap) {
      cap *= 2;
      const p2 = new Float64Array(cap);
      p2.set(pfn);
      pfn = p2;
      const o2 = new Uint8Array(cap);
      o2.set(order);
      order = o2;
    }
    pfn[n] = p;
    order[n++] = o;
  };
  /** kho_preserve_pages: the largest naturally aligned block that fits, repeatedly. */
  const run = (start: number, len: number) => {
    const end = start + len;
    for (let p = start; p < end; ) {
      const o = Math.min(ctz(p), Math.floor(Math.log2(end - p)));
      emit(p, o);
      p += 2 ** o;
    }
  };
  let cursor = 256; // above the first MiB
  let left = PRESERVED_PAGES;
  while (left > 0) {
    const r = rand();
    if (r < 0.905) {
      cursor += Math.floor(rand() * 512);
      const len = Math.min(left, Math.floor(2 ** (rand() * 11)));
      run(cursor, len);
      cursor += len;
      left -= len;
    } else if (r < 0.9138) {
      cursor = Math.ceil(cursor / 512) * 512 + 512 * Math.floor(rand() * 8);
      const k = 1 + Math.floor(rand() * 64);
      for (let i = 0; i < k && left > 0; i++, cursor += 512) {
        if (rand() >= 0.75) continue;
        if (left >= 512) {
          emit(cursor, 9);
          left -= 512;
        } else {
          run(cursor, left);
          left = 0;
        }
      }
    } else {
      for (let i = 0; i < 4096 && left > 0; i++, cursor++) {
        if (rand() < 0.25) {
          emit(cursor, 0);
          left--;
        }
      }
    }
  }
  if (cursor > MEM_PAGES) throw new Error(`generator overran 1 TiB: ${cursor} pages`);
  // The arrays keep their capacity (2^24 entries; no copy, which would raise the peak RSS).
  return { length: n, pfn, order, pages: PRESERVED_PAGES, endPfn: cursor };
}

/** Order-sensitive checksum of packed blocks (both halves of each pfn and the order). */
function checksum(b: PackedBlocks): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < b.length; i++) {
    const p = b.pfn[i];
    h1 = Math.imul(h1 ^ (p >>> 0), 0x01000193);
    h2 = Math.imul(h2 ^ (Math.floor(p / 4294967296) * 64 + b.order[i]), 0x85ebca6b);
  }
  return `${b.length}:${(h1 >>> 0).toString(16)}:${(h2 >>> 0).toString(16)}`;
}

function pagesOf(b: PackedBlocks): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) s += 2 ** b.order[i];
  return s;
}

/** Deterministic Fisher-Yates shuffle (the kernel may preserve blocks in any address order). */
function shuffle(b: PackedBlocks): void {
  const rand = prng(0x5eed);
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const p = b.pfn[i];
    b.pfn[i] = b.pfn[j];
    b.pfn[j] = p;
    const o = b.order[i];
    b.order[i] = b.order[j];
    b.order[j] = o;
  }
}

/** A 1/64 sample (every 64th block) for the warm-up run. */
function sample(b: PackedBlocks): PackedBlocks {
  const m = Math.floor(b.length / 64);
  const pfn = new Float64Array(m);
  const order = new Uint8Array(m);
  for (let i = 0; i < m; i++) {
    pfn[i] = b.pfn[i * 64];
    order[i] = b.order[i * 64];
  }
  return { length: m, pfn, order };
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Wall-clock ms of each run; CPU ms (user + system, all threads of the process) go to `cpuMs`. */
function timeRuns(runs: number, fn: () => void, cpuMs: number[], drop: () => void): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    drop(); // the previous run's output is garbage before this run starts (so peak RSS holds one)
    gc();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpuMs.push((c.user + c.system) / 1000);
  }
  return out;
}

/** Tree pages to a file: [u64 count][u64 pa]* then the pages. */
function dumpPages(mem: SparseMemory, file: string): void {
  const addrs = mem.pageAddresses();
  const head = new BigUint64Array(addrs.length + 1);
  head[0] = BigInt(addrs.length);
  addrs.forEach((a, i) => {
    head[i + 1] = a;
  });
  const body = new Uint8Array(addrs.length * PAGE);
  addrs.forEach((a, i) => {
    body.set(mem.read(a, PAGE), i * PAGE);
  });
  writeFileSync(file, Buffer.concat([Buffer.from(head.buffer), Buffer.from(body.buffer)]));
}

function loadPages(file: string): SparseMemory {
  const buf = readFileSync(file);
  const count = Number(buf.readBigUInt64LE(0));
  const mem = new SparseMemory();
  const base = 8 + count * 8;
  for (let i = 0; i < count; i++) {
    const pa = buf.readBigUInt64LE(8 + i * 8);
    mem.write(pa, new Uint8Array(buf.buffer, buf.byteOffset + base + i * PAGE, PAGE));
  }
  return mem;
}

interface ChildResult {
  task: string;
  ms: number[];
  cpuMs: number[];
  warmupMs: number;
  maxRssMiB: number;
  blocks: number;
  pages: number;
  mapPages: number;
  checksum: string;
  extra?: Record<string, unknown>;
}

function rssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Flat bitmaps, one per order 0..10, over the whole machine (bit = pfn >> order). */
function flatBitmaps(): Uint32Array[] {
  return Array.from({ length: 11 }, (_, o) => new Uint32Array(MEM_PAGES / 2 ** o / 32));
}

function baselineSet(b: PackedBlocks, maps: Uint32Array[]): void {
  const { pfn, order } = b;
  for (let i = 0; i < b.length; i++) {
    const o = order[i];
    const bit = pfn[i] / 2 ** o;
    maps[o][bit >>> 5] |= 1 << (bit & 31);
  }
}

function baselineScan(maps: Uint32Array[], count: number): PackedBlocks {
  const pfn = new Float64Array(count);
  const order = new Uint8Array(count);
  let k = 0;
  for (let o = 0; o < maps.length; o++) {
    const m = maps[o];
    const step = 2 ** o;
    for (let w = 0; w < m.length; w++) {
      let v = m[w] | 0;
      while (v !== 0) {
        const t = v & -v;
        v ^= t;
        pfn[k] = (w * 32 + 31 - Math.clz32(t)) * step;
        order[k++] = o;
      }
    }
  }
  return { length: k, pfn, order };
}

function child(task: string, dir: string, runs: number): ChildResult {
  const cpuMs: number[] = [];
  if (task === 'idle') {
    // node + tsx + these modules, nothing else: the floor under every other row's peak RSS.
    return {
      task,
      ms: [],
      cpuMs: [],
      warmupMs: 0,
      maxRssMiB: rssMiB(),
      blocks: 0,
      pages: 0,
      mapPages: 0,
      checksum: '',
    };
  }
  const treeFile = join(dir, `${task.split('-')[0]}.pages`);
  if (task.includes('-encode')) {
    const blocks = generate();
    const sum = checksum(blocks);
    const shuffled = task.endsWith('-shuffled');
    if (shuffled) shuffle(blocks);
    const warm = sample(blocks);
    let mem = new SparseMemory({ allocBase: 0x100_0000_0000n }); // tree pages above the 1 TiB of RAM
    let drop = () => {
      mem = new SparseMemory();
    };
    let mapPages = 0;
    let extra: Record<string, unknown> | undefined;
    const t0 = process.hrtime.bigint();
    let op: (b: PackedBlocks) => void;
    if (task.startsWith('radix-')) {
      op = (b) => {
        mem = new SparseMemory({ allocBase: 0x100_0000_0000n });
        mapPages = encodeRadixTreePacked(b, mem).pages.length;
      };
    } else if (task.startsWith('chunks-')) {
      op = (b) => {
        mem = new SparseMemory({ allocBase: 0x100_0000_0000n });
        const r = encodeBitmapChunksPacked(b, mem);
        mapPages = r.chunks.length + r.bitmaps.length;
        extra = { head: `0x${r.head.toString(16)}`, chunks: r.chunks.length, bitmaps: r.bitmaps.length };
      };
    } else {
      let maps: Uint32Array[] = [];
      drop = () => {
        maps = [];
      };
      op = (b) => {
        maps = flatBitmaps();
        baselineSet(b, maps);
        mapPages = maps.reduce((s, m) => s + m.byteLength / PAGE, 0);
      };
      op(warm);
      const warmupMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const ms = timeRuns(runs, () => op(blocks), cpuMs, drop);
      const rss = rssMiB();
      if (!shuffled) writeFileSync(treeFile, Buffer.concat(maps.map((m) => Buffer.from(m.buffer))));
      return {
        task,
        ms,
        cpuMs,
        warmupMs,
        maxRssMiB: rss,
        blocks: blocks.length,
        pages: pagesOf(blocks),
        mapPages,
        checksum: sum,
      };
    }
    op(warm);
    const warmupMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const ms = timeRuns(runs, () => op(blocks), cpuMs, drop);
    const rss = rssMiB();
    if (!shuffled) dumpPages(mem, treeFile);
    if (task === 'chunks-encode') writeFileSync(`${treeFile}.head`, String(extra?.head));
    return {
      task,
      ms,
      cpuMs,
      warmupMs,
      maxRssMiB: rss,
      blocks: blocks.length,
      pages: pagesOf(blocks),
      mapPages,
      checksum: sum,
      extra,
    };
  }
  // Decoders.
  const EMPTY: PackedBlocks = { length: 0, pfn: new Float64Array(0), order: new Uint8Array(0) };
  let out = EMPTY;
  let mapPages = 0;
  let op: () => void;
  let warmOp: () => void;
  if (task === 'baseline-decode') {
    const buf = readFileSync(treeFile);
    let off = 0;
    const maps = flatBitmaps().map((m) => {
      const v = new Uint32Array(buf.buffer, buf.byteOffset + off, m.length);
      off += m.byteLength;
      return v;
    });
    mapPages = off / PAGE;
    const count = Number(readFileSync(join(dir, 'count'), 'utf8'));
    op = () => {
      out = baselineScan(maps, count);
    };
    warmOp = () =>
      baselineScan(
        maps.map((m) => m.subarray(0, m.length >> 6)),
        count,
      );
  } else {
    const mem = loadPages(treeFile);
    mapPages = mem.pageAddresses().length;
    if (task === 'radix-decode') {
      const root = 0x100_0000_0000n; // the first page the encoder allocated
      op = () => {
        out = decodeRadixTreePacked(mem, root, { maxBlocks: MAX_BLOCKS }).blocks;
      };
    } else {
      const head = BigInt(readFileSync(`${treeFile}.head`, 'utf8'));
      op = () => {
        out = decodeBitmapChunksPacked(mem, head, { maxBlocks: MAX_BLOCKS }).blocks;
      };
    }
    warmOp = op;
  }
  const t0 = process.hrtime.bigint();
  warmOp();
  const warmupMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const ms = timeRuns(runs, op, cpuMs, () => {
    out = EMPTY;
  });
  const rss = rssMiB();
  // The baseline leaves its blocks grouped by order; sort them for the checksum (not timed).
  const sorted = task === 'baseline-decode' ? sortForCheck(out) : out;
  return {
    task,
    ms,
    cpuMs,
    warmupMs,
    maxRssMiB: rss,
    blocks: out.length,
    pages: pagesOf(out),
    mapPages,
    checksum: checksum(sorted),
  };
}

function sortForCheck(b: PackedBlocks): PackedBlocks {
  const idx = Array.from({ length: b.length }, (_, i) => i).sort(
    (x, y) => b.pfn[x] - b.pfn[y] || b.order[x] - b.order[y],
  );
  return {
    length: b.length,
    pfn: Float64Array.from(idx, (i) => b.pfn[i]),
    order: Uint8Array.from(idx, (i) => b.order[i]),
  };
}

/** Number arrays on one line, as the project's formatter (biome) writes JSON. */
function compactNumberArrays(json: string): string {
  return json.replace(
    /\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g,
    (_, items: string) => `[${items.split(/,\s*/).join(', ')}]`,
  );
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function main(): void {
  const argv = process.argv.slice(2);
  let runs = 3;
  let chunks = true;
  let shuffledRows = true;
  let jsonOut = join(HERE, 'radix-results.json');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--child') {
      const r = child(argv[i + 1], argv[i + 2], Number(argv[i + 3]));
      process.stdout.write(JSON.stringify(r));
      return;
    }
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--no-chunks') chunks = false;
    else if (argv[i] === '--no-shuffled') shuffledRows = false;
    else if (argv[i] === '--json') jsonOut = resolve(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kho-radix-bench-'));
  const results: ChildResult[] = [];
  try {
    const tasks = [
      'idle',
      'baseline-encode',
      'radix-encode',
      ...(chunks ? ['chunks-encode'] : []),
      ...(shuffledRows ? ['baseline-encode-shuffled', 'radix-encode-shuffled'] : []),
    ];
    const decodes = ['baseline-decode', 'radix-decode', ...(chunks ? ['chunks-decode'] : [])];
    for (const task of [...tasks, ...decodes]) {
      const outp = execFileSync(
        process.execPath,
        [
          '--expose-gc',
          '--import',
          'tsx',
          fileURLToPath(import.meta.url),
          '--child',
          task,
          dir,
          String(runs),
        ],
        { cwd: ROOT, maxBuffer: 1 << 24, encoding: 'utf8' },
      );
      const r = JSON.parse(outp) as ChildResult;
      results.push(r);
      if (task === 'baseline-encode') writeFileSync(join(dir, 'count'), String(r.blocks));
      process.stderr.write(`${task}: ${r.ms.map((m) => m.toFixed(0)).join(', ')} ms\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const idle = results.shift()!;
  const gen = results[0];
  for (const r of results) {
    if (r.checksum !== gen.checksum || r.pages !== PRESERVED_PAGES) {
      throw new Error(`${r.task}: blocks differ from the generated set (${r.checksum} vs ${gen.checksum})`);
    }
  }
  const base = new Map(
    results
      .filter((r) => r.task.startsWith('baseline'))
      .map((r) => [r.task.slice(r.task.indexOf('-') + 1), r]),
  );
  const rows = results.map((r) => {
    const best = Math.min(...r.ms);
    const dirn = r.task.slice(r.task.indexOf('-') + 1);
    const b = base.get(dirn)!;
    return {
      task: r.task,
      bestMs: +best.toFixed(1),
      medianMs: +median(r.ms).toFixed(1),
      bestCpuMs: +Math.min(...r.cpuMs).toFixed(1),
      blocks: r.blocks,
      mapPages: r.mapPages,
      mapMiB: +((r.mapPages * PAGE) / 2 ** 20).toFixed(1),
      pagesPerSec: Math.round(r.pages / (best / 1000)),
      blocksPerSec: Math.round(r.blocks / (best / 1000)),
      mapMBps: +((r.mapPages * PAGE) / 1e6 / (best / 1000)).toFixed(1),
      memGBps: +((r.pages * PAGE) / 1e9 / (best / 1000)).toFixed(1),
      maxRssMiB: +r.maxRssMiB.toFixed(1),
      vsBaseline: +(best / Math.min(...b.ms)).toFixed(2),
      vsBaselineCpu: +(Math.min(...r.cpuMs) / Math.min(...b.cpuMs)).toFixed(2),
      meetsTarget: best < 1000 && r.maxRssMiB < 512,
    };
  });
  const head = [
    'task',
    'best ms',
    'median ms',
    'cpu ms',
    'blocks',
    'map pages',
    'map MiB',
    'Mpages/s',
    'map MB/s',
    'mem GB/s',
    'peak RSS MiB',
    'x baseline',
    'x base cpu',
    '<1s & <512MiB',
  ];
  const table = rows.map((r) => [
    r.task,
    r.bestMs.toFixed(1),
    r.medianMs.toFixed(1),
    r.bestCpuMs.toFixed(1),
    String(r.blocks),
    String(r.mapPages),
    r.mapMiB.toFixed(1),
    (r.pagesPerSec / 1e6).toFixed(1),
    r.mapMBps.toFixed(1),
    r.memGBps.toFixed(1),
    r.maxRssMiB.toFixed(1),
    r.vsBaseline.toFixed(2),
    r.vsBaselineCpu.toFixed(2),
    r.meetsTarget ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i])).join(' | ')} |`;
  console.log(
    `1 TiB machine, ${PRESERVED_PAGES} preserved 4 KiB pages (256 GiB) in ${gen.blocks} blocks; ` +
      `node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}; best of ${runs}; ` +
      `peak RSS of node + tsx + these modules alone: ${idle.maxRssMiB.toFixed(1)} MiB; ` +
      `${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)} at the end`,
  );
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of table) console.log(line(row));
  writeFileSync(
    jsonOut,
    `${compactNumberArrays(
      JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          cpu: cpus()[0]?.model,
          machine: {
            memPages: MEM_PAGES,
            preservedPages: PRESERVED_PAGES,
            blocks: gen.blocks,
            pageSize: PAGE,
          },
          runs,
          idleRssMiB: +idle.maxRssMiB.toFixed(1),
          cpuCount: cpus().length,
          loadAvg1m: +loadavg()[0].toFixed(2),
          rows,
          raw: results,
        },
        null,
        2,
      ),
    )}\n`,
  );
  console.log(`wrote ${jsonOut}`);
}

if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) main();
