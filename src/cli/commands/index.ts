import type { Command } from 'commander';
import { registerCompat } from './compat.ts';
import { registerDebugfs } from './debugfs.ts';
import { registerDemo } from './demo.ts';
import { registerDiff } from './diff.ts';
import { registerFdt } from './fdt.ts';
import { registerInspect } from './inspect.ts';
import { registerMap } from './map.ts';
import { registerPlan } from './plan.ts';
import { registerScratchCost } from './scratch-cost.ts';
import { registerShell } from './shell.ts';
import { registerValidate } from './validate.ts';

/** Every command group registers itself here. */
export function registerCommands(program: Command): void {
  registerInspect(program);
  registerValidate(program);
  registerDiff(program);
  registerFdt(program);
  registerPlan(program);
  registerScratchCost(program);
  registerMap(program);
  registerCompat(program);
  registerDebugfs(program);
  registerShell(program);
  registerDemo(program);
}
