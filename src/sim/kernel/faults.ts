/**
 * Fault injection for the guide's failure cases. Each fault changes simulated memory the way a buggy
 * kernel or producer would, after the handover was prepared, and has a defined outcome (tested in
 * test/sim/faults.test.ts):
 *
 * | fault | outcome |
 * |---|---|
 * | `scribble(k, pa, len)` over preserved memory during the handover (`kexecExec({ fault })`) | the invariant checker reports SIM_INVARIANT_PRESERVED_CHANGED at the range |
 * | `scribble` over a radix-tree page | the next kernel cannot walk the map: `KHO: failed to walk the preserved memory map: ...`, boots without KHO state (`is_kho_boot()` false) |
 * | `corruptRootFdt(k, 'magic' \| 'truncate')` | `KHO: setup: handover FDT (0x...) is invalid: -N`, `KHO: disabling KHO revival`, fresh scratch, count restarts |
 * | `corruptRootFdt(k, 'compatible')` | `... is incompatible with 'kho-v4': 1`, same consequences |
 * | `setMetadataVersion(k, 2)` | `KHO: kexec-metadata version 2 not supported (expected 1)`; the next count is 1 again |
 * | `setMemblockCompatible(k, 'memblock-v2')` | `KHO memblock FDT is not 'memblock-v1'`; the region is allocated afresh |
 * | scratch too small for the payload (`kho_scratch=` tiny) | `kexecLoad` throws SIM_KEXEC_NO_FIT (-EADDRNOTAVAIL) |
 * | scratch holds the segments but not the next kernel's early allocations | the next kernel panics: SIM_KERNEL_PANIC |
 *
 * Contract: every function checks that the kernel has the state it corrupts (`SIM_FAULT_NO_TARGET`).
 */
import { KEXEC_METADATA_SIZE, KHO_METADATA_NODE_NAME } from '../../abi/kexec-metadata.ts';
import { MEMBLOCK_KHO_FDT, MEMBLOCK_KHO_NODE_COMPATIBLE } from '../../abi/memblock.ts';
import { KhoError } from '../../errors.ts';
import type { Kernel } from './kernel.ts';

function noTarget(what: string): KhoError {
  return new KhoError('SIM_FAULT_NO_TARGET', `nothing to corrupt: ${what}`, {
    expected: 'a kernel with KHO on and the producer in question',
  });
}

/** Write `len` bytes of `byte` at `pa`, ownership ignored (a stray DMA or a use-after-free). */
export function scribble(k: Kernel, pa: bigint, len: number, byte = 0xa5): void {
  k.machine.memory.fill(pa, BigInt(len), byte);
}

/** Scribble over the first bytes of the `index`-th preserved range; returns the address hit. */
export function scribblePreserved(k: Kernel, index = 0, len = 16): bigint {
  const blocks = k.kho.preservedBlocks();
  const b = blocks[index];
  if (!b) throw noTarget(`no preserved block #${index}`);
  scribble(k, b.pa, len);
  return b.pa;
}

/** Scribble over a page of the outgoing radix tree (index 0 = the root). */
export function scribbleTracker(k: Kernel, index = 0): bigint {
  const p = k.kho.trackerPages[index];
  if (p === undefined) throw noTarget(`no tracker page #${index}`);
  scribble(k, p, k.machine.spec.pageSize, 0xff);
  return p;
}

/** Corrupt the outgoing root FDT page in memory. */
export function corruptRootFdt(k: Kernel, how: 'magic' | 'truncate' | 'compatible'): void {
  const pa = k.kho.rootFdtPhys;
  if (!pa) throw noTarget('KHO is not initialised');
  const mem = k.machine.memory;
  if (how === 'magic') mem.write(pa, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
  else if (how === 'truncate') {
    // a blob cut short: totalsize ends inside the strings block (libfdt: FDT_ERR_TRUNCATED)
    const total = k.kho.rootFdt().length;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, Math.floor(total / 2), false);
    mem.write(pa + 4n, b);
  } else {
    const page = mem.read(pa, k.machine.spec.pageSize);
    const needle = new TextEncoder().encode(`${k.profile.compatible}\0`);
    const i = indexOf(page, needle);
    if (i < 0) throw noTarget('no compatible string in the root FDT');
    mem.write(pa + BigInt(i + needle.length - 2), new TextEncoder().encode('9'));
  }
}

/** Rewrite the outgoing kexec-metadata blob's version (a producer version the next kernel does not know). */
export function setMetadataVersion(k: Kernel, version: number): void {
  const s = k.kho.outSubtrees().find((x) => x.name === KHO_METADATA_NODE_NAME);
  if (!s || s.size !== BigInt(KEXEC_METADATA_SIZE)) throw noTarget('no kexec-metadata sub-tree');
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, version >>> 0, k.profile.endian === 'little');
  k.machine.memory.write(s.phys, b);
}

/** Rewrite the memblock sub-FDT's root compatible (same length, e.g. `memblock-v2`). */
export function setMemblockCompatible(k: Kernel, compatible: string): void {
  const s = k.kho.outSubtrees().find((x) => x.name === MEMBLOCK_KHO_FDT);
  if (!s) throw noTarget('no memblock sub-tree (no reserve_mem= region)');
  if (compatible.length !== MEMBLOCK_KHO_NODE_COMPATIBLE.length)
    throw new KhoError(
      'SIM_BAD_ARGUMENT',
      `compatible must have ${MEMBLOCK_KHO_NODE_COMPATIBLE.length} characters`,
    );
  const blob = k.machine.memory.read(s.phys, Number(s.size));
  const i = indexOf(blob, new TextEncoder().encode(`${MEMBLOCK_KHO_NODE_COMPATIBLE}\0`));
  if (i < 0) throw noTarget('no memblock-v1 string');
  k.machine.memory.write(s.phys + BigInt(i), new TextEncoder().encode(compatible));
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
