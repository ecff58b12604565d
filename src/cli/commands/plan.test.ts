/**
 * `kho plan` on the real 7.3.4 debugfs scratch files. Oracles: where the next kernel actually found
 * its kernel text and initrd (its /proc/iomem `Kernel code` and `RAMDISK:` log line), hand
 * derivations for the failure case, and Python's struct for a real Debian bzImage when available.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { capture, quiet } from '../../../test/helpers/cli.ts';
import { withTempDir } from '../../../test/helpers/oracle.ts';
import { runPlan } from './plan.ts';

const ROOT = join(import.meta.dirname, '../../..');
const VEC = join(ROOT, 'test/vectors/linux-7.3.4');

// A simulated 7.3.4-khovec kernel whose init_size lies inside the window the vectors' placements
// allow (see src/sim/kexec/placement.test.ts): the real bzImage is not among the vectors.
const DESC = JSON.stringify({
  kind: 'kho-simulated-kernel',
  release: '7.3.4-khovec',
  profile: 'kho-v4',
  memSize: '0x21f8000',
});

function fixture(dir: string, initrdBytes: number): { image: string; initrd: string } {
  const image = join(dir, 'bzImage.json');
  const initrd = join(dir, 'initrd');
  writeFileSync(image, DESC);
  writeFileSync(initrd, '');
  truncateSync(initrd, initrdBytes);
  return { image, initrd };
}

function evidence(stage: string): { kernel: string; initrd: string; initrdBytes: number } {
  const iomem = readFileSync(join(VEC, stage, 'iomem'), 'utf8');
  const dmesg = readFileSync(join(VEC, stage, 'dmesg'), 'utf8');
  const code = /^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel code$/m.exec(iomem);
  const rd = /RAMDISK: \[mem 0x([0-9a-f]+)-/.exec(dmesg);
  const freed = /Freeing initrd memory: (\d+)K/.exec(dmesg);
  assert.ok(code && rd && freed);
  return {
    kernel: `0x${BigInt(`0x${code[1]}`).toString(16)}`,
    initrd: `0x${BigInt(`0x${rd[1]}`).toString(16)}`,
    initrdBytes: Number(freed[1]) * 1024,
  };
}

test('kho plan --debugfs --json on every KHO vector: kernel and initrd where the next kernel found them', () => {
  for (const [prev, next] of [
    ['flat-explicit/stage1', 'flat-explicit/stage2'],
    ['numa-explicit/stage1', 'numa-explicit/stage2'],
    ['default-scale/stage1', 'default-scale/stage2'],
    ['luo-memfd/stage1', 'luo-memfd/stage2'],
    ['three-hops/stage2', 'three-hops/stage3'],
  ]) {
    const want = evidence(next);
    withTempDir((dir) => {
      const f = fixture(dir, want.initrdBytes);
      const { code, out } = capture((io) =>
        runPlan(
          {
            debugfs: join(VEC, prev),
            image: f.image,
            initrd: f.initrd,
            cmdline: 'console=ttyS0 kho=on',
            json: true,
          },
          io,
        ),
      );
      assert.equal(code, 0, next);
      const j = JSON.parse(out) as {
        ok: boolean;
        segments: { name: string; start: string; end: string; regionLabel: string }[];
      };
      assert.equal(j.ok, true);
      const seg = (n: string) => j.segments.find((s) => s.name === n);
      assert.equal(seg('kernel')?.start, want.kernel, next);
      assert.equal(seg('initrd')?.start, want.initrd, next);
      assert.equal(
        j.segments.map((s) => s.name).join(','),
        'kho-scratch,purgatory,boot-params,kernel,initrd',
      );
      assert.match(seg('initrd')?.end ?? '', /^0x[0-9a-f]+$/);
    });
  }
});

test('kho plan: the human table and the handover line (flat-explicit, files given one by one)', () => {
  withTempDir((dir) => {
    const f = fixture(dir, 4500 * 1024);
    const out = join(VEC, 'flat-explicit/stage1/out');
    const r = capture((io) =>
      runPlan(
        {
          scratchPhys: join(out, 'scratch_phys'),
          scratchLen: join(out, 'scratch_len'),
          image: f.image,
          initrd: f.initrd,
          fdt: join(out, 'fdt'),
        },
        io,
      ),
    );
    assert.equal(r.code, 0);
    assert.match(r.out, /^kexec_file_load plan: x86_64 simulated kernel 7\.3\.4-khovec, KHO on/);
    assert.match(r.out, /scratch\[1\] global {2}0x78000000-0x7bffffff {2}64 MiB/);
    assert.match(
      r.out,
      /3\s+kernel\s+0x79e00000-0x7bff7fff\s+34\.0 MiB \(12582912 bytes of data\)\s+scratch\[1\] global/,
    );
    assert.match(r.out, /4\s+initrd\s+0x7cb8b000-0x7cfeffff\s+4\.4 MiB\s+scratch\[0\] lowmem/);
    assert.match(
      r.out,
      /handover \(boot_params setup_data SETUP_KEXEC_KHO\): .* scratch array copy at 0x7cff0000 \(48 bytes\)/,
    );
    assert.match(r.out, /root KHO FDT .*out\/fdt: 353 bytes, stays where it is \(not a segment\)/);
    assert.match(r.out, /estimated: purgatory/);
  });
});

test('kho plan: a segment that does not fit names itself, the largest hole and the shortfall (exit 1)', () => {
  withTempDir((dir) => {
    // 100 MiB initrd on flat-explicit. Hand derivation of the holes left for a page-aligned buffer
    // above 16 MiB: lowmem [0x7c000000, 0x7d000000) holds the array copy at 0x7cff0000 and
    // boot_params + purgatory at 0x7cffa000..: 0xff0000 below them; global holds the kernel at
    // [0x79e00000, 0x7bff8000): 0x1e00000 below it; node0 [0x76000000, 0x78000000) is empty: 0x2000000.
    const f = fixture(dir, 100 * 1024 * 1024);
    const { value, err } = quiet(() =>
      capture((io) =>
        runPlan(
          { debugfs: join(VEC, 'flat-explicit/stage1'), image: f.image, initrd: f.initrd, json: true },
          io,
        ),
      ),
    );
    assert.equal(value.code, 1);
    const j = JSON.parse(value.out) as { ok: boolean; error: Record<string, string> };
    assert.equal(j.ok, false);
    assert.equal(j.error.code, 'SIM_KEXEC_NO_FIT');
    assert.equal(j.error.segment, 'initrd');
    assert.equal(j.error.needed, '0x6400000');
    assert.equal(j.error.largest, '0x2000000');
    assert.equal(j.error.shortBy, '0x4400000');
    assert.match(
      err,
      /SIM_KEXEC_NO_FIT: no scratch region fits initrd .* in scratch\[2\] node0, 0x4400000 bytes short \(-EADDRNOTAVAIL\)/,
    );
  });
});

test('kho plan: usage errors exit 2, unreadable or malformed inputs exit 1 naming the file', () => {
  withTempDir((dir) => {
    const f = fixture(dir, 4096);
    const run = (o: Parameters<typeof runPlan>[0]) => quiet(() => capture((io) => runPlan(o, io)));
    assert.equal(run({ debugfs: join(VEC, 'flat-explicit/stage1') }).value.code, 2); // no --image
    assert.equal(run({ image: f.image }).value.code, 2); // no scratch
    assert.equal(run({ image: f.image, debugfs: dir, scratchPhys: 'x' }).value.code, 2);
    assert.equal(
      run({ image: f.image, debugfs: join(VEC, 'flat-explicit/stage1'), arch: 'mips' }).value.code,
      2,
    );
    const none = run({ image: f.image, debugfs: dir });
    assert.equal(none.value.code, 1);
    assert.match(none.err, /IO_ENOENT: no scratch_phys under/);
    writeFileSync(join(dir, 'phys'), '0x7c000000\n0x78000000\n');
    writeFileSync(join(dir, 'len'), '0x1000000\n0X4000000\n');
    const badText = run({ image: f.image, scratchPhys: join(dir, 'phys'), scratchLen: join(dir, 'len') });
    assert.equal(badText.value.code, 1);
    assert.match(badText.err, /KHO_SCRATCH_BAD_TEXT: .*\(at \S+\/len, offset 0xa,/);
    writeFileSync(join(dir, 'notakernel'), 'MZ'.padEnd(4096, '\0'));
    const bad = run({ image: join(dir, 'notakernel'), debugfs: join(VEC, 'flat-explicit/stage1') });
    assert.equal(bad.value.code, 1);
    assert.match(bad.err, /SIM_BAD_IMAGE: Not a bzImage \(at \S+notakernel, offset 0x202, expected 'HdrS'\)/);
  });
});

test('kho plan --help lists the options and examples', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/kho.js'), 'plan', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--scratch-phys <file>/);
  assert.match(r.stdout, /--debugfs <dir>/);
  assert.match(r.stdout, /Examples:\n {2}kho plan --debugfs \/sys\/kernel\/debug\/kho/);
});

test('kho plan with a real Debian bzImage: kernel memsz is PAGE_ALIGN(init_size) from the header', (t) => {
  const dir = '/tmp/kho-real/boot';
  const f = existsSync(dir) ? readdirSync(dir).find((n) => n.startsWith('vmlinuz-')) : undefined;
  const path = process.env.KHO_TEST_BZIMAGE ?? (f ? join(dir, f) : undefined);
  if (!path || !existsSync(path)) {
    t.skip('no real bzImage (set KHO_TEST_BZIMAGE)');
    return;
  }
  const py = execFileSync('/usr/bin/python3', [
    '-c',
    "import struct,sys; b=open(sys.argv[1],'rb').read(); print(struct.unpack_from('<I',b,0x260)[0], struct.unpack_from('<I',b,0x230)[0])",
    path,
  ])
    .toString()
    .trim()
    .split(' ')
    .map(BigInt);
  const { code, out } = capture((io) =>
    runPlan({ debugfs: join(VEC, 'default-scale/stage1'), image: path, json: true }, io),
  );
  assert.equal(code, 0);
  const k = (JSON.parse(out) as { segments: { name: string; start: string; memsz: string }[] }).segments.find(
    (s) => s.name === 'kernel',
  );
  assert.equal(BigInt(k?.memsz ?? 0), (py[0] + 4095n) & ~4095n);
  assert.equal(BigInt(k?.start ?? 1) % py[1], 0n);
});

test('kho plan: empty or oversized scratch files are refused; odd areas are reported as notes', () => {
  withTempDir((dir) => {
    const f = fixture(dir, 4096);
    const phys = join(dir, 'phys');
    const len = join(dir, 'len');
    const run = () =>
      quiet(() =>
        capture((io) => runPlan({ image: f.image, scratchPhys: phys, scratchLen: len, json: true }, io)),
      );
    writeFileSync(phys, '');
    writeFileSync(len, '');
    assert.match(run().err, /KHO_SCRATCH_TOO_FEW/);
    writeFileSync(phys, '0x100000\n'.repeat(2000));
    writeFileSync(len, '0x1000\n'.repeat(2000));
    const many = run();
    assert.equal(many.value.code, 1);
    assert.match(many.err, /KHO_SCRATCH_TOO_MANY: 2000 scratch areas/);
    // lowmem 0x40000000+0x8000000, global overlapping it, node0 misaligned
    writeFileSync(phys, '0x40000000\n0x44000000\n0x50000800\n');
    writeFileSync(len, '0x8000000\n0x1000000\n0x1000000\n');
    const odd = run();
    assert.equal(odd.value.code, 0);
    const notes = (JSON.parse(odd.value.out) as { notes: string[] }).notes.join('\n');
    assert.match(
      notes,
      /scratch error: scratch\[1\] \(global\): global 0x44000000\+0x1000000 overlaps lowmem/,
    );
    assert.match(
      notes,
      /scratch warning: scratch\[2\] \(node0\): 0x50000800\+0x1000000 is not aligned to 0x1000/,
    );
  });
});

test('kho plan on arm64: an Image file, the running DT from --dtb, segments above the kernel', () => {
  withTempDir((dir) => {
    // arm64 Image header: text_offset 0, image_size 0x2a10000, flags 0xa, magic ARM\x64 at 0x38
    const img = new Uint8Array(8192);
    const dv = new DataView(img.buffer);
    dv.setBigUint64(16, 0x2a10000n, true);
    dv.setBigUint64(24, 0xan, true);
    img.set([0x41, 0x52, 0x4d, 0x64], 56);
    writeFileSync(join(dir, 'Image'), img);
    writeFileSync(join(dir, 'phys'), '0x47000000\n0x50000000\n');
    writeFileSync(join(dir, 'len'), '0x1000000\n0x8000000\n');
    writeFileSync(join(dir, 'rd'), '');
    truncateSync(join(dir, 'rd'), 0x3000000);
    const { code, out } = capture((io) =>
      runPlan(
        {
          image: join(dir, 'Image'),
          scratchPhys: join(dir, 'phys'),
          scratchLen: join(dir, 'len'),
          initrd: join(dir, 'rd'),
          dtb: join(VEC, 'flat-explicit/stage1/out/fdt'), // a 353-byte DT stands in for the running one
          json: true,
        },
        io,
      ),
    );
    assert.equal(code, 0);
    const j = JSON.parse(out) as {
      arch: string;
      segments: { name: string; start: string; end: string }[];
      handover: { kind: string };
    };
    assert.equal(j.arch, 'arm64');
    // scratch copy at the top of lowmem; the kernel (42.06 MiB) bottom-up at the start of global,
    // 2 MiB aligned; the initrd right after it (page aligned, bottom-up); the one-page DTB at the
    // highest 2 MiB boundary of global that leaves room for it
    assert.deepEqual(
      j.segments.map((s) => [s.name, s.start, s.end]),
      [
        ['kho-scratch', '0x47ff0000', '0x47ff1000'],
        ['kernel', '0x50000000', '0x52a10000'],
        ['initrd', '0x52a10000', '0x55a10000'],
        ['dtb', '0x57e00000', '0x57e01000'],
      ],
    );
    assert.equal(j.handover.kind, 'chosen');
  });
});
