/**
 * The FDT reader: decodes a flattened devicetree blob (versions 16 and 17) into a tree whose nodes
 * and properties keep their blob order and their libfdt offsets.
 *
 * Contract:
 * - Checks what libfdt checks for a full walk (`fdt_check_header`, then every tag as `fdt_check_full`
 *   does) and throws the first problem as a `KhoError` named as libfdt names it (FDT_ERR_BADMAGIC,
 *   FDT_ERR_BADVERSION, FDT_ERR_TRUNCATED, FDT_ERR_BADSTRUCTURE, FDT_ERR_BADOFFSET), with the absolute
 *   byte offset in the blob and the path of the node being read. `src/fdt/validate.ts` reports all
 *   findings instead of the first.
 * - Offsets are libfdt's: a node's or property's offset is its tag's offset from `off_dt_struct`,
 *   the numbers `fdt_path_offset()` and `fdt_first_property_offset()` return.
 * - Never reads outside the input, never recurses, allocates O(input size); nesting is capped at
 *   `maxDepth` (default 4096; real trees are < 20 deep) so recursive consumers stay safe.
 * - Values are views into the input (no copy): copy them before mutating the input.
 * - With `allowTruncated`, a buffer shorter than the header's `totalsize` (such as Linux 7.3's
 *   debugfs `kho/out/fdt`, whose length is fixed when the file is created) is decoded as far as its
 *   bytes go; `blob.truncation` says what was cut. Otherwise it is FDT_ERR_TRUNCATED.
 */
import { KhoError } from '../errors.ts';
import { be32, checkHeader, type FdtHeader, HDR, headerSizeForVersion, readHeader } from './header.ts';
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_NOP,
  FDT_PROP,
  type FdtNode,
  type FdtProperty,
  type FdtReserveEntry,
  type FdtTree,
} from './model.ts';

export interface FdtPropView extends FdtProperty {
  /** libfdt offset of the FDT_PROP tag (relative to off_dt_struct). */
  offset: number;
  /** Offset of the name in the strings block. */
  nameoff: number;
  /** Set when the name lies beyond the end of a cut-short buffer. */
  nameUnavailable?: true;
}

export interface FdtNodeView extends FdtNode {
  /** libfdt offset of the FDT_BEGIN_NODE tag (relative to off_dt_struct). */
  offset: number;
  depth: number;
  parent: FdtNodeView | null;
  props: FdtPropView[];
  children: FdtNodeView[];
}

export interface FdtTruncation {
  /** Bytes the buffer holds. */
  have: number;
  /** Bytes the header says the blob has. */
  totalsize: number;
  /** Absolute offset where decoding stopped for want of bytes. */
  stoppedAt: number;
  /** Whether the structure block was read to its FDT_END tag. */
  structComplete: boolean;
}

export interface ParseOptions {
  /** Decode as much as possible of a buffer shorter than totalsize instead of failing. */
  allowTruncated?: boolean;
  /** Deepest nesting accepted (root is depth 1). Default 4096. */
  maxDepth?: number;
}

export class FdtBlob implements FdtTree {
  readonly bytes: Uint8Array;
  readonly header: FdtHeader;
  readonly reserves: FdtReserveEntry[];
  readonly root: FdtNodeView;
  readonly truncation: FdtTruncation | null;
  private offsetIndex: Map<number, FdtNodeView | FdtPropView> | null = null;

  constructor(
    bytes: Uint8Array,
    header: FdtHeader,
    reserves: FdtReserveEntry[],
    root: FdtNodeView,
    truncation: FdtTruncation | null,
  ) {
    this.bytes = bytes;
    this.header = header;
    this.reserves = reserves;
    this.root = root;
    this.truncation = truncation;
  }

  get bootCpuidPhys(): number {
    return this.header.bootCpuidPhys;
  }

  /** Every node in blob (depth-first, pre-)order. */
  *nodes(): Generator<FdtNodeView> {
    const stack: FdtNodeView[] = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      yield n;
      for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
    }
  }

  /** The node or property whose tag is at this libfdt offset, else undefined. */
  at(offset: number): FdtNodeView | FdtPropView | undefined {
    if (!this.offsetIndex) {
      const idx = new Map<number, FdtNodeView | FdtPropView>();
      for (const n of this.nodes()) {
        idx.set(n.offset, n);
        for (const p of n.props) idx.set(p.offset, p);
      }
      this.offsetIndex = idx;
    }
    return this.offsetIndex.get(offset);
  }

  /** The node at a libfdt node offset; FDT_ERR_BADOFFSET if no node starts there. */
  nodeAt(offset: number): FdtNodeView {
    const n = this.at(offset);
    if (!n || !('children' in n)) {
      throw new KhoError('FDT_ERR_BADOFFSET', `no node starts at structure offset ${offset}`, {
        offset: this.header.offDtStruct + offset,
      });
    }
    return n;
  }

  /** Look a node up as fdt_path_offset() does (alias first component, unit address optional). */
  nodeByPath(path: string): FdtNodeView | undefined {
    return lookupPath(this.root, path);
  }

  /** Like nodeByPath, but FDT_ERR_NOTFOUND / FDT_ERR_BADPATH as a KhoError. */
  getNode(path: string): FdtNodeView {
    if (path.length === 0)
      throw new KhoError('FDT_ERR_BADPATH', 'empty path', { expected: 'a path like /soc' });
    const n = this.nodeByPath(path);
    if (!n) throw new KhoError('FDT_ERR_NOTFOUND', `no node ${path}`, { path });
    return n;
  }

  /** A plain tree (copies of names and values) detached from the input buffer. */
  toTree(): FdtTree {
    return {
      reserves: this.reserves.map((r) => ({ ...r })),
      root: cloneNode(this.root),
      bootCpuidPhys: this.bootCpuidPhys,
    };
  }
}

function cloneNode(n: FdtNode): FdtNode {
  const out: FdtNode = {
    name: n.name,
    props: n.props.map((p) => ({ name: p.name, value: p.value.slice() })),
    children: [],
  };
  const stack: [FdtNode, FdtNode][] = [[n, out]];
  while (stack.length) {
    const [src, dst] = stack.pop()!;
    for (const c of src.children) {
      const cc: FdtNode = {
        name: c.name,
        props: c.props.map((p) => ({ name: p.name, value: p.value.slice() })),
        children: [],
      };
      dst.children.push(cc);
      stack.push([c, cc]);
    }
  }
  return out;
}

/** The path of a node: `/`, `/soc`, `/soc/serial@1000`. */
export function nodePath(n: FdtNodeView): string {
  if (!n.parent) return '/';
  const parts: string[] = [];
  for (let p: FdtNodeView | null = n; p?.parent; p = p.parent) parts.push(p.name);
  return `/${parts.reverse().join('/')}`;
}

function nameMatches(nodeName: string, want: string): boolean {
  if (nodeName === want) return true;
  // libfdt: a component without '@' matches a node name up to its '@'.
  return !want.includes('@') && nodeName.startsWith(want) && nodeName.charCodeAt(want.length) === 0x40;
}

/** fdt_path_offset semantics over a decoded tree. */
export function lookupPath(root: FdtNodeView, path: string): FdtNodeView | undefined {
  let node: FdtNodeView | undefined = root;
  let rest = path;
  if (!path.startsWith('/')) {
    const slash = path.indexOf('/');
    const alias = slash < 0 ? path : path.slice(0, slash);
    const aliases = root.children.find((c) => c.name === 'aliases');
    const prop = aliases?.props.find((p) => p.name === alias);
    if (!prop || prop.value.length === 0 || prop.value[prop.value.length - 1] !== 0) return undefined;
    const target = Buffer.from(prop.value.subarray(0, prop.value.length - 1)).toString('latin1');
    if (!target.startsWith('/')) return undefined;
    node = lookupPath(root, target);
    rest = slash < 0 ? '' : path.slice(slash);
  }
  for (const comp of rest.split('/')) {
    if (!node) return undefined;
    if (comp === '') continue;
    node = node.children.find((c) => nameMatches(c.name, comp));
  }
  return node;
}

/** Decode a blob. Throws a KhoError (libfdt's names) on the first problem. */
export function parseFdt(input: Uint8Array, opts: ParseOptions = {}): FdtBlob {
  const maxDepth = opts.maxDepth ?? 4096;
  const header = readHeader(input);
  if (input.length < headerSizeForVersion(header.version)) {
    // fdt_check_full: a buffer shorter than its own version's header is cut short, whatever it says.
    throw new KhoError(
      'FDT_ERR_TRUNCATED',
      `blob is ${input.length} bytes, shorter than a version ${header.version} header`,
      {
        offset: input.length,
        expected: `at least ${headerSizeForVersion(header.version)} bytes`,
      },
    );
  }
  checkHeader(header);
  if (header.version < 16) {
    throw new KhoError(
      'FDT_ERR_BADVERSION',
      `version ${header.version} blobs are not supported by kho's reader`,
      {
        offset: HDR.version,
        expected: 'version 16 or 17',
      },
    );
  }
  let truncation: FdtTruncation | null = null;
  let limit = header.totalsize;
  if (input.length < header.totalsize) {
    if (!opts.allowTruncated) {
      throw new KhoError(
        'FDT_ERR_TRUNCATED',
        `buffer holds ${input.length} bytes but the header's totalsize is ${header.totalsize} (${header.totalsize - input.length} bytes cut off)`,
        { offset: input.length, expected: `${header.totalsize} bytes` },
      );
    }
    limit = input.length;
    truncation = {
      have: input.length,
      totalsize: header.totalsize,
      stoppedAt: input.length,
      structComplete: false,
    };
  }
  // A plain Uint8Array view (not a Buffer, even when the input is one): property values are
  // subarrays of it, and plain views are markedly cheaper to create than Buffer views.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, limit);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);

  // Memory reservation block.
  const reserves: FdtReserveEntry[] = [];
  for (let off = header.offMemRsvmap; ; off += 16) {
    if (off + 16 > header.totalsize) {
      throw new KhoError('FDT_ERR_TRUNCATED', 'memory reservation block runs past the end of the blob', {
        offset: off,
        expected: 'a terminating all-zero entry inside totalsize',
      });
    }
    if (off + 16 > limit) {
      truncation!.stoppedAt = off;
      break;
    }
    const address = buf.readBigUInt64BE(off);
    const size = buf.readBigUInt64BE(off + 8);
    // libfdt's fdt_num_mem_rsv() (and the kernel) end the list at the first entry of size 0.
    if (size === 0n) break;
    reserves.push({ address, size });
  }

  // Structure block.
  const structBase = header.offDtStruct;
  const structLimit = header.version >= 17 ? structBase + header.sizeDtStruct : header.totalsize;
  const end = Math.min(structLimit, limit);
  const strBase = header.offDtStrings;
  // fdt_get_string bounds a name by size_dt_strings from version 17 on, by totalsize before.
  const strEnd = header.version >= 17 ? strBase + header.sizeDtStrings : header.totalsize;
  const names = new Map<number, string>();
  const cut = () => truncation !== null && end < structLimit;

  // Name lookups by hostile offsets (every suffix of one long string) must stay linear: the strings
  // region is decoded once and each position's next NUL is found through a table built on first use.
  let strRegion: string | null = null;
  let nextNul: Int32Array | null = null;
  const nulFrom = (abs: number, scanEnd: number): number => {
    if (!nextNul || !strRegion) {
      const len = Math.max(0, scanEnd - strBase);
      strRegion = buf.toString('latin1', strBase, strBase + len);
      nextNul = new Int32Array(len);
      let next = scanEnd;
      for (let k = len - 1; k >= 0; k--) {
        if (bytes[strBase + k] === 0) next = strBase + k;
        nextNul[k] = next;
      }
    }
    return nextNul[abs - strBase] ?? scanEnd;
  };
  const getName = (nameoff: number, at: number, path: () => string): { name: string; unavailable?: true } => {
    const cached = names.get(nameoff);
    if (cached !== undefined) return { name: cached };
    const abs = strBase + nameoff;
    if (
      (nameoff >= header.sizeDtStrings && header.version >= 17) ||
      nameoff > 0x7fffffff ||
      abs >= header.totalsize
    ) {
      throw new KhoError(
        'FDT_ERR_BADOFFSET',
        `property name offset ${nameoff} is outside the strings block`,
        {
          offset: at + 8,
          path: path(),
          expected: `nameoff < ${header.version >= 17 ? `size_dt_strings (${header.sizeDtStrings})` : header.totalsize - strBase}`,
        },
      );
    }
    const stop = Math.min(strEnd, header.totalsize);
    const scanEnd = Math.min(stop, limit);
    const i = abs < scanEnd ? nulFrom(abs, scanEnd) : scanEnd;
    if (i >= scanEnd) {
      if (scanEnd < stop) return { name: `<strings+0x${nameoff.toString(16)}>`, unavailable: true };
      throw new KhoError(
        'FDT_ERR_TRUNCATED',
        `property name at strings offset ${nameoff} is not NUL-terminated`,
        {
          offset: abs,
          path: path(),
          expected: 'a NUL inside the strings block',
        },
      );
    }
    // a slice of the decoded strings region: V8 shares its characters instead of copying them
    const name = strRegion!.slice(abs - strBase, i - strBase);
    names.set(nameoff, name);
    return { name };
  };

  let root: FdtNodeView | null = null;
  let cur: FdtNodeView | null = null;
  let depth = 0;
  let pos = structBase;
  let finished = false;
  const here = () => (cur ? nodePath(cur) : '/');
  // fdt_next_tag: a tag that does not fit is FDT_ERR_TRUNCATED, a name or value that does not fit
  // after its tag FDT_ERR_BADSTRUCTURE.
  const premature = (
    what: string,
    at: number,
    code: 'FDT_ERR_TRUNCATED' | 'FDT_ERR_BADSTRUCTURE' = 'FDT_ERR_BADSTRUCTURE',
  ): never => {
    throw new KhoError(code, `${what} runs past the end of the structure block`, {
      offset: at,
      path: here(),
      expected: `structure block ending at ${structLimit}`,
    });
  };

  outer: while (true) {
    if (pos + 4 > end) {
      if (cut()) break;
      premature('tag', pos, 'FDT_ERR_TRUNCATED');
    }
    const tag = be32(bytes, pos);
    switch (tag) {
      case FDT_BEGIN_NODE: {
        let i = pos + 4;
        while (i < end && bytes[i] !== 0) i++;
        if (i >= end) {
          if (cut()) break outer;
          premature('node name', pos + 4);
        }
        const name = buf.toString('latin1', pos + 4, i);
        if (depth === 0 && root) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', 'a second top-level node after the root', {
            offset: pos,
            expected: 'FDT_END after the root node',
          });
        }
        if (depth === 0 && name.length !== 0) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', `the root node has the name '${name}'`, {
            offset: pos + 4,
            path: '/',
            expected: 'an empty root name',
          });
        }
        depth++;
        if (depth > maxDepth) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', `nodes nested deeper than ${maxDepth}`, {
            offset: pos,
            path: here(),
            expected: `depth <= ${maxDepth}`,
          });
        }
        const node: FdtNodeView = {
          name,
          props: [],
          children: [],
          offset: pos - structBase,
          depth,
          parent: cur,
        };
        if (cur) cur.children.push(node);
        else root = node;
        cur = node;
        // libfdt aligns offsets relative to off_dt_struct (which need not be 4-aligned itself).
        pos = structBase + ((i + 1 - structBase + 3) & ~3);
        break;
      }
      case FDT_END_NODE:
        if (depth === 0 || !cur) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', 'FDT_END_NODE without a matching FDT_BEGIN_NODE', {
            offset: pos,
            expected: 'FDT_BEGIN_NODE or FDT_END',
          });
        }
        depth--;
        cur = cur.parent;
        pos += 4;
        break;
      case FDT_PROP: {
        if (pos + 12 > end) {
          if (cut()) break outer;
          premature('property header', pos);
        }
        const len = be32(bytes, pos + 4);
        const nameoff = be32(bytes, pos + 8);
        const vstart = pos + 12;
        // libfdt steps 12 + len in 32 bits, so a length >= 0xfffffff4 wraps to a short step it accepts
        // (or loops on): kho refuses it, after the name check libfdt makes first.
        const wraps = 12 + len >= 0x1_0000_0000;
        if (vstart + len > end && !wraps) {
          if (cut()) break outer;
          premature(`property value of ${len} bytes`, vstart);
        }
        if (!cur) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', 'a property outside any node', {
            offset: pos,
            expected: 'FDT_BEGIN_NODE',
          });
        }
        const node = cur;
        const n = getName(nameoff, pos, () => nodePath(node));
        if (wraps) {
          throw new KhoError(
            'FDT_ERR_BADSTRUCTURE',
            `property length 0x${len.toString(16)} wraps around 2^32`,
            {
              offset: pos + 4,
              path: nodePath(node),
              expected: `a length <= ${Math.max(0, end - vstart)}`,
            },
          );
        }
        const prop: FdtPropView = {
          name: n.name,
          value: bytes.subarray(vstart, vstart + len),
          offset: pos - structBase,
          nameoff,
        };
        if (n.unavailable) prop.nameUnavailable = true;
        cur.props.push(prop);
        pos = structBase + ((vstart + len - structBase + 3) & ~3);
        break;
      }
      case FDT_NOP:
        if (root && depth === 0) {
          // fdt_check_full: only FDT_END may follow the root node.
          throw new KhoError('FDT_ERR_BADSTRUCTURE', 'FDT_NOP after the root node', {
            offset: pos,
            expected: 'FDT_END after the root node',
          });
        }
        pos += 4;
        break;
      case FDT_END:
        if (depth !== 0) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', `FDT_END inside an open node (${depth} left open)`, {
            offset: pos,
            path: here(),
            expected: 'FDT_END_NODE',
          });
        }
        if (!root) {
          throw new KhoError('FDT_ERR_BADSTRUCTURE', 'the structure block has no root node', {
            offset: pos,
            expected: 'FDT_BEGIN_NODE',
          });
        }
        finished = true;
        break outer;
      default:
        throw new KhoError('FDT_ERR_BADSTRUCTURE', `unknown tag 0x${tag.toString(16)}`, {
          offset: pos,
          path: here(),
          expected: 'FDT_BEGIN_NODE (1), FDT_END_NODE (2), FDT_PROP (3), FDT_NOP (4) or FDT_END (9)',
        });
    }
  }
  if (truncation) {
    truncation.structComplete = finished;
    if (!finished) truncation.stoppedAt = pos;
  }
  if (!root) {
    if (truncation) root = { name: '', props: [], children: [], offset: 0, depth: 1, parent: null };
    else throw new KhoError('FDT_ERR_BADSTRUCTURE', 'no root node', { offset: structBase });
  }
  return new FdtBlob(bytes, header, reserves, root, truncation);
}
