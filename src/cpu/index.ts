export * from './apic.ts';
export * from './cpu.ts';
export * from './exceptions.ts';
export * from './instruction.ts';
export * from './memory-port.ts';
export * from './registers.ts';
export * from './step-event.ts';
export * from './step-format.ts';
