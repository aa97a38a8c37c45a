import { formatVirtual, NON_CANONICAL, offsetAddress } from '../mmu/address.ts';
import { describeHex } from '../mmu/input-error.ts';
import { poppedWord } from '../mmu/physical-memory.ts';
import { ACCESS, VECTOR_GP } from '../mmu/walker.ts';
import type { Activation } from './activation.ts';
import type { ExecutionContext } from './context.ts';
import type { CpuCore } from './core.ts';
import { deliverEvent, EVENT_SOURCE } from './delivery.ts';
import { VECTOR, vectorInfo, vectorName } from './exceptions.ts';
import type { Instruction } from './instruction.ts';
import { RFLAGS } from './registers.ts';
import { checkReturnSelectors } from './segments.ts';
import { RIP_STRIDE, STATUS } from './status.ts';

// Control transfers: call and ret through return addresses in memory, INT n, and iret, to the context a handler
// interrupted or into user mode. Each pops or pushes through the MMU and checks the popped bytes against the
// continuation it is about to resume (DESIGN.md "Execution model"): a mismatch stops the CPU (stack corruption).

/**
 * switch_to(): the program resumes after this instruction when `from` runs again; the CPU now runs `to`'s control
 * stack on `to`'s RSP (a fresh context: its program from the start). Nothing is read or written: the first access
 * on the new stack comes with the next instruction.
 */
export function switchContext(cpu: CpuCore, act: Activation, ins: Instruction): void {
  if (cpu.regs.cpl !== 0) return cpu.raise(VECTOR_GP, 0, 0);
  // The Assembler's switchContext checked both are ExecutionContexts (the instruction record keeps them opaque).
  const from = ins.aux!.from as ExecutionContext;
  const to = ins.aux!.to as ExecutionContext;
  // A fresh context's program is started before anything is saved: one that cannot start changes nothing.
  const fresh = to.saved === undefined ? cpu.activation('task', to.program!, to.args, 0, false) : undefined;
  cpu.complete(act, 0);
  from.saved = cpu.activations.slice();
  from.rsp = cpu.regs.rsp;
  cpu.replaceControlStack(fresh ? [fresh] : to.saved!);
  to.saved = undefined;
  cpu.regs.rsp = to.rsp;
  cpu.status = STATUS.RUNNING;
}

/**
 * INT n / INT3: delivered through the IDT as a trap (the frame saves the next RIP). When a fault raised while
 * delivering it is delivered instead, the INT stays pending and re-executes after that handler's iret.
 */
export function softwareInterrupt(cpu: CpuCore, act: Activation, vector: number): void {
  const next = act.codeBase + RIP_STRIDE * (act.index + 1);
  if (deliverEvent(cpu, vector, 0, EVENT_SOURCE.SOFTWARE, next)) {
    // The INT completed: the interrupted program resumes after it once the handler irets.
    act.pending = undefined;
    act.index++;
    act.resume = 0;
    cpu.lastResult = 0;
  }
}

export function call(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const rsp = offsetAddress(cpu.regs.rsp, -8);
  const pa = cpu.port.translate(rsp, cpu.userAccess | ACCESS.WRITE | ACCESS.STACK);
  if (pa < 0) return cpu.raiseFault();
  // The callee's generator is made before the return address is written: a callee that cannot start changes nothing.
  const callee = cpu.activation('call', ins.aux!.program!, ins.aux!.args ?? [], 0, false);
  const returnAddress = act.codeBase + RIP_STRIDE * (act.index + 1);
  if (cpu.port.storeBuffer === undefined) cpu.port.writeAddressAt(pa, returnAddress);
  else if (!cpu.port.bufferAddressAt(rsp, pa, returnAddress)) return cpu.raiseFault();
  cpu.regs.rsp = rsp;
  cpu.pushActivation(callee);
}

export function corrupted(cpu: CpuCore, what: string, popped: number, expected: number): void {
  cpu.stop({
    outcome: 'stack-corruption',
    message: `${what} popped ${formatVirtual(popped)} but the continuation is at ${formatVirtual(expected)}`,
  });
}

export function ret(cpu: CpuCore, act: Activation, ins: Instruction): void {
  if (act.kind === 'task') {
    // `ret` from the task program itself ends it: the CPU idles.
    act.pending = undefined;
    act.finished = true;
    cpu.status = STATUS.HALTED;
    return;
  }
  const caller = cpu.activations[cpu.activations.length - 2]!;
  const popped = cpu.port.readAddress(cpu.regs.rsp, cpu.userAccess | ACCESS.STACK);
  if (popped < 0) return cpu.raiseFault();
  // readAddress read the word's high half last.
  const pa = cpu.port.lastPa - 4;
  const expected = caller.codeBase + RIP_STRIDE * (caller.index + 1);
  if (act.kind !== 'call' || popped !== expected) return corrupted(cpu, 'ret', popped, expected);
  if (cpu.memory.dead !== undefined) poppedWord(cpu.memory, pa);
  cpu.regs.rsp = offsetAddress(cpu.regs.rsp, 8);
  cpu.popActivation();
  cpu.complete(caller, ins.value);
}

/** Physical addresses of the five words an IRET pops (scratch). */
const framePas = new Float64Array(5);

export function iret(cpu: CpuCore, act: Activation, toFixup: boolean): void {
  const handler = act.kind === 'handler';
  // An abort (#DF, #MC) saves an undefined CS:RIP and cannot be returned from (SDM §6.5, §6.15 interrupt 8); the
  // same vector entered by INT n has a trap frame and returns like any other (IRET ignores the vector).
  if (handler && act.byException && vectorInfo(act.vector).kind === 'abort') {
    return cpu.stop({
      outcome: act.vector === VECTOR.DF ? 'double-fault' : 'oops',
      message: `iret from ${vectorName(act.vector)}: an abort is not restartable (its saved RIP is undefined)`,
    });
  }
  // Linux's exit path drops the error code (addq $8, %rsp) before IRETQ pops RIP, CS, RFLAGS, RSP, SS.
  const base = offsetAddress(cpu.regs.rsp, handler && act.errorCodePushed ? 8 : 0);
  const access = cpu.userAccess | ACCESS.STACK;
  const frame = framePas;
  const rip = cpu.port.readAddress(base, access);
  if (rip < 0) return cpu.raiseFault();
  frame[0] = cpu.port.lastPa - 4; // readAddress reads the high half last
  const cs = cpu.port.read(offsetAddress(base, 8), 8, access);
  if (cs < 0) return cpu.raiseFault();
  frame[1] = cpu.port.lastPa;
  const rflags = cpu.port.read(offsetAddress(base, 16), 8, access);
  if (rflags < 0) return cpu.raiseFault();
  frame[2] = cpu.port.lastPa;
  const rsp = cpu.port.readAddress(offsetAddress(base, 24), access);
  if (rsp < 0) return cpu.raiseFault();
  frame[3] = cpu.port.lastPa - 4;
  const ss = cpu.port.read(offsetAddress(base, 32), 8, access);
  if (ss < 0) return cpu.raiseFault();
  frame[4] = cpu.port.lastPa;
  // The popped CS and SS are checked before anything changes (SDM Vol. 2 IRET, IA-32e mode).
  const selectorFault = checkReturnSelectors(cs % 0x10000, ss % 0x10000, cpu.regs.cpl);
  if (selectorFault) return cpu.raise(selectorFault.vector, selectorFault.errorCode, 0);
  // A non-canonical return RIP is #GP(0) (SDM Vol. 2 IRET, IA-32e mode), before any continuation check.
  if (rip >= NON_CANONICAL) return cpu.raise(VECTOR_GP, 0, 0);
  if (!handler) return enterUser(cpu, rip, cs, rflags, rsp, ss);
  const below = cpu.activations[cpu.activations.length - 2];
  if (!below) {
    return cpu.stop({ outcome: 'stack-corruption', message: 'iret with no interrupted context on the stack' });
  }
  const expected = below.codeBase + RIP_STRIDE * below.index;
  if (rip !== expected) return corrupted(cpu, 'iret', rip, expected);
  if (toFixup && below.pending?.fixup === undefined) {
    return cpu.stop({ outcome: 'oops', message: 'iret to a fixup, but the interrupted instruction has none' });
  }
  // The stateful checker leaves the popped frame out of the state until its words are written again (DeadWords).
  if (cpu.memory.dead !== undefined) for (let k = 0; k < 5; k++) poppedWord(cpu.memory, frame[k]!);
  cpu.regs.rsp = rsp;
  cpu.regs.rflags = (rflags | RFLAGS.FIXED) >>> 0;
  cpu.regs.cpl = (cs & 3) === 3 ? 3 : 0;
  cpu.regs.ss = ss % 0x10000;
  cpu.nmiBlocked = false;
  cpu.popActivation();
  if (toFixup) {
    below.progress = 0; // a copy completed by its fixup starts afresh next time
    cpu.complete(below, below.pending!.fixup!);
  }
  cpu.status = below.finished ? STATUS.HALTED : STATUS.RUNNING;
}

/**
 * IRET outside a handler, from a frame the kernel code pushed: to a user entry (CS RPL 3, RIP from userEntry())
 * it enters user mode there, and the kernel's control stack is dropped, as a kernel stack is empty while its
 * task runs in user mode. Any other RIP is a corrupted frame.
 */
export function enterUser(cpu: CpuCore, rip: number, cs: number, rflags: number, rsp: number, ss: number): void {
  const entry = (cs & 3) === 3 ? cpu.userEntries.get(rip) : undefined;
  if (!entry) {
    return cpu.stop({
      outcome: 'stack-corruption',
      message:
        `iret outside a handler popped RIP ${formatVirtual(rip)} with CS ${describeHex(cs)}, ` +
        'which is no user entry: iret returns from a handler, or enters user mode at x.userEntry(program)',
    });
  }
  const user = cpu.activation('task', entry.program, entry.args, 0, false, 0, rip);
  cpu.activations.length = 0;
  cpu.pushActivation(user);
  cpu.regs.rsp = rsp;
  cpu.regs.rflags = (rflags | RFLAGS.FIXED) >>> 0;
  cpu.regs.cpl = 3;
  cpu.regs.ss = ss % 0x10000;
  cpu.nmiBlocked = false;
  cpu.status = STATUS.RUNNING;
}
