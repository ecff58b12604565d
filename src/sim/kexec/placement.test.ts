/**
 * Segment placement. Oracles: the real 7.3.4 kernel's placements in the vectors (the next kernel's
 * `Kernel code` start in /proc/iomem and its `RAMDISK: [mem ...]` line), a literal transcription of
 * the kernel's page-stepping hole search written here (checked against the engine's jumping search on
 * random layouts), and hand derivations from kexec_file.c / kexec-bzimage64.c / arm64's loader.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { scratchFromDebugfs } from '../../abi/scratch.ts';
import { KhoError } from '../../errors.ts';
import { type KernelImage, parseImageDescription } from './image.ts';
import {
  type HoleRegion,
  type KexecBuf,
  type KexecContext,
  kexecAddBuffer,
  locateInRegion,
  noFitDetails,
  type PlacedSegment,
  planKexecLoad,
  x86BootParamsSize,
} from './placement.ts';

const VEC = new URL('../../../test/vectors/linux-7.3.4/', import.meta.url);
const vec = (p: string): string => readFileSync(new URL(p, VEC), 'utf8');
const M = 1n << 20n;

function x86Image(initSize: bigint, extra: Record<string, string> = {}): KernelImage {
  return parseImageDescription(
    JSON.stringify({
      kind: 'kho-simulated-kernel',
      release: '7.3.4-khovec',
      profile: 'kho-v4',
      memSize: `0x${initSize.toString(16)}`,
      ...extra,
    }),
  );
}

/** What the next kernel shows: where its text starts and where its initrd was, and the initrd size. */
function landed(stage: string): { kernel: bigint; initrd: bigint; initrdSize: bigint } {
  const code = /^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel code$/m.exec(vec(`${stage}/iomem`));
  const rd = /RAMDISK: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\]/.exec(vec(`${stage}/dmesg`));
  const freed = /Freeing initrd memory: (\d+)K/.exec(vec(`${stage}/dmesg`));
  assert.ok(code && rd && freed);
  return {
    kernel: BigInt(`0x${code[1]}`),
    initrd: BigInt(`0x${rd[1]}`),
    initrdSize: BigInt(freed[1]) * 1024n,
  };
}

// The previous kernel's scratch (the kexec was loaded there) and the next kernel's evidence.
const HOPS = [
  ['flat-explicit/stage1', 'flat-explicit/stage2'],
  ['numa-explicit/stage1', 'numa-explicit/stage2'],
  ['default-scale/stage1', 'default-scale/stage2'],
  ['luo-memfd/stage1', 'luo-memfd/stage2'],
  ['three-hops/stage1', 'three-hops/stage2'],
  ['three-hops/stage2', 'three-hops/stage3'],
] as const;

// The vectors' bzImage is not among them, so its init_size is unknown; the placements bound it:
// flat-explicit puts the kernel 0x2200000 below the top of global (so PAGE_ALIGN(init_size) is in
// (0x2000000, 0x2200000]); default-scale puts it one 2 MiB step lower than the top of lowmem allows,
// because it would overlap the scratch-array segment 0x10000 below the top (so it is > 0x21f0000).
const INIT_SIZES = [0x21f1000n, 0x21f8000n, 0x2200000n];

test("x86 placements match the real kernel's: kernel and initrd where the next kernel found them", () => {
  for (const initSize of INIT_SIZES) {
    for (const [prev, next] of HOPS) {
      const scratch = scratchFromDebugfs(vec(`${prev}/out/scratch_phys`), vec(`${prev}/out/scratch_len`));
      const want = landed(next);
      const plan = planKexecLoad({
        image: x86Image(initSize),
        initrdSize: want.initrdSize,
        scratch,
        cmdline: vec(`${next}/dmesg`).match(/Command line: (.*)/)?.[1] ?? '',
      });
      const seg = (n: string) => plan.segments.find((s) => s.name === n);
      assert.equal(seg('kernel')?.mem, want.kernel, `${next} kernel (init_size 0x${initSize.toString(16)})`);
      assert.equal(seg('initrd')?.mem, want.initrd, `${next} initrd`);
      // with KHO every segment lies inside a scratch area
      for (const s of plan.segments) {
        const r = scratch[s.region];
        assert.ok(s.mem >= r.addr && s.mem + s.memsz <= r.addr + r.size, `${next} ${s.name} inside scratch`);
      }
    }
  }
  // and the bound is tight: one page more and flat-explicit's kernel lands 2 MiB lower
  const flat = scratchFromDebugfs(
    vec('flat-explicit/stage1/out/scratch_phys'),
    vec('flat-explicit/stage1/out/scratch_len'),
  );
  const over = planKexecLoad({ image: x86Image(0x2201000n), initrdSize: 0x465000n, scratch: flat });
  assert.notEqual(over.segments.find((s) => s.name === 'kernel')?.mem, landed('flat-explicit/stage2').kernel);
});

test('x86 segment order, sizes and the KHO handover record (hand-derived for flat-explicit)', () => {
  const scratch = scratchFromDebugfs(
    vec('flat-explicit/stage1/out/scratch_phys'),
    vec('flat-explicit/stage1/out/scratch_len'),
  );
  const plan = planKexecLoad({
    image: x86Image(0x21f8000n),
    initrdSize: 0x465000n,
    scratch,
    cmdline: 'console=ttyS0',
    khoFdtAddr: 0x1234000n,
  });
  assert.deepEqual(
    plan.segments.map((s) => [s.name, s.mem, s.memsz, s.regionLabel]),
    [
      // 3 entries * 16 bytes, one page, 64 KiB aligned from the top of lowmem [0x7c000000, 0x7d000000)
      ['kho-scratch', 0x7cff0000n, 0x1000n, 'scratch[0] lowmem'],
      // the purgatory estimate (0x4000) right at the top
      ['purgatory', 0x7cffc000n, 0x4000n, 'scratch[0] lowmem'],
      // boot_params: ALIGN(4096 + 14 + 30, 16) + 16 + 96 + 16 + 32 + 16 + 32 = 0x1110 -> two pages
      ['boot-params', 0x7cffa000n, 0x2000n, 'scratch[0] lowmem'],
      // 0x21f8000 does not fit the 16 MiB lowmem: global [0x78000000, 0x7c000000), 2 MiB aligned
      ['kernel', 0x79e00000n, 0x21f8000n, 'scratch[1] global'],
      // 4500 KiB below the scratch array copy
      ['initrd', 0x7cff0000n - 0x465000n, 0x465000n, 'scratch[0] lowmem'],
    ],
  );
  assert.equal(plan.kernelEntry, 0x79e00200n);
  assert.deepEqual(plan.handover, {
    kind: 'setup_data',
    fdtAddr: 0x1234000n,
    fdtSize: 0x1000n,
    scratchAddr: 0x7cff0000n,
    scratchSize: 48n,
  });
  assert.equal(plan.cmdlineLen, 14);
  assert.ok(plan.estimates.some((e) => e.startsWith('purgatory')));
});

test('x86 boot_params segment size (kexec-bzimage64.c arithmetic)', () => {
  // ALIGN(4096 + 0 + 30, 16) = 4128; + efi setup_data 16 + 96; + rng 16 + 32; + kho 16 + 32
  assert.equal(x86BootParamsSize(0), 4128n + 112n + 48n + 48n);
  assert.equal(x86BootParamsSize(0, { khoConfigured: false }), 4128n + 112n + 48n);
  assert.equal(x86BootParamsSize(3, { imaKexec: true }), 4144n + 112n + 48n + 32n + 48n);
  assert.equal(x86BootParamsSize(0, { efiMapSize: 0x61n }), 4128n + 0x70n + 112n + 48n + 48n);
});

test('x86 command-line limits give the loader messages', () => {
  const scratch = [
    { addr: 0x10000000n, size: 0x8000000n },
    { addr: 0x20000000n, size: 0n },
  ];
  const img = x86Image(0x1000000n);
  const long = 'x'.repeat(2047); // 2048 with the NUL > cmdline_size 2047
  assert.throws(() => planKexecLoad({ image: img, scratch, cmdline: long }), {
    code: 'SIM_KEXEC_CMDLINE_TOO_LONG',
    message: 'Kernel command line too long',
  });
  assert.throws(() => planKexecLoad({ image: img, scratch, cmdline: 'x'.repeat(2017) }), {
    message: 'Appending elfcorehdr=<addr> to command line exceeds maximum allowed length',
  });
  assert.equal(planKexecLoad({ image: img, scratch, cmdline: 'x'.repeat(2016) }).cmdlineLen, 2017); // 2017 + 30 = 2047
});

test('scratch areas are offered in array order, first fit wins, an empty area is skipped', () => {
  const img = x86Image(0x800000n);
  // lowmem too small for anything but the small segments; global 0 bytes; node 0 large
  const scratch = [
    { addr: 0x7000000n, size: 0x100000n },
    { addr: 0x9000000n, size: 0n },
    { addr: 0x40000000n, size: 0x4000000n },
  ];
  const plan = planKexecLoad({ image: img, scratch, initrdSize: 0x200000n });
  assert.deepEqual(
    plan.segments.map((s) => [s.name, s.mem, s.region]),
    [
      ['kho-scratch', 0x70f0000n, 0],
      ['purgatory', 0x70fc000n, 0],
      ['boot-params', 0x70fa000n, 0],
      // 8 MiB: not in lowmem; node 0 from its top, 2 MiB aligned
      ['kernel', 0x43800000n, 2],
      // 2 MiB: lowmem has 0xf0000 free below the array -> node 0, under the kernel
      ['initrd', 0x43600000n, 2],
    ],
  );
});

test('no fit: -EADDRNOTAVAIL naming the segment, the largest usable hole and the shortfall', () => {
  const scratch = [
    { addr: 0x7000000n, size: 0x1000000n },
    { addr: 0x9000000n, size: 0x2000000n },
  ];
  try {
    planKexecLoad({ image: x86Image(0x2400000n), scratch, initrdSize: 0x100000n });
    assert.fail('placed');
  } catch (e) {
    assert.ok(e instanceof KhoError);
    assert.equal(e.code, 'SIM_KEXEC_NO_FIT');
    assert.equal(e.path, 'kernel');
    // global [0x9000000, 0xb000000) is empty: a 2 MiB aligned buffer can use all 32 MiB of it
    assert.deepEqual(noFitDetails(e), {
      segment: 'kernel',
      needed: 0x2400000n,
      largest: 0x2000000n,
      shortBy: 0x400000n,
    });
    assert.match(
      e.message,
      /largest usable hole is 0x2000000 bytes at 0x9000000 in scratch\[1\] global, 0x400000 bytes short/,
    );
  }
  // buf_min excludes everything below 16 MiB for the initrd
  try {
    planKexecLoad({
      image: x86Image(0x100000n, { prefAddress: '0x100000' }),
      scratch: [{ addr: 0x200000n, size: 0xc00000n }],
      initrdSize: 0x1000n,
    });
    assert.fail('placed');
  } catch (e) {
    assert.equal(noFitDetails(e)?.segment, 'initrd');
    assert.match((e as Error).message, /no scratch region lies within \[0x1000000, 0xffffffffffffffff\]/);
  }
});

test('arm64: kernel bottom-up 2 MiB aligned and moved by text_offset, initrd above it, DTB from the top', () => {
  const img = parseImageDescription(
    JSON.stringify({
      kind: 'kho-simulated-kernel',
      release: '7.3.0',
      profile: 'kho-v4',
      arch: 'arm64',
      memSize: '0x2a10000',
      textOffset: '0x80000',
    }),
  );
  const scratch = [
    { addr: 0x47000000n, size: 0x1000000n }, // lowmem 16 MiB
    { addr: 0x50000000n, size: 0x8000000n }, // global 128 MiB
  ];
  const plan = planKexecLoad({
    image: img,
    scratch,
    initrdSize: 0x3000000n,
    dtbSize: 0x1800n,
    cmdline: 'console=ttyAMA0',
  });
  // kernel memsz 0x2a10000 + 0x80000 = 0x2a90000: not in lowmem; global bottom-up from 0x50000000;
  // the segment then starts text_offset higher and is that much shorter
  // initrd: bottom-up from the kernel's end 0x52a90000 (page aligned) in the first area that fits:
  // lowmem is below buf_min, so global
  // dtb: 0x1800 + 512 + 16 = 0x1a10 -> one 2 MiB aligned page from the top of... lowmem is below
  // buf_min (the kernel's end), so global's top: 0x57fff000 aligned down to 2 MiB = 0x57e00000
  assert.deepEqual(
    plan.segments.map((s) => [s.name, s.mem, s.memsz]),
    [
      ['kho-scratch', 0x47ff0000n, 0x1000n],
      ['kernel', 0x50080000n, 0x2a10000n],
      ['initrd', 0x52a90000n, 0x3000000n],
      ['dtb', 0x57e00000n, 0x2000n],
    ],
  );
  assert.equal(plan.kernelEntry, 0x50080000n);
  assert.equal(plan.handover?.kind, 'chosen');
});

test('without KHO: RAM ranges are walked from the top for top-down buffers, from the bottom otherwise', () => {
  const ram = [
    { start: 0x100000n, size: 0x7f000000n - 0x100000n },
    { start: 0x100000000n, size: 0x80000000n },
  ];
  const plan = planKexecLoad({ image: x86Image(0x2000000n), ram, initrdSize: 0x400000n });
  assert.equal(plan.kho, false);
  assert.equal(plan.handover, null);
  assert.deepEqual(
    plan.segments.map((s) => [s.name, s.mem]),
    [
      ['purgatory', 0x17fffc000n],
      ['boot-params', 0x17fffa000n],
      // 0x180000000 - 32 MiB = 0x17e000000 overlaps the pages above it: one 2 MiB step lower
      ['kernel', 0x17de00000n],
      // from the top, 4 MiB overlaps the kernel (the gap above it is 0x1fa000 bytes): right below it
      ['initrd', 0x17da00000n],
    ],
  );
});

// --- the kernel's literal search, transcribed from kexec_file.c for the property test below ---

function literalTopDown(
  start: bigint,
  end: bigint,
  k: KexecBuf,
  segs: readonly PlacedSegment[],
): bigint | null {
  const page = 4096n;
  const dn = (x: bigint) => x & ~(k.bufAlign - 1n);
  let tempEnd = end < k.bufMax ? end : k.bufMax;
  let tempStart = tempEnd - k.memsz + 1n;
  for (;;) {
    tempStart = dn(tempStart);
    if (tempStart < start || tempStart < k.bufMin) return null;
    tempEnd = tempStart + k.memsz - 1n;
    if (segs.some((s) => tempEnd >= s.mem && tempStart <= s.mem + s.memsz - 1n)) {
      tempStart -= page;
      continue;
    }
    return tempStart;
  }
}
function literalBottomUp(
  start: bigint,
  end: bigint,
  k: KexecBuf,
  segs: readonly PlacedSegment[],
): bigint | null {
  const page = 4096n;
  const up = (x: bigint) => (x + k.bufAlign - 1n) & ~(k.bufAlign - 1n);
  let tempStart = start > k.bufMin ? start : k.bufMin;
  for (;;) {
    tempStart = up(tempStart);
    const tempEnd = tempStart + k.memsz - 1n;
    if (tempEnd > end || tempEnd > k.bufMax) return null;
    if (segs.some((s) => tempEnd >= s.mem && tempStart <= s.mem + s.memsz - 1n)) {
      tempStart += page;
      continue;
    }
    return tempStart;
  }
}

test('the jumping search lands exactly where the page-stepping kernel search does', () => {
  const P = 4096n;
  fc.assert(
    fc.property(
      fc.record({
        startPg: fc.integer({ min: 1, max: 64 }),
        sizePg: fc.integer({ min: 1, max: 256 }),
        memPg: fc.integer({ min: 1, max: 40 }),
        alignShift: fc.integer({ min: 12, max: 17 }),
        topDown: fc.boolean(),
        minPg: fc.integer({ min: 0, max: 128 }),
        maxPg: fc.option(fc.integer({ min: 16, max: 400 }), { nil: undefined }),
        segs: fc.array(fc.tuple(fc.integer({ min: 0, max: 330 }), fc.integer({ min: 1, max: 12 })), {
          maxLength: 8,
        }),
      }),
      (c) => {
        const region: HoleRegion = { start: BigInt(c.startPg) * P, size: BigInt(c.sizePg) * P, label: 'r' };
        const k: KexecBuf = {
          name: 'x',
          bufsz: 0n,
          memsz: BigInt(c.memPg) * P,
          bufAlign: 1n << BigInt(c.alignShift),
          bufMin: BigInt(c.minPg) * P,
          bufMax: c.maxPg === undefined ? (1n << 64n) - 1n : BigInt(c.maxPg) * P - 1n,
          topDown: c.topDown,
        };
        // non-overlapping placed segments
        const segs: PlacedSegment[] = [];
        for (const [at, len] of c.segs) {
          const mem = BigInt(at) * P;
          const memsz = BigInt(len) * P;
          if (segs.some((s) => mem < s.mem + s.memsz && s.mem < mem + memsz)) continue;
          segs.push({
            index: segs.length,
            name: 's',
            mem,
            memsz,
            bufsz: memsz,
            align: P,
            topDown: true,
            region: 0,
            regionLabel: 'r',
          });
        }
        const end = region.start + region.size - 1n;
        let want: bigint | null = null;
        if (region.size >= k.memsz && !(end < k.bufMin || region.start > k.bufMax)) {
          // the literal top-down search underflows when buf_max cuts the region below memsz; the model
          // reports no fit there (see placement.ts), so compare only where the kernel's value is sane
          if (k.topDown && (end < k.bufMax ? end : k.bufMax) + 1n < k.memsz) return;
          want = k.topDown
            ? literalTopDown(region.start, end, k, segs)
            : literalBottomUp(region.start, end, k, segs);
        }
        assert.equal(locateInRegion(region, k, segs, P), want);
      },
    ),
    { numRuns: 300 },
  );
});

test('kexecAddBuffer rounds memsz up to a page and the alignment up to a page', () => {
  const ctx: KexecContext = {
    regions: [{ start: 0x100000n, size: 0x100000n, label: 'r' }],
    mode: 'kho',
    pageSize: 4096n,
    segments: [],
  };
  const s = kexecAddBuffer(ctx, {
    name: 'a',
    bufsz: 10n,
    memsz: 10n,
    bufAlign: 16n,
    bufMin: 0n,
    bufMax: (1n << 64n) - 1n,
    topDown: true,
  });
  assert.deepEqual([s.mem, s.memsz, s.bufsz, s.align], [0x1ff000n, 0x1000n, 10n, 0x1000n]);
  const t = kexecAddBuffer(ctx, {
    name: 'b',
    bufsz: 1n,
    memsz: 1n,
    bufAlign: 0n,
    bufMin: 0n,
    bufMax: (1n << 64n) - 1n,
    topDown: false,
  });
  assert.equal(t.mem, 0x100000n);
});

test('hostile geometry: huge, wrapping and misaligned inputs give a placement or a KhoError', () => {
  const max = (1n << 64n) - 1n;
  fc.assert(
    fc.property(
      fc.array(fc.record({ addr: fc.bigInt({ min: 0n, max }), size: fc.bigInt({ min: 0n, max }) }), {
        minLength: 0,
        maxLength: 5,
      }),
      fc.bigInt({ min: 0n, max: 1n << 40n }),
      fc.option(fc.bigInt({ min: 0n, max: 1n << 40n }), { nil: null }),
      (scratch, initSize, initrd) => {
        try {
          const plan = planKexecLoad({ image: x86Image(initSize), scratch, initrdSize: initrd });
          for (const s of plan.segments) assert.ok(s.mem + s.memsz <= 1n << 64n);
        } catch (e) {
          if (!(e instanceof KhoError)) throw e;
        }
      },
    ),
    { numRuns: 200 },
  );
});

void M;
