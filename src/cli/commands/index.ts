import type { Command } from 'commander';

/** Every command group registers itself here. */
export function registerCommands(_program: Command): void {}
