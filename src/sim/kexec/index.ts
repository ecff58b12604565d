/** The kexec file loader model: kernel images and segment placement (see each module's contract). */
export * from './image.ts';
export * from './placement.ts';
