/**
 * Unit tests of the validator's warnings, infos, caps and API on hand-assembled blobs; every expected
 * offset is derived by hand from the assembler's layout (40-byte header, rsvmap at 40, structure
 * right after it, strings last). libfdt's verdicts on the same kinds of blobs are checked in
 * test/oracle/validate.oracle.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { asmFdt, tok } from '../../test/helpers/fdtcheck.ts';
import { type Finding, isKhoError } from '../errors.ts';
import { parseFdt } from './reader.ts';
import {
  assertValidFdt,
  checkFdt,
  FDT_FINDING,
  firstError,
  nodeNameProblem,
  propNameProblem,
} from './validate.ts';

const codes = (fs: Finding[]) => fs.map((f) => `${f.severity}:${f.code}`);
const only = (fs: Finding[], code: string) => fs.filter((f) => f.code === code);
const one = new Uint8Array([0, 0, 0, 1]);

test('a clean hand-assembled blob has no findings', () => {
  // struct at 56: BEGIN "" @56, PROP compatible @64, BEGIN "a" @80, PROP b @88, END_NODE x2, END
  const { bytes } = asmFdt({
    struct: [
      tok.begin(''),
      tok.prop('compatible', 'x'),
      tok.begin('a'),
      tok.prop('b', one),
      tok.end(),
      tok.end(),
      tok.fin(),
    ],
  });
  assert.deepEqual(checkFdt(bytes), []);
  assert.deepEqual(assertValidFdt(bytes), []);
});

test('duplicate sibling nodes and duplicate properties are warnings with path and offset', () => {
  // BEGIN "" @56 (8), BEGIN "a" @64 (8), END_NODE @72, BEGIN "a" @76, PROP x @84 (12), PROP x @96,
  // END_NODE @108, END_NODE @112, END @116
  const { bytes } = asmFdt({
    struct: [
      tok.begin(''),
      tok.begin('a'),
      tok.end(),
      tok.begin('a'),
      tok.prop('x'),
      tok.prop('x'),
      tok.end(),
      tok.end(),
      tok.fin(),
    ],
  });
  const fs = checkFdt(bytes);
  assert.equal(firstError(fs), undefined);
  assert.deepEqual(
    only(fs, FDT_FINDING.duplicateNode).map((f) => [f.severity, f.offset, f.path]),
    [['warning', 76, '/a']],
  );
  assert.deepEqual(
    only(fs, FDT_FINDING.duplicateProp).map((f) => [f.severity, f.offset, f.path]),
    [['warning', 96, '/a']],
  );
});

test('node and property names outside DTSpec character sets', () => {
  // BEGIN "" @56 (8), BEGIN "A B" @64 (8: tag + "A B\0"), PROP "with space" @72, END_NODE, END_NODE, END
  const { bytes } = asmFdt({
    struct: [tok.begin(''), tok.begin('A B'), tok.prop('with space'), tok.end(), tok.end(), tok.fin()],
  });
  const fs = checkFdt(bytes);
  assert.equal(firstError(fs), undefined);
  assert.deepEqual(
    only(fs, FDT_FINDING.nodeName).map((f) => [f.offset, f.path]),
    [[68, '/A B']],
  );
  assert.deepEqual(
    only(fs, FDT_FINDING.propName).map((f) => [f.offset, f.path]),
    [[80, '/A B']],
  );
  assert.equal(nodeNameProblem('serial@1000'), null);
  assert.equal(nodeNameProblem('cpu,idle-state_1.2+x'), null);
  assert.notEqual(nodeNameProblem(''), null);
  assert.notEqual(nodeNameProblem('a@1@2'), null);
  assert.notEqual(nodeNameProblem('@1'), null);
  assert.notEqual(nodeNameProblem('a/b'), null);
  assert.equal(propNameProblem('#address-cells'), null);
  assert.equal(propNameProblem('linux,phandle?'), null);
  assert.notEqual(propNameProblem(''), null);
  assert.notEqual(propNameProblem('a@b'), null);
  assert.notEqual(propNameProblem('\u00e9'), null);
});

test('NOPs: one warning with the count and the first offset', () => {
  // BEGIN "" @56, NOP @64, NOP @68, END_NODE @72, END @76
  const { bytes } = asmFdt({ struct: [tok.begin(''), tok.nop(), tok.nop(), tok.end(), tok.fin()] });
  const fs = checkFdt(bytes);
  assert.deepEqual(codes(fs), [`warning:${FDT_FINDING.nop}`]);
  assert.equal(fs[0]!.offset, 64);
  assert.match(fs[0]!.message, /^2 /);
});

test('strings: unused bytes, a missing final NUL', () => {
  // strings block: "unused\0" (7 bytes, never referenced) then "x\0"; struct is 8 + 12 + 4 + 4 = 28
  // bytes at 56, so the strings block starts at 84.
  const { bytes, layout } = asmFdt({
    strings: 'unused\0',
    struct: [tok.begin(''), tok.prop('x'), tok.end(), tok.fin()],
  });
  assert.equal(layout.offStrings, 84);
  const fs = checkFdt(bytes);
  assert.deepEqual(
    only(fs, FDT_FINDING.unusedStrings).map((f) => [f.offset, f.message.split(' of ')[0]]),
    [[84, '7']],
  );
  // names may share a suffix ("ta" inside "data"): the shared bytes count as used
  const shared = asmFdt({
    strings: 'data\0',
    struct: [tok.begin(''), tok.prop('data'), tok.prop(2), tok.end(), tok.fin()],
  });
  assert.deepEqual(checkFdt(shared.bytes), []);
  const cut = asmFdt({
    struct: [tok.begin(''), tok.end(), tok.fin()],
    strings: 'ab',
  });
  // 'ab' without NUL: unterminated (last byte at offStrings + 1) and unused
  const cfs = checkFdt(cut.bytes);
  assert.deepEqual(
    only(cfs, FDT_FINDING.stringsUnterminated).map((f) => f.offset),
    [cut.layout.offStrings + 1],
  );
});

test('trailing bytes after totalsize: data is a warning, zero padding an info', () => {
  const { bytes } = asmFdt({ struct: [tok.begin(''), tok.end(), tok.fin()] });
  const total = bytes.length;
  const data = checkFdt(Buffer.concat([bytes, Buffer.from([0xff, 0, 0, 0])]));
  assert.deepEqual(
    data.map((f) => [f.severity, f.code, f.offset]),
    [['warning', FDT_FINDING.trailingData, total]],
  );
  const zeros = checkFdt(Buffer.concat([bytes, Buffer.alloc(8)]));
  assert.deepEqual(
    zeros.map((f) => [f.severity, f.code, f.offset]),
    [['info', FDT_FINDING.trailingData, total]],
  );
});

test('layout: strings block before the structure block, unaligned rsvmap, slack after FDT_END', () => {
  const { bytes: canonical, layout } = asmFdt({
    struct: [tok.begin(''), tok.prop('abc', one), tok.end(), tok.fin()],
  });
  // rebuild as header, rsvmap, strings, struct
  const b = Buffer.from(canonical);
  const struct = b.subarray(layout.offStruct, layout.offStrings);
  const strings = b.subarray(layout.offStrings);
  const swapped = Buffer.concat([b.subarray(0, layout.offStruct), strings, struct]);
  swapped.writeUInt32BE(layout.offStruct, 12);
  swapped.writeUInt32BE(layout.offStruct + strings.length, 8);
  const fs = checkFdt(swapped);
  assert.equal(firstError(fs), undefined);
  assert.deepEqual(
    only(fs, 'FDT_ERR_BADLAYOUT').map((f) => [f.severity, f.offset]),
    [['warning', 12]],
  );
  parseFdt(swapped); // libfdt's read-only functions (and kho's reader) accept this order

  // rsvmap at 44: 4 padding bytes after the header, every block 4 bytes later
  const shifted = Buffer.concat([b.subarray(0, 40), Buffer.alloc(4), b.subarray(40)]);
  shifted.writeUInt32BE(b.readUInt32BE(4) + 4, 4);
  shifted.writeUInt32BE(layout.offStruct + 4, 8);
  shifted.writeUInt32BE(layout.offStrings + 4, 12);
  shifted.writeUInt32BE(44, 16);
  assert.deepEqual(
    checkFdt(shifted).map((f) => [f.severity, f.code, f.offset]),
    [['warning', 'FDT_ERR_ALIGNMENT', 16]],
  );

  // size_dt_struct covers a NOP after FDT_END: BEGIN @56 (8), PROP x=<1> @64 (16), END_NODE @80,
  // FDT_END @84, slack from 88
  const slack = asmFdt({ struct: [tok.begin(''), tok.prop('x', one), tok.end(), tok.fin(), tok.nop()] });
  assert.deepEqual(
    checkFdt(slack.bytes).map((f) => [f.severity, f.code, f.offset]),
    [['warning', FDT_FINDING.structSlack, 88]],
  );
});

test('memory reservation list ended by a size-0 entry with a non-zero address', () => {
  // entries at 40 (0x1000, 0x10) and 56 (terminator); struct at 72
  const { bytes } = asmFdt({
    rsv: [[0x1000n, 0x10n]],
    struct: [tok.begin(''), tok.end(), tok.fin()],
    patch: (b) => {
      b.writeBigUInt64BE(0x5000n, 56);
      return b;
    },
  });
  assert.deepEqual(
    checkFdt(bytes).map((f) => [f.severity, f.code, f.offset]),
    [['warning', FDT_FINDING.rsvmapTerminator, 56]],
  );
  assert.deepEqual(parseFdt(bytes).reserves, [{ address: 0x1000n, size: 0x10n }]);
});

test('what libfdt accepts but kho’s reader refuses is a warning, and the reader does refuse', () => {
  const noRoot = asmFdt({ struct: [tok.fin()] }).bytes;
  assert.deepEqual(
    checkFdt(noRoot).map((f) => [f.severity, f.code, f.offset]),
    [['warning', FDT_FINDING.noRoot, 56]],
  );
  assert.throws(
    () => parseFdt(noRoot),
    (e: unknown) => isKhoError(e, 'FDT_ERR_BADSTRUCTURE'),
  );

  // PROP x @56 before the root
  const outside = asmFdt({ struct: [tok.prop('x'), tok.begin(''), tok.end(), tok.fin()] }).bytes;
  assert.deepEqual(
    only(checkFdt(outside), FDT_FINDING.propOutsideNode).map((f) => [f.severity, f.offset]),
    [['warning', 56]],
  );
  assert.equal(firstError(checkFdt(outside)), undefined);
  assert.throws(
    () => parseFdt(outside),
    (e: unknown) => isKhoError(e, 'FDT_ERR_BADSTRUCTURE'),
  );

  // depth 4 (/a/b/c) with maxDepth 3: BEGIN "c" at 56 + 8 + 8 + 8 = 80
  const deep = asmFdt({
    struct: [
      tok.begin(''),
      tok.begin('a'),
      tok.begin('b'),
      tok.begin('c'),
      tok.end(),
      tok.end(),
      tok.end(),
      tok.end(),
      tok.fin(),
    ],
  }).bytes;
  assert.deepEqual(
    checkFdt(deep, { maxDepth: 3 }).map((f) => [f.code, f.offset, f.path]),
    [[FDT_FINDING.tooDeep, 80, '/a/b/c']],
  );
  assert.deepEqual(checkFdt(deep), []);
  assert.throws(
    () => parseFdt(deep, { maxDepth: 3 }),
    (e: unknown) => isKhoError(e, 'FDT_ERR_BADSTRUCTURE'),
  );

  // PROP x @64 with length 0xffffffff: libfdt steps (12 + len) mod 2^32 = 11 -> 76 and carries on
  const wraps = asmFdt({
    struct: [tok.begin(''), tok.prop('x', new Uint8Array(0), 0xffffffff), tok.end(), tok.fin()],
  }).bytes;
  const wfs = checkFdt(wraps);
  assert.equal(firstError(wfs), undefined);
  assert.deepEqual(
    only(wfs, FDT_FINDING.lengthWraps).map((f) => [f.offset, f.path]),
    [[68, '/']],
  );
  assert.throws(
    () => parseFdt(wraps),
    (e: unknown) => isKhoError(e, 'FDT_ERR_BADSTRUCTURE'),
  );
  // 0xfffffff4 steps by 0: libfdt loops forever, kho calls it an error
  const loops = asmFdt({
    struct: [tok.begin(''), tok.prop('x', new Uint8Array(0), 0xfffffff4), tok.end(), tok.fin()],
  }).bytes;
  assert.equal(firstError(checkFdt(loops))?.code, 'FDT_ERR_BADSTRUCTURE');
});

test('versions: 16 is an info, below 16 an error kho owns, newer than 17 an info', () => {
  const v = (version: number) =>
    asmFdt({
      struct: [tok.begin(''), tok.end(), tok.fin()],
      patch: (b) => {
        b.writeUInt32BE(version, 20);
        return b;
      },
    }).bytes;
  assert.deepEqual(
    checkFdt(v(16)).map((f) => [f.severity, f.code, f.offset]),
    [['info', FDT_FINDING.version, 20]],
  );
  assert.deepEqual(
    checkFdt(v(15)).map((f) => [f.severity, f.code, f.offset]),
    [['error', 'FDT_ERR_BADVERSION', 20]],
  );
  assert.deepEqual(
    checkFdt(v(18)).map((f) => [f.severity, f.code, f.offset]),
    [['info', FDT_FINDING.version, 20]],
  );
});

test('findings are capped, the summary says how many were dropped, and errors are never crowded out', () => {
  // 30 properties "x" in the root: 29 duplicates; then a property whose nameoff is far outside
  const props = Array.from({ length: 30 }, () => tok.prop('x'));
  const { bytes } = asmFdt({
    struct: [tok.begin(''), ...props, tok.prop(9999), tok.end(), tok.fin()],
  });
  const fs = checkFdt(bytes, { maxFindings: 5 });
  assert.equal(only(fs, FDT_FINDING.duplicateProp).length, 5);
  const summary = only(fs, FDT_FINDING.tooManyFindings);
  assert.equal(summary.length, 1);
  assert.match(summary[0]!.message, /^24 more findings omitted \(KHO_FDT_DUPLICATE_PROP x24;/); // 29 duplicates, 5 kept
  assert.equal(firstError(fs)?.code, 'FDT_ERR_BADOFFSET');
  assert.equal(firstError(fs)?.offset, 56 + 8 + 30 * 12 + 8);
});

test('a flood of one kind of finding does not crowd out the others', () => {
  // 150 properties "x": 149 duplicates, 100 kept by the per-code cap; then a NOP
  const props = Array.from({ length: 150 }, () => tok.prop('x'));
  const { bytes } = asmFdt({ struct: [tok.begin(''), ...props, tok.nop(), tok.end(), tok.fin()] });
  const fs = checkFdt(bytes);
  assert.equal(only(fs, FDT_FINDING.duplicateProp).length, 100);
  assert.equal(only(fs, FDT_FINDING.nop).length, 1);
  assert.match(
    only(fs, FDT_FINDING.tooManyFindings)[0]!.message,
    /^49 more findings omitted \(KHO_FDT_DUPLICATE_PROP x49;/,
  );
});

test('several independent header findings are all reported', () => {
  const { bytes } = asmFdt({
    struct: [tok.begin(''), tok.end(), tok.fin()],
    patch: (b) => {
      b.writeUInt32BE(18, 24); // last_comp_version
      b.writeUInt32BE(0xfffffffc, 12); // off_dt_strings
      return b;
    },
  });
  assert.deepEqual(
    checkFdt(bytes).map((f) => [f.code, f.offset]),
    [
      ['FDT_ERR_BADVERSION', 24],
      ['FDT_ERR_BADVERSION', 20], // version 17 < last_comp_version 18
      ['FDT_ERR_TRUNCATED', 12],
    ],
  );
});

test('assertValidFdt throws the first error as a KhoError with offset and expected', () => {
  const { bytes } = asmFdt({ struct: [tok.begin(''), tok.end(), tok.fin()] });
  const bad = Buffer.from(bytes);
  bad.writeUInt32BE(0xd00dfeee, 0);
  assert.throws(
    () => assertValidFdt(bad),
    (e: unknown) => isKhoError(e, 'FDT_ERR_BADMAGIC') && e.offset === 0 && e.expected === '0xd00dfeed',
  );
  assert.throws(
    () => assertValidFdt(new Uint8Array(10)),
    (e: unknown) => isKhoError(e, 'FDT_ERR_TRUNCATED') && e.offset === 10,
  );
});

test('allowTruncated: a cut-short buffer is checked as far as its bytes go', () => {
  const dir = new URL('../../test/vectors/linux-7.3.4/flat-explicit/stage1/out/', import.meta.url);
  const whole = new Uint8Array(readFileSync(new URL('fdt.whole', dir)));
  const debugfs = new Uint8Array(readFileSync(new URL('fdt', dir)));
  // the debugfs file is the first 233 of the blob's 353 bytes (vectors README)
  assert.equal(debugfs.length, 233);
  assert.deepEqual(debugfs, whole.subarray(0, 233));
  assert.deepEqual(
    checkFdt(debugfs).map((f) => [f.severity, f.code, f.offset]),
    [['error', 'FDT_ERR_TRUNCATED', 233]],
  );
  const fs = checkFdt(debugfs, { allowTruncated: true });
  assert.equal(firstError(fs), undefined);
  assert.deepEqual(fs[0], {
    code: 'FDT_ERR_TRUNCATED',
    severity: 'warning',
    message: "buffer holds 233 bytes but the header's totalsize is 353 (120 bytes cut off)",
    offset: 233,
    expected: '353 bytes',
  });
  // every prefix of a blob libfdt accepts: nothing in the bytes present is an error
  for (let n = 40; n < whole.length; n++) {
    const cut = checkFdt(whole.subarray(0, n), { allowTruncated: true });
    assert.equal(firstError(cut), undefined, `prefix ${n}: ${JSON.stringify(cut)}`);
    assert.equal(cut[0]?.code, 'FDT_ERR_TRUNCATED', `prefix ${n}`);
  }
  // an error inside the bytes present is still an error: unknown tag 7 at 64, cut at 72
  const bad = asmFdt({ struct: [tok.begin(''), tok.word(7), tok.end(), tok.fin()] }).bytes;
  assert.deepEqual(firstError(checkFdt(bad.subarray(0, 72), { allowTruncated: true })), {
    code: 'FDT_ERR_BADSTRUCTURE',
    severity: 'error',
    message: 'unknown tag 0x7',
    offset: 64,
    path: '/',
    expected: 'FDT_BEGIN_NODE (1), FDT_END_NODE (2), FDT_PROP (3), FDT_NOP (4) or FDT_END (9)',
  });
  // where the walk stopped: BEGIN_NODE at 56, whose name would start at byte 60, past the end
  const stopped = checkFdt(bad.subarray(0, 60), { allowTruncated: true });
  assert.deepEqual(
    stopped.filter((f) => f.code === FDT_FINDING.cut).map((f) => f.offset),
    [56],
  );
});
