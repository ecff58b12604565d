/**
 * A raw physical-memory image: one file whose byte 0 is physical address `base` (for example QEMU's
 * `pmemsave 0 0x80000000 mem.raw`, base 0). Contract: covers `[base, base + file size)`; reads are lazy
 * (positioned `fs.readSync` on an open descriptor), the file is never slurped. Call `close()` when done.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { KhoError } from '../../errors.ts';
import { type PhysMemory, type PhysRange, type Segment, SegmentedMemory } from './image.ts';

/** A segment reading `size` bytes of open file `fd` from file offset `fileOffset`. */
export function fileSegment(
  fd: number,
  fileOffset: number,
  start: bigint,
  size: bigint,
  path: string,
): Segment {
  return {
    start,
    size,
    read(off: number, len: number): Uint8Array {
      const buf = new Uint8Array(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, buf, got, len - got, fileOffset + off + got);
        if (n === 0) {
          throw new KhoError('IO_SHORT_READ', `unexpected end of file reading ${path}`, {
            path,
            offset: fileOffset + off + got,
          });
        }
        got += n;
      }
      return buf;
    },
  };
}

export function openFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new KhoError('IO_OPEN_FAILED', `cannot open ${path}: ${(e as Error).message}`, { path, cause: e });
  }
}

/** A file-backed `PhysMemory` that owns open descriptors. */
export class FileMemory implements PhysMemory {
  private readonly inner: SegmentedMemory;
  constructor(
    segments: Segment[],
    private readonly fds: number[],
    /** What kind of image this is: `raw`, `elf` or `dir`. */
    readonly kind: 'raw' | 'elf' | 'dir',
  ) {
    this.inner = new SegmentedMemory(segments);
  }
  read(pa: bigint, len: number): Uint8Array {
    return this.inner.read(pa, len);
  }
  has(pa: bigint, len: number | bigint): boolean {
    return this.inner.has(pa, len);
  }
  ranges(): PhysRange[] {
    return this.inner.ranges();
  }
  close(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}

/** Open a raw image whose first byte is physical address `base` (default 0). */
export function openRawMemory(path: string, base = 0n): FileMemory {
  if (base < 0n) throw new KhoError('KHO_BAD_BASE', `negative base address ${base}`, { path });
  const fd = openFile(path);
  const size = BigInt(fstatSync(fd).size);
  return new FileMemory([fileSegment(fd, 0, base, size, path)], [fd], 'raw');
}
