/**
 * The FDT validator: every finding about a flattened-devicetree blob, not only the first.
 *
 * Contract:
 * - `checkFdt(bytes)` returns findings in the order libfdt would meet them. Severity `'error'` marks
 *   exactly what makes libfdt 1.6.1's `fdt_check_full(fdt, bytes.length)` fail, with libfdt's error name
 *   as `code` (FDT_ERR_TRUNCATED, FDT_ERR_BADMAGIC, FDT_ERR_BADVERSION, FDT_ERR_BADSTRUCTURE,
 *   FDT_ERR_BADOFFSET), so the first error's code is libfdt's answer. Two deliberate exceptions, both
 *   errors: versions below 16 (kho reads 16 and 17 only; libfdt's old-version paths even crash), and a
 *   property length whose 12 + len wraps 2^32 to exactly the property's own offset (libfdt loops forever).
 * - `'warning'` marks what libfdt accepts but dtc or libfdt's read-write functions object to, or what
 *   kho's reader (`parseFdt`) rejects: blocks overlapping or out of canonical order (FDT_ERR_BADLAYOUT),
 *   unaligned blocks (FDT_ERR_ALIGNMENT), trailing garbage, duplicate names, names outside DTSpec's
 *   character sets, an unterminated or partly unused strings block, NOPs, no root node, properties
 *   outside any node, nesting deeper than `maxDepth`, property lengths that wrap. `'info'`: version 16,
 *   versions newer than 17, zero padding after totalsize.
 * - Each finding has `offset` (absolute byte offset in `bytes`) where it has a place, `path` (node path)
 *   inside the structure block, and `expected` for errors.
 * - After an error that desynchronises the structure walk, the walk stops; header and layout findings
 *   are still reported. Findings are capped at `maxFindings` errors and `maxFindings` others (default
 *   1000 each) and `maxPerCode` of any one code (default 100), then one `KHO_TOO_MANY_FINDINGS` warning
 *   says what was dropped; the first error is never dropped. Block-level findings come before the
 *   structure walk's per-node ones.
 * - With `allowTruncated`, a buffer shorter than totalsize is checked as far as its bytes go.
 * - Linear time and O(input) memory on any input; never throws for any `Uint8Array`.
 * - `assertValidFdt(bytes)` throws the first error as a `KhoError`.
 */
import { type Finding, KhoError, type KhoErrorCode, type Severity } from '../errors.ts';
import { be32, HDR, headerSizeForVersion } from './header.ts';
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_FIRST_SUPPORTED_VERSION,
  FDT_LAST_SUPPORTED_VERSION,
  FDT_MAGIC,
  FDT_NOP,
  FDT_PROP,
} from './model.ts';

export interface CheckOptions {
  /** Cap on error findings and, separately, on other findings. Default 1000. */
  maxFindings?: number;
  /**
   * Check a buffer shorter than its totalsize (such as Linux 7.3's debugfs `kho/out/fdt`) as far as its
   * bytes go: the shortfall is a FDT_ERR_TRUNCATED warning instead of an error, and a `KHO_FDT_CUT`
   * info says where checking stopped. Problems inside the bytes present are still errors.
   */
  allowTruncated?: boolean;
  /** Cap on findings of any one code, so one flood does not crowd out other kinds. Default 100. */
  maxPerCode?: number;
  /** Nesting depth (root = 1) beyond which a warning says kho's reader will refuse. Default 4096. */
  maxDepth?: number;
}

/** kho's own finding codes (libfdt's names are used wherever libfdt has one). */
export const FDT_FINDING = {
  version: 'KHO_FDT_VERSION',
  trailingData: 'KHO_FDT_TRAILING_DATA',
  rsvmapTerminator: 'KHO_FDT_RSVMAP_TERMINATOR',
  noRoot: 'KHO_FDT_NO_ROOT',
  propOutsideNode: 'KHO_FDT_PROP_OUTSIDE_NODE',
  tooDeep: 'KHO_FDT_TOO_DEEP',
  lengthWraps: 'KHO_FDT_LENGTH_WRAPS',
  nop: 'KHO_FDT_NOP',
  structSlack: 'KHO_FDT_STRUCT_SLACK',
  duplicateNode: 'KHO_FDT_DUPLICATE_NODE',
  duplicateProp: 'KHO_FDT_DUPLICATE_PROP',
  nodeName: 'KHO_FDT_NODE_NAME',
  propName: 'KHO_FDT_PROP_NAME',
  stringsUnterminated: 'KHO_FDT_STRINGS_UNTERMINATED',
  unusedStrings: 'KHO_FDT_UNUSED_STRINGS',
  cut: 'KHO_FDT_CUT',
  tooManyFindings: 'KHO_TOO_MANY_FINDINGS',
} as const satisfies Record<string, KhoErrorCode>;

/** Findings that mean kho's reader (`parseFdt`) refuses a blob libfdt accepts. */
export const FDT_READER_REJECTS: ReadonlySet<KhoErrorCode> = new Set<KhoErrorCode>([
  FDT_FINDING.noRoot,
  FDT_FINDING.propOutsideNode,
  FDT_FINDING.tooDeep,
  FDT_FINDING.lengthWraps,
]);

const INT_MAX = 0x7fffffff;
const TWO32 = 0x1_0000_0000;
/** libfdt's fdt_blocks_misordered_() wants the rsvmap at or after ALIGN(sizeof(struct fdt_header), 8). */
const CANONICAL_RSVMAP_START = 40;
/** Longer property names are checked by length only (DTSpec allows 31 characters). */
const MAX_CHECKED_NAME = 256;

type Message = string | (() => string);
type Where = { offset?: number; path?: string | (() => string); expected?: string };

class Collector {
  readonly list: Finding[] = [];
  private errors = 0;
  private others = 0;
  private readonly perCode = new Map<KhoErrorCode, number>();
  private readonly dropped = new Map<KhoErrorCode, number>();
  private summary: Finding | null = null;
  constructor(
    private readonly max: number,
    private readonly maxPerCode: number,
  ) {}

  /** `message` and `where.path` may be functions, called only if the finding is kept. */
  add(severity: Severity, code: KhoErrorCode, message: Message, where: Where = {}): void {
    const isError = severity === 'error';
    const sameCode = this.perCode.get(code) ?? 0;
    if ((isError ? this.errors : this.others) >= this.max || sameCode >= this.maxPerCode) {
      this.dropped.set(code, (this.dropped.get(code) ?? 0) + 1);
      if (!this.summary) {
        this.summary = { code: FDT_FINDING.tooManyFindings, severity: 'warning', message: '' };
        this.list.push(this.summary);
      }
      return;
    }
    if (isError) this.errors++;
    else this.others++;
    this.perCode.set(code, sameCode + 1);
    const f: Finding = { code, severity, message: typeof message === 'function' ? message() : message };
    const path = typeof where.path === 'function' ? where.path() : where.path;
    if (path !== undefined) f.path = path;
    if (where.offset !== undefined) f.offset = where.offset;
    if (where.expected !== undefined) f.expected = where.expected;
    this.list.push(f);
  }
  error(code: KhoErrorCode, message: Message, where: Where): void {
    this.add('error', code, message, where);
  }
  warn(code: KhoErrorCode, message: Message, where: Where = {}): void {
    this.add('warning', code, message, where);
  }
  finish(): Finding[] {
    if (this.summary) {
      let total = 0;
      const parts: string[] = [];
      for (const [code, n] of this.dropped) {
        total += n;
        parts.push(`${code} x${n}`);
      }
      this.summary.message =
        `${total} more findings omitted (${parts.join(', ')}; caps: ${this.max} errors, ${this.max} others, ` +
        `${this.maxPerCode} per code)`;
    }
    return this.list;
  }
}

/** Bytes allowed in DTSpec node names (unit address included) and property names. */
const NODE_CHARS = charTable('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,._+-@');
const PROP_CHARS = charTable('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,._+?#-');
function charTable(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

/** Why a node name breaks DTSpec's rules, or null. `name` is a latin1 binary string. */
export function nodeNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty node name';
  let ats = 0;
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (!NODE_CHARS[ch]) return `character 0x${ch.toString(16).padStart(2, '0')} not allowed in node names`;
    if (ch === 0x40) ats++;
  }
  if (ats > 1) return "more than one '@'";
  if (name.charCodeAt(0) === 0x40) return "empty node name before '@'";
  return null;
}

/** Why a property name breaks DTSpec's rules, or null. */
export function propNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty property name';
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (!PROP_CHARS[ch])
      return `character 0x${ch.toString(16).padStart(2, '0')} not allowed in property names`;
  }
  return null;
}

function show(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name);
}

interface Header {
  magic: number;
  totalsize: number;
  offStruct: number;
  offStrings: number;
  offRsvmap: number;
  version: number;
  lastComp: number;
  sizeStrings: number;
  sizeStruct: number;
}

/** One open node during the walk; sibling and property names are kept only once a second arrives. */
interface Frame {
  name: string;
  firstChild: string | null;
  children: Set<string> | null;
  firstProp: string | null;
  props: Set<string> | null;
}

/** Returns true if `name` was already in the frame's child (or property) names, then records it. */
function seen(frame: Frame, kind: 'child' | 'prop', name: string): boolean {
  const first = kind === 'child' ? frame.firstChild : frame.firstProp;
  const set = kind === 'child' ? frame.children : frame.props;
  if (first === null) {
    if (kind === 'child') frame.firstChild = name;
    else frame.firstProp = name;
    return false;
  }
  if (set === null) {
    if (first === name) return true;
    const s = new Set([first, name]);
    if (kind === 'child') frame.children = s;
    else frame.props = s;
    return false;
  }
  if (set.has(name)) return true;
  set.add(name);
  return false;
}

/** `/a/b` for the open nodes (stack[0] is the root); very deep paths keep their ends. */
function pathOf(stack: Frame[], leaf?: string): string {
  const names: string[] = [];
  const n = stack.length;
  const keep = 24;
  for (let i = 1; i < n; i++) {
    if (n > 2 * keep + 1 && i === keep + 1) {
      names.push(`...(${n - 2 * keep - 1} levels)...`);
      i = n - keep - 1;
      continue;
    }
    names.push(stack[i]!.name);
  }
  if (leaf !== undefined) names.push(leaf);
  return `/${names.join('/')}`;
}

/** Check a blob; see the module contract. */
export function checkFdt(bytes: Uint8Array, opts: CheckOptions = {}): Finding[] {
  const c = new Collector(Math.max(1, opts.maxFindings ?? 1000), Math.max(1, opts.maxPerCode ?? 100));
  check(bytes, c, opts.maxDepth ?? 4096, opts.allowTruncated ?? false);
  return c.finish();
}

/** The first error finding, or undefined if libfdt would accept the blob. */
export function firstError(findings: readonly Finding[]): Finding | undefined {
  return findings.find((f) => f.severity === 'error');
}

/** Throw the first error of `checkFdt` as a KhoError; return the findings (warnings, infos) otherwise. */
export function assertValidFdt(bytes: Uint8Array, opts: CheckOptions = {}): Finding[] {
  const findings = checkFdt(bytes, opts);
  const e = firstError(findings);
  if (e) {
    throw new KhoError(e.code, e.message, {
      ...(e.offset !== undefined ? { offset: e.offset } : {}),
      ...(e.path !== undefined ? { path: e.path } : {}),
      ...(e.expected !== undefined ? { expected: e.expected } : {}),
    });
  }
  return findings;
}

function check(bytes: Uint8Array, c: Collector, maxDepth: number, allowTruncated: boolean): void {
  const n = bytes.length;
  if (n < 28) {
    c.error('FDT_ERR_TRUNCATED', `blob is ${n} bytes, shorter than the smallest FDT header`, {
      offset: n,
      expected: 'at least 28 bytes (40 for version 17)',
    });
    return;
  }
  // libfdt reads every header field whatever the version says; bytes past the buffer read as 0.
  const field = (off: number) => (off + 4 <= n ? be32(bytes, off) : 0);
  const h: Header = {
    magic: field(HDR.magic),
    totalsize: field(HDR.totalsize),
    offStruct: field(HDR.offDtStruct),
    offStrings: field(HDR.offDtStrings),
    offRsvmap: field(HDR.offMemRsvmap),
    version: field(HDR.version),
    lastComp: field(HDR.lastCompVersion),
    sizeStrings: field(HDR.sizeDtStrings),
    sizeStruct: field(HDR.sizeDtStruct),
  };
  const hdrsize = headerSizeForVersion(h.version);
  if (n < hdrsize) {
    c.error('FDT_ERR_TRUNCATED', `blob is ${n} bytes, shorter than a version ${h.version} header`, {
      offset: n,
      expected: `at least ${hdrsize} bytes`,
    });
  }
  if (h.magic !== FDT_MAGIC) {
    c.error('FDT_ERR_BADMAGIC', `bad magic 0x${h.magic.toString(16).padStart(8, '0')}`, {
      offset: HDR.magic,
      expected: '0xd00dfeed',
    });
    return;
  }
  if (n < hdrsize) return;

  const versionOk = checkVersion(h, c);
  const layoutOk = checkBlocksInside(h, hdrsize, c);
  if (versionOk && h.version < 16) {
    c.error('FDT_ERR_BADVERSION', `version ${h.version} blobs are not supported by kho`, {
      offset: HDR.version,
      expected: 'version 16 or 17',
    });
  } else if (versionOk && h.version === 16) {
    c.add('info', FDT_FINDING.version, 'version 16: no size_dt_struct; kho and dtc write version 17', {
      offset: HDR.version,
    });
  } else if (versionOk && h.version > FDT_LAST_SUPPORTED_VERSION) {
    c.add('info', FDT_FINDING.version, `version ${h.version} is newer than 17; read with version 17 rules`, {
      offset: HDR.version,
    });
  }
  const saneSize = h.totalsize >= hdrsize && h.totalsize <= INT_MAX;
  let whole = saneSize;
  if (saneSize && n < h.totalsize) {
    c.add(
      allowTruncated ? 'warning' : 'error',
      'FDT_ERR_TRUNCATED',
      `buffer holds ${n} bytes but the header's totalsize is ${h.totalsize} (${h.totalsize - n} bytes cut off)`,
      { offset: n, expected: `${h.totalsize} bytes` },
    );
    whole = allowTruncated;
  } else if (saneSize && n > h.totalsize) {
    const zero = bytes.subarray(h.totalsize).every((b) => b === 0);
    c.add(
      zero ? 'info' : 'warning',
      FDT_FINDING.trailingData,
      `${n - h.totalsize} ${zero ? 'zero bytes' : 'bytes of data'} after totalsize ${h.totalsize}`,
      { offset: h.totalsize },
    );
  }
  if (!layoutOk) return;
  checkAlignment(h, c);
  if (!whole || !versionOk) {
    checkLayout(h, null, null, c);
    return;
  }
  const rsvEnd = walkRsvmap(bytes, h, c);
  let structEnd: number | null = h.version >= 17 ? h.offStruct + h.sizeStruct : null;
  // block-level findings before the walk's per-node ones, which may be many
  checkStringsEnd(bytes, h, c);
  if (structEnd !== null) checkLayout(h, rsvEnd, structEnd, c);
  if (h.version >= 16) {
    const walked = walkStruct(bytes, h, c, maxDepth);
    if (walked.endTag !== null) {
      if (h.version >= 17 && walked.endTag + 4 < structEnd!) {
        c.warn(
          FDT_FINDING.structSlack,
          `${structEnd! - walked.endTag - 4} bytes after FDT_END inside the structure block`,
          { offset: walked.endTag + 4, expected: `size_dt_struct ${walked.endTag + 4 - h.offStruct}` },
        );
      }
      structEnd ??= walked.endTag + 4;
      if (walked.complete && n >= h.totalsize) checkStringsUse(bytes, h, walked.nameoffs, c);
    }
  }
  if (h.version < 17) checkLayout(h, rsvEnd, structEnd, c);
}

function checkVersion(h: Header, c: Collector): boolean {
  let ok = true;
  if (h.version < FDT_FIRST_SUPPORTED_VERSION) {
    c.error('FDT_ERR_BADVERSION', `version ${h.version} is older than any libfdt reads`, {
      offset: HDR.version,
      expected: `version >= ${FDT_FIRST_SUPPORTED_VERSION}`,
    });
    ok = false;
  }
  if (h.lastComp > FDT_LAST_SUPPORTED_VERSION) {
    c.error('FDT_ERR_BADVERSION', `last_comp_version ${h.lastComp} is newer than 17`, {
      offset: HDR.lastCompVersion,
      expected: `last_comp_version <= ${FDT_LAST_SUPPORTED_VERSION}`,
    });
    ok = false;
  }
  if (h.version < h.lastComp) {
    c.error('FDT_ERR_BADVERSION', `version ${h.version} is older than last_comp_version ${h.lastComp}`, {
      offset: HDR.version,
      expected: 'version >= last_comp_version',
    });
    ok = false;
  }
  return ok;
}

/** fdt_check_header's bounds checks, each reported. */
function checkBlocksInside(h: Header, hdrsize: number, c: Collector): boolean {
  if (h.totalsize < hdrsize || h.totalsize > INT_MAX) {
    c.error('FDT_ERR_TRUNCATED', `totalsize ${h.totalsize} cannot hold a version ${h.version} header`, {
      offset: HDR.totalsize,
      expected: `${hdrsize} <= totalsize <= ${INT_MAX}`,
    });
    return false;
  }
  const offOk = (off: number) => off >= hdrsize && off <= h.totalsize;
  let ok = true;
  const block = (name: string, offField: number, sizeField: number | null, off: number, size: number) => {
    if (!offOk(off)) {
      c.error('FDT_ERR_TRUNCATED', `${name} offset ${off} is outside the blob of ${h.totalsize} bytes`, {
        offset: offField,
        expected: `${hdrsize} <= offset <= totalsize ${h.totalsize}`,
      });
      ok = false;
    } else if (sizeField !== null && off + size > h.totalsize) {
      c.error('FDT_ERR_TRUNCATED', `${name} [${off}, +${size}) runs past totalsize ${h.totalsize}`, {
        offset: sizeField,
        expected: `size <= ${h.totalsize - off}`,
      });
      ok = false;
    }
  };
  block('memory reservation block', HDR.offMemRsvmap, null, h.offRsvmap, 0);
  if (h.version < 17) block('structure block', HDR.offDtStruct, null, h.offStruct, 0);
  else block('structure block', HDR.offDtStruct, HDR.sizeDtStruct, h.offStruct, h.sizeStruct);
  block('strings block', HDR.offDtStrings, HDR.sizeDtStrings, h.offStrings, h.sizeStrings);
  return ok;
}

function checkAlignment(h: Header, c: Collector): void {
  if (h.offRsvmap % 8)
    c.warn('FDT_ERR_ALIGNMENT', `memory reservation block at ${h.offRsvmap} is not 8-byte aligned`, {
      offset: HDR.offMemRsvmap,
      expected: 'a multiple of 8',
    });
  if (h.offStruct % 4)
    c.warn('FDT_ERR_ALIGNMENT', `structure block at ${h.offStruct} is not 4-byte aligned`, {
      offset: HDR.offDtStruct,
      expected: 'a multiple of 4',
    });
  if (h.version >= 17 && h.sizeStruct % 4)
    c.warn('FDT_ERR_ALIGNMENT', `size_dt_struct ${h.sizeStruct} is not a multiple of 4`, {
      offset: HDR.sizeDtStruct,
      expected: 'a multiple of 4',
    });
}

/** libfdt's fdt_num_mem_rsv(): entries up to the first with size 0. Returns the block's end or null. */
function walkRsvmap(bytes: Uint8Array, h: Header, c: Collector): number | null {
  for (let off = h.offRsvmap; ; off += 16) {
    if (off + 16 > h.totalsize) {
      c.error('FDT_ERR_TRUNCATED', 'memory reservation block has no terminating entry inside totalsize', {
        offset: off,
        expected: 'an entry with size 0',
      });
      return null;
    }
    if (off + 16 > bytes.length) {
      cutAt(c, off, 'in the memory reservation block');
      return null;
    }
    if (be32(bytes, off + 8) === 0 && be32(bytes, off + 12) === 0) {
      if (be32(bytes, off) !== 0 || be32(bytes, off + 4) !== 0) {
        c.warn(
          FDT_FINDING.rsvmapTerminator,
          'memory reservation list ends at an entry with size 0 but a non-zero address',
          { offset: off, expected: 'an all-zero terminating entry' },
        );
      }
      return off + 16;
    }
  }
}

/** The info that checking stopped for want of bytes (only with allowTruncated). */
function cutAt(c: Collector, at: number, where: string): void {
  c.add('info', FDT_FINDING.cut, `the buffer ends at ${at} ${where}: checked up to there`, { offset: at });
}

interface Walked {
  /** Absolute offset of the FDT_END tag, if reached. */
  endTag: number | null;
  /** Whether the walk reached FDT_END without a structural error. */
  complete: boolean;
  /** Distinct name offsets of properties whose names resolved inside the strings block. */
  nameoffs: number[];
}

/** The structure walk of fdt_check_full, plus dtc's name checks. */
function walkStruct(bytes: Uint8Array, h: Header, c: Collector, maxDepth: number): Walked {
  const base = h.offStruct;
  const v17 = h.version >= 17;
  // fdt_offset_ptr: a relative range [rel, rel + len) must end inside totalsize and, from v17, inside
  // size_dt_struct (which fdt_check_header already put inside totalsize).
  const limit = v17 ? h.sizeStruct : h.totalsize - base;
  // with allowTruncated the buffer may end first: running into its end stops the walk quietly
  const avail = Math.min(limit, Math.max(0, bytes.length - base));
  const structBytes = bytes.subarray(base, base + avail);
  const names = new PropNames(bytes, h);
  const stack: Frame[] = [];
  let pos = 0;
  let rootSeen = false;
  let expectEnd = false;
  let afterRootReported = false;
  let tooDeepReported = false;
  let nops = 0;
  let firstNop = 0;
  const here = () => pathOf(stack);
  const afterRoot = (what: string, at: number) => {
    if (afterRootReported) return;
    afterRootReported = true;
    c.error('FDT_ERR_BADSTRUCTURE', `${what} after the root node`, {
      offset: base + at,
      expected: 'FDT_END right after the root node',
    });
  };
  const stop = (code: KhoErrorCode, what: string, at: number, expected: string): Walked => {
    c.error(code, what, { offset: base + at, path: here, expected });
    return { endTag: null, complete: false, nameoffs: [] };
  };
  /** Whether [rel, rel + len) is cut off by the buffer's end (though inside the block). */
  const cut = (end: number) => end > avail && end <= limit;
  const cutWalk = (at: number): Walked => {
    cutAt(c, base + at, `in the structure block (inside ${pathOf(stack)})`);
    return { endTag: null, complete: false, nameoffs: [] };
  };

  for (;;) {
    if (cut(pos + 4)) return cutWalk(pos);
    if (pos + 4 > limit) {
      return stop('FDT_ERR_TRUNCATED', 'the structure block ends without FDT_END', pos, 'FDT_END');
    }
    const tag = be32(bytes, base + pos);
    switch (tag) {
      case FDT_BEGIN_NODE: {
        const nul = structBytes.indexOf(0, pos + 4);
        if (nul < 0 && avail < limit) return cutWalk(pos);
        if (nul < 0) {
          return stop(
            'FDT_ERR_BADSTRUCTURE',
            'node name runs past the end of the structure block',
            pos + 4,
            'a NUL-terminated name inside the structure block',
          );
        }
        if (expectEnd) afterRoot('another node', pos);
        const name = latin1(structBytes, pos + 4, nul);
        const parent = stack.length ? stack[stack.length - 1]! : null;
        stack.push({ name, firstChild: null, children: null, firstProp: null, props: null });
        if (stack.length === 1 && !rootSeen) {
          rootSeen = true;
          if (name.length !== 0) {
            c.error('FDT_ERR_BADSTRUCTURE', `the root node has the name ${show(name)}`, {
              offset: base + pos + 4,
              path: '/',
              expected: 'an empty root name',
            });
          }
        } else if (parent) {
          const problem = nodeNameProblem(name);
          if (problem)
            c.warn(FDT_FINDING.nodeName, () => `node name ${show(name)}: ${problem}`, {
              offset: base + pos + 4,
              path: here,
            });
          if (seen(parent, 'child', name))
            c.warn(FDT_FINDING.duplicateNode, () => `duplicate node name ${show(name)}`, {
              offset: base + pos,
              path: here,
            });
        }
        if (stack.length > maxDepth && !tooDeepReported) {
          tooDeepReported = true;
          c.warn(FDT_FINDING.tooDeep, `nodes nested deeper than ${maxDepth}; kho's reader refuses this`, {
            offset: base + pos,
            path: here,
          });
        }
        pos = (nul + 4) & ~3;
        break;
      }
      case FDT_END_NODE:
        if (expectEnd) afterRoot('FDT_END_NODE', pos);
        if (stack.length === 0) {
          return stop(
            'FDT_ERR_BADSTRUCTURE',
            'FDT_END_NODE without a matching FDT_BEGIN_NODE',
            pos,
            'FDT_BEGIN_NODE or FDT_END',
          );
        }
        stack.pop();
        if (stack.length === 0) expectEnd = true;
        pos += 4;
        break;
      case FDT_PROP: {
        if (cut(pos + 8)) return cutWalk(pos);
        if (pos + 8 > limit) {
          return stop(
            'FDT_ERR_BADSTRUCTURE',
            'property header runs past the end of the structure block',
            pos,
            'a 12-byte property header inside the structure block',
          );
        }
        const len = be32(bytes, base + pos + 4);
        // libfdt adds 12 + len in 32 bits: a length near 2^32 wraps around to a short step.
        const span = (12 + len) % TWO32;
        if (cut(pos + Math.max(span, 12))) return cutWalk(pos);
        if (pos + span > limit) {
          return stop(
            'FDT_ERR_BADSTRUCTURE',
            `property value of ${len} bytes runs past the end of the structure block`,
            pos + 12,
            `a length <= ${Math.max(0, limit - pos - 12)}`,
          );
        }
        if (expectEnd) afterRoot('a property', pos);
        // libfdt reads nameoff even when a wrapped length puts it past the block.
        const nameoff = base + pos + 12 <= bytes.length ? be32(bytes, base + pos + 8) : 0;
        const frame = stack.length ? stack[stack.length - 1]! : null;
        const name = names.lookup(nameoff, base + pos, c, frame ? here : () => '/');
        if (!frame) {
          c.warn(FDT_FINDING.propOutsideNode, 'a property outside any node; kho’s reader refuses this', {
            offset: base + pos,
          });
        } else if (name !== null) {
          const problem = name.length > MAX_CHECKED_NAME ? 'longer than 256 bytes' : propNameProblem(name);
          if (problem)
            c.warn(FDT_FINDING.propName, () => `property name ${show(name)}: ${problem}`, {
              offset: base + pos + 8,
              path: here,
            });
          if (seen(frame, 'prop', name))
            c.warn(FDT_FINDING.duplicateProp, () => `duplicate property ${show(name)}`, {
              offset: base + pos,
              path: here,
            });
        }
        if (span < 12) {
          c.warn(FDT_FINDING.lengthWraps, `property length 0x${len.toString(16)} wraps 12 + len past 2^32`, {
            offset: base + pos + 4,
            path: frame ? here : undefined,
            expected: `a length <= ${Math.max(0, limit - pos - 12)}`,
          });
          if (span === 0) {
            // libfdt's fdt_check_full never returns here: the next tag is this one again.
            return stop(
              'FDT_ERR_BADSTRUCTURE',
              'property length 0xfffffff4 makes the walk loop on this property',
              pos + 4,
              'a length that fits the structure block',
            );
          }
        }
        pos = (pos + span + 3) & ~3;
        break;
      }
      case FDT_NOP:
        if (expectEnd) afterRoot('FDT_NOP', pos);
        if (nops++ === 0) firstNop = pos;
        pos += 4;
        break;
      case FDT_END:
        if (stack.length !== 0) {
          return stop(
            'FDT_ERR_BADSTRUCTURE',
            `FDT_END inside ${stack.length} open node(s)`,
            pos,
            'FDT_END_NODE',
          );
        }
        if (!rootSeen) {
          c.warn(FDT_FINDING.noRoot, 'the structure block has no root node; kho’s reader refuses this', {
            offset: base + pos,
            expected: 'FDT_BEGIN_NODE with an empty name',
          });
        }
        if (nops) {
          c.warn(FDT_FINDING.nop, `${nops} FDT_NOP tag(s), the first at offset ${base + firstNop}`, {
            offset: base + firstNop,
          });
        }
        return { endTag: base + pos, complete: !afterRootReported, nameoffs: names.resolved() };
      default:
        return stop(
          'FDT_ERR_BADSTRUCTURE',
          `unknown tag 0x${tag.toString(16)}`,
          pos,
          'FDT_BEGIN_NODE (1), FDT_END_NODE (2), FDT_PROP (3), FDT_NOP (4) or FDT_END (9)',
        );
    }
  }
}

function latin1(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');
}

/**
 * fdt_get_string() for property names, cached per name offset. Each byte of the strings region is
 * scanned for its NUL at most once (a next-NUL table built on first use), so hostile offsets into one
 * long unterminated run stay linear.
 */
class PropNames {
  /** A name, null (libfdt's error, reported per use), or false (past a cut-short buffer's end). */
  private readonly cache = new Map<number, string | null | false>();
  private nextNul: Int32Array | null = null;
  private region = '';
  private readonly regionStart: number;
  /** Where names must end (libfdt's bound), and where the bytes present end (no later). */
  private readonly blockEnd: number;
  private readonly regionEnd: number;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly h: Header,
  ) {
    this.regionStart = h.offStrings;
    this.blockEnd = h.version >= 17 ? h.offStrings + h.sizeStrings : h.totalsize;
    this.regionEnd = Math.max(this.regionStart, Math.min(this.blockEnd, bytes.length));
  }

  /** The name, or null after reporting libfdt's error for it. */
  lookup(nameoff: number, propAt: number, c: Collector, path: () => string): string | null {
    let name = this.cache.get(nameoff);
    if (name === undefined) {
      name = this.resolve(nameoff);
      this.cache.set(nameoff, name);
    }
    if (name === null) this.report(nameoff, propAt, c, path);
    return name === false ? null : name;
  }

  resolved(): number[] {
    const out: number[] = [];
    for (const [off, name] of this.cache) if (typeof name === 'string') out.push(off);
    return out;
  }

  private badOffset(nameoff: number): boolean {
    const { h } = this;
    const abs = (nameoff + h.offStrings) % TWO32;
    if (abs >= h.totalsize || nameoff > INT_MAX) return true;
    return h.version >= 17 && nameoff >= h.sizeStrings;
  }

  private resolve(nameoff: number): string | null | false {
    if (this.badOffset(nameoff)) return null;
    const abs = this.h.offStrings + nameoff;
    const nul = abs < this.regionEnd ? this.nulFrom(abs) : -1;
    if (nul < 0) return this.regionEnd < this.blockEnd ? false : null;
    // slices of the region decoded once share its characters
    const from = abs - this.regionStart;
    return this.region.slice(from, from + Math.min(nul - abs, MAX_CHECKED_NAME + 1));
  }

  private nulFrom(abs: number): number {
    if (!this.nextNul) {
      const len = this.regionEnd - this.regionStart;
      const t = new Int32Array(len);
      let next = -1;
      for (let i = len - 1; i >= 0; i--) {
        if (this.bytes[this.regionStart + i] === 0) next = this.regionStart + i;
        t[i] = next;
      }
      this.nextNul = t;
      this.region = latin1(this.bytes, this.regionStart, this.regionEnd);
    }
    return this.nextNul[abs - this.regionStart] ?? -1;
  }

  private report(nameoff: number, propAt: number, c: Collector, path: () => string): void {
    const { h } = this;
    if (this.badOffset(nameoff)) {
      c.error('FDT_ERR_BADOFFSET', () => `property name offset ${nameoff} is outside the strings block`, {
        offset: propAt + 8,
        path,
        expected:
          h.version >= 17
            ? `nameoff < size_dt_strings (${h.sizeStrings})`
            : `nameoff < ${h.totalsize - h.offStrings}`,
      });
    } else {
      c.error('FDT_ERR_TRUNCATED', () => `property name at strings offset ${nameoff} is not NUL-terminated`, {
        offset: h.offStrings + nameoff,
        path,
        expected: 'a NUL inside the strings block',
      });
    }
  }
}

function checkStringsEnd(bytes: Uint8Array, h: Header, c: Collector): void {
  if (h.sizeStrings === 0 || h.offStrings + h.sizeStrings > h.totalsize) return;
  const last = h.offStrings + h.sizeStrings - 1;
  if (last >= bytes.length) return;
  if (bytes[last] !== 0) {
    c.warn(FDT_FINDING.stringsUnterminated, 'the strings block does not end with a NUL', {
      offset: last,
      expected: 'a NUL as the last byte of the strings block',
    });
  }
}

/** Bytes of the strings block no property name uses (names may share a suffix, as libfdt's do). */
function checkStringsUse(bytes: Uint8Array, h: Header, nameoffs: number[], c: Collector): void {
  const size = h.sizeStrings;
  if (size === 0 || h.offStrings + size > h.totalsize) return;
  const starts = nameoffs.filter((o) => o < size).sort((a, b) => a - b);
  let covered = 0;
  let coveredUntil = 0;
  let firstGap = -1;
  for (const s of starts) {
    if (s > coveredUntil && firstGap < 0) firstGap = coveredUntil;
    let i = Math.max(s, coveredUntil);
    const from = i;
    while (i < size && bytes[h.offStrings + i] !== 0) i++;
    const end = Math.min(i + 1, size);
    if (end > from) covered += end - from;
    coveredUntil = Math.max(coveredUntil, end);
  }
  if (coveredUntil < size && firstGap < 0) firstGap = coveredUntil;
  const unused = size - covered;
  if (unused > 0) {
    c.warn(
      FDT_FINDING.unusedStrings,
      `${unused} of ${size} strings-block bytes are not used by any property name`,
      {
        offset: h.offStrings + firstGap,
      },
    );
  }
}

interface Span {
  name: string;
  start: number;
  end: number;
}

/** dtc's canonical order (rsvmap, structure, strings) and overlaps: what libfdt's rw functions refuse. */
function checkLayout(h: Header, rsvEnd: number | null, structEnd: number | null, c: Collector): void {
  if (h.offRsvmap < CANONICAL_RSVMAP_START) {
    c.warn(
      'FDT_ERR_BADLAYOUT',
      `memory reservation block at ${h.offRsvmap} overlaps the 40-byte header area`,
      {
        offset: HDR.offMemRsvmap,
        expected: `off_mem_rsvmap >= ${CANONICAL_RSVMAP_START}`,
      },
    );
  }
  const spans: Span[] = [
    { name: 'memory reservation block', start: h.offRsvmap, end: rsvEnd ?? h.offRsvmap + 16 },
    { name: 'structure block', start: h.offStruct, end: structEnd ?? h.offStruct },
    { name: 'strings block', start: h.offStrings, end: h.offStrings + h.sizeStrings },
  ];
  const fields = [HDR.offMemRsvmap, HDR.offDtStruct, HDR.offDtStrings];
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const a = spans[i]!;
      const b = spans[j]!;
      const overlap = a.start < b.end && b.start < a.end && a.end > a.start && b.end > b.start;
      if (overlap) {
        c.warn(
          'FDT_ERR_BADLAYOUT',
          `the ${a.name} [${a.start}, ${a.end}) and the ${b.name} [${b.start}, ${b.end}) overlap`,
          {
            offset: fields[j]!,
            expected: 'disjoint blocks',
          },
        );
      } else if (j === i + 1 && b.start < a.end) {
        c.warn(
          'FDT_ERR_BADLAYOUT',
          `the ${b.name} at ${b.start} comes before the end of the ${a.name} (${a.end})`,
          {
            offset: fields[j]!,
            expected: 'memory reservation, structure and strings blocks in that order',
          },
        );
      }
    }
  }
}
