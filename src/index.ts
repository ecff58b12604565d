/** kho's public library API. */
export * from './errors.ts';
export * from './fdt/model.ts';
