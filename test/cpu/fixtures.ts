// Shared set-up for the CPU and machine behaviour tests: kernel data pages, page-table edits made by programs
// through the direct map (as kernel code makes them), IST stacks, and readers of frames left in memory.
import type { Assembler } from '../../src/cpu/assembler.ts';
import type { Instruction } from '../../src/cpu/instruction.ts';
import { RFLAGS, SELECTOR } from '../../src/cpu/registers.ts';
import type { ExceptionEvent, StepEvent } from '../../src/cpu/step-event.ts';
import type { Machine } from '../../src/machine/machine.ts';
import { fromCanonicalHalves, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';

/** Kernel data pages in vmalloc space, away from the boot's stacks. */
export const DATA = toVirtual(0xffff_c900_0100_0000n);
export const FLAGS = toVirtual(0xffff_c900_0100_1000n);
/** A page no boot mapping covers. */
export const UNMAPPED = toVirtual(0xffff_c900_0200_0000n);
/** Where a test maps an extra IST stack page. */
export const EXTRA_STACK = toVirtual(0xffff_c900_0300_0000n);
/** The first address past the lower canonical half: any access to it is non-canonical. */
export const NON_CANONICAL = 0x0000_8000_0000_0000n;
/** The vector tests use for IPIs (Linux's CALL_FUNCTION_VECTOR is 0xfb; any fixed vector 16..255 works). */
export const IPI_VECTOR = 0xf0;

/** User mode: the selectors and RFLAGS (IF set) of an iret frame to CPL 3, and a user stack and data page. */
export const USER_CS = SELECTOR.USER_CS;
export const USER_SS = SELECTOR.USER_SS;
export const USER_RFLAGS = RFLAGS.FIXED | RFLAGS.IF;
export const USER_STACK = toVirtual(0x0000_7fff_f000_0000n);
export const USER_STACK_TOP = USER_STACK + PAGE_SIZE;
export const USER_DATA = toVirtual(0x0000_0000_0060_0000n);

export type Body = Generator<Instruction, void, number>;

/** Gives CPU `cpu` an IPI_VECTOR gate whose handler only EOIs (an interrupt gate on the current stack). */
export function setEoiHandler(m: Machine, cpu: number): void {
  m.cpu(cpu).setGate(IPI_VECTOR, {
    handler: function* (x) {
      yield x.eoi();
    },
    ist: 0,
    type: 'interrupt',
  });
}

/** Program fragment: clears P in the PTE of `va` with a load and a 4-byte store through the direct map. */
export function* clearPresent(x: Assembler, m: Machine, va: number): Body {
  const pte = m.directMap(m.pteAddress(va));
  const low = yield x.load(pte, 4);
  yield x.store(pte, 4, (low & ~PTE_LO.P) >>> 0);
}

/** Program fragment: sets P in the PTE of `va` again (the entry kept its frame). */
export function* setPresent(x: Assembler, m: Machine, va: number): Body {
  const pte = m.directMap(m.pteAddress(va));
  const low = yield x.load(pte, 4);
  yield x.store(pte, 4, (low | PTE_LO.P) >>> 0);
}

/** The low half of the PTE of `va`, read physically (no TLB, no A/D update). */
export function pteLow(m: Machine, va: number): number {
  return m.memory.read32(m.pteAddress(va));
}

/** Maps one page at `va` and makes it the IST stack `index` of CPU `cpu`; returns the stack top. */
export function useIstStack(m: Machine, cpu: number, index: number, va = EXTRA_STACK): number {
  m.map(va, { writable: true });
  const top = va + PAGE_SIZE;
  m.cpu(cpu).tss.ist[index] = top;
  return top;
}

/** The 8 bytes at `va` read as a canonical address (a saved RIP or RSP), through the page tables. */
export function readSavedAddress(m: Machine, va: number): number {
  const pa = m.physicalAddress(va);
  if (pa === undefined) throw new Error('readSavedAddress: page not mapped');
  return fromCanonicalHalves(m.memory.read32(pa), m.memory.read32(pa + 4));
}

/** The 8 bytes at `va` as a number (selectors, RFLAGS, error codes), through the page tables. */
export function readSavedValue(m: Machine, va: number): number {
  const pa = m.physicalAddress(va);
  if (pa === undefined) throw new Error('readSavedValue: page not mapped');
  return m.memory.read64(pa);
}

/** A 64-bit exception frame as it sits in memory at `rsp` (which points at the error code when there is one). */
export function readFrame(m: Machine, rsp: number, errorCode: boolean) {
  const base = rsp + (errorCode ? 8 : 0);
  return {
    ...(errorCode ? { errorCode: readSavedValue(m, rsp) } : {}),
    rip: readSavedAddress(m, base),
    cs: readSavedValue(m, base + 8),
    rflags: readSavedValue(m, base + 16),
    rsp: readSavedAddress(m, base + 24),
    ss: readSavedValue(m, base + 32),
  };
}

/** The first step event that raised exceptions. */
export function faultingStep(m: Machine): StepEvent {
  const event = m.trace.find((e) => e.exceptions !== undefined);
  if (!event) throw new Error('no step raised an exception');
  return event;
}

/** The exception chain of a step as (vector, outcome, during) triples, for compact comparisons. */
export function chain(event: StepEvent): { vector: number; outcome: ExceptionEvent['outcome']; during?: number }[] {
  return (event.exceptions ?? []).map((e) => ({
    vector: e.vector,
    outcome: e.outcome,
    ...(e.during === undefined ? {} : { during: e.during }),
  }));
}
