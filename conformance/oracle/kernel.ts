import {
  type Case,
  DEFAULT_GATE,
  type DeliveryCase,
  entryAddresses,
  entryTargets,
  entryValue,
  type GateSpec,
  LAYOUT,
  type PagingCase,
  type Step,
  targetPhysical,
} from '../case.ts';

// Writes cases.S, the part of the oracle's test kernel that is generated: one straight-line block per case that
// calls harness.S's routines to set the case up, runs each access or trigger at its CPL with the exact RSP and
// RFLAGS of LAYOUT, and prints what the handlers recorded. The case number is its index in generateCases().

const hex = (n: number | bigint) => `0x${BigInt.asUintN(64, BigInt(n)).toString(16)}`;

/** IDT attribute word (bits 15:8 P, DPL, type; bits 2:0 IST) for a gate spec over the defaults. */
function gateAttributes(vector: number, spec: GateSpec): number {
  const present = spec.present ?? DEFAULT_GATE.present;
  const dpl = spec.dpl ?? (vector === LAYOUT.returnVector ? 3 : DEFAULT_GATE.dpl);
  const type = (spec.type ?? DEFAULT_GATE.type) === 'interrupt' ? 0xe : 0xf;
  const ist = spec.ist ?? (vector === 8 ? 1 : DEFAULT_GATE.ist);
  return ((present ? 0x80 : 0) | (dpl << 5) | type) * 256 + ist;
}

/** TSS offsets of RSP0 and IST1..3 (SDM Vol. 3 Figure 8-11). */
const TSS_OFFSET = { rsp0: 4, ist1: 0x24, ist2: 0x2c, ist3: 0x34 } as const;
const TSS = 0x61000;
/** The local APIC's interrupt command register (xAPIC MMIO, mapped by harness.S). */
const APIC_ICR_LOW = 0xfee00300;
const APIC_ICR_HIGH = 0xfee00310;
const HARNESS_PT = 0x73000;

class Emitter {
  readonly lines: string[] = [];
  emit(...lines: string[]): void {
    for (const line of lines) this.lines.push(line.endsWith(':') ? line : `        ${line}`);
  }
}

/** The code of one access or trigger at `cpl`: `body` is the instruction(s) that fault, `prefix` what precedes. */
function emitStep(
  e: Emitter,
  label: string,
  cpl: 0 | 3,
  rsp: number,
  load: { rbx: bigint | number },
  prefix: string[],
  body: string[],
  rflags: number = LAYOUT.rflags,
): void {
  e.emit(
    `lea ${label}_fault(%rip), %rdi`,
    `lea ${label}_next(%rip), %rsi`,
    `lea ${label}_resume(%rip), %rdx`,
    'call step_begin',
    `movabs $${hex(load.rbx)}, %rbx`,
    `movabs $${hex(LAYOUT.writeValue)}, %rcx`,
  );
  if (cpl === 0) {
    e.emit(`pushq $${hex(rflags)}`, 'popfq', `mov $${hex(rsp)}, %rsp`, ...prefix);
    e.emit(`${label}_fault:`, ...body, `${label}_next:`, 'mov %rax, step_value(%rip)');
  } else {
    // Enter CPL 3 as Linux does: an IRET frame (SS, RSP, RFLAGS, CS, RIP). User code returns with INT 0x81.
    e.emit(
      'pushq $0x2b',
      `pushq $${hex(rsp)}`,
      `pushq $${hex(LAYOUT.rflags)}`,
      'pushq $0x33',
      `lea ${label}_user(%rip), %rax`,
      'push %rax',
      'iretq',
      `${label}_user:`,
      ...prefix,
    );
    e.emit(`${label}_fault:`, ...body, `${label}_next:`, `int $${hex(LAYOUT.returnVector)}`);
  }
  e.emit(`${label}_resume:`, 'mov harness_rsp(%rip), %rsp', 'call step_end');
}

/** An access: a load, a store of writeValue (in RCX), or a jump to the target with a return address pushed. */
function emitAccess(e: Emitter, label: string, cpl: 0 | 3, kind: 'read' | 'write' | 'fetch'): void {
  const base = cpl === 0 ? LAYOUT.kernelRsp : LAYOUT.userRsp;
  if (kind === 'fetch') {
    // The return address is pushed first, so RSP at the fetch is the case's RSP, as for a load or store.
    const prefix = [`lea ${label}_next(%rip), %rax`, 'push %rax'];
    emitStep(e, label, cpl, base + 8, { rbx: LAYOUT.testVa }, prefix, ['jmp *%rbx']);
  } else {
    const body = kind === 'read' ? ['mov (%rbx), %rax'] : ['mov %rcx, (%rbx)'];
    emitStep(e, label, cpl, base, { rbx: LAYOUT.testVa }, [], body);
  }
}

function emitSetUpStep(e: Emitter, c: PagingCase, step: Exclude<Step, { op: 'access' }>): void {
  switch (step.op) {
    case 'set-entry': {
      const i = 4 - step.level;
      const address = entryAddresses(c.leaf)[i]!;
      const value = entryValue(entryTargets(c.leaf)[i]!, step.bits);
      e.emit(`movabs $${hex(value)}, %rax`, `mov %rax, ${hex(address)}`);
      return;
    }
    case 'invlpg':
      e.emit(`movabs $${hex(LAYOUT.testVa)}, %rax`, 'invlpg (%rax)');
      return;
    case 'reload-cr3':
      e.emit('mov %cr3, %rax', 'mov %rax, %cr3');
      return;
    case 'toggle-pge':
      e.emit('mov %cr4, %rax', 'and $~0x80, %rax', 'mov %rax, %cr4', 'or $0x80, %rax', 'mov %rax, %cr4');
      return;
  }
}

function emitPagingCase(e: Emitter, n: number, c: PagingCase): void {
  e.emit(`mov $${c.controls.wp ? 1 : 0}, %edi`, 'call set_wp', `mov $${c.controls.nxe ? 1 : 0}, %edi`, 'call set_nxe');
  const addresses = entryAddresses(c.leaf);
  const targets = entryTargets(c.leaf);
  c.entries.forEach((bits, i) => {
    e.emit(`movabs $${hex(entryValue(targets[i]!, bits))}, %rax`, `mov %rax, ${hex(addresses[i]!)}`);
  });
  e.emit('call flush_all');
  c.steps.forEach((step, s) => {
    if (step.op === 'access') emitAccess(e, `c${n}_${s}`, c.cpl, step.kind);
    else emitSetUpStep(e, c, step);
  });
  e.emit(
    `mov $${addresses.length}, %rdi`,
    `lea c${n}_entries(%rip), %rsi`,
    `mov $${hex(targetPhysical(c.leaf))}, %rdx`,
    'call case_end',
    '.pushsection .data',
    `c${n}_entries:`,
    `.quad ${addresses.map(hex).join(', ')}`,
    '.popsection',
  );
}

function emitDeliveryCase(e: Emitter, n: number, c: DeliveryCase): void {
  for (const [key, spec] of Object.entries(c.gates)) {
    const vector = Number(key);
    if (spec.missing) e.emit(`mov $${vector}, %edi`, 'call clear_gate');
    else {
      const selector = spec.selector ?? DEFAULT_GATE.selector;
      e.emit(`mov $${vector}, %edi`, `mov $${hex(gateAttributes(vector, spec))}, %esi`, `mov $${hex(selector)}, %edx`);
      e.emit('call set_gate');
    }
  }
  for (const [name, state] of Object.entries(c.stacks)) {
    const page = LAYOUT.stacks[name as keyof typeof LAYOUT.stacks];
    if (state === 'non-canonical') {
      const offset = TSS_OFFSET[name as keyof typeof TSS_OFFSET];
      e.emit(`movabs $${hex(LAYOUT.nonCanonical)}, %rax`, `mov %rax, ${hex(TSS + offset)}`);
    } else {
      const flags = state === 'not-present' ? LAYOUT.harnessFlags & ~1 : LAYOUT.harnessFlags & ~2;
      e.emit(`movq $${hex(page + flags)}, ${hex(HARNESS_PT + 8 * (page / 4096))}`);
    }
  }
  e.emit('call flush_all');
  const label = `c${n}_0`;
  const rsp = (c.cpl === 0 ? LAYOUT.kernelRsp : LAYOUT.userRsp) - c.rspOffset;
  const t = c.trigger;
  if (t.kind === 'page-fault') emitStep(e, label, c.cpl, rsp, { rbx: LAYOUT.testVa }, [], ['mov (%rbx), %rax']);
  else if (t.kind === 'general-protection') {
    emitStep(e, label, c.cpl, rsp, { rbx: LAYOUT.nonCanonical }, [], ['mov (%rbx), %rax']);
  } else if (t.kind === 'push') {
    emitStep(e, label, c.cpl, rsp, { rbx: BigInt(`0x${t.rsp}`) }, ['mov %rbx, %rsp'], ['push %rax']);
  } else if (t.kind === 'self-ipi') {
    // The ICR's low half: the vector, fixed (000) or NMI (100) delivery, the "self" shorthand (01) for a fixed IPI
    // (the shorthand takes only fixed delivery, so an NMI names APIC ID 0 in the high half instead).
    const icr = t.nmi ? 0x400 : 0x40000 | t.vector;
    const high = t.nmi ? [`mov $${hex(APIC_ICR_HIGH)}, %eax`, 'movl $0, (%rax)'] : [];
    const prefix = [...high, `mov $${hex(APIC_ICR_LOW)}, %eax`];
    // The trigger is the ICR write. TCG takes a pending interrupt only between translation blocks, so a jump to the
    // next label ends the block there: the interrupt is taken at that boundary, and the saved RIP is 'next'.
    const body = [`movl $${hex(icr)}, (%rax)`, `jmp ${label}_next`];
    emitStep(e, label, c.cpl, rsp, { rbx: 0 }, prefix, body, LAYOUT.ipiRflags);
  } else if (t.kind === 'iret') {
    // The frame IRETQ pops, pushed on the case's stack; user code returns with INT returnVector.
    const rip = t.rip === 'user' ? [`lea ${label}_user(%rip), %rax`] : [`movabs $${hex(LAYOUT.nonCanonical)}, %rax`];
    const frame = [`pushq $${hex(t.ss)}`, `pushq $${hex(LAYOUT.userRsp)}`, `pushq $${hex(LAYOUT.rflags)}`];
    const prefix = [...frame, `pushq $${hex(t.cs)}`, ...rip, 'push %rax'];
    emitStep(e, label, c.cpl, rsp, { rbx: 0 }, prefix, ['iretq']);
    e.emit(`jmp ${label}_over`, `${label}_user:`, `int $${hex(LAYOUT.returnVector)}`, `${label}_over:`);
  } else emitStep(e, label, c.cpl, rsp, { rbx: 0 }, [], [`int $${hex(t.vector)}`]);
}

/** cases.S for the cases numbered `first`.. of `cases`. */
export function casesSource(cases: readonly Case[], first: number): string {
  const e = new Emitter();
  e.emit('run_cases:', 'mov %rsp, harness_rsp(%rip)');
  cases.forEach((c, i) => {
    const n = first + i;
    e.emit(`# case ${n}: ${c.id}`, `mov $${n}, %rdi`, 'call case_begin');
    if (c.family === 'delivery') emitDeliveryCase(e, n, c);
    else emitPagingCase(e, n, c);
  });
  e.emit('ret');
  return `${e.lines.join('\n')}\n`;
}
