/**
 * `openMemoryImage(path, opts)`: open any supported physical-memory image by sniffing it.
 * A directory is a `mem/` directory of `<16 hex digits>.bin` pieces (`dir.ts`); a file starting with
 * the ELF magic is an ELF64 core (`elfcore.ts`); any other file is a raw image starting at `opts.base`
 * (default 0; `raw.ts`). `opts.kind` forces a kind. Close the result with `close()`.
 */
import { closeSync, readSync, statSync } from 'node:fs';
import { KhoError } from '../../errors.ts';
import { openMemoryDir } from './dir.ts';
import { ELF_MAGIC, openElfCore } from './elfcore.ts';
import { type FileMemory, openFile, openRawMemory } from './raw.ts';

export type MemoryImageKind = 'raw' | 'elf' | 'dir';

export interface OpenMemoryOptions {
  /** Physical address of byte 0 of a raw image (default 0). */
  base?: bigint;
  /** Skip sniffing. */
  kind?: MemoryImageKind;
}

export function sniffMemoryImage(path: string): MemoryImageKind {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new KhoError('IO_OPEN_FAILED', `cannot open ${path}: ${(e as Error).message}`, { path, cause: e });
  }
  if (st.isDirectory()) return 'dir';
  const fd = openFile(path);
  try {
    const head = new Uint8Array(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && head.every((b, i) => b === ELF_MAGIC[i]) ? 'elf' : 'raw';
  } finally {
    closeSync(fd);
  }
}

export function openMemoryImage(path: string, opts: OpenMemoryOptions = {}): FileMemory {
  const kind = opts.kind ?? sniffMemoryImage(path);
  if (kind === 'dir') return openMemoryDir(path);
  if (kind === 'elf') return openElfCore(path);
  return openRawMemory(path, opts.base ?? 0n);
}
