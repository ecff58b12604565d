/** Sessions: a simulated machine, its kernel and a shell on its files (`kho shell`, `kho demo`). */
export * from './commands.ts';
export * from './kho-cli.ts';
export * from './khoctl.ts';
export * from './session.ts';
