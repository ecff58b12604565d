/**
 * The session's machine commands: `kexec`, `dmesg`, `uname`, `reboot`, `kho`, `khoctl`, `memdump`,
 * `memwrite`, and `help`; plus the invariant check wrapped around every command.
 *
 * Contract:
 * - `kexec` follows kexec-tools 2.0.x: options `-l/--load`, `-e/--exec`, `-u/--unload`, `-f/--force`
 *   (load then exec), `-s/--kexec-file-syscall`, `-c/--kexec-syscall`, `-a/--kexec-syscall-auto`,
 *   `--initrd=FILE`/`--ramdisk=FILE`, `--append=S`, `--command-line=S`, `--reuse-cmdline`, `-h/--help`,
 *   `-v/--version`; short options may be clustered and the kernel file may appear anywhere. Order of
 *   actions as its main(): unload, load, `Nothing has been loaded!` (exit 1) if an exec is asked with
 *   nothing loaded, exec. Its messages: `Cannot open \`F': <strerror>` (exit 1), `No kernel specified`,
 *   `Cannot determine the file type of F`, `kexec_file_load failed: <strerror>` (exit 255), getopt's
 *   `kexec: unrecognized option '--x'` / `kexec: invalid option -- 'x'` (exit 1). The next kernel's
 *   command line is empty unless `--append`, `--command-line` or `--reuse-cmdline` (which reads
 *   `/proc/cmdline` and drops `BOOT_IMAGE=`) gives one. Without `-s` (or `-a`) the user-space loader is
 *   modelled (kexec_load): the load works and the shell says on stderr, at load time, that the KHO state
 *   will NOT be handed over. (Recent kexec-tools releases default to `-a`, trying kexec_file_load first;
 *   the guide's warning is what is modelled: no `-s` or `-a`, no handover.)
 *   `kexec -e` prints `kexec_core: Starting new kernel`, boots the next kernel, and a one-line summary.
 * - `dmesg [-t] [-r] [-l LEVELS]`, `uname [-a|-r|-s|-n|-v|-m]`, `reboot` (cold boot: memory lost).
 * - `memdump -l` lists the reserve_mem regions; `memdump NAME` or `memdump ADDR LEN` prints raw bytes of
 *   physical memory (at most 256 MiB; pipe into `sha256sum` or `xxd`); `memwrite NAME OFFSET TEXT` writes
 *   into a reserve_mem region (only there: the rest of memory belongs to the kernel).
 * - After every command the invariant checker runs; violations make the command fail, loudly.
 */

import { KhoError } from '../../errors.ts';
import { type HandoverVerdict, snapshotPreserved, verifySnapshot } from '../kernel/invariants.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { formatTimestamp, LOG_LEVELS, type LogLevel } from '../kernel/printk.ts';
import type { CommandContext, CommandHandler, CommandResult } from '../shell/engine.ts';
import { toBytes } from '../shell/engine.ts';
import { errorMessage } from '../shell/vfs.ts';
import { khoCliCommand } from './kho-cli.ts';
import { khoctlCommand, parseNumber } from './khoctl.ts';
import type { Session } from './session.ts';

const hex = (v: bigint) => `0x${v.toString(16)}`;

export const KEXEC_USAGE = `Usage: kexec [OPTION]... [kernel]
Directly reboot into a new kernel (simulated; kexec-tools' options)

 -h, --help           Print this help.
 -v, --version        Print the version of kexec.
 -f, --force          Force an immediate kexec, don't call shutdown.
 -l, --load           Load the new kernel into the current kernel.
 -u, --unload         Unload the current kexec target kernel.
 -e, --exec           Execute a currently loaded kernel.
 -s, --kexec-file-syscall Use file based syscall for kexec operation
                      (the in-kernel loader: the only one that hands KHO state over)
 -c, --kexec-syscall  Use the kexec_load syscall (user-space loader: no KHO handover)
 -a, --kexec-syscall-auto  Use file based syscall for kexec and fall back to the
                      compatibility syscall
     --initrd=FILE    Use FILE as the kernel's initial ramdisk (also --ramdisk=FILE).
     --append=STRING  Set the kernel command line to STRING.
     --command-line=STRING  Same as --append.
     --reuse-cmdline  Use kernel command line from running system.
`;

interface KexecOpts {
  load: boolean;
  exec: boolean;
  unload: boolean;
  /** 's' kexec_file_load, 'c' kexec_load, 'a' auto (file load first), undefined: kexec_load. */
  syscall?: 's' | 'c' | 'a';
  initrd?: string;
  append?: string;
  reuse: boolean;
  file?: string;
  help: boolean;
  version: boolean;
}

/** getopt_long over kexec's options (see the module contract); a string is an error message. */
export function parseKexecArgs(argv: readonly string[]): KexecOpts | string {
  const o: KexecOpts = { load: true, exec: false, unload: false, reuse: false, help: false, version: false };
  let shutdown = true;
  const files: string[] = [];
  const longWithArg = new Map([
    ['initrd', 'initrd'],
    ['ramdisk', 'initrd'],
    ['append', 'append'],
    ['command-line', 'append'],
  ]);
  const flag = (c: string): string | undefined => {
    switch (c) {
      case 'l':
      case 'load':
        o.load = true;
        o.exec = false;
        shutdown = false;
        return;
      case 'e':
      case 'exec':
        o.load = false;
        o.exec = true;
        shutdown = false;
        return;
      case 'u':
      case 'unload':
        o.load = false;
        o.unload = true;
        shutdown = false;
        return;
      case 'f':
      case 'force':
        o.load = true;
        o.exec = true;
        shutdown = false;
        return;
      case 's':
      case 'kexec-file-syscall':
        o.syscall = 's';
        return;
      case 'c':
      case 'kexec-syscall':
        o.syscall = 'c';
        return;
      case 'a':
      case 'kexec-syscall-auto':
        o.syscall = 'a';
        return;
      case 'reuse-cmdline':
        o.reuse = true;
        return;
      case 'h':
      case 'help':
        o.help = true;
        return;
      case 'v':
      case 'version':
        o.version = true;
        return;
      default:
        return c.length === 1 ? `kexec: invalid option -- '${c}'` : `kexec: unrecognized option '--${c}'`;
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      files.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const target = longWithArg.get(name);
      if (target) {
        let v: string | undefined = eq < 0 ? argv[++i] : a.slice(eq + 1);
        if (v === undefined) return `kexec: option '--${name}' requires an argument`;
        if (target === 'initrd') o.initrd = v;
        else o.append = v;
        v = undefined;
        continue;
      }
      if (eq >= 0) return `kexec: option '--${name}' doesn't allow an argument`;
      const err = flag(name);
      if (err) return err;
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (const c of a.slice(1)) {
        const err = flag(c);
        if (err) return err;
      }
      continue;
    }
    files.push(a);
  }
  if (shutdown && o.load) o.exec = true; // `kexec FILE`: load, then reboot into it
  o.file = files[0];
  return o;
}

function strerror(e: unknown): string {
  return errorMessage(e);
}

/** The errno text kexec-tools would print for a failed kexec_file_load, from the kernel's error. */
function loadFailure(e: KhoError): string {
  if (e.code === 'SIM_KEXEC_NO_FIT') return 'Cannot assign requested address';
  if (e.code === 'SIM_ENOEXEC') return 'Exec format error';
  if (e.code === 'SIM_ENOMEM') return 'Cannot allocate memory';
  if (e.code === 'SIM_EINVAL') return 'Invalid argument';
  return e.message;
}

const loud = (v: { code: string; message: string }[]) =>
  v.map((x) => `*** INVARIANT VIOLATION: ${x.code}: ${x.message}\n`).join('');

function verdictLine(next: Kernel, verdict: HandoverVerdict | undefined): string {
  const what = next.kho.isKhoBoot
    ? `KHO boot, handover accepted (kexec count ${next.kexecCount})`
    : next.handoverRejected
      ? `KHO handover rejected: ${next.handoverRejected}`
      : verdict && !verdict.accepted && verdict.reason
        ? `booted without KHO state (${verdict.reason})`
        : 'booted without KHO state (nothing was handed over)';
  return `[now running ${next.release}: ${what}; \`dmesg\` shows its log]\n`;
}

function kexecCommand(s: Session): CommandHandler {
  return ({ argv, vfs }): CommandResult => {
    const o = parseKexecArgs(argv.slice(1));
    if (typeof o === 'string') return { stderr: `${o}\n${KEXEC_USAGE}`, status: 1 };
    if (o.help) return { stdout: KEXEC_USAGE };
    if (o.version) return { stdout: 'kexec-tools 2.0.25 (simulated by kho)\n' };
    const k = s.kernel;
    let stderr = '';
    if (o.unload) k.kexecUnload();
    if (o.load) {
      const fileLoad = o.syscall === 's' || o.syscall === 'a';
      if (o.file === undefined) return { stderr: `No kernel specified\n${KEXEC_USAGE}`, status: 255 };
      let kernelBytes: Uint8Array;
      try {
        kernelBytes = vfs.readFile(o.file);
      } catch (e) {
        return { stderr: `Cannot open \`${o.file}': ${strerror(e)}\n`, status: 1 };
      }
      let initrd: Uint8Array | undefined;
      if (o.initrd !== undefined) {
        try {
          initrd = vfs.readFile(o.initrd);
        } catch (e) {
          return { stderr: `Cannot open \`${o.initrd}': ${strerror(e)}\n`, status: 1 };
        }
      }
      let image: ReturnType<typeof s.imageFromBytes>;
      try {
        image = s.imageFromBytes(kernelBytes, o.file);
      } catch (e) {
        if (!(e instanceof KhoError)) throw e;
        return { stderr: `Cannot determine the file type of ${o.file}\n`, status: 255 };
      }
      let cmdline: string | undefined;
      if (o.reuse) {
        const line = Buffer.from(vfs.readFile('/proc/cmdline'))
          .toString('latin1')
          .split(/[\r\n]/)[0];
        cmdline = line
          .split(' ')
          .filter((w) => !w.startsWith('BOOT_IMAGE'))
          .join(' ');
      }
      if (o.append !== undefined) cmdline = cmdline === undefined ? o.append : `${cmdline} ${o.append}`;
      try {
        const r = k.kexecLoad({ image, initrd: initrd ?? null, cmdline: cmdline ?? '', fileLoad });
        if (!r.handover) stderr += `kexec: note: ${r.message}\n`;
      } catch (e) {
        if (!(e instanceof KhoError)) throw e;
        const call = fileLoad ? 'kexec_file_load' : 'kexec_load';
        return { stderr: `${stderr}${call} failed: ${loadFailure(e)}\n`, status: 255 };
      }
    }
    if (o.exec) {
      if (!k.loaded) return { stderr: `${stderr}Nothing has been loaded!\n`, status: 1 };
      return s.exec(stderr);
    }
    return { stderr };
  };
}

function dmesgCommand(s: Session): CommandHandler {
  return ({ argv }) => {
    let notime = false;
    let raw = false;
    let levels: Set<LogLevel> | undefined;
    for (let i = 1; i < argv.length; i++) {
      const a = argv[i];
      if (a === '-t' || a === '--notime') notime = true;
      else if (a === '-r' || a === '--raw') raw = true;
      else if (a === '-l' || a === '--level' || a.startsWith('--level=')) {
        const v = a.startsWith('--level=') ? a.slice(8) : argv[++i];
        levels = new Set();
        for (const n of (v ?? '').split(',')) {
          const name = n === 'warn' ? 'warning' : n;
          if (!(LOG_LEVELS as readonly string[]).includes(name))
            return { stderr: `dmesg: unknown level '${n}'\n`, status: 1 };
          levels.add(name as LogLevel);
        }
      } else return { stderr: `dmesg: unrecognized option '${a}'\n`, status: 1 };
    }
    let out = '';
    for (const r of s.kernel.log.records) {
      if (levels && !levels.has(r.level)) continue;
      const pri = raw ? `<${LOG_LEVELS.indexOf(r.level)}>` : '';
      out += `${pri}${notime ? '' : `${formatTimestamp(r.tsNs)} `}${r.text}\n`;
    }
    return { stdout: out };
  };
}

export const UNAME_VERSION = '#1 SMP PREEMPT_DYNAMIC Tue Nov 24 20:16:13 UTC 2026';
export const HOSTNAME = 'kho-sim';

function unameCommand(s: Session): CommandHandler {
  return ({ argv }) => {
    const k = s.kernel;
    const machine = k.image.arch === 'arm64' ? 'aarch64' : 'x86_64';
    const fields = {
      s: 'Linux',
      n: HOSTNAME,
      r: k.release,
      v: UNAME_VERSION,
      m: machine,
      o: 'GNU/Linux',
    } as const;
    const want = new Set<string>();
    for (const a of argv.slice(1)) {
      const long: Record<string, string> = {
        '--kernel-name': 's',
        '--nodename': 'n',
        '--kernel-release': 'r',
        '--kernel-version': 'v',
        '--machine': 'm',
        '--operating-system': 'o',
        '--all': 'a',
      };
      if (long[a]) want.add(long[a]);
      else if (/^-[snrvmoa]+$/.test(a)) for (const c of a.slice(1)) want.add(c);
      else
        return {
          stderr: `uname: ${a.startsWith('-') ? `invalid option -- '${a.slice(1, 2)}'` : `extra operand '${a}'`}\nTry 'uname --help' for more information.\n`,
          status: 1,
        };
    }
    if (want.size === 0) want.add('s');
    const order = want.has('a')
      ? ['s', 'n', 'r', 'v', 'm', 'o']
      : ['s', 'n', 'r', 'v', 'm', 'o'].filter((c) => want.has(c));
    return { stdout: `${order.map((c) => fields[c as keyof typeof fields]).join(' ')}\n` };
  };
}

function memdumpCommand(s: Session): CommandHandler {
  return ({ argv }) => {
    const k = s.kernel;
    const regions = k.reserveMem.entries.filter((e) => e.size !== 0n);
    if (argv[1] === '-l' || argv[1] === '--list') {
      if (regions.length === 0) return { stdout: 'no reserve_mem regions\n' };
      return {
        stdout: regions.map((r) => `${r.name} ${hex(r.start)} ${hex(r.size)}\n`).join(''),
      };
    }
    let addr: bigint | undefined;
    let len: bigint | undefined;
    if (argv.length === 2) {
      const r = regions.find((x) => x.name === argv[1]);
      if (!r)
        return { stderr: `memdump: no reserve_mem region '${argv[1]}' (memdump -l lists them)\n`, status: 1 };
      addr = r.start;
      len = r.size;
    } else if (argv.length === 3) {
      addr = parseNumber(argv[1]);
      len = parseNumber(argv[2]);
      if (addr === undefined || len === undefined)
        return { stderr: `memdump: '${argv[1]} ${argv[2]}' is not an address and a length\n`, status: 2 };
    } else return { stderr: 'usage: memdump -l | memdump NAME | memdump ADDR LEN\n', status: 2 };
    if (len > 256n << 20n) return { stderr: 'memdump: at most 256M at a time\n', status: 1 };
    if (!k.machine.isRam(addr, len))
      return { stderr: `memdump: [${hex(addr)}, ${hex(addr + len)}) is not RAM\n`, status: 1 };
    return { stdout: k.machine.memory.read(addr, Number(len)) };
  };
}

function memwriteCommand(s: Session): CommandHandler {
  return ({ argv }) => {
    if (argv.length !== 4)
      return { stderr: 'usage: memwrite NAME OFFSET TEXT   (NAME: a reserve_mem region)\n', status: 2 };
    const r = s.kernel.reserveMem.findByName(argv[1]);
    if (!r)
      return { stderr: `memwrite: no reserve_mem region '${argv[1]}' (memdump -l lists them)\n`, status: 1 };
    const off = parseNumber(argv[2]);
    const data = toBytes(argv[3]);
    if (off === undefined || off + BigInt(data.length) > r.size)
      return {
        stderr: `memwrite: ${data.length} bytes at offset '${argv[2]}' do not fit in ${r.size} bytes\n`,
        status: 1,
      };
    s.kernel.machine.memory.write(r.start + off, data);
    return {};
  };
}

function rebootCommand(s: Session): CommandHandler {
  return () => {
    const k = s.coldBoot();
    return {
      stdout: `reboot: Restarting system\n[power cycle: memory lost; now running ${k.release} (cold boot, kexec count 0)]\n`,
    };
  };
}

export function helpIntro(s: Session): string {
  const spec = s.machine.spec;
  const gb = Number(spec.memorySize >> 20n) / 1024;
  return `kho shell: a simulated ${s.kernel.release} machine (${gb}G, ${spec.numaNodes} node${spec.numaNodes > 1 ? 's' : ''}, ${spec.arch}, ${spec.pageSize / 1024}K pages) with Kexec HandOver.

The user guide, as written:
  cat /proc/cmdline                                  # kho=on kho_scratch=... reserve_mem=...
  cat /sys/kernel/debug/kho/out/scratch_len          # scratch areas: lowmem, global, per node
  kexec -l /boot/bzImage --initrd /boot/initrd --reuse-cmdline -s
  kexec -e                                           # KHO kexec into the loaded kernel
  dmesg | grep KHO                                   # KHO: exec from: ... (count 1)
  ls -R /sys/kernel/debug/kho                        # in/ holds what the previous kernel handed over
  kho inspect /sys/kernel/debug/kho/in               # kho's own decoder on the machine's files
  reboot                                             # cold boot: memory and kexec count lost
Preserve your own state (producer 'khoctl', restored after each KHO kexec):
  khoctl preserve NAME SIZE; khoctl write NAME OFFSET TEXT; khoctl read NAME | sha256sum; khoctl show
reserve_mem regions (same address and contents after a KHO kexec):
  memdump -l; memwrite trace_buf 0 TEXT; memdump trace_buf | sha256sum
Without -s, kexec uses the user-space loader and nothing is handed over (the guide's warning).
The invariant checker runs after every command; a violation fails the command loudly.

`;
}

/** Register the session's commands on its shell and wrap every command with the invariant check. */
export function registerSessionCommands(s: Session): void {
  const sh = s.shell;
  sh.register(
    'kexec',
    kexecCommand(s),
    'load (-l FILE [--initrd F] [--reuse-cmdline|--append S] [-s]), exec (-e), unload (-u) a kernel',
  );
  sh.register('dmesg', dmesgCommand(s), 'print the kernel log (-t no timestamps, -l LEVELS)');
  sh.register('uname', unameCommand(s), 'print system information (-r release, -a all)');
  sh.register(
    'reboot',
    rebootCommand(s),
    'power-cycle the machine and cold-boot (memory and kexec count lost)',
  );
  sh.register(
    'kho',
    khoCliCommand({
      vfs: s.vfs,
      memory: () => s.kernel.kho.phys,
      pageSize: () => s.machine.spec.pageSize,
    }),
    "kho's own tools on this machine's files: inspect, validate, diff",
  );
  sh.register(
    'khoctl',
    khoctlCommand(() => s.kernel),
    'preserve your own memory across kexec: preserve, write, read, show, unpreserve',
  );
  sh.register(
    'memdump',
    memdumpCommand(s),
    'raw bytes of physical memory: -l, NAME (a reserve_mem region), or ADDR LEN',
  );
  sh.register('memwrite', memwriteCommand(s), 'write TEXT into a reserve_mem region: NAME OFFSET TEXT');
  const builtinHelp = sh.command('help');
  if (builtinHelp) {
    sh.register(
      'help',
      async (ctx) => {
        const r = await builtinHelp.handler(ctx);
        if (ctx.argv.length > 1) return r;
        return { ...r, stdout: helpIntro(s) + Buffer.from(toBytes(r.stdout)).toString('latin1') };
      },
      builtinHelp.description,
    );
  }
  const always = new Set(['exit', 'reboot', 'help', 'dmesg', 'cd', 'pwd', 'echo', ':', 'true', 'false']);
  for (const name of sh.commandNames()) {
    if (name === 'exit') continue; // its ExitSignal must reach the engine untouched
    const info = sh.command(name)!;
    sh.register(
      name,
      async (ctx: CommandContext): Promise<CommandResult> => {
        if (s.halted && !always.has(name))
          return {
            stderr: `${name}: the machine is halted (${s.halted}); \`reboot\` power-cycles it\n`,
            status: 1,
          };
        const r = await info.handler(ctx);
        const v = s.violations();
        if (v.length === 0) return r;
        s.violationReported = true;
        const err = Buffer.concat([toBytes(r.stderr), toBytes(loud(v))]);
        return { ...r, stderr: err, status: 1 };
      },
      info.description,
    );
  }
}

export { loud as formatViolations };

/** `kexec -e` on the session: snapshot, exec, verify, re-mount; returns the command's result. */
export function sessionExec(s: Session, prefix = ''): CommandResult {
  const k = s.kernel;
  const pre = s.violations();
  if (pre.length > 0) s.violationReported = true;
  if (pre.length > 0)
    return {
      stderr: `${prefix}${loud(pre)}kexec: not executing: the running kernel breaks an invariant\n`,
      status: 1,
    };
  const snap = snapshotPreserved(k);
  let verdict: HandoverVerdict | undefined;
  k.log.info('kexec_core: Starting new kernel');
  let next: Kernel;
  try {
    next = k.kexecExec({
      snapshot: () => snap,
      verify: (n, sn) => {
        verdict = verifySnapshot(n, sn);
      },
    });
  } catch (e) {
    if (e instanceof KhoError && e.code === 'SIM_KERNEL_PANIC') {
      s.halted = e.message;
      return {
        stdout: 'kexec_core: Starting new kernel\n',
        stderr: `${prefix}${e.message}\n[the machine is halted; \`reboot\` power-cycles it]\n`,
        status: 1,
      };
    }
    throw e;
  }
  s.kernel = next;
  s.booted('kexec');
  const v = [...(verdict?.violations ?? [])];
  if (v.length > 0) s.violationReported = true;
  return {
    stdout: `kexec_core: Starting new kernel\n${verdictLine(next, verdict)}`,
    stderr: `${prefix}${loud(v)}`,
    status: v.length ? 1 : 0,
  };
}
