/**
 * Kernel images as `kexec_file_load` sees them: the x86 bzImage setup header, the arm64 `Image` header,
 * and kho's declarative description of a simulated kernel.
 *
 * Contract:
 * - `parseBzImage(bytes)` checks the header in the order of the kernel's `bzImage64_probe()` (at least
 *   two sectors, `HdrS`, boot flag 0xAA55, protocol >= 2.12, LOADED_HIGH, XLF_KERNEL_64,
 *   XLF_CAN_BE_LOADED_ABOVE_4G) and then `bzImage64_load()`'s size check (`bzImage truncated`). A
 *   failure is `KhoError('SIM_BAD_IMAGE')` whose message is the kernel's own log text
 *   (`Not a bzImage`, ...), with the byte `offset` of the field and what was `expected`.
 *   Fields follow Documentation/arch/x86/boot.rst (offsets from the start of the file); the release
 *   comes from the NUL-terminated string at `kernel_version + 0x200` (its first word), when present.
 * - `parseArm64Image(bytes)` reads `struct arm64_image_header` (64 bytes, little-endian): magic
 *   `ARM\x64` at 0x38, text_offset, image_size (must be non-zero, as `image_load()` requires), flags.
 * - `parseImageDescription(text)` validates kho's JSON description of a simulated kernel with a zod
 *   schema (`SIM_BAD_IMAGE_DESCRIPTION` naming the field). Sizes may be numbers or strings (`34M`,
 *   `0x2200000`).
 * - `loadKernelImage(bytes)` recognises any of the three (bzImage, arm64 Image, JSON description) and
 *   returns one `KernelImage`, the input the placement engine (`placement.ts`) needs. Bytes that are
 *   none of them fail with the x86 probe's `Not a bzImage` unless they look like JSON.
 * Hostile input never throws anything but `KhoError`, reads only inside the buffer and copies nothing
 * larger than the 64-byte-bounded version string.
 */
import { z } from 'zod';
import { KhoError } from '../../errors.ts';

export type ImageArch = 'x86_64' | 'arm64';

/** `xloadflags` bits (boot.rst). */
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
export const XLF_EFI_HANDOVER_32 = 1 << 2;
export const XLF_EFI_HANDOVER_64 = 1 << 3;
export const XLF_EFI_KEXEC = 1 << 4;
export const XLF_5LEVEL = 1 << 5;
export const XLF_5LEVEL_ENABLED = 1 << 6;
/** `loadflags` bit 0. */
export const LOADED_HIGH = 0x01;

/** Offsets of the setup header fields from the start of a bzImage file. */
export const BZ = {
  setupSects: 0x1f1,
  syssize: 0x1f4,
  bootFlag: 0x1fe,
  jump: 0x200,
  header: 0x202,
  version: 0x206,
  kernelVersion: 0x20e,
  loadflags: 0x211,
  kernelAlignment: 0x230,
  relocatableKernel: 0x234,
  minAlignment: 0x235,
  xloadflags: 0x236,
  cmdlineSize: 0x238,
  prefAddress: 0x258,
  initSize: 0x260,
  /** End of the 2.12 header (the last field we read ends here). */
  end: 0x264,
} as const;

export interface BzImageHeader {
  setupSects: number;
  syssize: number;
  bootFlag: number;
  version: number;
  loadflags: number;
  kernelAlignment: number;
  relocatable: boolean;
  minAlignment: number;
  xloadflags: number;
  cmdlineSize: number;
  prefAddress: bigint;
  initSize: number;
  /** The string at kernel_version + 0x200, or null when the pointer is 0 or outside the file. */
  versionString: string | null;
}

/** What the placement engine needs from a kernel, whatever its file format. */
export interface KernelImage {
  arch: ImageArch;
  format: 'bzImage' | 'arm64-Image' | 'description';
  /** `uname -r` of the kernel, when the image says (bzImage version string, description). */
  release: string | null;
  /** File size. */
  fileSize: bigint;
  /** x86: memory the kernel needs (init_size), alignment and preferred address. */
  x86?: {
    /** bytes after the real-mode setup sectors: the kernel segment's bufsz. */
    payloadSize: bigint;
    initSize: bigint;
    kernelAlignment: bigint;
    prefAddress: bigint;
    cmdlineSize: number;
    xloadflags: number;
    header?: BzImageHeader;
  };
  /** arm64: image_size and text_offset from the Image header. */
  arm64?: { imageSize: bigint; textOffset: bigint; flags: bigint };
  /** Present for descriptions: the simulated kernel's ABI profile and Kconfig. */
  description?: ImageDescription;
}

const bad = (message: string, offset: number, expected: string, path = 'image'): KhoError =>
  new KhoError('SIM_BAD_IMAGE', message, { offset, expected, path });

function u8(b: Uint8Array, o: number): number {
  return b[o] ?? 0;
}
function u16(b: Uint8Array, o: number): number {
  return u8(b, o) | (u8(b, o + 1) << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (u16(b, o) | (u16(b, o + 2) << 16)) >>> 0;
}
function u64(b: Uint8Array, o: number): bigint {
  return BigInt(u32(b, o)) | (BigInt(u32(b, o + 4)) << 32n);
}

/** True if the bytes carry the bzImage `HdrS` signature. */
export function looksLikeBzImage(b: Uint8Array): boolean {
  return b.length >= BZ.header + 4 && u32(b, BZ.header) === 0x53726448;
}

/** True if the bytes carry the arm64 Image magic `ARM\x64` at 0x38. */
export function looksLikeArm64Image(b: Uint8Array): boolean {
  return b.length >= 64 && u32(b, 0x38) === 0x644d5241;
}

/** Read the kernel version string (at most 256 bytes, NUL-terminated, printable ASCII kept). */
function versionString(b: Uint8Array, ptr: number): string | null {
  if (ptr === 0) return null;
  const start = ptr + 0x200;
  if (start >= b.length) return null;
  let s = '';
  for (let i = start; i < b.length && i < start + 256; i++) {
    const c = b[i];
    if (c === 0) return s;
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?';
  }
  return s;
}

/** The release (`uname -r`) in a kernel version string: its first word. */
export function releaseFromVersion(v: string | null): string | null {
  if (v === null) return null;
  const w = v.trim().split(/\s+/)[0] ?? '';
  return w === '' ? null : w;
}

/**
 * Parse and probe an x86 bzImage as `bzImage64_probe()` and the start of `bzImage64_load()` do.
 * `la57`: the running kernel uses 5-level paging (then XLF_5LEVEL is required).
 */
export function parseBzImage(b: Uint8Array, opts: { la57?: boolean } = {}): KernelImage {
  if (b.length < 2 * 512) throw bad('File is too short to be a bzImage', b.length, 'at least 1024 bytes');
  if (u32(b, BZ.header) !== 0x53726448) throw bad('Not a bzImage', BZ.header, "'HdrS'");
  const bootFlag = u16(b, BZ.bootFlag);
  if (bootFlag !== 0xaa55) throw bad('No x86 boot sector present', BZ.bootFlag, 'boot_flag 0xAA55');
  const version = u16(b, BZ.version);
  if (version < 0x020c) throw bad('Must be at least protocol version 2.12', BZ.version, 'version >= 0x020c');
  const loadflags = u8(b, BZ.loadflags);
  if (!(loadflags & LOADED_HIGH)) throw bad('zImage not a bzImage', BZ.loadflags, 'LOADED_HIGH set');
  const xloadflags = u16(b, BZ.xloadflags);
  if (!(xloadflags & XLF_KERNEL_64))
    throw bad('Not a bzImage64. XLF_KERNEL_64 is not set.', BZ.xloadflags, 'XLF_KERNEL_64 set');
  if (!(xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G))
    throw bad('XLF_CAN_BE_LOADED_ABOVE_4G is not set.', BZ.xloadflags, 'XLF_CAN_BE_LOADED_ABOVE_4G set');
  if (opts.la57 && !(xloadflags & XLF_5LEVEL))
    throw bad('bzImage cannot handle 5-level paging mode.', BZ.xloadflags, 'XLF_5LEVEL set');
  let setupSects = u8(b, BZ.setupSects);
  const rawSetupSects = setupSects;
  if (setupSects === 0) setupSects = 4;
  const kern16 = (setupSects + 1) * 512;
  if (b.length < kern16)
    throw bad('bzImage truncated', b.length, `at least ${kern16} bytes (setup_sects + 1 sectors)`);
  const header: BzImageHeader = {
    setupSects: rawSetupSects,
    syssize: u32(b, BZ.syssize),
    bootFlag,
    version,
    loadflags,
    kernelAlignment: u32(b, BZ.kernelAlignment),
    relocatable: u8(b, BZ.relocatableKernel) !== 0,
    minAlignment: u8(b, BZ.minAlignment),
    xloadflags,
    cmdlineSize: u32(b, BZ.cmdlineSize),
    prefAddress: u64(b, BZ.prefAddress),
    initSize: u32(b, BZ.initSize),
    versionString: versionString(b, u16(b, BZ.kernelVersion)),
  };
  return {
    arch: 'x86_64',
    format: 'bzImage',
    release: releaseFromVersion(header.versionString),
    fileSize: BigInt(b.length),
    x86: {
      payloadSize: BigInt(b.length - kern16),
      initSize: BigInt(header.initSize),
      kernelAlignment: BigInt(header.kernelAlignment),
      prefAddress: header.prefAddress,
      cmdlineSize: header.cmdlineSize,
      xloadflags,
      header,
    },
  };
}

/** arm64 Image header flags: bit 0 big-endian, bits 1-2 page size (0 unspecified, 1 4K, 2 16K, 3 64K). */
export function parseArm64Image(b: Uint8Array): KernelImage {
  if (b.length < 64)
    throw bad('Image header truncated', b.length, 'at least 64 bytes (struct arm64_image_header)');
  if (u32(b, 0x38) !== 0x644d5241) throw bad('Not an arm64 Image', 0x38, "magic 'ARM\\x64'");
  const imageSize = u64(b, 0x10);
  if (imageSize === 0n)
    throw bad('Image header has image_size 0', 0x10, 'non-zero image_size (kernels since 3.17)');
  return {
    arch: 'arm64',
    format: 'arm64-Image',
    release: null,
    fileSize: BigInt(b.length),
    arm64: { textOffset: u64(b, 0x08), imageSize, flags: u64(b, 0x18) },
  };
}

// ---------------------------------------------------------------------------------------------
// Declarative description of a simulated kernel.

const SIZE_UNITS: Record<string, bigint> = { '': 0n, K: 10n, M: 20n, G: 30n, T: 40n };
/** A size: a safe non-negative integer, or `0x..` hex / decimal with an optional K/M/G/T suffix. */
const sizeSchema = z
  .union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') return BigInt(v);
    const m = /^(?:0x([0-9a-fA-F]{1,16})|(\d{1,20})([KMGTkmgt]?))$/.exec(v.trim());
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `'${v.slice(0, 40)}' is not a size (e.g. 34M or 0x2200000)` });
      return z.NEVER;
    }
    const n =
      m[1] !== undefined ? BigInt(`0x${m[1]}`) : BigInt(m[2]) << SIZE_UNITS[(m[3] ?? '').toUpperCase()];
    if (n >= 1n << 64n) {
      ctx.addIssue({ code: 'custom', message: `'${v}' does not fit in 64 bits` });
      return z.NEVER;
    }
    return n;
  });

export const IMAGE_DESCRIPTION_KIND = 'kho-simulated-kernel';

export const imageDescriptionSchema = z
  .object({
    kind: z.literal(IMAGE_DESCRIPTION_KIND),
    release: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces'),
    arch: z.enum(['x86_64', 'arm64']).default('x86_64'),
    /** ABI profile name (src/abi/profile.ts), e.g. `kho-v4`. */
    profile: z.string().min(1).max(64),
    /** Kconfig options: `CONFIG_KEXEC_HANDOVER: true`, `CONFIG_FOO: "value"`. */
    config: z
      .record(
        z.string().regex(/^CONFIG_[A-Z0-9_]+$/, 'a Kconfig symbol, CONFIG_[A-Z0-9_]+'),
        z.union([z.boolean(), z.string().max(256), z.number()]),
      )
      .default({}),
    /** Producers this kernel runs, by name, with their options (e.g. `{ "kho_test": { "enabled": true } }`). */
    producers: z
      .record(
        z.string().min(1).max(64),
        z.record(z.string().max(64), z.union([z.boolean(), z.string().max(256), z.number()])),
      )
      .default({}),
    /** Image file size (the segment's bufsz); default 12 MiB. */
    fileSize: sizeSchema.optional(),
    /** Memory the kernel needs once loaded: x86 init_size / arm64 image_size. */
    memSize: sizeSchema,
    /** x86: kernel_alignment (default 2 MiB) and pref_address (default 16 MiB). */
    kernelAlignment: sizeSchema.optional(),
    prefAddress: sizeSchema.optional(),
    /** arm64: text_offset (default 0). */
    textOffset: sizeSchema.optional(),
  })
  .strict();

export type ImageDescription = z.output<typeof imageDescriptionSchema>;

/** Parse a JSON description; `SIM_BAD_IMAGE_DESCRIPTION` names the first bad field. */
export function parseImageDescription(text: string, path = 'image'): KernelImage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new KhoError('SIM_BAD_IMAGE_DESCRIPTION', `not JSON: ${(e as Error).message}`, {
      path,
      expected: `a JSON object with "kind": "${IMAGE_DESCRIPTION_KIND}"`,
    });
  }
  const r = imageDescriptionSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new KhoError('SIM_BAD_IMAGE_DESCRIPTION', `${field}: ${issue.message}`, {
      path: `${path}:${field}`,
      expected: 'see the image description schema (src/sim/kexec/image.ts)',
    });
  }
  const d = r.data;
  if (d.kernelAlignment !== undefined && (d.kernelAlignment & (d.kernelAlignment - 1n)) !== 0n)
    throw new KhoError('SIM_BAD_IMAGE_DESCRIPTION', 'kernelAlignment is not a power of two', {
      path: `${path}:kernelAlignment`,
      expected: 'a power of two such as 0x200000',
    });
  const fileSize = d.fileSize ?? 12n << 20n;
  const base = { release: d.release, fileSize, description: d } as const;
  if (d.arch === 'arm64')
    return {
      ...base,
      arch: 'arm64',
      format: 'description',
      arm64: { imageSize: d.memSize, textOffset: d.textOffset ?? 0n, flags: 0n },
    };
  return {
    ...base,
    arch: 'x86_64',
    format: 'description',
    x86: {
      payloadSize: fileSize,
      initSize: d.memSize,
      kernelAlignment: d.kernelAlignment ?? 0x200000n,
      prefAddress: d.prefAddress ?? 0x1000000n,
      cmdlineSize: 2047,
      xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
    },
  };
}

/** Does the buffer start (after whitespace) with `{`? */
function looksLikeJson(b: Uint8Array): boolean {
  for (let i = 0; i < b.length && i < 4096; i++) {
    const c = b[i];
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return c === 0x7b;
  }
  return false;
}

/** Largest description file accepted (it is a few hundred bytes in practice). */
export const MAX_DESCRIPTION_BYTES = 1 << 20;

/**
 * Recognise a kernel file: bzImage, arm64 Image or JSON description. `arch` restricts the probe to
 * one architecture's loader, as the running kernel only has its own (`x86_64` tries bzImage only).
 */
export function loadKernelImage(
  b: Uint8Array,
  opts: { arch?: ImageArch; la57?: boolean; path?: string } = {},
): KernelImage {
  const path = opts.path ?? 'image';
  if (looksLikeJson(b)) {
    if (b.length > MAX_DESCRIPTION_BYTES)
      throw new KhoError('SIM_BAD_IMAGE_DESCRIPTION', `description of ${b.length} bytes is too large`, {
        path,
        expected: `at most ${MAX_DESCRIPTION_BYTES} bytes`,
      });
    const img = parseImageDescription(new TextDecoder().decode(b), path);
    if (opts.arch && img.arch !== opts.arch)
      throw new KhoError('SIM_BAD_IMAGE', `image describes an ${img.arch} kernel, not ${opts.arch}`, {
        path: `${path}:arch`,
        expected: opts.arch,
      });
    return img;
  }
  const wantArm =
    opts.arch === 'arm64' || (opts.arch === undefined && looksLikeArm64Image(b) && !looksLikeBzImage(b));
  try {
    return wantArm ? parseArm64Image(b) : parseBzImage(b, { la57: opts.la57 });
  } catch (e) {
    if (e instanceof KhoError)
      throw new KhoError(e.code, e.message, { offset: e.offset, expected: e.expected, path });
    throw e;
  }
}
