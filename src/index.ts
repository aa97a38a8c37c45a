// x86slice public API: the hardware model (mmu, cpu) and the machine that steps it.
export * from './cpu/index.ts';
export * from './machine/index.ts';
export * from './mmu/index.ts';
export * from './scenarios/index.ts';
export * from './trace/index.ts';
