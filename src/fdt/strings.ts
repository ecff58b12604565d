/**
 * String-table helpers shared by the FDT writers (dtc, sequential-write and read-write modes).
 *
 * Contract:
 * - `nameToBytes(name, what)` turns a model name (a binary string, one character per byte) into its
 *   bytes without the NUL; it throws `FDT_ERR_BADVALUE` for a character above 0xff or an embedded NUL,
 *   which no NUL-terminated FDT name can hold.
 * - `findString(buf, start, size, s)` is libfdt's `fdt_find_string_`: the first byte offset `p` in
 *   `buf[start, start+size)` where `s` followed by a NUL starts, scanning *every* byte offset, so a
 *   name may reuse the tail of a longer one (`size` inside `blob-size`). Returns -1 when absent.
 *   It never reads outside `buf`.
 * - `DtcStringTable` is dtc's string block: `insert(s)` returns the offset of the first place the
 *   table already holds `s` + NUL (at any byte offset), else appends it.
 */
import { KhoError } from '../errors.ts';

/** Bytes of a binary-string name (latin1), without a terminating NUL. */
export function nameToBytes(name: string, what = 'name'): Uint8Array {
  const out = new Uint8Array(name.length);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0 || c > 0xff) {
      throw new KhoError(
        'FDT_ERR_BADVALUE',
        `${what} ${JSON.stringify(name)} has a byte an FDT name cannot hold`,
        {
          path: name,
          expected: 'characters U+0001..U+00FF (bytes without NUL)',
        },
      );
    }
    out[i] = c;
  }
  return out;
}

/** Bytes of a string value with its terminating NUL (what `fdt_property_string` stores). */
export function nulTerminated(s: string): Uint8Array {
  const b = nameToBytes(s, 'string value');
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/**
 * libfdt's fdt_find_string_: first offset (relative to `start`) where `s` + NUL occurs within
 * `buf[start, start+size)`, or -1.
 */
export function findString(buf: Uint8Array, start: number, size: number, s: Uint8Array): number {
  const len = s.length + 1;
  const end = Math.min(start + size, buf.length);
  const last = end - len;
  for (let p = Math.max(start, 0); p <= last; p++) {
    if (buf[p + s.length] !== 0) continue;
    let k = 0;
    while (k < s.length && buf[p + k] === s[k]) k++;
    if (k === s.length) return p - start;
  }
  return -1;
}

/** dtc's string block with its suffix-sharing insert (`stringtable_insert`). */
export class DtcStringTable {
  private buf = new Uint8Array(64);
  private len = 0;

  insert(s: Uint8Array): number {
    const found = findString(this.buf, 0, this.len, s);
    if (found >= 0) return found;
    const off = this.len;
    const need = off + s.length + 1;
    if (need > this.buf.length) {
      const grown = new Uint8Array(Math.max(need, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(s, off);
    this.buf[off + s.length] = 0;
    this.len = need;
    return off;
  }

  get size(): number {
    return this.len;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
