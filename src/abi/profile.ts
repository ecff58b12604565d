/**
 * KHO ABI profiles: one per era of the kernel's handover ABI.
 *
 * A kernel accepts only a handover whose root `compatible` equals its own; there is no compatibility
 * across versions. Each profile names what changed: the memory-map format (bitmap chunks in kho-v1,
 * radix tree from kho-v2), the sub-node property names (`fdt` → `preserved-data`, `blob-size` from
 * kho-v3), how the root FDT is built (6.16 rebuilt it at finalize, later kernels edit it live with
 * libfdt's read-write calls), the kexec-metadata producer (kho-v3+), serialization blocks (kho-v4),
 * and the later scratch → bootmem rename of the command line and debugfs files.
 *
 * A profile *instance* adds the machine's page size and endianness (x86_64 and arm64: little-endian;
 * 4 KiB pages, arm64 also 16 KiB and 64 KiB). The default is the Linux 7.3.4 kernel of the vectors.
 */
import { KhoError } from '../errors.ts';

export type ProfileName = 'kho-v1-6.16' | 'kho-v1' | 'kho-v2' | 'kho-v3' | 'kho-v4' | 'kho-v4-bootmem';
export type MemoryMapFormat = 'bitmap-chunks' | 'radix-tree';
export type Endianness = 'little' | 'big';

export interface AbiProfileDef {
  name: ProfileName;
  /** Root node `compatible` string. */
  compatible: string;
  /** Kernel releases that wrote this profile (approximate, for humans). */
  kernels: string;
  memoryMap: MemoryMapFormat;
  /** Sub-node property carrying the blob's physical address. */
  subTreeProp: 'fdt' | 'preserved-data';
  /** Whether sub-nodes also carry `blob-size`. */
  hasBlobSize: boolean;
  /** Root FDT construction: rebuilt with sequential calls at finalize (6.16), or live and edited read-write. */
  rootBuild: 'finalize-sw' | 'live-rw';
  /** `preserved-memory-map` is written 0 at boot and patched at finalize (6.18/6.19 kho-v1). */
  needsFinalize: boolean;
  hasKexecMetadata: boolean;
  hasSerializationBlocks: boolean;
  /** Name used for scratch on the command line and in debugfs: `scratch` or (7.4+) `bootmem`. */
  scratchName: 'scratch' | 'bootmem';
}

export const PROFILES: Readonly<Record<ProfileName, AbiProfileDef>> = {
  'kho-v1-6.16': {
    name: 'kho-v1-6.16',
    compatible: 'kho-v1',
    kernels: '6.16-6.17',
    memoryMap: 'bitmap-chunks',
    subTreeProp: 'fdt',
    hasBlobSize: false,
    rootBuild: 'finalize-sw',
    needsFinalize: true,
    hasKexecMetadata: false,
    hasSerializationBlocks: false,
    scratchName: 'scratch',
  },
  'kho-v1': {
    name: 'kho-v1',
    compatible: 'kho-v1',
    kernels: '6.18-7.0',
    memoryMap: 'bitmap-chunks',
    subTreeProp: 'fdt',
    hasBlobSize: false,
    rootBuild: 'live-rw',
    needsFinalize: true,
    hasKexecMetadata: false,
    hasSerializationBlocks: false,
    scratchName: 'scratch',
  },
  'kho-v2': {
    name: 'kho-v2',
    compatible: 'kho-v2',
    kernels: '7.1',
    memoryMap: 'radix-tree',
    subTreeProp: 'preserved-data',
    hasBlobSize: false,
    rootBuild: 'live-rw',
    needsFinalize: false,
    hasKexecMetadata: false,
    hasSerializationBlocks: false,
    scratchName: 'scratch',
  },
  'kho-v3': {
    name: 'kho-v3',
    compatible: 'kho-v3',
    kernels: '7.2',
    memoryMap: 'radix-tree',
    subTreeProp: 'preserved-data',
    hasBlobSize: true,
    rootBuild: 'live-rw',
    needsFinalize: false,
    hasKexecMetadata: true,
    hasSerializationBlocks: false,
    scratchName: 'scratch',
  },
  'kho-v4': {
    name: 'kho-v4',
    compatible: 'kho-v4',
    kernels: '7.3',
    memoryMap: 'radix-tree',
    subTreeProp: 'preserved-data',
    hasBlobSize: true,
    rootBuild: 'live-rw',
    needsFinalize: false,
    hasKexecMetadata: true,
    hasSerializationBlocks: true,
    scratchName: 'scratch',
  },
  'kho-v4-bootmem': {
    name: 'kho-v4-bootmem',
    compatible: 'kho-v4',
    kernels: '7.4+',
    memoryMap: 'radix-tree',
    subTreeProp: 'preserved-data',
    hasBlobSize: true,
    rootBuild: 'live-rw',
    needsFinalize: false,
    hasKexecMetadata: true,
    hasSerializationBlocks: true,
    scratchName: 'bootmem',
  },
};

export const DEFAULT_PROFILE: ProfileName = 'kho-v4';
export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[];

/** A profile bound to a machine: page size and byte order. */
export interface AbiProfile extends AbiProfileDef {
  pageSize: number;
  pageShift: number;
  endian: Endianness;
}

export interface ProfileOptions {
  pageSize?: number;
  endian?: Endianness;
}

export const SUPPORTED_PAGE_SIZES = [4096, 16384, 65536] as const;

export function getProfile(
  name: ProfileName | string = DEFAULT_PROFILE,
  opts: ProfileOptions = {},
): AbiProfile {
  const def = (PROFILES as Record<string, AbiProfileDef>)[name];
  if (!def) {
    throw new KhoError('KHO_UNKNOWN_PROFILE', `unknown ABI profile '${name}'`, {
      expected: PROFILE_NAMES.join(', '),
    });
  }
  const pageSize = opts.pageSize ?? 4096;
  if (!(SUPPORTED_PAGE_SIZES as readonly number[]).includes(pageSize)) {
    throw new KhoError('KHO_BAD_PAGE_SIZE', `page size ${pageSize} is not supported`, {
      expected: '4096, 16384 or 65536',
    });
  }
  return { ...def, pageSize, pageShift: Math.log2(pageSize), endian: opts.endian ?? 'little' };
}

/** Profiles whose root `compatible` matches (several eras share `kho-v1` and `kho-v4`). */
export function profilesForCompatible(compatible: string): AbiProfileDef[] {
  return Object.values(PROFILES).filter((p) => p.compatible === compatible);
}
