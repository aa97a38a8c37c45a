export * from './address.ts';
export * from './footprint.ts';
export * from './physical-memory.ts';
export * from './pte.ts';
export * from './tlb.ts';
export * from './walker.ts';
