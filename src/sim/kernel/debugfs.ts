/**
 * The simulated kernel's files: debugfs `kho/` (spec §7, as Linux 7.3 shows it), `/proc/cmdline`,
 * `/proc/iomem`, `uname -r` and `dmesg`, all computed from kernel state when read.
 *
 * Contract:
 * - `debugfsKhoTree(kernel)` is the `/sys/kernel/debug` tree as a map of paths (relative, e.g.
 *   `kho/out/scratch_len`) to readers, plus its directories; `{}` when the kernel has no `kho/`
 *   (KHO off, `kho=off`, CONFIG_KEXEC_HANDOVER_DEBUGFS unset). It is recomputed on each call, so
 *   sub-trees added later appear.
 *   - `out/scratch_len`, `out/scratch_phys`: `0x%llx\n` per scratch area (lowmem, global, nodes);
 *     the file names follow the profile's scratch name (`bootmem_*` for kho-v4-bootmem).
 *   - `out/fdt`: cold boot only; its length was fixed when `kho_init` created it (the 7.3 quirk: sub-trees
 *     added afterwards are cut off); content read live from the root FDT page.
 *   - `out/sub_fdts/<name>`: each outgoing sub-blob, `blob-size` bytes read live.
 *   - `out/finalize` (kho-v1 profiles, mode 0600): reads `0\n`/`1\n`; writing a non-zero number runs
 *     `kho_finalize` (6.18-7.0 may repeat it, writing 0 is -EINVAL; 6.16: writing the current state is
 *     -EEXIST when finalized, -ENOENT when not, and abort (0 when finalized) is not modelled: -EOPNOTSUPP).
 *   - `in/fdt` (the incoming root, `totalsize` bytes) and `in/sub_fdts/<name>` (KHO boot): read live
 *     from memory, so a consumer that freed its page shows whatever reused it (as the LUO vector does).
 * - `debugfsVfsDir(kernel)` wraps the same tree as a VFS directory (for `Vfs.mount('/sys/kernel/debug')`).
 * - `procIomem(kernel)` formats `/proc/iomem` as the vectors (`%08llx-%08llx : name`, children indented
 *   two spaces): the kernel's e820 map with the kernel image's code/rodata/data/bss under its RAM line.
 */
import type { DirNode, FileNode, VNode, VStat } from '../shell/vfs.ts';
import { DynFile } from '../shell/vfs.ts';
import type { Kernel } from './kernel.ts';
import { KERNEL_IMAGE_LAYOUT } from './kernel.ts';
import { kernelError } from './kho.ts';
import { formatScratchDebugfs } from './scratch.ts';

export interface KernelFileTree {
  /** Directories, relative paths (`kho`, `kho/out`, ...), parents first. */
  dirs: string[];
  /** Files: relative path → content at read time. */
  files: Map<string, () => Uint8Array>;
  /** Writable files: relative path → write handler (throws the kernel's errors as KhoError). */
  writers: Map<string, (data: Uint8Array) => void>;
}

const text = (s: string) => () => new TextEncoder().encode(s);

/** The `/sys/kernel/debug` tree of `k` (see the module contract). */
export function debugfsKhoTree(k: Kernel): KernelFileTree {
  const dirs: string[] = [];
  const files = new Map<string, () => Uint8Array>();
  const writers = new Map<string, (data: Uint8Array) => void>();
  if (!k.debugfsKho || !k.kho.enabled) return { dirs, files, writers };
  const mem = k.machine.memory;
  const read = (pa: bigint, len: number) => () => mem.read(pa, len);
  dirs.push('kho', 'kho/out', 'kho/out/sub_fdts');
  if (k.outFdtLen !== null) {
    const fdt = k.kho.rootFdtPhys;
    files.set('kho/out/fdt', read(fdt, k.outFdtLen));
  }
  const name = k.profile.scratchName;
  files.set(`kho/out/${name}_len`, () =>
    new TextEncoder().encode(formatScratchDebugfs(k.scratch).scratchLen),
  );
  files.set(`kho/out/${name}_phys`, () =>
    new TextEncoder().encode(formatScratchDebugfs(k.scratch).scratchPhys),
  );
  for (const s of k.kho.outSubtrees())
    if (k.profile.hasBlobSize || k.kho.rootBuilt)
      files.set(`kho/out/sub_fdts/${s.name}`, read(s.phys, Number(s.size)));
  if (k.profile.needsFinalize) {
    files.set('kho/out/finalize', text(`${k.kho.finalized ? 1 : 0}\n`));
    writers.set('kho/out/finalize', (data) => finalizeWrite(k, data));
  }
  const inc = k.kho.incoming;
  if (inc) {
    dirs.push('kho/in', 'kho/in/sub_fdts');
    const total = new DataView(mem.read(inc.fdtPhys + 4n, 4).buffer).getUint32(0, false);
    files.set('kho/in/fdt', read(inc.fdtPhys, Math.min(total, k.machine.spec.pageSize)));
    for (const s of k.inSubFdts)
      files.set(`kho/in/sub_fdts/${s.name}`, read(s.phys, Math.min(Number(s.size), 1 << 24)));
  }
  return { dirs, files, writers };
}

function finalizeWrite(k: Kernel, data: Uint8Array): void {
  const t = new TextDecoder().decode(data).trim();
  if (!/^\d{1,20}$/.test(t)) throw kernelError('EINVAL', `finalize: '${t}' is not a number`);
  const v = BigInt(t);
  const sixteen = k.profile.rootBuild === 'finalize-sw';
  if (sixteen) {
    if ((v !== 0n) === k.kho.finalized)
      throw kernelError(k.kho.finalized ? 'EEXIST' : 'ENOENT', 'finalize: already in that state');
    if (v === 0n) throw kernelError('EOPNOTSUPP', 'finalize: abort is not modelled');
  } else if (v === 0n) throw kernelError('EINVAL', 'finalize: 0');
  k.kho.finalize();
}

/** Every path of a tree, sorted (`kho`, `kho/in`, `kho/in/fdt`, ...), for comparing file sets. */
export function treePaths(t: KernelFileTree): string[] {
  return [...t.dirs, ...t.files.keys()].sort();
}

/** A read-only VFS directory over a tree that is recomputed on each lookup. */
class TreeDir implements DirNode {
  readonly type = 'dir' as const;
  readonly userWritable = false;
  private readonly ino = 1_000_000 + Math.floor(Math.random() * 1_000_000);
  constructor(
    private readonly tree: () => KernelFileTree,
    private readonly prefix: string,
  ) {}
  private children(): Map<string, 'dir' | (() => Uint8Array)> {
    const t = this.tree();
    const out = new Map<string, 'dir' | (() => Uint8Array)>();
    const pre = this.prefix ? `${this.prefix}/` : '';
    for (const d of t.dirs)
      if (d.startsWith(pre) && !d.slice(pre.length).includes('/') && d.length > pre.length)
        out.set(d.slice(pre.length), 'dir');
    for (const [p, f] of t.files)
      if (p.startsWith(pre) && !p.slice(pre.length).includes('/')) out.set(p.slice(pre.length), f);
    return out;
  }
  list(): string[] {
    return [...this.children().keys()];
  }
  lookup(name: string): VNode | undefined {
    const c = this.children().get(name);
    if (c === undefined) return undefined;
    if (c === 'dir') return new TreeDir(this.tree, this.prefix ? `${this.prefix}/${name}` : name);
    const path = this.prefix ? `${this.prefix}/${name}` : name;
    const w = this.tree().writers.get(path);
    const f: FileNode = w
      ? new DynFile({ read: c, perm: 0o600, write: (data) => w(data) })
      : new DynFile({ read: c, perm: 0o400 });
    return f;
  }
  stat(): VStat {
    return { type: 'dir', perm: 0o700, size: 0, nlink: 2, mtime: new Date(0), blocks: 0, ino: this.ino };
  }
}

/** `/sys/kernel/debug` of a kernel as a VFS directory. */
export function debugfsVfsDir(k: Kernel): DirNode {
  return new TreeDir(() => debugfsKhoTree(k), '');
}

/** `/proc/cmdline`: the command line and a newline. */
export function procCmdline(k: Kernel): string {
  return `${k.cmdline}\n`;
}

/** `uname -r`. */
export function unameRelease(k: Kernel): string {
  return k.release;
}

const h8 = (v: bigint) => v.toString(16).padStart(8, '0');

/** `/proc/iomem` (see the module contract). */
export function procIomem(k: Kernel): string {
  const lines: string[] = [];
  const base = k.kernelBase;
  for (const r of k.machine.layout.kernelMap) {
    lines.push(`${h8(r.start)}-${h8(r.end - 1n)} : ${r.type === 'ram' ? 'System RAM' : 'Reserved'}`);
    if (r.type === 'ram' && base >= r.start && base < r.end) {
      const L = KERNEL_IMAGE_LAYOUT;
      for (const [name, [s, e]] of [
        ['Kernel code', L.code],
        ['Kernel rodata', L.rodata],
        ['Kernel data', L.data],
        ['Kernel bss', L.bss],
      ] as const)
        lines.push(`  ${h8(base + s)}-${h8(base + e - 1n)} : ${name}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** All of a kernel's files for a shell: debugfs under `/sys/kernel/debug`, procfs, by absolute path. */
export function kernelFiles(k: Kernel): Map<string, () => Uint8Array> {
  const out = new Map<string, () => Uint8Array>();
  out.set('/proc/cmdline', text(procCmdline(k)));
  out.set('/proc/iomem', () => new TextEncoder().encode(procIomem(k)));
  for (const [p, f] of debugfsKhoTree(k).files) out.set(`/sys/kernel/debug/${p}`, f);
  return out;
}
