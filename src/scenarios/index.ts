export * from './catalogue.ts';
export * from './double-fault.ts';
export * from './listing.ts';
export * from './scenario.ts';
export * from './stale-tlb.ts';
export * from './vmalloc-fault.ts';
export * from './vmap-stack-switch.ts';
