import { formatVirtual } from '../mmu/address.ts';
import type { Cpu } from './cpu.ts';
import { escalate, VECTOR, vectorInfo, vectorName } from './exceptions.ts';
import { RFLAGS, SELECTOR } from './registers.ts';
import type { ExceptionEvent } from './step-event.ts';

// 64-bit exception and interrupt delivery (SDM Vol. 3 §6.14.2-6.14.5) with nested-fault escalation (Table 6-5):
// pick the stack (IST from the gate, RSP0 on a privilege change, else the current RSP), align it to 16, push SS,
// RSP, RFLAGS, CS, RIP and the error code through the MMU as supervisor writes, then start the handler. A fault
// while pushing is a second exception; the escalation table decides whether it is delivered instead (serial),
// becomes #DF, or shuts the CPU down (triple fault). The interrupted state is untouched until a push succeeds.

const frameSlots = new Float64Array(6);

/** Delivers an exception (`external` = false) or an accepted interrupt/IPI/NMI (`external` = true). */
export function deliverEvent(cpu: Cpu, vector: number, errorCode: number, external: boolean): void {
  const log = cpu.exceptionLog;
  let during = -1;
  let ext = external;
  for (;;) {
    const info = vectorInfo(vector);
    const gate = cpu.idt[vector];
    const entry: { -readonly [K in keyof ExceptionEvent]: ExceptionEvent[K] } = {
      vector,
      name: vectorName(vector),
      errorCode,
      outcome: 'delivered',
    };
    if (vector === VECTOR.PF) entry.cr2 = cpu.regs.cr2;
    if (during >= 0) entry.during = during;
    log.push(entry);

    let secondVector: number;
    let secondCode: number;
    let secondCr2 = 0;
    if (!gate) {
      // A missing IDT entry raises #NP with an IDT-flavoured error code (SDM §6.13: index, IDT bit, EXT bit).
      secondVector = VECTOR.NP;
      secondCode = vector * 8 + 2 + (ext ? 1 : 0);
    } else {
      const regs = cpu.regs;
      const stackSource = gate.ist !== 0 ? `ist${gate.ist}` : regs.cpl !== 0 ? 'rsp0' : 'current';
      const top = gate.ist !== 0 ? cpu.tss.ist[gate.ist]! : regs.cpl !== 0 ? cpu.tss.rsp0 : regs.rsp;
      const aligned = top - (top % 16);
      const slots = info.errorCode ? 6 : 5;
      const base = aligned - 8 * slots;
      if (cpu.port.translateStackWrite(base, slots, frameSlots)) {
        const user = regs.cpl === 3;
        const k = info.errorCode ? 1 : 0;
        const port = cpu.port;
        port.writeAt(frameSlots[k + 4]!, user ? SELECTOR.USER_SS : SELECTOR.KERNEL_SS);
        port.writeAddressAt(frameSlots[k + 3]!, regs.rsp);
        port.writeAt(frameSlots[k + 2]!, regs.rflags);
        port.writeAt(frameSlots[k + 1]!, user ? SELECTOR.USER_CS : SELECTOR.KERNEL_CS);
        port.writeAddressAt(frameSlots[k]!, cpu.rip);
        if (info.errorCode) port.writeAt(frameSlots[0]!, errorCode);
        regs.rsp = base;
        regs.cpl = 0;
        if (gate.type === 'interrupt') regs.rflags &= ~RFLAGS.IF;
        entry.stack = stackSource;
        entry.rsp = base;
        if (cpu.port.footprint) cpu.port.footprint.accepted.push(vector);
        cpu.startHandler(gate, vector, errorCode, info.errorCode, external && ext);
        return;
      }
      entry.outcome = 'frame-fault';
      secondVector = cpu.port.fault.vector;
      secondCode = cpu.port.fault.errorCode;
      secondCr2 = cpu.port.fault.cr2;
    }
    if (!gate) entry.outcome = 'frame-fault';
    // The second exception: CR2 is overwritten by a nested #PF even when it becomes #DF (SDM §6.15, int 14).
    if (secondVector === VECTOR.PF) cpu.regs.cr2 = secondCr2;
    const action = escalate(vector, secondVector);
    cpu.lastException = { vector: secondVector, errorCode: secondCode, cr2: cpu.regs.cr2 };
    if (action === 'serial') {
      during = vector;
      vector = secondVector;
      errorCode = secondCode;
      ext = false;
      continue;
    }
    const nested: ExceptionEvent = {
      vector: secondVector,
      name: vectorName(secondVector),
      errorCode: secondCode,
      during: vector,
      outcome: action,
      ...(secondVector === VECTOR.PF ? { cr2: secondCr2 } : {}),
    };
    log.push(nested);
    if (action === 'triple-fault') {
      cpu.shutdown(
        `triple fault: ${nested.name} (error code ${secondCode}) while delivering ${vectorName(vector)}` +
          (secondVector === VECTOR.PF ? ` (CR2 ${formatVirtual(secondCr2)})` : ''),
      );
      return;
    }
    // #DF: abort class, error code always 0 (SDM §6.15, interrupt 8).
    during = vector;
    vector = VECTOR.DF;
    errorCode = 0;
    ext = false;
    cpu.lastException = { vector: VECTOR.DF, errorCode: 0, cr2: cpu.regs.cr2 };
  }
}
