/**
 * The Linux 7.3.4 KHO captures checked into the project (test/vectors/linux-7.3.4, described by its
 * README.md), for tests: their folder, the six scenarios whose stage 1 handed over a KHO state, and
 * readers for the files every scenario has. Paths are relative to `VECTORS`; nothing here decodes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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
