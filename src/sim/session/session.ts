/**
 * A session: one simulated machine, the kernel running on it, and a shell whose files and commands are
 * that kernel's. What `kho shell` and `kho demo` run on.
 *
 * Contract:
 * - `createSession({ mem, numa, pageSize, arch, image, cmdline, host })` creates the machine, cold-boots
 *   `image` (default: the vectors' 7.3.4-khovec kernel, profile kho-v4, with its Kconfig) with `cmdline`
 *   (default `DEFAULT_CMDLINE`: the guide's `kho=on kho_scratch=16M,512M,256M`, a 4 MiB `reserve_mem`
 *   region `trace_buf`, `console=ttyS0`), and builds the VFS: `/sys/kernel/debug` (debugfs, mounted only
 *   when the kernel has CONFIG_KEXEC_HANDOVER_DEBUGFS; its `kho/` only with KHO on), `/proc/cmdline`,
 *   `/proc/iomem`, `/proc/version`, `/sys/kernel/kexec_loaded`, `/boot/bzImage` (a simulated-image JSON
 *   description of the running kernel's release, profile and Kconfig, which the kexec loader recognises),
 *   `/boot/initrd`, `/boot/config-<release>`, writable `/tmp` and `/root`, `/dev/mem` (reads fail with
 *   EPERM as under STRICT_DEVMEM; `memdump` reads memory) and, with `host`, a host directory read-only
 *   at `/host`. Every kernel file is re-made after each kexec or reboot (the new kernel's debugfs: `in/`
 *   after a KHO boot).
 * - The shell has the core tools plus `kexec`, `dmesg`, `uname`, `reboot`, `kho`, `khoctl`, `memdump`,
 *   `memwrite` and a `help` that starts with the guide's commands (see `commands.ts`).
 * - The invariant checker (`checkKernel`) runs after every command; a violation is printed on stderr as
 *   `*** INVARIANT VIOLATION: CODE: message` and the command's status becomes 1. A line with a
 *   redirection is checked once more after it ran (a redirection writes after its command returned). `kexec -e` also
 *   digests every preserved range before the exec and compares after the next kernel's mm init.
 * - A kernel panic during a boot halts the machine: only `reboot`, `help`, `dmesg` and `exit` run then.
 * - `history` records every boot: cold or kexec, release, incoming kexec count, handover accepted.
 */

import { debugfsVfsDir, procCmdline, procIomem } from '../kernel/debugfs.ts';
import { checkKernel, type InvariantViolation } from '../kernel/invariants.ts';
import { DEFAULT_IMAGE, imageSpecOf, Kernel, type KernelImageSpec, linuxBanner } from '../kernel/kernel.ts';
import type { KhoProducer } from '../kernel/producers.ts';
import { type KernelImage, loadKernelImage } from '../kexec/image.ts';
import { Machine } from '../machine/machine.ts';
import type { Arch } from '../machine/spec.ts';
import type { CommandResult } from '../shell/engine.ts';
import { createShell, type RunResult, type Shell } from '../shell/index.ts';
import { type Clock, createBaseVfs, type Vfs, vfsError } from '../shell/vfs.ts';
import { formatViolations, registerSessionCommands, sessionExec } from './commands.ts';
import { khoctlProducer } from './khoctl.ts';

/** The default command line: the guide's scratch sizes, a reserve_mem region and a serial console. */
export const DEFAULT_CMDLINE = 'kho=on kho_scratch=16M,512M,256M reserve_mem=4M:4096:trace_buf console=ttyS0';
export const DEFAULT_MEM = '8G';
/** Size of the simulated `/boot/initrd`. */
export const INITRD_SIZE = 1 << 20;

export interface SessionOptions {
  mem?: string | bigint;
  numa?: number;
  pageSize?: string | number;
  arch?: Arch;
  /** The first kernel (default: DEFAULT_IMAGE for the machine's arch). */
  image?: KernelImageSpec;
  cmdline?: string;
  /** A host directory shown read-only at `/host` (real images to `kexec -l`). */
  host?: string;
  /** Producers besides `khoctl` (users' own), run by every kernel. */
  producers?: readonly KhoProducer[];
  clock?: Clock;
}

export interface BootRecord {
  kind: 'cold' | 'kexec';
  release: string;
  /** The kexec count this kernel read from the handover (0 after a cold boot or without KHO state). */
  kexecCount: number;
  /** Whether this kernel booted from a KHO handover it accepted. */
  khoBoot: boolean;
}

/** The running kernel's image as the JSON description `kexec -l` recognises. */
export function imageDescription(spec: KernelImageSpec): string {
  return `${JSON.stringify(
    {
      kind: 'kho-simulated-kernel',
      release: spec.release,
      arch: spec.arch,
      profile: spec.profile,
      config: spec.config,
      memSize: `0x${(spec.memSize ?? 0x2200000n).toString(16)}`,
    },
    null,
    2,
  )}\n`;
}

/** The simulated kernel a kernel file boots (bzImage, arm64 Image or JSON description). */
export function imageSpecFromFile(bytes: Uint8Array, path: string, arch: Arch = 'x86_64'): KernelImageSpec {
  const img = loadKernelImage(bytes, { arch, path });
  return imageSpecOf(img, { ...DEFAULT_IMAGE, arch });
}

/** `/boot/initrd`: a newc cpio archive header (`070701`) followed by zeros. */
function initrdBytes(): Uint8Array {
  const b = new Uint8Array(INITRD_SIZE);
  b.set(Buffer.from('070701', 'latin1'));
  return b;
}

function configText(spec: KernelImageSpec): string {
  const lines = Object.entries(spec.config).map(([k, v]) =>
    v === false
      ? `# ${k} is not set`
      : `${k}=${v === true ? 'y' : typeof v === 'string' ? JSON.stringify(v) : v}`,
  );
  return `${lines.join('\n')}\n`;
}

export class Session {
  readonly machine: Machine;
  readonly vfs: Vfs;
  readonly shell: Shell;
  readonly producers: readonly KhoProducer[];
  /** The image and command line a cold boot (`reboot`) uses. */
  readonly coldImage: KernelImageSpec;
  readonly coldCmdline: string;
  kernel: Kernel;
  /** Set when a boot panicked: the machine is halted until `reboot`. */
  halted: string | null = null;
  /** Set when a command of the current line reported a violation (see `registerSessionCommands`). */
  violationReported = false;
  readonly history: BootRecord[] = [];
  private readonly initrd = initrdBytes();

  constructor(opts: SessionOptions = {}) {
    this.machine = Machine.create({
      memory: opts.mem ?? DEFAULT_MEM,
      ...(opts.numa !== undefined ? { numa: opts.numa } : {}),
      ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
      ...(opts.arch ? { arch: opts.arch } : {}),
    });
    this.coldImage = opts.image ?? { ...DEFAULT_IMAGE, arch: this.machine.spec.arch };
    this.coldCmdline = opts.cmdline ?? DEFAULT_CMDLINE;
    this.producers = [khoctlProducer, ...(opts.producers ?? [])];
    this.vfs = createBaseVfs({ clock: opts.clock });
    if (opts.host !== undefined) {
      this.vfs.mkdirp('/host');
      this.vfs.mountHost('/host', opts.host);
    }
    this.vfs.addFile('/dev/mem', {
      read: () => {
        throw vfsError('EPERM', '/dev/mem');
      },
      size: () => 0,
      perm: 0o640,
    });
    this.shell = createShell({ vfs: this.vfs });
    this.kernel = Kernel.boot(this.machine, {
      image: this.coldImage,
      cmdline: this.coldCmdline,
      producers: this.producers,
    });
    this.booted('cold');
    registerSessionCommands(this);
    // A redirection writes after its command returned (`echo 1 > .../finalize`): check once more then.
    const execute = this.shell.execute.bind(this.shell);
    this.shell.execute = async (src, emit) => {
      this.violationReported = false;
      const status = await execute(src, emit);
      if (this.violationReported || !src.includes('>')) return status;
      const v = this.violations();
      if (v.length === 0) return status;
      emit(2, Buffer.from(formatViolations(v), 'latin1'));
      this.shell.lastStatus = 1;
      return 1;
    };
  }

  /** Record a boot and re-make the kernel's files. */
  booted(kind: 'cold' | 'kexec'): void {
    const k = this.kernel;
    this.halted = null;
    this.history.push({ kind, release: k.release, kexecCount: k.kexecCount, khoBoot: k.kho.isKhoBoot });
    this.mountKernel();
  }

  /** (Re)make every file that comes from the running kernel. */
  mountKernel(): void {
    const k = this.kernel;
    const vfs = this.vfs;
    vfs.mkdirp('/sys/kernel/debug');
    if (vfs.isMounted('/sys/kernel/debug')) vfs.unmount('/sys/kernel/debug');
    if (k.config.CONFIG_KEXEC_HANDOVER_DEBUGFS) vfs.mount('/sys/kernel/debug', debugfsVfsDir(k));
    vfs.addFile('/proc/cmdline', { read: () => procCmdline(k), size: () => 0 });
    vfs.addFile('/proc/iomem', { read: () => procIomem(k), size: () => 0 });
    vfs.addFile('/proc/version', { read: () => `${linuxBanner(k.release)}\n`, size: () => 0 });
    vfs.addFile('/sys/kernel/kexec_loaded', { read: () => (k.loaded ? '1\n' : '0\n'), size: () => 4096 });
    vfs.addFile('/boot/bzImage', imageDescription(k.image));
    vfs.addFile('/boot/initrd', this.initrd);
    for (const n of vfs.readdir('/boot')) if (n.startsWith('config-')) vfs.removeEntry(`/boot/${n}`);
    vfs.addFile(`/boot/config-${k.release}`, configText(k.image));
  }

  /** Power-cycle the machine and cold-boot the first kernel's image and command line. */
  coldBoot(): Kernel {
    if (!this.kernel.stopped) this.kernel.stopped = true;
    this.machine.powerCycle();
    this.kernel = Kernel.boot(this.machine, {
      image: this.coldImage,
      cmdline: this.coldCmdline,
      producers: this.producers,
    });
    this.booted('cold');
    return this.kernel;
  }

  /** Parse a kernel file as the running kernel's loader would (its own architecture only). */
  imageFromBytes(bytes: Uint8Array, path: string): KernelImage {
    return loadKernelImage(bytes, { arch: this.machine.spec.arch, path });
  }

  /** `kexec -e`: boot the loaded kernel (see commands.ts); `prefix` is stderr already produced. */
  exec(prefix = ''): CommandResult {
    return sessionExec(this, prefix);
  }

  /** Invariant violations of the running kernel (none when the machine is halted). */
  violations(): InvariantViolation[] {
    return this.halted ? [] : checkKernel(this.kernel);
  }

  /** Run one command line. */
  run(line: string): Promise<RunResult> {
    return this.shell.run(line);
  }

  /** Run a script, returning the transcript (`# command` then its output). */
  runScript(text: string): Promise<{ transcript: string; status: number }> {
    return this.shell.runScript(text);
  }

  /** Text of a run's combined output. */
  static text(r: RunResult): string {
    return Buffer.from(r.output).toString('latin1');
  }
}

/** Create a session (see the module contract). */
export function createSession(opts: SessionOptions = {}): Session {
  return new Session(opts);
}
