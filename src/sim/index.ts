/** The machine simulator's public API: machine, firmware layout, and the kernel-model building blocks. */
export * from './kernel/buddy.ts';
export * from './kernel/cmdline.ts';
export * from './kernel/debugfs.ts';
export * from './kernel/faults.ts';
export * from './kernel/invariants.ts';
export * from './kernel/kernel.ts';
export * from './kernel/kho.ts';
export * from './kernel/memblock.ts';
export * from './kernel/printk.ts';
export * from './kernel/producers.ts';
export * from './kernel/scratch.ts';
export * from './machine/firmware.ts';
export * from './machine/machine.ts';
export * from './machine/memory.ts';
export * from './machine/spec.ts';
