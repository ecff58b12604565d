/** kho's public library API. */

export * from './abi/profile.ts';
export * from './errors.ts';
export * from './fdt/header.ts';
export * from './fdt/model.ts';
export * from './fdt/reader.ts';
export * from './fdt/values.ts';
