/** kho's public library API. */

export * from './abi/profile.ts';
export * from './errors.ts';
export * from './fdt/model.ts';
