/**
 * The Linux 7.3.4 KHO captures checked into the project (test/vectors/linux-7.3.4, described by its
 * README.md), for tests: their folder, the six scenarios whose stage 1 handed over a KHO state, and
 * readers for the files every scenario has. Paths are relative to `VECTORS`. `stage1MemoryMap` is the
 * one decoding helper: the `kho map` model of a scenario's stage 1 (out/ with its memory image, iomem
 * and dmesg), as the map tests and the browser test draw it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadHandoverPath } from '../../src/abi/handover.ts';
import { openMemoryImage } from '../../src/abi/memory/open.ts';
import { buildMemoryMap, type MemoryMap } from '../../src/map/model.ts';
import { mapInputFromHandover } from '../../src/map/sources.ts';

/** Absolute path of test/vectors/linux-7.3.4. */
export const VECTORS = join(import.meta.dirname, '../vectors/linux-7.3.4');

/** The scenarios with a stage-1 KHO handover (every one but `kho-off`). */
export const SCENARIOS = [
  'flat-explicit',
  'numa-explicit',
  'default-scale',
  'bad-scratch',
  'three-hops',
  'luo-memfd',
] as const;

/** `VECTORS/<parts…>`. */
export function vectorPath(...parts: string[]): string {
  return join(VECTORS, ...parts);
}

/** A vector file's bytes. */
export function readVector(...parts: string[]): Uint8Array {
  return new Uint8Array(readFileSync(vectorPath(...parts)));
}

/** A vector file as UTF-8 text. */
export function readVectorText(...parts: string[]): string {
  return readFileSync(vectorPath(...parts), 'utf8');
}

/**
 * `<stageDir>/preserved.json` (e.g. `preservedJson('flat-explicit/stage1')`): the independent decoder's
 * list of preserved blocks as `[physical address in hex, order]`.
 */
export function preservedJson(stageDir: string): [string, number][] {
  return JSON.parse(readVectorText(stageDir, 'preserved.json')) as [string, number][];
}

/** The memory map of `<scenario>/stage1`: out/ decoded with its memory image, plus its iomem and dmesg. */
export function stage1MemoryMap(scenario: string): MemoryMap {
  const d = vectorPath(scenario, 'stage1');
  const mem = openMemoryImage(join(d, 'mem'));
  try {
    const h = loadHandoverPath(join(d, 'out'), { memory: mem });
    return buildMemoryMap(
      mapInputFromHandover(h, {
        memory: mem,
        iomem: readFileSync(join(d, 'iomem'), 'utf8'),
        dmesg: readFileSync(join(d, 'dmesg'), 'utf8'),
      }),
    );
  } finally {
    mem.close();
  }
}
