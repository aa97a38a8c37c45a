export * from './address.ts';
export * from './footprint.ts';
export * from './input-error.ts';
export * from './physical-memory.ts';
export * from './pte.ts';
export * from './table-lookup.ts';
export * from './tlb.ts';
export * from './walker.ts';
