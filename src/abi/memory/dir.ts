/**
 * A directory of physical-memory pieces, the vectors' `mem/` form: each file is named by its start
 * physical address in exactly 16 lowercase or uppercase hex digits plus `.bin`
 * (`0000000003c1e000.bin`) and holds a contiguous range from that address. Other names are ignored.
 * Contract: pieces are read lazily; overlapping pieces are clipped (the lower address file wins);
 * adjacent pieces form one readable range.
 */
import { fstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KhoError } from '../../errors.ts';
import type { Segment } from './image.ts';
import { FileMemory, fileSegment, openFile } from './raw.ts';

export const MEM_FILE_RE = /^([0-9a-fA-F]{16})\.bin$/;

/** The start address a file name encodes, or undefined if it is not a memory piece. */
export function parseMemFileName(name: string): bigint | undefined {
  const m = MEM_FILE_RE.exec(name);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** The file name for a piece starting at `pa`. */
export function memFileName(pa: bigint): string {
  return `${pa.toString(16).padStart(16, '0')}.bin`;
}

export function openMemoryDir(dir: string): FileMemory {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new KhoError('IO_OPEN_FAILED', `cannot list ${dir}: ${(e as Error).message}`, {
      path: dir,
      cause: e,
    });
  }
  const entries = names
    .map((n) => ({ n, start: parseMemFileName(n) }))
    .filter((e): e is { n: string; start: bigint } => e.start !== undefined)
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const fds: number[] = [];
  const segs: Segment[] = [];
  try {
    for (const { n, start } of entries) {
      const p = join(dir, n);
      const fd = openFile(p);
      fds.push(fd);
      segs.push(fileSegment(fd, 0, start, BigInt(fstatSync(fd).size), p));
    }
    return new FileMemory(segs, fds, 'dir');
  } catch (e) {
    new FileMemory([], fds, 'dir').close();
    throw e;
  }
}
