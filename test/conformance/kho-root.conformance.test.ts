/**
 * Root KHO FDT conformance: one suite, run for every ABI profile (and page sizes / byte orders).
 *
 * Each implementation is a profile instance; the suite checks for each:
 * 1. state -> bytes -> state round trips (fast-check: random sub-trees in registration order);
 * 2. byte equality with libfdt: the kernel's call sequence for that profile replayed through pylibfdt
 *    (FdtSw for the sequential build, Fdt.resize/add_subnode/setprop/del_node/pack for each
 *    kho_add_subtree), including the error each add returns (duplicates, a full page);
 * 3. hostile roots (mutated and truncated blobs): typed errors or findings only, never a crash;
 * 4. for kho-v4, the real Linux 7.3.4 root FDTs re-encode to their own bytes.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  decodeKhoRoot,
  encodeKhoRoot,
  KhoRootBuilder,
  type KhoSubtreeEntry,
  khoRootState,
  validateKhoRoot,
} from '../../src/abi/kho-fdt.ts';
import { type AbiProfile, getProfile, type ProfileName } from '../../src/abi/profile.ts';
import { KhoError } from '../../src/errors.ts';
import { oracle, runPython } from '../helpers/oracle.ts';

interface Impl {
  label: string;
  profile: AbiProfile;
}

const IMPLS: Impl[] = [
  ...(['kho-v1-6.16', 'kho-v1', 'kho-v2', 'kho-v3', 'kho-v4', 'kho-v4-bootmem'] as ProfileName[]).map(
    (n) => ({
      label: n,
      profile: getProfile(n),
    }),
  ),
  { label: 'kho-v4 16K pages', profile: getProfile('kho-v4', { pageSize: 16384 }) },
  { label: 'kho-v4 64K pages', profile: getProfile('kho-v4', { pageSize: 65536 }) },
  { label: 'kho-v3 big-endian', profile: getProfile('kho-v3', { endian: 'big' }) },
];

const arbName = fc
  .tuple(
    fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzLUO'.split('')),
    fc.array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789_-'.split('')), { maxLength: 24 }),
  )
  .map(([a, b]) => a + b.join(''));
const arbEntry = fc.record({
  name: arbName,
  phys: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  size: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
});
const arbMap = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n });

/** Registration-order adds, the way the kernel makes them; errors recorded as the kernel returns them. */
function kernelAdds(
  profile: AbiProfile,
  map: bigint,
  subs: KhoSubtreeEntry[],
): { bytes: Uint8Array; errs: string[] } {
  const b = new KhoRootBuilder(profile, map);
  const errs: string[] = [];
  for (const s of subs) {
    try {
      b.addSubtree(s.name, s.phys, s.size);
      errs.push('ok');
    } catch (e) {
      if (!(e instanceof KhoError)) throw e;
      errs.push(e.code);
    }
  }
  if (profile.needsFinalize) b.finalize(map);
  return { bytes: b.blob(), errs };
}

const PY = `
import sys, json, libfdt
out = []
for c in json.load(sys.stdin):
    page = c["page"]
    le = "little" if c["le"] else "big"
    u64 = lambda v: int(v, 16).to_bytes(8, le)
    errs = []
    if c["mode"] == "sw616":
        sw = libfdt.FdtSw()
        sw.finish_reservemap()
        sw.begin_node("")
        sw.property_string("compatible", c["compat"])
        sw.property("preserved-memory-map", u64(c["map"]))
        for name, phys, size in c["subs"]:
            sw.begin_node(name)
            sw.property("fdt", u64(phys))
            sw.end_node()
            errs.append("ok")
        sw.end_node()
        fdt = sw.as_fdt()
    else:
        sw = libfdt.FdtSw()
        sw.finish_reservemap()
        sw.begin_node("")
        sw.property_string("compatible", c["compat"])
        sw.property("preserved-memory-map", u64("0" if c["finalize"] else c["map"]))
        sw.end_node()
        fdt = sw.as_fdt()
        for name, phys, size in c["subs"]:
            fdt.resize(page)
            try:
                off = fdt.add_subnode(0, name)
            except libfdt.FdtException as e:
                errs.append("KHO_EEXIST" if e.err == -libfdt.EXISTS else "KHO_ENOMEM")
                fdt.pack()
                continue
            try:
                fdt.setprop(off, c["prop"], u64(phys))
                if c["blobsize"]:
                    fdt.setprop(off, "blob-size", u64(size))
                errs.append("ok")
            except libfdt.FdtException as e:
                if c["blobsize"]:
                    fdt.del_node(off)
                    errs.append("KHO_ENOMEM")
                else:
                    errs.append(libfdt.fdt_strerror(e.err))
            fdt.pack()
        if c["finalize"]:
            fdt.setprop(0, "preserved-memory-map", u64(c["map"]))
    b = bytes(fdt.as_bytearray())[: fdt.totalsize()]
    out.append({"hex": b.hex(), "errs": errs})
json.dump(out, sys.stdout)
`;

/** libfdt's strerror names are e.g. FDT_ERR_NOSPACE: map pylibfdt's message form to our code. */
function pyCase(profile: AbiProfile, map: bigint, subs: KhoSubtreeEntry[]) {
  return {
    page: profile.pageSize,
    le: profile.endian === 'little',
    mode: profile.rootBuild === 'finalize-sw' ? 'sw616' : 'live',
    compat: profile.compatible,
    map: map.toString(16),
    finalize: profile.needsFinalize && profile.rootBuild === 'live-rw',
    prop: profile.subTreeProp,
    blobsize: profile.hasBlobSize,
    subs: subs.map((s) => [s.name, s.phys.toString(16), (s.size ?? 0n).toString(16)]),
  };
}

for (const impl of IMPLS) {
  const { profile } = impl;
  describe(`root FDT conformance: ${impl.label}`, () => {
    test('state -> bytes -> state round trip (unique names)', () => {
      fc.assert(
        fc.property(
          arbMap,
          fc.uniqueArray(arbEntry, { selector: (e) => e.name, maxLength: 12 }),
          (map, subs) => {
            const blobOrder = profile.rootBuild === 'finalize-sw' ? subs : [...subs].reverse();
            const state = {
              profile,
              memoryMap: map,
              subtrees: blobOrder.map((s) => ({
                name: s.name,
                phys: s.phys,
                ...(profile.hasBlobSize ? { size: s.size } : {}),
              })),
            };
            const bytes = encodeKhoRoot(state);
            const dec = decodeKhoRoot(bytes, { profile });
            assert.deepEqual(dec.findings, []);
            assert.equal(dec.compatible, profile.compatible);
            assert.equal(dec.memoryMap, map);
            assert.deepEqual(khoRootState(dec).subtrees, state.subtrees);
            assert.ok(bytes.length <= profile.pageSize);
            // And the decoded state re-encodes to the same bytes.
            assert.ok(Buffer.from(encodeKhoRoot(khoRootState(dec))).equals(Buffer.from(bytes)));
          },
        ),
        { numRuns: 60 },
      );
    });

    test('the kernel call sequence gives the bytes and errors libfdt gives (pylibfdt)', (t) => {
      if (!oracle(t, 'pylibfdt')) return;
      // Duplicates allowed (-EEXIST), and some long lists of long names to fill a 4 KiB page.
      // (kho-v1-6.16 builds everything at finalize from a fixed list: no page-filling cases there.)
      const short = fc.array(arbEntry, { maxLength: 10 });
      const long = fc.array(
        arbEntry.map((e) => ({ ...e, name: e.name.padEnd(40, 'x') })),
        { minLength: 40, maxLength: 90 },
      );
      const arbCase = fc.tuple(arbMap, profile.rootBuild === 'finalize-sw' ? short : fc.oneof(short, long));
      const cases = fc.sample(arbCase, { numRuns: 40, seed: 42 });
      cases.push([
        0x3c1e000n,
        [
          { name: 'dup', phys: 1n, size: 2n },
          { name: 'dup', phys: 3n, size: 4n },
        ],
      ]);
      const py = JSON.parse(
        runPython(
          PY,
          cases.map(([map, subs]) => pyCase(profile, map, subs)),
        ).toString('utf8'),
      ) as { hex: string; errs: string[] }[];
      cases.forEach(([map, subs], i) => {
        const ours = kernelAdds(profile, map, subs);
        assert.deepEqual(ours.errs, py[i]!.errs, `case ${i}`);
        assert.equal(Buffer.from(ours.bytes).toString('hex'), py[i]!.hex, `case ${i}`);
      });
      // The long-list cases really did fill the page at least once (4 KiB profiles).
      if (profile.pageSize === 4096 && profile.rootBuild === 'live-rw') {
        assert.ok(py.some((r) => r.errs.some((e) => e !== 'ok' && e !== 'KHO_EEXIST')));
      }
    });

    test('hostile roots: mutated or truncated blobs give typed errors or findings, never a crash', () => {
      const base = encodeKhoRoot({
        profile,
        memoryMap: 0x3c1e000n,
        subtrees: [
          { name: 'memblock', phys: 0x4e6b000n, size: 218n },
          { name: 'kexec-metadata', phys: 0x3c25000n, size: 73n },
        ],
      });
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.nat({ max: 255 })), {
            minLength: 1,
            maxLength: 8,
          }),
          fc.nat({ max: base.length }),
          (muts, cut) => {
            const b = Uint8Array.from(base);
            for (const [i, v] of muts) b[i] = v;
            for (const input of [b, b.subarray(0, cut)]) {
              try {
                const dec = decodeKhoRoot(input, { profile });
                assert.ok(Array.isArray(dec.findings));
              } catch (e) {
                assert.ok(e instanceof KhoError, String(e));
              }
              const f = validateKhoRoot(input, { profile });
              assert.ok(
                f.every(
                  (x) => typeof x.code === 'string' && ['error', 'warning', 'info'].includes(x.severity),
                ),
              );
            }
          },
        ),
        { numRuns: 200 },
      );
    });
  });
}

describe('root FDT conformance: kho-v4 real vectors', () => {
  test('every real root FDT re-encodes to its own bytes', () => {
    const vec = join(import.meta.dirname, '../vectors/linux-7.3.4');
    let n = 0;
    for (const sc of readdirSync(vec).filter((d) => !d.includes('.'))) {
      for (const st of readdirSync(join(vec, sc)).filter((d) => d.startsWith('stage'))) {
        for (const f of ['out/fdt.whole', 'in/fdt']) {
          let bytes: Buffer;
          try {
            bytes = readFileSync(join(vec, sc, st, f));
          } catch {
            continue;
          }
          const dec = decodeKhoRoot(bytes, { profile: 'kho-v4' });
          assert.deepEqual(dec.findings, []);
          assert.ok(Buffer.from(encodeKhoRoot(khoRootState(dec))).equals(bytes), `${sc}/${st}/${f}`);
          n++;
        }
      }
    }
    assert.equal(n, 12);
  });
});
