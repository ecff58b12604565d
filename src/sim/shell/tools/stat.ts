/**
 * `stat [-c FORMAT] FILE...` (and `-L`), GNU coreutils' layout.
 *
 * Contract: `-c`/`--format` supports %n %N %s %b %B %F %a %A %h %i %u %U %g %G %Y %y %%; without `-c` the
 * default multi-line layout of GNU stat (device numbers are 0,0 and access/change times equal the
 * modification time: the VFS keeps only mtime). Owner and group are always root (0).
 */
import type { CommandContext, CommandResult } from '../engine.ts';
import { errorMessage, type VStat } from '../vfs.ts';
import { modeString } from './ls.ts';
import { getopts, has, lastValue, Out, quote, withUsage } from './util.ts';

const TYPE_NAMES: Record<VStat['type'], string> = {
  file: 'regular file',
  dir: 'directory',
  symlink: 'symbolic link',
  chardev: 'character special file',
};

function fullTime(d: Date): string {
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${String(d.getUTCMilliseconds()).padStart(3, '0')}000000 +0000`;
}

function typeName(st: VStat): string {
  return st.type === 'file' && st.size === 0 ? 'regular empty file' : TYPE_NAMES[st.type];
}

export function stat(ctx: CommandContext): CommandResult {
  return withUsage('stat', 1, () => {
    const p = getopts('stat', ctx.argv.slice(1), {
      flags: 'L',
      withArg: 'c',
      long: { 'format=': 'c', dereference: 'L' },
    });
    const o = new Out();
    if (p.operands.length === 0)
      return { stderr: "stat: missing operand\nTry 'stat --help' for more information.\n", status: 1 };
    const fmt = lastValue(p, 'c');
    for (const f of p.operands) {
      let st: VStat;
      let target: string | undefined;
      try {
        st = has(p, 'L') ? ctx.vfs.stat(f) : ctx.vfs.lstat(f);
        if (st.type === 'symlink') target = ctx.vfs.readlink(f);
      } catch (e) {
        o.err(`stat: cannot statx ${quote(f)}: ${errorMessage(e)}\n`);
        o.status = 1;
        continue;
      }
      const perm = st.perm.toString(8);
      if (fmt !== undefined) {
        const out = fmt.replace(/%(.)/g, (_m, c: string) => {
          switch (c) {
            case 'n':
              return f;
            case 'N':
              return target !== undefined ? `${quote(f)} -> ${quote(target)}` : quote(f);
            case 's':
              return String(st.size);
            case 'b':
              return String(st.blocks);
            case 'B':
              return '512';
            case 'F':
              return typeName(st);
            case 'a':
              return perm;
            case 'A':
              return modeString(st);
            case 'h':
              return String(st.nlink);
            case 'i':
              return String(st.ino);
            case 'u':
            case 'g':
              return '0';
            case 'U':
            case 'G':
              return 'root';
            case 'Y':
              return String(Math.floor(st.mtime.getTime() / 1000));
            case 'y':
              return fullTime(st.mtime);
            case '%':
              return '%';
            default:
              return `?`;
          }
        });
        o.out(`${out}\n`);
        continue;
      }
      const t = fullTime(st.mtime);
      const name = target !== undefined ? `${f} -> ${target}` : f;
      o.out(`  File: ${name}\n`);
      o.out(
        `  Size: ${String(st.size).padEnd(10)}\tBlocks: ${String(st.blocks).padEnd(10)} IO Block: 4096   ${typeName(st)}\n`,
      );
      o.out(`Device: 0,0\tInode: ${String(st.ino).padEnd(11)} Links: ${st.nlink}\n`);
      o.out(
        `Access: (${perm.padStart(4, '0')}/${modeString(st)})  Uid: (    0/    root)   Gid: (    0/    root)\n`,
      );
      o.out(`Access: ${t}\nModify: ${t}\nChange: ${t}\n Birth: -\n`);
    }
    return o.result();
  });
}
