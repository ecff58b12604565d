/**
 * Kernel image parsing. The bzImages are built here byte by byte from the boot protocol
 * (Documentation/arch/x86/boot.rst: field offsets from the start of the file), the arm64 Image
 * header from Documentation/arch/arm64/booting.rst; expected values are what the test wrote.
 * A real Debian bzImage is checked against `file(1)` and Python's struct when one is available
 * (KHO_TEST_BZIMAGE=path, or /tmp/kho-real/boot/vmlinuz-*); the test skips otherwise.
 */

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { KhoError } from '../../errors.ts';
import { loadKernelImage, parseArm64Image, parseBzImage, parseImageDescription } from './image.ts';

interface BzFields {
  fileSize?: number;
  setupSects?: number;
  bootFlag?: number;
  magic?: string;
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  kernelAlignment?: number;
  prefAddress?: bigint;
  initSize?: number;
  cmdlineSize?: number;
  /** kernel_version pointer and the string written at pointer + 0x200. */
  versionPtr?: number;
  versionText?: string;
}

/** A bzImage with the given setup header (boot.rst offsets written out here). */
function bzImage(f: BzFields = {}): Uint8Array {
  const sects = f.setupSects ?? 4;
  const size = f.fileSize ?? ((sects === 0 ? 4 : sects) + 1) * 512 + 8192;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  const put = (off: number, bytes: number, v: number | bigint): void => {
    if (off + bytes > size) return;
    if (bytes === 1) dv.setUint8(off, Number(v));
    else if (bytes === 2) dv.setUint16(off, Number(v), true);
    else if (bytes === 4) dv.setUint32(off, Number(v), true);
    else dv.setBigUint64(off, BigInt(v), true);
  };
  put(0x1f1, 1, sects); // setup_sects
  put(0x1fe, 2, f.bootFlag ?? 0xaa55); // boot_flag
  const magic = new TextEncoder().encode(f.magic ?? 'HdrS');
  if (0x202 + 4 <= size) b.set(magic.subarray(0, 4), 0x202); // header
  put(0x206, 2, f.version ?? 0x020f); // version
  put(0x20e, 2, f.versionPtr ?? 0x300); // kernel_version
  put(0x211, 1, f.loadflags ?? 0x01); // loadflags: LOADED_HIGH
  put(0x230, 4, f.kernelAlignment ?? 0x200000); // kernel_alignment
  put(0x234, 1, 1); // relocatable_kernel
  put(0x235, 1, 21); // min_alignment
  put(0x236, 2, f.xloadflags ?? 0x7f); // xloadflags: 64-bit, above 4G, EFI, 5-level
  put(0x238, 4, f.cmdlineSize ?? 2047); // cmdline_size
  put(0x258, 8, f.prefAddress ?? 0x1000000n); // pref_address
  put(0x260, 4, f.initSize ?? 0x21f8000); // init_size
  const text = new TextEncoder().encode(
    f.versionText ??
      '7.3.4-khovec (root@vm) (gcc 12.2.0) #1 SMP PREEMPT_DYNAMIC Tue Nov 24 20:16:13 UTC 2026',
  );
  const at = (f.versionPtr ?? 0x300) + 0x200;
  if ((f.versionPtr ?? 0x300) !== 0 && at + text.length + 1 <= size) b.set(text, at);
  return b;
}

const code = (fn: () => unknown): { code: string; message: string; offset?: number } => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KhoError, `not a KhoError: ${String(e)}`);
    return { code: e.code, message: e.message, offset: e.offset };
  }
  assert.fail('did not throw');
};

test('bzImage setup header: the fields the loader uses, and the release from kernel_version', () => {
  const img = parseBzImage(
    bzImage({ initSize: 0x2345678, kernelAlignment: 0x400000, prefAddress: 0x2000000n }),
  );
  assert.equal(img.arch, 'x86_64');
  assert.equal(img.release, '7.3.4-khovec');
  assert.equal(img.fileSize, BigInt(5 * 512 + 8192));
  assert.equal(img.x86?.payloadSize, 8192n); // file minus (setup_sects + 1) sectors
  assert.equal(img.x86?.initSize, 0x2345678n);
  assert.equal(img.x86?.kernelAlignment, 0x400000n);
  assert.equal(img.x86?.prefAddress, 0x2000000n);
  assert.equal(img.x86?.cmdlineSize, 2047);
  assert.equal(img.x86?.header?.version, 0x020f);
  assert.equal(img.x86?.header?.relocatable, true);
  assert.equal(img.x86?.header?.minAlignment, 21);
});

test('setup_sects 0 means 4; a zero kernel_version pointer gives no release', () => {
  const img = parseBzImage(bzImage({ setupSects: 0, versionPtr: 0 }));
  assert.equal(img.x86?.payloadSize, 8192n);
  assert.equal(img.x86?.header?.setupSects, 0);
  assert.equal(img.release, null);
  const far = parseBzImage(bzImage({ versionPtr: 0xfff0 }));
  assert.equal(far.release, null); // points past the end of the file
});

test("probe failures carry the kernel's messages, in bzImage64_probe()'s order", () => {
  assert.deepEqual(
    code(() => parseBzImage(new Uint8Array(1023))),
    {
      code: 'SIM_BAD_IMAGE',
      message: 'File is too short to be a bzImage',
      offset: 1023,
    },
  );
  assert.equal(code(() => parseBzImage(bzImage({ magic: 'HdrT' }))).message, 'Not a bzImage');
  assert.equal(code(() => parseBzImage(bzImage({ magic: 'HdrT' }))).offset, 0x202);
  // every later check is also failing here: the first one in the kernel's order is reported
  assert.equal(
    code(() => parseBzImage(bzImage({ bootFlag: 0x55aa, version: 0x0200 }))).message,
    'No x86 boot sector present',
  );
  assert.equal(
    code(() => parseBzImage(bzImage({ version: 0x020b, loadflags: 0 }))).message,
    'Must be at least protocol version 2.12',
  );
  assert.equal(
    code(() => parseBzImage(bzImage({ loadflags: 0, xloadflags: 0 }))).message,
    'zImage not a bzImage',
  );
  assert.equal(
    code(() => parseBzImage(bzImage({ xloadflags: 0 }))).message,
    'Not a bzImage64. XLF_KERNEL_64 is not set.',
  );
  assert.equal(
    code(() => parseBzImage(bzImage({ xloadflags: 1 }))).message,
    'XLF_CAN_BE_LOADED_ABOVE_4G is not set.',
  );
  assert.equal(
    code(() => parseBzImage(bzImage({ xloadflags: 3 }), { la57: true })).message,
    'bzImage cannot handle 5-level paging mode.',
  );
  assert.equal(parseBzImage(bzImage({ xloadflags: 3 })).arch, 'x86_64'); // 4-level host: fine
  // 30 setup sectors need 31 * 512 bytes
  assert.deepEqual(
    code(() => parseBzImage(bzImage({ setupSects: 30, fileSize: 4096 }))),
    {
      code: 'SIM_BAD_IMAGE',
      message: 'bzImage truncated',
      offset: 4096,
    },
  );
});

/** arm64 Image header (booting.rst): code0/1, text_offset @8, image_size @16, flags @24, magic @56. */
function arm64Image(textOffset: bigint, imageSize: bigint, magic = 'ARM\x64', len = 4096): Uint8Array {
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(8, textOffset, true);
  dv.setBigUint64(16, imageSize, true);
  dv.setBigUint64(24, 0xan, true); // LE, 4K pages, anywhere
  b.set(new TextEncoder().encode(magic), 56);
  return b;
}

test('arm64 Image header', () => {
  const img = parseArm64Image(arm64Image(0n, 0x2a10000n));
  assert.equal(img.arch, 'arm64');
  assert.deepEqual(img.arm64, { textOffset: 0n, imageSize: 0x2a10000n, flags: 0xan });
  assert.equal(code(() => parseArm64Image(arm64Image(0n, 0n))).offset, 0x10);
  assert.equal(code(() => parseArm64Image(arm64Image(0n, 1n, 'ARM\x65'))).offset, 0x38);
  assert.equal(code(() => parseArm64Image(new Uint8Array(63))).code, 'SIM_BAD_IMAGE');
});

const desc = (o: Record<string, unknown> = {}): string =>
  JSON.stringify({
    kind: 'kho-simulated-kernel',
    release: '7.3.4-khovec',
    profile: 'kho-v4',
    config: { CONFIG_KEXEC_HANDOVER: true, CONFIG_KEXEC_HANDOVER_DEBUGFS: true },
    memSize: '34M',
    ...o,
  });

test('image descriptions: sizes in several spellings, defaults, and errors that name the field', () => {
  const img = parseImageDescription(desc());
  assert.equal(img.release, '7.3.4-khovec');
  assert.equal(img.x86?.initSize, 34n << 20n);
  assert.equal(img.x86?.kernelAlignment, 0x200000n);
  assert.equal(img.x86?.prefAddress, 0x1000000n);
  assert.equal(img.description?.config.CONFIG_KEXEC_HANDOVER_DEBUGFS, true);
  assert.equal(parseImageDescription(desc({ memSize: '0x21f8000' })).x86?.initSize, 0x21f8000n);
  assert.equal(parseImageDescription(desc({ memSize: 4096 })).x86?.initSize, 4096n);
  const arm = parseImageDescription(desc({ arch: 'arm64', memSize: '40M', textOffset: 0 }));
  assert.deepEqual(arm.arm64, { imageSize: 40n << 20n, textOffset: 0n, flags: 0n });

  const e1 = code(() => parseImageDescription(desc({ memSize: '12 furlongs' })));
  assert.equal(e1.code, 'SIM_BAD_IMAGE_DESCRIPTION');
  assert.match(e1.message, /^memSize: /);
  assert.match(
    code(() => parseImageDescription(desc({ config: { KEXEC_HANDOVER: true } }))).message,
    /^config\.KEXEC_HANDOVER: /,
  );
  assert.match(code(() => parseImageDescription(desc({ extra: 1 }))).message, /extra|Unrecognized/);
  assert.match(code(() => parseImageDescription(desc({ kind: 'other' }))).message, /^kind: /);
  assert.match(code(() => parseImageDescription(desc({ release: 'has space' }))).message, /^release: /);
  assert.match(code(() => parseImageDescription(desc({ kernelAlignment: '3M' }))).message, /power of two/);
  assert.match(code(() => parseImageDescription('{"kind": ')).message, /^not JSON/);
  const { memSize: _m, ...noMem } = JSON.parse(desc()) as Record<string, unknown>;
  assert.match(code(() => parseImageDescription(JSON.stringify(noMem))).message, /^memSize: /);
});

test('loadKernelImage tells the three formats apart and honours the running arch', () => {
  assert.equal(loadKernelImage(bzImage()).format, 'bzImage');
  assert.equal(loadKernelImage(arm64Image(0n, 0x100000n)).format, 'arm64-Image');
  assert.equal(loadKernelImage(new TextEncoder().encode(`\n  ${desc()}`)).format, 'description');
  assert.equal(
    code(() => loadKernelImage(arm64Image(0n, 0x100000n), { arch: 'x86_64' })).message,
    'Not a bzImage',
  );
  assert.equal(code(() => loadKernelImage(bzImage(), { arch: 'arm64' })).message, 'Not an arm64 Image');
  assert.equal(
    code(() => loadKernelImage(new TextEncoder().encode(desc()), { arch: 'arm64' })).code,
    'SIM_BAD_IMAGE',
  );
  const e = code(() => loadKernelImage(new TextEncoder().encode('#!/bin/sh\necho hi\n'.repeat(100))));
  assert.equal(e.message, 'Not a bzImage');
});

test('hostile bytes: only KhoError, never a crash (random files and mutated headers)', () => {
  const base = bzImage();
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 3000 }),
        fc
          .array(fc.tuple(fc.integer({ min: 0x1f0, max: 0x270 }), fc.integer({ min: 0, max: 255 })), {
            maxLength: 12,
          })
          .map((muts) => {
            const b = base.slice();
            for (const [o, v] of muts) b[o] = v;
            return b;
          }),
        fc.integer({ min: 0, max: base.length }).map((n) => base.slice(0, n)),
      ),
      (bytes) => {
        for (const arch of [undefined, 'x86_64', 'arm64'] as const) {
          try {
            const img = loadKernelImage(bytes, { arch });
            assert.ok(img.fileSize === BigInt(bytes.length));
          } catch (e) {
            if (!(e instanceof KhoError)) throw e;
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

function realBzImage(): string | null {
  const env = process.env.KHO_TEST_BZIMAGE;
  if (env && existsSync(env)) return env;
  const dir = '/tmp/kho-real/boot';
  if (!existsSync(dir)) return null;
  const f = readdirSync(dir).find((n) => n.startsWith('vmlinuz-'));
  return f ? `${dir}/${f}` : null;
}

test("a real Debian bzImage: release as file(1) reads it, sizes as Python's struct reads them", (t) => {
  const path = realBzImage();
  if (!path) {
    t.skip('no real bzImage (set KHO_TEST_BZIMAGE or apt-get download a linux-image package)');
    return;
  }
  const img = parseBzImage(new Uint8Array(readFileSync(path)));
  if (spawnSync('file', ['--version']).status === 0) {
    const desc = execFileSync('file', ['-b', path]).toString();
    const m = /version ([^ ]+) /.exec(desc);
    assert.ok(m, desc);
    assert.equal(img.release, m[1]);
  }
  const py = execFileSync('/usr/bin/python3', [
    '-c',
    `import struct,sys
b=open(sys.argv[1],'rb').read()
print(struct.unpack_from('<I',b,0x260)[0], struct.unpack_from('<I',b,0x230)[0], struct.unpack_from('<Q',b,0x258)[0], b[0x1f1])`,
    path,
  ])
    .toString()
    .trim()
    .split(' ')
    .map(BigInt);
  assert.equal(img.x86?.initSize, py[0]);
  assert.equal(img.x86?.kernelAlignment, py[1]);
  assert.equal(img.x86?.prefAddress, py[2]);
  assert.equal(img.x86?.payloadSize, img.fileSize - (py[3] + 1n) * 512n);
});

test('hostile descriptions: deep nesting, huge numbers and odd types are KhoErrors', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const deep = `{"kind":"kho-simulated-kernel","config":${'['.repeat(200000)}${']'.repeat(200000)}}`;
  for (const text of [
    deep.slice(0, 1 << 20),
    `{${'"a":{'.repeat(50000)}`,
    desc({ memSize: 1e300 }),
    desc({ memSize: '0x1ffffffffffffffff' }),
    desc({ memSize: '99999999999999999999G' }),
    desc({ producers: { kho_test: { enabled: [1, 2] } } }),
    '{"__proto__": {"kind": "kho-simulated-kernel"}}',
  ]) {
    assert.equal(code(() => loadKernelImage(enc(text))).code, 'SIM_BAD_IMAGE_DESCRIPTION', text.slice(0, 60));
  }
  assert.equal(
    code(() => loadKernelImage(enc(`{${' '.repeat(1 << 20)}}`))).code,
    'SIM_BAD_IMAGE_DESCRIPTION',
  );
});
