import type { Program } from './assembler.ts';
import type { ExceptionEvent } from './step-event.ts';

// Architectural registers the model keeps (SDM Vol. 3 §2.5 control registers, §7.7 64-bit TSS, §6.14 IDT).

export const RFLAGS = {
  /** Bit 1 is reserved and always 1. */
  FIXED: 1 << 1,
  /** Interrupt enable. */
  IF: 1 << 9,
} as const;

export const CR0 = { PE: 1 << 0, WP: 1 << 16, NW: 1 << 29, CD: 1 << 30, PG: 2 ** 31 } as const;
export const CR4 = { PAE: 1 << 5, PGE: 1 << 7, LA57: 1 << 12 } as const;
export const EFER = { LME: 1 << 8, LMA: 1 << 10, NXE: 1 << 11 } as const;

/** Selectors pushed in frames: Linux's __KERNEL_CS/__KERNEL_DS and __USER_CS/__USER_DS. */
export const SELECTOR = { KERNEL_CS: 0x10, KERNEL_SS: 0x18, USER_SS: 0x2b, USER_CS: 0x33 } as const;

export interface Registers {
  /** Stack pointer (model address form). */
  rsp: number;
  rflags: number;
  /** Current privilege level, 0 (kernel) or 3 (user). */
  cpl: 0 | 3;
  /**
   * The SS selector: __KERNEL_DS at boot, NULL (0) after an interrupt changes privilege to CPL 0 (SDM §6.14.4),
   * and what IRET pops. Frames save it; the model uses it for nothing else (no segmentation in 64-bit mode).
   */
  ss: number;
  cr0: number;
  /** Linear address of the last #PF (model form). */
  cr2: number;
  /** Physical address of the PML4. */
  cr3: number;
  cr4: number;
  efer: number;
}

/** Copies every register of `from` into `to` (field by field: Object.assign's generic path costs more). */
export function copyRegisters(to: Registers, from: Registers): void {
  to.rsp = from.rsp;
  to.rflags = from.rflags;
  to.cpl = from.cpl;
  to.ss = from.ss;
  to.cr0 = from.cr0;
  to.cr2 = from.cr2;
  to.cr3 = from.cr3;
  to.cr4 = from.cr4;
  to.efer = from.efer;
}

export function defaultRegisters(): Registers {
  return {
    rsp: 0,
    rflags: RFLAGS.FIXED,
    cpl: 0,
    ss: SELECTOR.KERNEL_SS,
    // >>> 0: PG is bit 31, and a bitwise OR of it gives a negative number.
    cr0: (CR0.PE | CR0.PG | CR0.WP) >>> 0,
    cr2: 0,
    cr3: 0,
    cr4: CR4.PAE | CR4.PGE,
    efer: EFER.LME | EFER.LMA | EFER.NXE,
  };
}

/** The 64-bit TSS fields exception delivery uses: RSP0 and IST1..IST7 (index 0 unused). */
export interface TaskStateSegment {
  rsp0: number;
  readonly ist: Float64Array;
}

export function emptyTss(): TaskStateSegment {
  return { rsp0: 0, ist: new Float64Array(8) };
}

/** Information a handler program receives about the event that started it. */
export interface HandlerContext {
  readonly vector: number;
  /** Error code pushed in the frame (0 when the vector pushes none). */
  readonly errorCode: number;
  /** CR2 at delivery (meaningful for #PF and for #DF after a #PF). */
  readonly cr2: number;
  /** RSP after the frame was pushed (points at the error code or the saved RIP). */
  readonly frameRsp: number;
  /** The interrupted instruction carries an exception-table fixup (see Assembler options `fixup`). */
  readonly hasFixup: boolean;
  /** An external interrupt or IPI, not an exception. */
  readonly external: boolean;
  /** A software interrupt (INT n, INT3): the frame's RIP is the instruction after it. */
  readonly software: boolean;
  /**
   * The exceptions raised in this step up to this one, in order, with what Table 6-5 made of each (a model extra:
   * hardware tells a #DF handler nothing of the faults before it; reports use it to name the chain).
   */
  readonly chain: readonly ExceptionEvent[];
}

/** Gate types of the 64-bit IDT (SDM Table 3-2: 0xE interrupt gate, 0xF trap gate). */
export const GATE_TYPES = ['interrupt', 'trap'] as const;

/**
 * An IDT gate (SDM §6.14.1), as stored: the handler program, the IST index (0 = none), the gate type, the present
 * bit, the DPL (the CPL an INT n may call it from) and the code-segment selector the handler runs in.
 */
export interface Gate {
  readonly handler: Program<[HandlerContext]>;
  readonly ist: number;
  /** An interrupt gate clears IF on entry; a trap gate leaves it. */
  readonly type: (typeof GATE_TYPES)[number];
  readonly present: boolean;
  readonly dpl: number;
  readonly selector: number;
}

/** A gate as setGate takes it: present, DPL 0 and __KERNEL_CS unless given. */
export type GateInit = Pick<Gate, 'handler' | 'ist' | 'type'> & Partial<Pick<Gate, 'present' | 'dpl' | 'selector'>>;
