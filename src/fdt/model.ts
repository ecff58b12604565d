/**
 * The in-memory devicetree model shared by every reader and writer.
 *
 * Names (node names, property names) are *binary strings*: one JavaScript character per byte
 * (latin1), exactly the bytes the blob holds before its NUL. This keeps hostile or non-UTF-8 names
 * byte-exact through decode → encode; use `Buffer.from(name, 'latin1')` to get the bytes back.
 * Values are raw bytes; the value helpers in `values.ts` interpret them.
 */

export interface FdtProperty {
  name: string;
  value: Uint8Array;
}

export interface FdtNode {
  /** Node name including any unit address (`serial@1000`); the root's name is `""`. */
  name: string;
  /** Properties in blob order. */
  props: FdtProperty[];
  /** Sub-nodes in blob order. */
  children: FdtNode[];
}

export interface FdtReserveEntry {
  address: bigint;
  size: bigint;
}

export interface FdtTree {
  /** Memory-reservation entries, without the terminating all-zero entry. */
  reserves: FdtReserveEntry[];
  root: FdtNode;
  /** Header field `boot_cpuid_phys`. */
  bootCpuidPhys: number;
}

export function emptyNode(name = ''): FdtNode {
  return { name, props: [], children: [] };
}

export function emptyTree(): FdtTree {
  return { reserves: [], root: emptyNode(''), bootCpuidPhys: 0 };
}

/**
 * Visit the tree in blob order: `enter(node)` before its children, `leave(node)` after them (where a
 * writer puts FDT_BEGIN_NODE and FDT_END_NODE). Iterative: no recursion on a hostile tree's depth.
 */
export function walkTree(
  root: FdtNode,
  enter: (node: FdtNode) => void,
  leave: (node: FdtNode) => void,
): void {
  const stack: { node: FdtNode; next: number }[] = [];
  enter(root);
  stack.push({ node: root, next: 0 });
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const child = top.node.children[top.next];
    if (child) {
      top.next++;
      enter(child);
      stack.push({ node: child, next: 0 });
    } else {
      leave(top.node);
      stack.pop();
    }
  }
}

export const FDT_MAGIC = 0xd00dfeed;
export const FDT_BEGIN_NODE = 1;
export const FDT_END_NODE = 2;
export const FDT_PROP = 3;
export const FDT_NOP = 4;
export const FDT_END = 9;
export const FDT_HEADER_SIZE = 40;
export const FDT_V1_HEADER_SIZE = 28;
export const FDT_LAST_SUPPORTED_VERSION = 17;
export const FDT_FIRST_SUPPORTED_VERSION = 2;
