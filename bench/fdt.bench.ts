/**
 * FDT codec benchmark: kho's decoder and encoders against libfdt on the same real DTBs.
 *
 * `npm run bench -- [--corpus DIR] [--seconds S] [--rounds R] [--no-rw] [--no-c]`
 *
 * Corpus: `--corpus DIR`, else `$KHO_DTB_CORPUS`, else /work/corpus/dtb (made by
 * scripts/fetch-dtb-corpus.sh), else the checked-in test/fixtures/dtb-real (the run says which).
 * Every file is read into memory first; files kho's reader rejects are listed and left out.
 *
 * What is timed (a pass = the operation over every file of its set; per measurement one warm-up
 * pass, then passes until S seconds (default 1) and 5 passes, 2 for the read-write build):
 * - decode (all files): `parseFdt` plus a walk of every node and property touching each name and
 *   value (name lengths, value length and first byte); libfdt (`bench/c/walk.c decode`):
 *   fdt_check_header, fdt_next_node, property iteration with fdt_getprop_by_offset, same touches.
 *   Both sum the same checksum, compared, so both walked the same nodes and properties. No decoded
 *   tree is kept alive meanwhile (a large retained heap slows every major GC, hence the decoder).
 * - encode (every k-th file, ~8 MB): `encodeDtc` and `encodeSw` of pre-decoded trees; libfdt
 *   (`walk.c encode`): fdt_create ... fdt_finish replaying precomputed calls. MB/s of bytes produced.
 * - read-write build (every k-th file, ~4 MB; quadratic in libfdt too): `FdtRw` createEmptyTree,
 *   addMemRsv, setprop/addSubnode last to first, pack; libfdt (`walk.c rw`) the same calls.
 * - memory: kho's peak RSS and the heap retained by all decoded trees (after a forced GC); libfdt's
 *   peak RSS.
 * The machine may be shared, so R rounds (default 3) alternate kho and libfdt; MB/s come from the
 * fastest pass over all rounds (load only adds time), and ratios from medians are shown beside them.
 * The libfdt harness is compiled on the fly (`cc -O2 bench/c/walk.c -lfdt`); without cc/libfdt its
 * columns stay empty. Prints a table and writes bench/results.json.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FdtNode, FdtTree } from '../src/fdt/model.ts';
import { type FdtBlob, type FdtNodeView, parseFdt } from '../src/fdt/reader.ts';
import { encodeDtc } from '../src/fdt/write-dtc.ts';
import { FdtRw } from '../src/fdt/write-rw.ts';
import { encodeSw } from '../src/fdt/write-sw.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');

interface Args {
  corpus: string | undefined;
  seconds: number;
  rw: boolean;
  c: boolean;
  rounds: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { corpus: undefined, seconds: 1, rw: true, c: true, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--corpus') a.corpus = argv[++i];
    else if (v === '--seconds') a.seconds = Number(argv[++i]);
    else if (v === '--rounds') a.rounds = Number(argv[++i]);
    else if (v === '--no-rw') a.rw = false;
    else if (v === '--no-c') a.c = false;
    else throw new Error(`unknown argument ${v}`);
  }
  if (!(a.seconds > 0)) throw new Error('--seconds needs a positive number');
  if (!(Number.isInteger(a.rounds) && a.rounds > 0)) throw new Error('--rounds needs a positive integer');
  return a;
}

function listDtbs(dir: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop() as string;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory() && !e.name.startsWith('.')) stack.push(p);
      else if (e.isFile() && e.name.endsWith('.dtb')) out.push(p);
    }
  }
  return out.sort();
}

function chooseCorpus(args: Args): { dir: string; note: string } {
  const fixtures = join(ROOT, 'test/fixtures/dtb-real');
  const candidates: [string | undefined, string][] = [
    [args.corpus, '--corpus'],
    [process.env.KHO_DTB_CORPUS, 'KHO_DTB_CORPUS'],
    ['/work/corpus/dtb', 'default corpus (scripts/fetch-dtb-corpus.sh)'],
  ];
  for (const [dir, why] of candidates) {
    if (dir && existsSync(dir) && statSync(dir).isDirectory() && listDtbs(dir).length > 0)
      return { dir, note: why };
    if (dir && why === '--corpus') throw new Error(`--corpus ${dir} holds no .dtb files`);
  }
  return {
    dir: fixtures,
    note: 'corpus absent: using the checked-in test/fixtures/dtb-real (run scripts/fetch-dtb-corpus.sh for the full corpus)',
  };
}

interface Timing {
  passes: number;
  medianMs: number;
  bestMs: number;
}

/** One warm-up pass, then passes until `seconds` and `minPasses`; median and best pass time. */
function measure(pass: () => unknown, seconds: number, minPasses = 5): Timing {
  pass();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minPasses || performance.now() - start < seconds * 1e3) {
    const t0 = performance.now();
    pass();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return { passes: times.length, medianMs: times[times.length >> 1] as number, bestMs: times[0] as number };
}

/** The decode pass's touches, the same as walk.c's: name lengths, value length and first byte. */
function walkChecksum(blob: FdtBlob): number {
  let sum = 0;
  const stack: FdtNodeView[] = [blob.root];
  while (stack.length) {
    const n = stack.pop() as FdtNodeView;
    sum += n.name.length;
    for (const p of n.props) {
      const v = p.value;
      sum += p.name.length + v.length + (v.length ? (v[0] as number) : 0);
    }
    const kids = n.children;
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i] as FdtNodeView);
  }
  return sum;
}

/** Build `tree` with the read-write API as walk.c does (last to first: libfdt inserts at the front). */
function encodeRw(tree: FdtTree, bufsize: number): Uint8Array {
  const rw = FdtRw.createEmptyTree(bufsize);
  for (const r of tree.reserves) rw.addMemRsv(r.address, r.size);
  buildRw(rw, 0, tree.root);
  rw.pack();
  return rw.blob();
}

/**
 * Properties last to first, then children last to first, each child's subtree built before its
 * previous sibling is added (adding a sibling before it moves its offset). Explicit stack.
 */
function buildRw(rw: FdtRw, off: number, node: FdtNode): void {
  type Frame = { off: number; node: FdtNode; next: number };
  const first: Frame = { off, node, next: node.children.length - 1 };
  for (let i = node.props.length - 1; i >= 0; i--) {
    const p = node.props[i] as FdtNode['props'][number];
    rw.setprop(off, p.name, p.value);
  }
  const stack: Frame[] = [first];
  while (stack.length) {
    const top = stack[stack.length - 1] as Frame;
    if (top.next < 0) {
      stack.pop();
      continue;
    }
    const child = top.node.children[top.next--] as FdtNode;
    const coff = rw.addSubnode(top.off, child.name);
    for (let i = child.props.length - 1; i >= 0; i--) {
      const p = child.props[i] as FdtNode['props'][number];
      rw.setprop(coff, p.name, p.value);
    }
    stack.push({ off: coff, node: child, next: child.children.length - 1 });
  }
}

interface CResult extends Timing {
  mode: string;
  files: number;
  bytes: number;
  result: number;
  refused: number[];
  maxRssKb: number;
}

/** Compile bench/c/walk.c against the system libfdt; undefined (with why) when that fails. */
function buildLibfdtHarness(dir: string): { exe?: string; note?: string } {
  const exe = join(dir, 'walk');
  try {
    execFileSync('cc', ['-O2', '-o', exe, join(HERE, 'c/walk.c'), '-lfdt'], { stdio: 'pipe' });
    return { exe };
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    return {
      note: `libfdt harness not built (cc -O2 bench/c/walk.c -lfdt): ${err.stderr?.toString().trim() || err.message}`,
    };
  }
}

function runLibfdt(exe: string, mode: 'decode' | 'encode' | 'rw', files: string[], seconds: number): CResult {
  const out = execFileSync(exe, [mode, String(seconds)], {
    input: `${files.join('\n')}\n`,
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out.toString()) as CResult;
}

const t00 = performance.now();
function phase(what: string): void {
  process.stderr.write(`[${((performance.now() - t00) / 1e3).toFixed(1)} s] ${what}\n`);
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** 'all files' or 'every 4th file (197)'. */
function everyKth(total: number, n: number): string {
  const k = Math.round(total / n);
  return k <= 1 ? 'all files' : `every ${k}th file (${n})`;
}

const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1e3);
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

type MeasureName = 'decode' | 'encodeDtc' | 'encodeSw' | 'encodeRw';
interface Row {
  name: MeasureName;
  what: string;
  files: number;
  /** Bytes one pass reads (decode) or writes (encode), for kho and for libfdt. */
  khoBytes: number;
  libfdtBytes: number;
  kho: Timing[];
  libfdt: Timing[];
  target: number | null;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const { dir, note } = chooseCorpus(args);
  const all = listDtbs(dir);
  phase(`corpus: ${dir} (${note}): ${all.length} files`);

  const rssBefore = process.memoryUsage().rss;
  const loaded = all.map((f) => ({ file: f, bytes: readFileSync(f) }));
  const rejected: { file: string; error: string }[] = [];
  const good = loaded.filter(({ file, bytes }) => {
    try {
      parseFdt(bytes);
      return true;
    } catch (e) {
      rejected.push({ file: relative(dir, file), error: (e as Error).message });
      return false;
    }
  });
  const bufs = good.map((g) => g.bytes);
  const files = good.map((g) => g.file);
  const totalBytes = bufs.reduce((s, b) => s + b.length, 0);
  // Encoders are slower than the decoder (libfdt's too), so large corpora are sampled for them:
  // every k-th file, k chosen to keep a pass near 8 MB (encode) and 4 MB (read-write build).
  const sample = (targetBytes: number) => {
    const k = Math.max(1, Math.round(totalBytes / targetBytes));
    return files.map((_, i) => i).filter((i) => i % k === 0);
  };
  const encIdx = sample(8e6);
  const rwIdx = sample(4e6);

  // Heap retained by every decoded tree at once.
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  let trees: FdtBlob[] = bufs.map((b) => parseFdt(b));
  gc();
  const heapTrees = process.memoryUsage().heapUsed - heap0;
  let checksum = 0;
  for (const t of trees) checksum += walkChecksum(t);

  // Correctness and sizes before timing.
  let identical = 0;
  let dtcOut = 0;
  let swOut = 0;
  for (const i of encIdx) {
    const out = encodeDtc(trees[i] as FdtBlob);
    dtcOut += out.length;
    if (Buffer.compare(Buffer.from(out), bufs[i] as Buffer) === 0) identical++;
    swOut += encodeSw(trees[i] as FdtBlob).length;
  }
  const rwFailed = new Map<number, string>();
  let rwOut = 0;
  if (args.rw) {
    for (const i of rwIdx) {
      try {
        rwOut += encodeRw(trees[i] as FdtBlob, 2 * (bufs[i] as Buffer).length + 4096).length;
      } catch (e) {
        rwFailed.set(
          i,
          e instanceof Error ? `${(e as { code?: string }).code ?? 'Error'}: ${e.message}` : String(e),
        );
      }
    }
  }
  const rwOk = rwIdx.filter((i) => !rwFailed.has(i));
  // The timed decode passes run with no decoded tree kept alive (a retained 250 MB heap would make
  // every major GC, and so the decoder, several times slower); encoders hold only their own sample.
  trees = [];
  gc();

  const tmp = mkdtempSync(join(tmpdir(), 'kho-bench-'));
  const harness = args.c ? buildLibfdtHarness(tmp) : { note: 'skipped (--no-c)' };
  let cNote = harness.note;
  let cMaxRss = 0;
  let cRefused: number[] = [];

  const rows: Row[] = [
    {
      name: 'decode',
      what: 'decode + walk',
      files: files.length,
      khoBytes: totalBytes,
      libfdtBytes: totalBytes,
      kho: [],
      libfdt: [],
      target: 0.5,
    },
    {
      name: 'encodeDtc',
      what: 'encode dtc mode (encodeDtc)',
      files: encIdx.length,
      khoBytes: dtcOut,
      libfdtBytes: 0,
      kho: [],
      libfdt: [],
      target: 0.3,
    },
    {
      name: 'encodeSw',
      what: 'encode seq-write (encodeSw)',
      files: encIdx.length,
      khoBytes: swOut,
      libfdtBytes: 0,
      kho: [],
      libfdt: [],
      target: 0.3,
    },
  ];
  if (args.rw)
    rows.push({
      name: 'encodeRw',
      what: 'encode read-write build (FdtRw)',
      files: rwOk.length,
      khoBytes: rwOut,
      libfdtBytes: 0,
      kho: [],
      libfdt: [],
      target: null,
    });
  const row = (n: MeasureName) => rows.find((r) => r.name === n) as Row;

  try {
    // Rounds alternate kho and libfdt so that load from other processes hits both alike.
    for (let r = 1; r <= args.rounds; r++) {
      phase(`round ${r}/${args.rounds}: decode`);
      row('decode').kho.push(
        measure(() => {
          let s = 0;
          for (const b of bufs) s += walkChecksum(parseFdt(b));
          if (s !== checksum) throw new Error('decode checksum changed between passes');
        }, args.seconds),
      );
      if (harness.exe) {
        const c = runLibfdt(harness.exe, 'decode', files, args.seconds);
        if (c.result !== checksum) cNote = `decode checksum mismatch: kho ${checksum}, libfdt ${c.result}`;
        row('decode').libfdt.push(c);
        cMaxRss = Math.max(cMaxRss, c.maxRssKb);
      }
      phase(`round ${r}/${args.rounds}: encode`);
      let encTrees: FdtBlob[] = encIdx.map((i) => parseFdt(bufs[i] as Buffer));
      row('encodeDtc').kho.push(
        measure(() => {
          for (const t of encTrees) encodeDtc(t);
        }, args.seconds),
      );
      row('encodeSw').kho.push(
        measure(() => {
          for (const t of encTrees) encodeSw(t);
        }, args.seconds),
      );
      if (harness.exe) {
        const c = runLibfdt(
          harness.exe,
          'encode',
          encIdx.map((i) => files[i] as string),
          args.seconds,
        );
        row('encodeDtc').libfdt.push(c);
        row('encodeSw').libfdt.push(c);
        row('encodeDtc').libfdtBytes = c.result;
        row('encodeSw').libfdtBytes = c.result;
        cMaxRss = Math.max(cMaxRss, c.maxRssKb);
      }
      encTrees = [];
      if (args.rw) {
        phase(`round ${r}/${args.rounds}: read-write build`);
        let rwTrees: FdtBlob[] = rwOk.map((i) => parseFdt(bufs[i] as Buffer));
        row('encodeRw').kho.push(
          measure(
            () => {
              rwTrees.forEach((t, k) => encodeRw(t, 2 * (bufs[rwOk[k] as number] as Buffer).length + 4096));
            },
            args.seconds,
            2,
          ),
        );
        if (harness.exe) {
          const c = runLibfdt(
            harness.exe,
            'rw',
            rwOk.map((i) => files[i] as string),
            args.seconds,
          );
          row('encodeRw').libfdt.push(c);
          row('encodeRw').libfdtBytes = c.result;
          cRefused = c.refused.map((k) => rwOk[k] as number);
          cMaxRss = Math.max(cMaxRss, c.maxRssKb);
        }
        rwTrees = [];
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  phase('done');
  const peakRssKb = process.resourceUsage().maxRSS;

  const table = rows.map((r) => {
    const khoBest = Math.min(...r.kho.map((t) => t.bestMs));
    const khoMed = median(r.kho.map((t) => t.medianMs));
    const out: Record<string, unknown> = {
      measure: r.name,
      what: r.what,
      files: r.files,
      khoMBps: round(mbps(r.khoBytes, khoBest), 1),
      khoMBpsMedian: round(mbps(r.khoBytes, khoMed), 1),
      libfdtMBps: null,
      libfdtMBpsMedian: null,
      ratio: null,
      ratioMedian: null,
      target: r.target,
      meetsTarget: null,
    };
    if (r.libfdt.length) {
      const cBest = Math.min(...r.libfdt.map((t) => t.bestMs));
      const cMed = median(r.libfdt.map((t) => t.medianMs));
      const ratio = mbps(r.khoBytes, khoBest) / mbps(r.libfdtBytes, cBest);
      out.libfdtMBps = round(mbps(r.libfdtBytes, cBest), 1);
      out.libfdtMBpsMedian = round(mbps(r.libfdtBytes, cMed), 1);
      out.ratio = round(ratio, 3);
      out.ratioMedian = round(mbps(r.khoBytes, khoMed) / mbps(r.libfdtBytes, cMed), 3);
      out.meetsTarget = r.target === null ? null : ratio >= r.target;
    }
    return out;
  });

  const num = (v: unknown, d = 1) => (typeof v === 'number' ? v.toFixed(d) : '-');
  const every = (n: number) => everyKth(files.length, n);
  const lines = [
    `corpus: ${dir} (${note})`,
    `files: ${files.length} (${rejected.length} rejected by kho's reader), ${totalBytes} bytes; encoders on ${every(encIdx.length)}${args.rw ? `, read-write build on ${every(rwIdx.length)}` : ''}; node ${process.version}; ${args.rounds} rounds of >= ${args.seconds} s`,
    'MB/s from the fastest pass (the machine is shared; load only ever adds time); "median" columns from median passes',
    '',
    `${'measure'.padEnd(33)}${'files'.padStart(6)}${'kho MB/s'.padStart(10)}${'libfdt MB/s'.padStart(13)}${'kho/libfdt'.padStart(12)}${'(median)'.padStart(10)}${'target'.padStart(8)}`,
    ...table.map(
      (r) =>
        `${String(r.what).padEnd(33)}${String(r.files).padStart(6)}${num(r.khoMBps).padStart(10)}${num(r.libfdtMBps).padStart(13)}${num(r.ratio, 3).padStart(12)}${num(r.ratioMedian, 3).padStart(10)}${(r.target === null ? '' : `>=${r.target}`).padStart(8)}${r.meetsTarget === false ? '  MISSED' : ''}`,
    ),
    '',
    `kho memory: peak RSS ${(peakRssKb / 1024).toFixed(1)} MiB (${((peakRssKb * 1024 - rssBefore) / 2 ** 20).toFixed(1)} MiB above start; all blobs held, all trees at once for the heap figure); heap retained by all ${files.length} decoded trees ${(heapTrees / 2 ** 20).toFixed(1)} MiB (${(heapTrees / totalBytes).toFixed(2)} bytes per input byte)`,
    harness.exe
      ? `libfdt memory: peak RSS ${(cMaxRss / 1024).toFixed(1)} MiB (largest run: blobs, call plans, output buffers)`
      : `libfdt: ${cNote}`,
    `encodeDtc output byte-identical to the input blob for ${identical} of ${encIdx.length} files`,
  ];
  if (args.rw)
    lines.push(
      `read-write build: ${rwOk.length} of ${rwIdx.length} files; ${rwFailed.size} refused by kho, ${cRefused.length} by libfdt (FDT_ERR_EXISTS: a name like 'memory' found as 'memory@0')`,
    );
  if (harness.exe && cNote) lines.push(`libfdt: ${cNote}`);
  for (const r of rejected) lines.push(`rejected: ${r.file}: ${r.error}`);
  for (const [i, e] of rwFailed)
    lines.push(`kho refused in read-write build: ${relative(dir, files[i] as string)}: ${e}`);
  process.stdout.write(`${lines.join('\n')}\n`);

  const results = {
    date: new Date().toISOString(),
    node: process.version,
    rounds: args.rounds,
    secondsPerMeasure: args.seconds,
    corpus: { dir, note, files: files.length, bytes: totalBytes, rejected },
    table,
    raw: Object.fromEntries(
      rows.map((r) => [
        r.name,
        { files: r.files, khoBytes: r.khoBytes, libfdtBytes: r.libfdtBytes, kho: r.kho, libfdt: r.libfdt },
      ]),
    ),
    memory: {
      khoPeakRssKb: peakRssKb,
      khoHeapRetainedByTreesBytes: heapTrees,
      libfdtPeakRssKb: cMaxRss || null,
    },
    encodeDtcIdenticalToInput: { identical, of: encIdx.length },
    readWrite: {
      files: rwOk.length,
      khoRefused: [...rwFailed].map(([i, e]) => ({ file: relative(dir, files[i] as string), error: e })),
      libfdtRefused: cRefused.map((i) => relative(dir, files[i] as string)),
    },
    libfdtNote: cNote ?? null,
  };
  writeFileSync(join(HERE, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stderr.write(`wrote ${relative(process.cwd(), join(HERE, 'results.json'))}\n`);
}

main();
