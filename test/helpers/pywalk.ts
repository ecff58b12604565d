/**
 * A pylibfdt walk of blobs, the oracle for what a reader must see: for each blob, every node in
 * libfdt order with its offset, name and properties (offset, name, value hex), plus the memory
 * reservation entries and the result of libfdt's header check. `ourWalk` is kho's reader's view of a
 * parsed blob in the same shape, for comparing the two.
 */
import type { FdtBlob } from '../../src/fdt/reader.ts';
import { runPython } from './oracle.ts';

export interface PyProp {
  offset: number;
  name: string;
  value: string;
}
export interface PyNode {
  offset: number;
  depth: number;
  name: string;
  props: PyProp[];
}
export interface PyWalk {
  error: string | null;
  nodes: PyNode[];
  reserves: [string, string][];
}

const PROGRAM = `
import sys, json, struct, libfdt
out = []
for h in json.load(sys.stdin):
    b = bytes.fromhex(h)
    try:
        f = libfdt.Fdt(b)
    except libfdt.FdtException as e:
        out.append({"error": libfdt.fdt_strerror(e.err), "nodes": [], "reserves": []}); continue
    nodes = []
    def walk(off, depth):
        props = []
        p = f.first_property_offset(off, (libfdt.NOTFOUND,))
        while p >= 0:
            pr = f.get_property_by_offset(p)
            props.append({"offset": p, "name": pr.name, "value": bytes(pr).hex()})
            p = f.next_property_offset(p, (libfdt.NOTFOUND,))
        nodes.append({"offset": off, "depth": depth, "name": f.get_name(off), "props": props})
        c = f.first_subnode(off, (libfdt.NOTFOUND,))
        while c >= 0:
            walk(c, depth + 1)
            c = f.next_subnode(c, (libfdt.NOTFOUND,))
    walk(0, 1)
    res = []
    for i in range(f.num_mem_rsv()):
        # the 1.6.1 binding drops a zero address from get_mem_rsv's result; read the entry at libfdt's offset
        a, s = struct.unpack_from('>QQ', b, f.off_mem_rsvmap() + 16 * i)
        res.append([hex(a), hex(s)])
    out.append({"error": None, "nodes": nodes, "reserves": res})
json.dump(out, sys.stdout)
`;

export function pyWalk(blobs: Uint8Array[]): PyWalk[] {
  const out = runPython(
    PROGRAM,
    blobs.map((b) => Buffer.from(b).toString('hex')),
  );
  return JSON.parse(out.toString('utf8')) as PyWalk[];
}

/** kho's reader's walk of a parsed blob, in `pyWalk`'s shape. */
export function ourWalk(b: FdtBlob): PyWalk {
  const nodes = [...b.nodes()].map((n) => ({
    offset: n.offset,
    depth: n.depth,
    name: n.name,
    props: n.props.map((p) => ({
      offset: p.offset,
      name: p.name,
      value: Buffer.from(p.value).toString('hex'),
    })),
  }));
  return {
    error: null,
    nodes,
    reserves: b.reserves.map((r) => [`0x${r.address.toString(16)}`, `0x${r.size.toString(16)}`]),
  };
}
