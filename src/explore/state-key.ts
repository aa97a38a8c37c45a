import type { Machine } from '../machine/machine.ts';

// A fingerprint of a machine's final state, for counting the distinct final states an exploration reached: the
// contents of every frame written since the machine was made, each CPU's state and registers (and RIP, while in
// a program), the IPIs in flight, and the outcome. Two 32-bit multiplicative lanes with different constants, so
// that a collision needs both; written without closures, as it runs once per execution.

const P1 = 0x01000193;
const P2 = 0x5bd1e995;

export function finalStateKey(m: Machine): string {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  const pfns = m.memory.ownFramePfns();
  for (const pfn of pfns) {
    const frame = m.memory.frame(pfn, false);
    a = Math.imul(a ^ pfn, P1);
    b = Math.imul(b ^ pfn, P2);
    // Most words of most frames are zero: mixing only the others (with their offsets) keeps this cheap.
    // Four words at a time, as whole runs of zeros are the common case.
    const words = new Int32Array(frame.buffer, frame.byteOffset, frame.byteLength >> 2);
    for (let q = 0; q < words.length; q += 4) {
      if ((words[q]! | words[q + 1]! | words[q + 2]! | words[q + 3]!) === 0) continue;
      for (let i = q; i < q + 4; i++) {
        const w = words[i]!;
        if (w === 0) continue;
        a = Math.imul(Math.imul(a ^ i, P1) ^ w, P1);
        b = Math.imul(Math.imul(b ^ w, P2) ^ i, P2) ^ (b >>> 13);
      }
    }
  }
  for (const cpu of m.cpus) {
    // A program's RIP counts the instructions it ran (see Cpu.rip): where a halted CPU's finished program stopped
    // says how often it looped, not where it is. It counts only for a CPU still in a program.
    const halted = cpu.state === 'halted';
    const r = cpu.regs;
    const values = [cpu.id, cpu.status, halted ? 0 : cpu.rip, halted ? 0 : cpu.depth, r.rsp, r.rflags, r.cpl, r.ss];
    values.push(r.cr0, r.cr2, r.cr3, r.cr4, r.efer);
    for (const v of values) {
      const lo = v | 0;
      const hi = (v / 2 ** 32) | 0;
      a = Math.imul(Math.imul(a ^ lo, P1) ^ hi, P1);
      b = Math.imul(Math.imul(b ^ hi, P2) ^ lo, P2) ^ (b >>> 13);
    }
  }
  for (const ipi of m.ipiBus.inFlight) {
    a = Math.imul(Math.imul(a ^ ipi.to, P1) ^ ipi.vector, P1);
    b = Math.imul(Math.imul(b ^ ipi.vector, P2) ^ ipi.to, P2) ^ (b >>> 13);
  }
  return `${m.outcome}:${(a >>> 0).toString(16)}${(b >>> 0).toString(16).padStart(8, '0')}`;
}
