/**
 * Typed views of property values.
 *
 * Standard devicetree values are big-endian cells; KHO writes raw native-endian C values instead
 * (little-endian u64 on x86_64 and arm64), which is why fdtdump shows them byte-swapped. Each helper
 * checks the length it needs and throws FDT_ERR_BADVALUE (with `expected`) otherwise.
 */
import { KhoError } from '../errors.ts';

function badValue(what: string, len: number, expected: string, path?: string): KhoError {
  return new KhoError('FDT_ERR_BADVALUE', `${what}: value of ${len} bytes`, {
    expected,
    ...(path !== undefined ? { path } : {}),
  });
}

/** A single NUL-terminated string (latin1: one char per byte). */
export function asString(v: Uint8Array, path?: string): string {
  if (v.length === 0 || v[v.length - 1] !== 0)
    throw badValue('not a string', v.length, 'a NUL-terminated string', path);
  const s = Buffer.from(v.buffer, v.byteOffset, v.length - 1).toString('latin1');
  if (s.includes('\0'))
    throw badValue('a string list, not one string', v.length, 'one NUL-terminated string', path);
  return s;
}

/** A string list: NUL-terminated strings back to back. */
export function asStringList(v: Uint8Array, path?: string): string[] {
  if (v.length === 0) return [];
  if (v[v.length - 1] !== 0) throw badValue('not a string list', v.length, 'NUL-terminated strings', path);
  return Buffer.from(v.buffer, v.byteOffset, v.length - 1)
    .toString('latin1')
    .split('\0');
}

/** Big-endian 32-bit cells (`<0x1 0x2>`). */
export function asU32Cells(v: Uint8Array, path?: string): number[] {
  if (v.length % 4 !== 0) throw badValue('not 32-bit cells', v.length, 'a multiple of 4 bytes', path);
  const dv = new DataView(v.buffer, v.byteOffset, v.length);
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 4) out.push(dv.getUint32(i, false));
  return out;
}

/** One big-endian u32 cell. */
export function asU32(v: Uint8Array, path?: string): number {
  if (v.length !== 4) throw badValue('not one u32 cell', v.length, '4 bytes', path);
  return new DataView(v.buffer, v.byteOffset, 4).getUint32(0, false);
}

/** Big-endian 64-bit values (two cells each). */
export function asU64Cells(v: Uint8Array, path?: string): bigint[] {
  if (v.length % 8 !== 0) throw badValue('not 64-bit cells', v.length, 'a multiple of 8 bytes', path);
  const dv = new DataView(v.buffer, v.byteOffset, v.length);
  const out: bigint[] = [];
  for (let i = 0; i < v.length; i += 8) out.push(dv.getBigUint64(i, false));
  return out;
}

/** One native-endian u64 as KHO writes it (`little` on x86_64/arm64); exactly 8 bytes. */
export function asU64Native(v: Uint8Array, endian: 'little' | 'big' = 'little', path?: string): bigint {
  if (v.length !== 8) throw badValue('not a u64', v.length, 'exactly 8 bytes', path);
  return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, endian === 'little');
}

/** One native-endian u32; exactly 4 bytes. */
export function asU32Native(v: Uint8Array, endian: 'little' | 'big' = 'little', path?: string): number {
  if (v.length !== 4) throw badValue('not a u32', v.length, 'exactly 4 bytes', path);
  return new DataView(v.buffer, v.byteOffset, 4).getUint32(0, endian === 'little');
}

/** Encoders for the same forms. */
export function stringValue(s: string): Uint8Array {
  return Buffer.from(`${s}\0`, 'latin1');
}

export function stringListValue(list: string[]): Uint8Array {
  return Buffer.from(list.map((s) => `${s}\0`).join(''), 'latin1');
}

export function u32CellsValue(cells: number[]): Uint8Array {
  const out = new Uint8Array(cells.length * 4);
  const dv = new DataView(out.buffer);
  cells.forEach((c, i) => dv.setUint32(i * 4, c >>> 0, false));
  return out;
}

export function u64CellsValue(vals: bigint[]): Uint8Array {
  const out = new Uint8Array(vals.length * 8);
  const dv = new DataView(out.buffer);
  vals.forEach((x, i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, x), false));
  return out;
}

export function u64NativeValue(x: bigint, endian: 'little' | 'big' = 'little'): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, x), endian === 'little');
  return out;
}

export function u32NativeValue(x: number, endian: 'little' | 'big' = 'little'): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, x >>> 0, endian === 'little');
  return out;
}
