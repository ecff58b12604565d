/**
 * Handover descriptors: how the outgoing kernel tells the next one where the root KHO FDT and the
 * scratch array are (spec §4.2). Defined for every profile (the descriptors did not change with the
 * root's compatible).
 *
 * - x86_64: a boot_params `setup_data` node of type SETUP_KEXEC_KHO (10): header
 *   `{ u64 next; u32 type; u32 len; }` (16 bytes) then `struct kho_data { u64 fdt_addr; u64 fdt_size;
 *   u64 scratch_addr; u64 scratch_size; }` (len 32), little-endian. `fdt_size` is PAGE_SIZE, not the
 *   FDT's totalsize; the scratch fields describe the kexec segment holding a copy of the scratch array.
 * - devicetree arches (arm64): `/chosen` properties `linux,kho-fdt` and `linux,kho-scratch`, each one
 *   `<addr size>` range in big-endian cells, sized by the root's `#address-cells` / `#size-cells`
 *   (written with `fdt_appendprop_addrrange`; read back by `of_flat_dt_get_addr_size`).
 *
 * Contract: encoders return bytes; decoders check type, length and cell counts and throw a `KhoError`
 * (`KHO_SETUP_DATA_*`, `KHO_CHOSEN_*`) naming the field. `findKhoSetupData` walks a setup_data list
 * in a memory image with a loop check and a bound on the number of nodes.
 */
import { KhoError } from '../errors.ts';
import type { FdtBlob, FdtNodeView } from '../fdt/reader.ts';
import { parseFdt } from '../fdt/reader.ts';
import type { PhysMemory } from './memory/image.ts';

export const SETUP_KEXEC_KHO = 10;
export const SETUP_DATA_HEADER_SIZE = 16;
export const KHO_DATA_SIZE = 32;
export const CHOSEN_KHO_FDT = 'linux,kho-fdt';
export const CHOSEN_KHO_SCRATCH = 'linux,kho-scratch';

/** What both descriptor forms carry. */
export interface KhoHandoverDesc {
  fdtAddr: bigint;
  fdtSize: bigint;
  scratchAddr: bigint;
  scratchSize: bigint;
}

/** A SETUP_KEXEC_KHO setup_data node (header + kho_data), little-endian. */
export function encodeKhoSetupData(d: KhoHandoverDesc, next = 0n): Uint8Array {
  const out = new Uint8Array(SETUP_DATA_HEADER_SIZE + KHO_DATA_SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt.asUintN(64, next), true);
  dv.setUint32(8, SETUP_KEXEC_KHO, true);
  dv.setUint32(12, KHO_DATA_SIZE, true);
  dv.setBigUint64(16, BigInt.asUintN(64, d.fdtAddr), true);
  dv.setBigUint64(24, BigInt.asUintN(64, d.fdtSize), true);
  dv.setBigUint64(32, BigInt.asUintN(64, d.scratchAddr), true);
  dv.setBigUint64(40, BigInt.asUintN(64, d.scratchSize), true);
  return out;
}

export interface SetupDataKho extends KhoHandoverDesc {
  next: bigint;
}

/** Decode a SETUP_KEXEC_KHO setup_data node (header included). */
export function decodeKhoSetupData(bytes: Uint8Array): SetupDataKho {
  if (bytes.length < SETUP_DATA_HEADER_SIZE) {
    throw new KhoError('KHO_SETUP_DATA_TRUNCATED', `setup_data is ${bytes.length} bytes`, {
      offset: bytes.length,
      expected: `at least ${SETUP_DATA_HEADER_SIZE} bytes of header`,
    });
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const type = dv.getUint32(8, true);
  const len = dv.getUint32(12, true);
  if (type !== SETUP_KEXEC_KHO) {
    throw new KhoError('KHO_SETUP_DATA_BAD_TYPE', `setup_data type ${type} is not SETUP_KEXEC_KHO`, {
      offset: 8,
      expected: `${SETUP_KEXEC_KHO}`,
    });
  }
  if (len < KHO_DATA_SIZE) {
    throw new KhoError('KHO_SETUP_DATA_BAD_LENGTH', `SETUP_KEXEC_KHO payload is ${len} bytes`, {
      offset: 12,
      expected: `${KHO_DATA_SIZE} bytes (struct kho_data)`,
    });
  }
  if (bytes.length < SETUP_DATA_HEADER_SIZE + KHO_DATA_SIZE) {
    throw new KhoError('KHO_SETUP_DATA_TRUNCATED', `setup_data is ${bytes.length} bytes`, {
      offset: bytes.length,
      expected: `${SETUP_DATA_HEADER_SIZE + KHO_DATA_SIZE} bytes`,
    });
  }
  return {
    next: dv.getBigUint64(0, true),
    fdtAddr: dv.getBigUint64(16, true),
    fdtSize: dv.getBigUint64(24, true),
    scratchAddr: dv.getBigUint64(32, true),
    scratchSize: dv.getBigUint64(40, true),
  };
}

/**
 * Walk a setup_data list starting at physical address `head` (boot_params.hdr.setup_data) and return
 * the first SETUP_KEXEC_KHO node, or undefined. A loop or more than `maxNodes` nodes is
 * KHO_SETUP_DATA_LOOP; a pointer outside the image is the image's KHO_PTR_OUTSIDE_MEMORY.
 */
export function findKhoSetupData(mem: PhysMemory, head: bigint, maxNodes = 4096): SetupDataKho | undefined {
  const seen = new Set<bigint>();
  for (let pa = head; pa !== 0n; ) {
    if (seen.has(pa) || seen.size >= maxNodes) {
      throw new KhoError('KHO_SETUP_DATA_LOOP', `the setup_data list loops or is longer than ${maxNodes}`, {
        path: `phys:0x${pa.toString(16)}`,
        expected: 'a list ending with next = 0',
      });
    }
    seen.add(pa);
    const hdr = mem.read(pa, SETUP_DATA_HEADER_SIZE);
    const dv = new DataView(hdr.buffer, hdr.byteOffset, SETUP_DATA_HEADER_SIZE);
    if (dv.getUint32(8, true) === SETUP_KEXEC_KHO) {
      return decodeKhoSetupData(mem.read(pa, SETUP_DATA_HEADER_SIZE + KHO_DATA_SIZE));
    }
    pa = dv.getBigUint64(0, true);
  }
  return undefined;
}

function cellsValue(v: bigint, cells: number, what: string): Uint8Array {
  if (cells < 1 || cells > 2) {
    throw new KhoError('KHO_CHOSEN_BAD_CELLS', `${cells} cells for ${what}`, { expected: '1 or 2 cells' });
  }
  if (cells === 1 && v > 0xffffffffn) {
    throw new KhoError('KHO_CHOSEN_BAD_VALUE', `${what} 0x${v.toString(16)} does not fit one cell`, {
      expected: 'a value below 4 GiB, or 2 cells',
    });
  }
  const out = new Uint8Array(cells * 4);
  const dv = new DataView(out.buffer);
  if (cells === 2) dv.setBigUint64(0, BigInt.asUintN(64, v), false);
  else dv.setUint32(0, Number(v), false);
  return out;
}

export interface ChosenKhoProps {
  'linux,kho-fdt': Uint8Array;
  'linux,kho-scratch': Uint8Array;
}

/** The two `/chosen` property values for a root with these cell counts (libfdt's defaults: 2 and 1). */
export function encodeChosenKho(d: KhoHandoverDesc, addressCells = 2, sizeCells = 1): ChosenKhoProps {
  const range = (a: bigint, s: bigint, what: string) => {
    const av = cellsValue(a, addressCells, `${what} address`);
    const sv = cellsValue(s, sizeCells, `${what} size`);
    const out = new Uint8Array(av.length + sv.length);
    out.set(av, 0);
    out.set(sv, av.length);
    return out;
  };
  return {
    'linux,kho-fdt': range(d.fdtAddr, d.fdtSize, CHOSEN_KHO_FDT),
    'linux,kho-scratch': range(d.scratchAddr, d.scratchSize, CHOSEN_KHO_SCRATCH),
  };
}

function readCells(v: Uint8Array, off: number, cells: number): bigint {
  let x = 0n;
  for (let i = 0; i < cells; i++) {
    const o = off + 4 * i;
    x = (x << 32n) | BigInt(((v[o]! << 24) | (v[o + 1]! << 16) | (v[o + 2]! << 8) | v[o + 3]!) >>> 0);
  }
  return x;
}

function rootCells(root: FdtNodeView, name: string, dflt: number): number {
  const p = root.props.find((q) => q.name === name);
  if (!p) return dflt;
  if (p.value.length !== 4) {
    throw new KhoError('KHO_CHOSEN_BAD_CELLS', `${name} is ${p.value.length} bytes`, {
      path: `/:${name}`,
      expected: '4 bytes',
    });
  }
  const n = readCells(p.value, 0, 1);
  if (n < 1n || n > 2n) {
    throw new KhoError('KHO_CHOSEN_BAD_CELLS', `${name} = ${n}`, { path: `/:${name}`, expected: '1 or 2' });
  }
  return Number(n);
}

/**
 * Decode `linux,kho-fdt` / `linux,kho-scratch` from a boot devicetree's `/chosen`, as the next kernel
 * does: cells from the root (the kernel's defaults 1 and 1 when absent). Undefined when `/chosen` has
 * neither (a cold boot); KHO_CHOSEN_* errors for one without the other or a wrong length.
 */
export function decodeChosenKho(dtb: Uint8Array | FdtBlob): KhoHandoverDesc | undefined {
  const blob = dtb instanceof Uint8Array ? parseFdt(dtb) : dtb;
  const chosen = blob.root.children.find((c) => c.name === 'chosen');
  const fdtP = chosen?.props.find((p) => p.name === CHOSEN_KHO_FDT);
  const scrP = chosen?.props.find((p) => p.name === CHOSEN_KHO_SCRATCH);
  if (!fdtP && !scrP) return undefined;
  if (!fdtP || !scrP) {
    throw new KhoError(
      'KHO_CHOSEN_INCOMPLETE',
      `/chosen has ${fdtP ? CHOSEN_KHO_FDT : CHOSEN_KHO_SCRATCH} only`,
      {
        path: '/chosen',
        expected: `both ${CHOSEN_KHO_FDT} and ${CHOSEN_KHO_SCRATCH}`,
      },
    );
  }
  const ac = rootCells(blob.root, '#address-cells', 1);
  const sc = rootCells(blob.root, '#size-cells', 1);
  const want = 4 * (ac + sc);
  for (const p of [fdtP, scrP]) {
    if (p.value.length !== want) {
      throw new KhoError('KHO_CHOSEN_BAD_LENGTH', `${p.name} is ${p.value.length} bytes`, {
        path: `/chosen:${p.name}`,
        expected: `${want} bytes (#address-cells ${ac} + #size-cells ${sc})`,
      });
    }
  }
  return {
    fdtAddr: readCells(fdtP.value, 0, ac),
    fdtSize: readCells(fdtP.value, 4 * ac, sc),
    scratchAddr: readCells(scrP.value, 0, ac),
    scratchSize: readCells(scrP.value, 4 * ac, sc),
  };
}
