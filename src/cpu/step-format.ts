import { formatPhysical, formatVirtual } from '../mmu/address.ts';
import type { ExceptionEvent, StepEvent } from './step-event.ts';

// One-line descriptions of step events, shared by debug logs and the text timeline.

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function describeException(e: ExceptionEvent): string {
  const cr2 = e.cr2 === undefined ? '' : ` CR2=${formatVirtual(e.cr2)}`;
  const head = `${e.name}(${hex(e.errorCode)})${cr2}`;
  switch (e.outcome) {
    case 'delivered':
      return `${head} delivered on ${e.stack} (RSP=${formatVirtual(e.rsp ?? 0)})`;
    case 'gate-fault':
      return `${head}: its IDT gate faulted`;
    case 'frame-fault':
      return `${head}: pushing its frame faulted`;
    case 'double-fault':
      return `${head} during delivery -> #DF`;
    case 'triple-fault':
      return `${head} during #DF delivery -> triple fault, shutdown`;
  }
}

export function describeStep(e: StepEvent): string {
  const parts: string[] = [e.op];
  if (e.accepted) parts.push(e.accepted.nmi ? 'NMI' : `vector ${hex(e.accepted.vector)}`);
  if (e.va !== undefined) parts.push(formatVirtual(e.va));
  if (e.pa !== undefined) parts.push(`-> ${formatPhysical(e.pa)}`);
  if (e.tlb) parts.push(`(TLB ${e.tlb})`);
  if (e.value !== undefined) parts.push(`= ${hex(e.value)}`);
  if (e.ipi) {
    const from = e.ipi.from === undefined ? '' : ` from CPU${e.ipi.from}`;
    parts.push(`to [${e.ipi.to.join(',')}] vector ${hex(e.ipi.vector)}${e.ipi.mode === 'nmi' ? ' (NMI)' : ''}${from}`);
  }
  let line = parts.join(' ');
  for (const x of e.exceptions ?? []) line += `; ${describeException(x)}`;
  if (e.stop) line += `; STOP ${e.stop.outcome}: ${e.stop.message.split('\n')[0]}`;
  if (e.state !== 'running') line += ` [${e.state}]`;
  return line;
}
