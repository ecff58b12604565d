/**
 * `kho map`'s library: the memory map model (`model.ts`), its sources (a real handover, a simulated
 * kernel: `sources.ts`), its axes (`axis.ts`) and renderers (SVG: `svg.ts`, zoomable HTML: `html.ts`).
 */
export * from './axis.ts';
export * from './html.ts';
export * from './model.ts';
export * from './sources.ts';
export * from './svg.ts';
