// x86slice public API: the hardware model (mmu, cpu) and the machine that steps it.
export * from './cpu/index.ts';
export * from './explore/explore.ts';
export * from './explore/parallel.ts';
export * from './faults/handlers.ts';
export * from './faults/page-fault.ts';
export * from './faults/reports.ts';
export * from './machine/index.ts';
export * from './mm/buddy.ts';
export * from './mm/kernel.ts';
export * from './mm/kernel-page-tables.ts';
export * from './mm/mm.ts';
export * from './mm/task.ts';
export * from './mm/vmalloc.ts';
export * from './mm/vmap-areas.ts';
export * from './mmu/index.ts';
export * from './scenarios/index.ts';
export * from './trace/index.ts';
