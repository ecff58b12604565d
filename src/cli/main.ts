/**
 * The `kho` command line: a thin layer over the library. Each command module registers its
 * sub-commands and calls exported library functions, so the same calls are testable in-process.
 */
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.ts';
import { EXIT_USAGE, exitQuietlyOnBrokenPipe, reportError } from './common.ts';

export function buildProgram(): Command {
  const program = new Command('kho')
    .description('Kexec HandOver (KHO) in TypeScript: inspect, validate and simulate KHO handovers')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      return EXIT_USAGE;
    }
    reportError(undefined, e);
    return 1;
  }
}

const invoked = process.argv[1] ?? '';
if (invoked.endsWith('main.ts') || invoked.endsWith('kho.js') || invoked.endsWith('/kho')) {
  exitQuietlyOnBrokenPipe(); // `kho demo | head` ends quietly for every command, not only `kho fdt`
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
