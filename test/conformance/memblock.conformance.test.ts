/**
 * memblock sub-FDT conformance, one suite per profile instance (page size, byte order): the kernel's
 * sequential-write calls replayed through pylibfdt give our bytes; decode(encode(regions)) = regions;
 * mutated blobs give typed errors or findings only.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeMemblockFdt, encodeMemblockFdt, validateMemblockFdt } from '../../src/abi/memblock.ts';
import { type AbiProfile, getProfile } from '../../src/abi/profile.ts';
import { KhoError } from '../../src/errors.ts';
import { oracle, runPython } from '../helpers/oracle.ts';

const IMPLS: { label: string; profile: AbiProfile }[] = [
  { label: 'kho-v4 4K LE', profile: getProfile('kho-v4') },
  { label: 'kho-v2 16K LE', profile: getProfile('kho-v2', { pageSize: 16384 }) },
  { label: 'kho-v1 64K LE', profile: getProfile('kho-v1', { pageSize: 65536 }) },
  { label: 'kho-v3 4K BE', profile: getProfile('kho-v3', { endian: 'big' }) },
];

const arbRegions = fc.uniqueArray(
  fc.record({
    name: fc
      .array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz_0123456789'.split('')), {
        minLength: 1,
        maxLength: 15,
      })
      .map((a) => a.join('')),
    start: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    size: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  }),
  { selector: (r) => r.name, maxLength: 8 },
);

const PY = `
import sys, json, libfdt
out = []
for c in json.load(sys.stdin):
    e = "little" if c["le"] else "big"
    sw = libfdt.FdtSw()
    sw.finish_reservemap()
    sw.begin_node("")
    sw.property_string("compatible", "memblock-v1")
    for name, start, size in c["regions"]:
        sw.begin_node(name)
        sw.property_string("compatible", "reserve-mem-v1")
        sw.property("start", int(start, 16).to_bytes(8, e))
        sw.property("size", int(size, 16).to_bytes(8, e))
        sw.end_node()
    sw.end_node()
    f = sw.as_fdt()
    out.append(bytes(f.as_bytearray())[: f.totalsize()].hex())
json.dump(out, sys.stdout)
`;

for (const { label, profile } of IMPLS) {
  describe(`memblock conformance: ${label}`, () => {
    test('the kernel call sequence gives the bytes libfdt gives', (t) => {
      if (!oracle(t, 'pylibfdt')) return;
      const cases = fc.sample(arbRegions, { numRuns: 60, seed: 7 });
      const py = JSON.parse(
        runPython(
          PY,
          cases.map((regions) => ({
            le: profile.endian === 'little',
            regions: regions.map((r) => [r.name, r.start.toString(16), r.size.toString(16)]),
          })),
        ).toString('utf8'),
      ) as string[];
      cases.forEach((regions, i) => {
        assert.equal(Buffer.from(encodeMemblockFdt(regions, profile)).toString('hex'), py[i], `case ${i}`);
      });
    });

    test('decode(encode(regions)) = regions, no findings', () => {
      fc.assert(
        fc.property(arbRegions, (regions) => {
          const dec = decodeMemblockFdt(encodeMemblockFdt(regions, profile), profile);
          assert.deepEqual(dec.findings, []);
          assert.deepEqual(
            dec.regions,
            regions.map((r) => ({ ...r })),
          );
        }),
        { numRuns: 100 },
      );
    });

    test('mutated blobs: typed errors or findings only', () => {
      const base = encodeMemblockFdt(
        [{ name: 'khovec_region', start: 0x7d400000n, size: 0x400000n }],
        profile,
      );
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.nat({ max: 255 })), {
            minLength: 1,
            maxLength: 6,
          }),
          (muts) => {
            const b = Uint8Array.from(base);
            for (const [i, v] of muts) b[i] = v;
            try {
              decodeMemblockFdt(b, profile);
            } catch (e) {
              assert.ok(e instanceof KhoError, String(e));
            }
            assert.ok(Array.isArray(validateMemblockFdt(b, profile)));
          },
        ),
        { numRuns: 150 },
      );
    });
  });
}
