import type { Assembler } from '../cpu/assembler.ts';
import type { Instruction } from '../cpu/instruction.ts';

// The types kernel programs and migration protocols are written with, in a module below kernel.ts: kernel.ts holds
// the protocol vmalloc pages migrate with, typed here over the kernel it is given, so it need not import migrate.ts.

/** A kernel routine: a program that yields instructions and returns T (kernel-page-tables.ts re-exports it). */
export type KernelProgram<T = number> = Generator<Instruction, T, number>;

/** What a protocol is given: the page, its PTE, its frames, and how to copy. */
export interface MigrationPage {
  /** The page's address (4 KiB aligned, in an area vmalloc made with an order-0 block there). */
  readonly va: number;
  /** Physical address of its PTE in init_mm's tables. */
  readonly pte: number;
  readonly oldPfn: number;
  readonly newPfn: number;
  /** Bytes copied per step (rep movsq moves 8; a larger chunk is a coarser grain for exploration). */
  readonly chunk: number;
  /** The CPU running the task whose stack this page is, when there is one (the switcheroo's target). */
  readonly taskCpu: number | undefined;
  /**
   * The task's id in the kernel's scheduler (sched.ts), when it has one: the switcheroo's handler then checks the
   * task is still current there, and a protocol that finds it is not holds it off instead.
   */
  readonly task?: number;
}

/**
 * A migration protocol over kernel type K: a kernel program that moves `page` from its old frame to its new one
 * (migrate.ts's MigrationProtocol is this over Kernel).
 */
export type MigrationProtocolFor<K> = (x: Assembler, kernel: K, page: MigrationPage) => KernelProgram<void>;
