/**
 * dtc's `name_properties` rule, shared by the dtc-mode writer (write-dtc.ts) and the DTS printer
 * (dts.ts), which both imitate what dtc 1.6.1 does to a tree before writing it.
 *
 * Contract:
 * - `dtcRunsNameCheck(root)`: whether every error-level check dtc runs before `name_properties` passes
 *   (dtc stops running checks after the first that fails): no duplicate sibling node names, no duplicate
 *   property names within a node, node names of `[A-Za-z0-9,._+@-]` with at most one `@`, property names
 *   of `[A-Za-z0-9,._+*#?-]`, and each node's first `name` property exactly one NUL-terminated string.
 * - `redundantNameProp(node)`: the index of the property `name_properties` deletes from `node` (its
 *   first `name` property, when that equals the node's name up to the first `@` plus a NUL), or -1.
 *   Meaningful only for trees where `dtcRunsNameCheck` holds.
 * - Iterative: no recursion on a hostile tree's depth.
 */
import type { FdtNode } from './model.ts';

/** Characters dtc's node_name_chars and property_name_chars checks accept. */
const NODE_NAME_OK = /^[A-Za-z0-9,._+@-]*$/;
const PROP_NAME_OK = /^[A-Za-z0-9,._+*#?-]*$/;

/** dtc's data_is_one_string(): non-empty, NUL-terminated, no NUL before the end. */
function isOneString(v: Uint8Array): boolean {
  if (v.length === 0 || v[v.length - 1] !== 0) return false;
  return v.indexOf(0) === v.length - 1;
}

function hasDuplicate(names: readonly string[]): boolean {
  return new Set(names).size !== names.length;
}

function firstNamePropIndex(node: FdtNode): number {
  return node.props.findIndex((p) => p.name === 'name');
}

/**
 * True when dtc's error checks before `name_properties` all pass, so that dtc gets to run it:
 * duplicate_node_names, duplicate_property_names, node_name_chars, node_name_format,
 * property_name_chars and name_is_string.
 */
export function dtcRunsNameCheck(root: FdtNode): boolean {
  const stack: FdtNode[] = [root];
  while (stack.length) {
    const node = stack.pop()!;
    if (!NODE_NAME_OK.test(node.name)) return false;
    if (node.name.indexOf('@') !== node.name.lastIndexOf('@')) return false;
    if (hasDuplicate(node.children.map((c) => c.name))) return false;
    if (hasDuplicate(node.props.map((p) => p.name))) return false;
    for (const p of node.props) if (!PROP_NAME_OK.test(p.name)) return false;
    const i = firstNamePropIndex(node);
    if (i >= 0 && !isOneString(node.props[i]!.value)) return false;
    for (const c of node.children) stack.push(c);
  }
  return true;
}

/** The index of the `name` property dtc's `name_properties` deletes from `node`, or -1. */
export function redundantNameProp(node: FdtNode): number {
  const i = firstNamePropIndex(node);
  if (i < 0) return -1;
  const v = node.props[i]!.value;
  const at = node.name.indexOf('@');
  const base = at >= 0 ? node.name.slice(0, at) : node.name;
  if (v.length !== base.length + 1) return -1;
  for (let k = 0; k < base.length; k++) if (v[k] !== base.charCodeAt(k)) return -1;
  return i;
}
