import type { CpuState } from './step-event.ts';

// A CPU's state as the scheduler sees it, and how RIP is made, shared by the CPU and its instruction families.

/** RIP advances by this per instruction completed: RIP = program code address + RIP_STRIDE * instructions done. */
export const RIP_STRIDE = 4;

/** CPU states as numbers, indexing STATE_NAMES. */
export const STATUS = { RUNNING: 0, HALTED: 1, BLOCKED: 2, SHUTDOWN: 3, STOPPED: 4 } as const;
export const STATE_NAMES: readonly CpuState[] = ['running', 'halted', 'blocked', 'shutdown', 'stopped'];

/** What a step did: executed an instruction, accepted an interrupt, found its task finished, or nothing. */
export const STEP_KIND = { IDLE: 0, INSTRUCTION: 1, INTERRUPT: 2, EXIT: 3 } as const;
export type StepKind = (typeof STEP_KIND)[keyof typeof STEP_KIND];
