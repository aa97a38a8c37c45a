// The differential conformance suite's case format, shared by the two executors: the QEMU oracle
// (conformance/oracle/), which runs each case as bare-metal code under QEMU TCG and records what happened, and the
// model runner (conformance/model-runner.ts), which runs the same case on x86slice. A case says only what the
// architecture defines (entry flags, paging controls, CPL, gates, stacks, an access or a software interrupt); both
// executors build it at the same physical and virtual addresses (LAYOUT), so every recorded address compares as it
// is, and only code addresses (which the model does not have) are recorded by role: the faulting instruction, the
// next one, or the fetch target.

/** Where everything a case touches lives, physically and virtually; the same in QEMU and in the model. */
export const LAYOUT = {
  /** The PML4 (CR3). Entry 0 maps the harness (identity, below); entry 1 is the test hierarchy's PML4E. */
  pml4: 0x70000,
  /** Harness map: PML4[0] -> PDPT -> PD; PD[0] -> a PT of 4 KiB pages for 0..2 MiB, PD[1..31] 2 MiB pages. */
  harnessPdpt: 0x71000,
  harnessPd: 0x72000,
  harnessPt: 0x73000,
  /** Harness identity map flags: P, R/W, U/S, A, D (A and D set so harness accesses write no paging entry). */
  harnessFlags: 0x67,
  /** Memory the harness identity-maps (and the model's machine size): 64 MiB. */
  memory: 64 * 1024 * 1024,
  /** The test hierarchy's tables below the PML4 (the PML4E is PML4[1] at pml4 + 8). */
  testPdpt: 0x200000,
  testPd: 0x201000,
  testPt: 0x202000,
  /**
   * The address every access goes to: PML4 index 1, PDPT index 1, PD index 3, PT index 3, offset 0x238. A 4 KiB
   * leaf maps it to data4k + 0x238, a 2 MiB leaf to data2m + 0x3238, a 1 GiB leaf to data1g + 0x603238.
   */
  testVa: 0x0000_0080_4060_3238,
  data4k: 0x300000,
  data2m: 0x400000,
  data1g: 0,
  /** The qword at the target before every case; its low byte 0xc3 is RET, so a fetch that succeeds returns. */
  initialValue: 0x1122_3344_5566_77c3n,
  /** What a write access stores; its low byte is RET too, so a fetch after a write still returns. */
  writeValue: 0x0123_4567_89ab_cdc3n,
  /** A non-canonical address (the first above the lower half), for #GP and #SS triggers. */
  nonCanonical: 0x0000_8000_0000_0000n,
  /** Stack pages (4 KiB each, in the harness PT, so a case can make one not present); the case RSP is inside. */
  stacks: {
    current: 0x90000,
    rsp0: 0x92000,
    ist1: 0x94000,
    ist2: 0x96000,
    ist3: 0x98000,
    user: 0x9a000,
  },
  /** RSP at the access (kernel) and at user entry; both 16-byte aligned; a case may subtract rspOffset. */
  kernelRsp: 0x90f00,
  userRsp: 0x9af00,
  /** RFLAGS at the access: bit 1 only (IF clear, so nothing external interrupts a case). */
  rflags: 0x2,
  /** RFLAGS at a self-IPI trigger: IF set, so the interrupt is accepted. */
  ipiRflags: 0x202,
  /** The software interrupt user code uses to return to the harness (a DPL 3 gate, never recorded). */
  returnVector: 0x81,
} as const;

export type StackName = keyof typeof LAYOUT.stacks;

/** The leaf's level: 1 = 4 KiB PTE, 2 = 2 MiB PDE (PS), 3 = 1 GiB PDPTE (PS). */
export type LeafLevel = 1 | 2 | 3;

/** One paging entry's bits other than the address of the next table or page: [bits 31:0, bits 63:32]. */
export type EntryBits = readonly [lo: number, hi: number];

export type AccessKind = 'read' | 'write' | 'fetch';

/** One step of a paging case. Every step but `access` runs at CPL 0. */
export type Step =
  /** An 8-byte access at LAYOUT.testVa: a load, a store of writeValue, or a jump to it with a return address pushed
   *  first, so RSP at the fetch is the case RSP (the target is RET). */
  | { readonly op: 'access'; readonly kind: AccessKind }
  /** Replaces an entry's bits (keeping its address) with an ordinary 8-byte store: no TLB flush. */
  | { readonly op: 'set-entry'; readonly level: 1 | 2 | 3 | 4; readonly bits: EntryBits }
  | { readonly op: 'invlpg' }
  /** MOV CR3, CR3: flushes non-global translations. */
  | { readonly op: 'reload-cr3' }
  /** CR4.PGE cleared and set again: flushes every translation, global ones too. */
  | { readonly op: 'toggle-pge' };

export interface PagingControls {
  /** CR0.WP. */
  readonly wp: boolean;
  /** EFER.NXE. */
  readonly nxe: boolean;
}

/** A translation case: a test hierarchy for LAYOUT.testVa, paging controls, a CPL, and steps. */
export interface PagingCase {
  readonly id: string;
  readonly family: 'paging' | 'accessed-dirty' | 'reserved' | 'tlb';
  readonly controls: PagingControls;
  /** The CPL of the access steps; a CPL 3 case has exactly one step, an access. */
  readonly cpl: 0 | 3;
  readonly leaf: LeafLevel;
  /** Bits of the PML4E, PDPTE, PDE and PTE down to the leaf (outermost first; 5 - leaf entries). */
  readonly entries: readonly EntryBits[];
  readonly steps: readonly Step[];
}

/** An IDT gate as a case sets it; unspecified fields are the defaults (DEFAULT_GATE). */
export interface GateSpec {
  /** A zeroed descriptor (no gate at all): delivery through it raises #GP(vector * 8 + 2 + EXT). */
  readonly missing?: boolean;
  readonly present?: boolean;
  readonly ist?: 0 | 1 | 2 | 3;
  readonly dpl?: 0 | 3;
  readonly selector?: number;
  readonly type?: 'interrupt' | 'trap';
}

/** Every gate is present, DPL 0, __KERNEL_CS, an interrupt gate on the current stack, except #DF on IST1. */
export const DEFAULT_GATE = { present: true, ist: 0, dpl: 0, selector: 0x10, type: 'interrupt' } as const;
export const DEFAULT_DF_IST = 1;

/** What a stack pointer the CPU may switch to points at: a mapped page (default), a not-present one, or garbage. */
export type StackState = 'not-present' | 'read-only' | 'non-canonical';

/**
 * What raises the first event: a read of LAYOUT.testVa with the test hierarchy not present (#PF), a read of
 * LAYOUT.nonCanonical (#GP(0)), a push with RSP loaded with `rsp` (16 hex digits, 64-bit; the push writes at
 * rsp - 8: #SS(0) if that is non-canonical, else #PF as nothing is mapped there), INT n, or an IPI the CPU sends
 * itself through its local APIC (a fixed `vector`, or an NMI), with RFLAGS.IF set (LAYOUT.ipiRflags): an external
 * event, accepted at the boundary after the instruction that sent it (CPL 0 only); or IRETQ from CPL 0 through a
 * frame the kernel pushed (SS `ss`, RSP LAYOUT.userRsp, RFLAGS LAYOUT.rflags, CS `cs`, RIP user code that returns
 * with INT returnVector, or LAYOUT.nonCanonical), whose selectors and RIP IRET checks (CPL 0 only).
 */
export type Trigger =
  | { readonly kind: 'page-fault' }
  | { readonly kind: 'general-protection' }
  | { readonly kind: 'push'; readonly rsp: string }
  | { readonly kind: 'int'; readonly vector: number }
  | { readonly kind: 'self-ipi'; readonly vector: number; readonly nmi: boolean }
  | { readonly kind: 'iret'; readonly cs: number; readonly ss: number; readonly rip: 'user' | 'non-canonical' };

/** An exception-delivery case: gates and stacks arranged so that one trigger delivers, escalates or shuts down. */
export interface DeliveryCase {
  readonly id: string;
  readonly family: 'delivery';
  readonly cpl: 0 | 3;
  readonly trigger: Trigger;
  /** Gate overrides by vector (0..255); the rest are DEFAULT_GATE. */
  readonly gates: Readonly<Record<number, GateSpec>>;
  /** Stack overrides: RSP0 (TSS), IST1..3 (TSS), and the current stack (the interrupted RSP's page). */
  readonly stacks: Readonly<Partial<Record<'current' | 'rsp0' | 'ist1' | 'ist2' | 'ist3', StackState>>>;
  /** Subtracted from the interrupted RSP (kernel or user): 8 tests the 16-byte alignment of the frame. */
  readonly rspOffset: number;
}

export type Case = PagingCase | DeliveryCase;

/** Which stack a frame was pushed on, found from its address. */
export type FrameStack = StackName | 'other';

/** The handler that ran first (the event delivered), and what it found. Numbers are hex strings of 64 bits. */
export interface Delivered {
  readonly vector: number;
  /** The error-code slot, or null when the frame has none (the frame's size says). */
  readonly errorCode: number | null;
  readonly cr2: string;
  readonly stack: FrameStack;
  /** Frame address minus the page base of its stack (0x1000 - 48 for a 6-slot frame at an aligned top). */
  readonly frameOffset: number;
  /** Saved RIP by role: the instruction that faulted, the one after it (INT n), the fetch target, or hex. */
  readonly rip: 'fault' | 'next' | 'target' | string;
  readonly cs: number;
  readonly rflags: string;
  readonly rsp: string;
  readonly ss: number;
}

/** What one access (or trigger) did. */
export interface StepResult {
  /** An event was raised (for INT n: always). */
  readonly event: boolean;
  /** The value a read returned, when it did not fault. */
  readonly value?: string;
  /** Vectors whose delivery began, in order (a #PF that became #DF: [14, 8]). */
  readonly attempts?: readonly number[];
  /** The first handler that ran, absent after a triple fault. */
  readonly delivered?: Delivered;
  /** The CPU shut down (triple fault). */
  readonly shutdown?: boolean;
}

/** A case's recording: per access or trigger, and for paging cases the entries and the target qword after. */
export interface Observation {
  readonly steps: readonly StepResult[];
  /** Each test entry after the case, outermost first, as 16 hex digits. */
  readonly entries?: readonly string[];
  /** The qword at the target's physical address after the case. */
  readonly memory?: string;
}

/** One field where the oracle's observation and the model's differ (compare.ts finds them, departures.ts explains). */
export interface Difference {
  /** Where in the Observation, e.g. "steps[0].delivered.errorCode". */
  readonly path: string;
  readonly oracle: unknown;
  readonly model: unknown;
}

/** Physical address of the target qword for a leaf level. */
export function targetPhysical(leaf: LeafLevel): number {
  const va = LAYOUT.testVa;
  if (leaf === 1) return LAYOUT.data4k + (va % 0x1000);
  if (leaf === 2) return LAYOUT.data2m + (va % 0x200000);
  return LAYOUT.data1g + (va % 0x40000000);
}

/** Physical address of each test entry, outermost first, for a leaf level (the PML4E is PML4[1]). */
export function entryAddresses(leaf: LeafLevel): number[] {
  const va = LAYOUT.testVa;
  const index = (level: number) => Math.floor(va / 2 ** (12 + 9 * (level - 1))) % 512;
  const tables = [LAYOUT.pml4, LAYOUT.testPdpt, LAYOUT.testPd, LAYOUT.testPt];
  return tables.slice(0, 5 - leaf).map((table, i) => table + 8 * index(4 - i));
}

/** The address each test entry holds, outermost first: the next table, then the leaf's page. */
export function entryTargets(leaf: LeafLevel): number[] {
  const next = [LAYOUT.testPdpt, LAYOUT.testPd, LAYOUT.testPt];
  const page = leaf === 1 ? LAYOUT.data4k : leaf === 2 ? LAYOUT.data2m : LAYOUT.data1g;
  return [...next.slice(0, 4 - leaf), page];
}

/** The 64-bit value of a test entry: its address with the case's bits. */
export function entryValue(address: number, bits: EntryBits): bigint {
  return BigInt(address) | BigInt(bits[0] >>> 0) | (BigInt(bits[1] >>> 0) << 32n);
}

/** 64-bit hex, 16 digits, as every recorded number is written. */
export function hex64(value: bigint | number): string {
  return BigInt.asUintN(64, BigInt(value)).toString(16).padStart(16, '0');
}

/** Which stack an address is on (the page at or below it), for Delivered.stack. */
export function stackOf(address: number): { stack: FrameStack; offset: number } {
  for (const [name, base] of Object.entries(LAYOUT.stacks)) {
    if (address >= base && address < base + 0x1000) return { stack: name as StackName, offset: address - base };
  }
  return { stack: 'other', offset: 0 };
}
