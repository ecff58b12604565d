import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { withTempDir } from '../../../test/helpers/oracle.ts';
import { isKhoError } from '../../errors.ts';
import { openElfCore, parseElfCore } from './elfcore.ts';
import { openMemoryImage } from './open.ts';

interface Phdr {
  type: number;
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
}

/**
 * An ELF64 core written field by field from the gABI: Elf64_Ehdr (64 bytes) then Elf64_Phdr (56 bytes
 * each) at e_phoff 64, then the data.
 */
function buildElf(opts: {
  phdrs: Phdr[];
  data?: Array<{ offset: number; bytes: Uint8Array }>;
  size: number;
  big?: boolean;
  patch?: (dv: DataView, le: boolean) => void;
}): Uint8Array {
  const le = !opts.big;
  const out = new Uint8Array(opts.size);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, le ? 1 : 2, 1, 0], 0); // magic, ELFCLASS64, data, EV_CURRENT, SYSV
  dv.setUint16(16, 4, le); // e_type ET_CORE
  dv.setUint16(18, 62, le); // e_machine EM_X86_64
  dv.setUint32(20, 1, le); // e_version
  dv.setBigUint64(32, 64n, le); // e_phoff
  dv.setBigUint64(40, 0n, le); // e_shoff
  dv.setUint16(52, 64, le); // e_ehsize
  dv.setUint16(54, 56, le); // e_phentsize
  dv.setUint16(56, opts.phdrs.length, le); // e_phnum
  dv.setUint16(58, 64, le); // e_shentsize
  opts.phdrs.forEach((p, i) => {
    const o = 64 + i * 56;
    dv.setUint32(o, p.type, le);
    dv.setUint32(o + 4, 6, le); // PF_R|PF_W
    dv.setBigUint64(o + 8, p.offset, le);
    dv.setBigUint64(o + 16, p.vaddr, le);
    dv.setBigUint64(o + 24, p.paddr, le);
    dv.setBigUint64(o + 32, p.filesz, le);
    dv.setBigUint64(o + 40, p.memsz, le);
    dv.setBigUint64(o + 48, 0x1000n, le);
  });
  for (const d of opts.data ?? []) out.set(d.bytes, d.offset);
  opts.patch?.(dv, le);
  return out;
}

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

// A QEMU-like core: a PT_NOTE, RAM at 0 (0x2000 bytes), RAM at 0x100000 (0x1000 in the file, 0x3000 in
// memory: the tail reads as zeros), and a kernel-text-like segment mapping 0x1000..0x1fff again.
const CORE = {
  phdrs: [
    { type: 4, offset: 0x1000n, vaddr: 0n, paddr: 0n, filesz: 0x10n, memsz: 0n },
    { type: 1, offset: 0x2000n, vaddr: 0xffff_8880_0000_0000n, paddr: 0n, filesz: 0x2000n, memsz: 0x2000n },
    { type: 1, offset: 0x4000n, vaddr: 0n, paddr: 0x100000n, filesz: 0x1000n, memsz: 0x3000n },
    {
      type: 1,
      offset: 0x5000n,
      vaddr: 0xffff_ffff_8100_0000n,
      paddr: 0x1000n,
      filesz: 0x1000n,
      memsz: 0x1000n,
    },
  ],
  data: [
    { offset: 0x2000, bytes: fill(0x1000, 0x11) },
    { offset: 0x3000, bytes: fill(0x1000, 0x22) },
    { offset: 0x4000, bytes: fill(0x1000, 0x33) },
    { offset: 0x5000, bytes: fill(0x1000, 0x44) },
  ],
  size: 0x6000,
};

function codeOfParse(bytes: Uint8Array): string {
  try {
    parseElfCore((off, len) => bytes.subarray(off, off + len), bytes.length, 'x.elf');
    return 'ok';
  } catch (e) {
    assert.ok(isKhoError(e), String(e));
    return e.code;
  }
}

test('an ELF64 core maps PT_LOAD segments by p_paddr, lazily from the file', () => {
  withTempDir((dir) => {
    const p = join(dir, 'core.elf');
    writeFileSync(p, buildElf(CORE));
    const mem = openElfCore(p);
    try {
      assert.equal(mem.elf.loads.length, 3);
      assert.deepEqual(mem.ranges(), [
        { start: 0n, size: 0x2000n },
        { start: 0x100000n, size: 0x3000n },
      ]);
      assert.deepEqual(mem.read(0xff8n, 16), new Uint8Array([...fill(8, 0x11), ...fill(8, 0x22)]));
      // The duplicate mapping of 0x1000 does not override the first segment.
      assert.equal(mem.read(0x1000n, 1)[0], 0x22);
      assert.deepEqual(mem.read(0x100ffcn, 8), new Uint8Array([0x33, 0x33, 0x33, 0x33, 0, 0, 0, 0]));
      assert.ok(mem.has(0x102000n, 0x1000));
      assert.ok(!mem.has(0x102000n, 0x1001));
      assert.throws(
        () => mem.read(0x2000n, 1),
        (e) => isKhoError(e, 'KHO_PTR_OUTSIDE_MEMORY') && e.path === 'phys:0x2000',
      );
    } finally {
      mem.close();
    }
    // Sniffing picks ELF.
    const m2 = openMemoryImage(p);
    assert.equal(m2.kind, 'elf');
    m2.close();
  });
});

test('big-endian cores parse too', () => {
  const bytes = buildElf({ ...CORE, big: true });
  const info = parseElfCore((off, len) => bytes.subarray(off, off + len), bytes.length);
  assert.equal(info.endian, 'big');
  assert.deepEqual(
    info.loads.map((l) => [l.paddr, l.filesz, l.memsz]),
    [
      [0n, 0x2000n, 0x2000n],
      [0x100000n, 0x1000n, 0x3000n],
      [0x1000n, 0x1000n, 0x1000n],
    ],
  );
});

test('hostile headers give typed errors', () => {
  const good = buildElf(CORE);
  const mutate = (f: (b: Uint8Array, dv: DataView) => void) => {
    const b = good.slice();
    f(b, new DataView(b.buffer));
    return b;
  };
  assert.equal(codeOfParse(good), 'ok');
  assert.equal(codeOfParse(good.subarray(0, 63)), 'KHO_ELF_TRUNCATED');
  assert.equal(codeOfParse(mutate((b) => (b[1] = 0x46))), 'KHO_ELF_BAD_MAGIC');
  assert.equal(codeOfParse(mutate((b) => (b[4] = 1))), 'KHO_ELF_BAD_CLASS');
  assert.equal(codeOfParse(mutate((b) => (b[5] = 3))), 'KHO_ELF_BAD_DATA');
  assert.equal(codeOfParse(mutate((b) => (b[6] = 0))), 'KHO_ELF_BAD_VERSION');
  assert.equal(codeOfParse(mutate((_, dv) => dv.setUint16(16, 2, true))), 'KHO_ELF_NOT_CORE');
  assert.equal(codeOfParse(mutate((_, dv) => dv.setUint16(54, 32, true))), 'KHO_ELF_BAD_HEADER');
  assert.equal(codeOfParse(mutate((_, dv) => dv.setUint16(52, 52, true))), 'KHO_ELF_BAD_HEADER');
  assert.equal(
    codeOfParse(mutate((_, dv) => dv.setBigUint64(32, 0x5ff0n, true))),
    'KHO_ELF_PHDR_OUTSIDE_FILE',
  );
  assert.equal(
    codeOfParse(mutate((_, dv) => dv.setBigUint64(32, 1n << 63n, true))),
    'KHO_ELF_PHDR_OUTSIDE_FILE',
  );
  // Segment 2 (third phdr): file bytes past the end, filesz > memsz, physical wrap.
  const seg = 64 + 2 * 56;
  assert.equal(
    codeOfParse(mutate((_, dv) => dv.setBigUint64(seg + 8, 0x5800n, true))),
    'KHO_ELF_SEGMENT_OUTSIDE_FILE',
  );
  assert.equal(
    codeOfParse(mutate((_, dv) => dv.setBigUint64(seg + 32, 0x4000n, true))),
    'KHO_ELF_BAD_SEGMENT',
  );
  assert.equal(
    codeOfParse(mutate((_, dv) => dv.setBigUint64(seg + 24, 0xffff_ffff_ffff_f000n, true))),
    'KHO_ELF_BAD_SEGMENT',
  );
  // PN_XNUM without a section header.
  assert.equal(codeOfParse(mutate((_, dv) => dv.setUint16(56, 0xffff, true))), 'KHO_ELF_BAD_HEADER');
});

test('PN_XNUM takes the program header count from section header 0', () => {
  const bytes = buildElf({
    ...CORE,
    size: 0x6040,
    patch: (dv, le) => {
      dv.setUint16(56, 0xffff, le);
      dv.setBigUint64(40, 0x6000n, le); // e_shoff
      dv.setUint32(0x6000 + 44, 4, le); // sh_info = real phnum
    },
  });
  const info = parseElfCore((off, len) => bytes.subarray(off, off + len), bytes.length);
  assert.equal(info.phnum, 4);
  assert.equal(info.loads.length, 3);
});

function readelfAvailable(t: TestContext): boolean {
  if (spawnSync('readelf', ['--version'], { stdio: 'ignore' }).status === 0) return true;
  if (process.env.CI === 'true')
    throw new Error('oracle readelf (binutils) is not installed; CI must not skip');
  t.skip('readelf (binutils) is not installed');
  return false;
}

test('oracle: readelf -lW sees the same PT_LOAD segments', (t) => {
  if (!readelfAvailable(t)) return;
  withTempDir((dir) => {
    const p = join(dir, 'core.elf');
    const bytes = buildElf(CORE);
    writeFileSync(p, bytes);
    const r = spawnSync('readelf', ['-lW', p], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const theirs = r.stdout
      .split('\n')
      .filter((l) => /^\s+LOAD\s/.test(l))
      .map((l) => {
        const f = l.trim().split(/\s+/);
        return [BigInt(f[1]), BigInt(f[3]), BigInt(f[4]), BigInt(f[5])]; // offset, paddr, filesz, memsz
      });
    const ours = parseElfCore((off, len) => bytes.subarray(off, off + len), bytes.length).loads.map((l) => [
      l.offset,
      l.paddr,
      l.filesz,
      l.memsz,
    ]);
    assert.deepEqual(ours, theirs);
  });
});

test('many overlapping PT_LOADs (a hostile core) cost O(n log n), not O(n^2)', () => {
  withTempDir((dir) => {
    const n = 30000;
    const phdrs = Array.from({ length: n }, (_, i) => ({
      type: 1,
      offset: 0x1000n,
      vaddr: 0n,
      paddr: BigInt(i % 7) * 0x10n,
      filesz: 0x100n,
      memsz: 0x100n,
    }));
    const size = 64 + n * 56 + 0x1000;
    const p = join(dir, 'many.elf');
    writeFileSync(p, buildElf({ phdrs, size: Math.max(size, 0x1100), patch: () => {} }));
    const t0 = process.cpuUsage();
    const mem = openElfCore(p);
    const used = process.cpuUsage(t0);
    try {
      assert.deepEqual(mem.ranges(), [{ start: 0n, size: 0x160n }]);
      assert.ok((used.user + used.system) / 1000 < 2000, `took ${(used.user + used.system) / 1000} ms`);
    } finally {
      mem.close();
    }
  });
});
