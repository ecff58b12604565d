/** kho's public library API. */

export * from './abi/bitmap-chunks.ts';
export * from './abi/block.ts';
export * from './abi/boot.ts';
export * from './abi/handover.ts';
export * from './abi/kexec-metadata.ts';
export * from './abi/kho-fdt.ts';
export * from './abi/kho-test.ts';
export * from './abi/luo.ts';
export * from './abi/memblock.ts';
export * from './abi/memory/dir.ts';
export * from './abi/memory/elfcore.ts';
export {
  memoryFromBytes,
  type PhysMemory,
  type PhysMemoryWriter,
  type PhysRange,
  readU32,
  readU64,
  type Segment,
  SegmentedMemory,
  SparseMemory,
  u64Bytes,
} from './abi/memory/image.ts';
export * from './abi/memory/open.ts';
export { FileMemory, openRawMemory } from './abi/memory/raw.ts';
export * from './abi/profile.ts';
export * from './abi/radix-tree.ts';
export * from './abi/scratch.ts';
export * from './abi/vmalloc.ts';
export * from './errors.ts';
export * from './fdt/dts.ts';
export * from './fdt/header.ts';
export * from './fdt/model.ts';
export * from './fdt/reader.ts';
export * from './fdt/validate.ts';
export * from './fdt/values.ts';
export { type DtcOptions, dtcRunsNameCheck, encodeDtc } from './fdt/write-dtc.ts';
export { FdtRw, type FdtRwProperty } from './fdt/write-rw.ts';
export { encodeSw, FDT_CREATE_FLAG_NO_NAME_DEDUP, FDT_SW_MAGIC, FdtSw } from './fdt/write-sw.ts';
export * from './map/index.ts';
export * from './sim/index.ts';
export * from './sim/kexec/index.ts';
export * from './sim/session/index.ts';
export * from './tools/compat.ts';
export * from './tools/debugfs-export.ts';
export * from './tools/debugfs-mount.ts';
export * from './tools/debugfs-tree.ts';
