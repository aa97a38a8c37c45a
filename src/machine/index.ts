export * from './boot.ts';
export * from './cost-model.ts';
export * from './image.ts';
export * from './machine.ts';
export * from './page-tables.ts';
export * from './schedule.ts';
export * from './snapshot.ts';
