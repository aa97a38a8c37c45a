import type { CpuSnapshot } from '../machine/snapshot.ts';
import { formatVirtual } from '../mmu/address.ts';
import type { ScenarioRun } from '../scenarios/scenario.ts';
import { formatTimeline } from '../trace/timeline.ts';

// What `x86slice run` prints: a JSON object for scripts, or a readable per-CPU timeline for people.

function cpuJson(c: CpuSnapshot) {
  return {
    id: c.id,
    state: c.state,
    ...(c.stop ? { stop: c.stop } : {}),
    registers: {
      rip: formatVirtual(c.registers.rip),
      rsp: formatVirtual(c.registers.rsp),
      rflags: `0x${c.registers.rflags.toString(16)}`,
      cr2: formatVirtual(c.registers.cr2),
      cr3: `0x${c.registers.cr3.toString(16)}`,
    },
    ...(c.lastException
      ? {
          lastException: {
            vector: c.lastException.vector,
            errorCode: c.lastException.errorCode,
            cr2: formatVirtual(c.lastException.cr2),
          },
        }
      : {}),
  };
}

/** The run as one JSON-ready object: scenario, outcome, steps, per-CPU final state. */
export function runReport(run: ScenarioRun) {
  const snapshot = run.machine.snapshot();
  return {
    scenario: run.scenario.name,
    params: run.params,
    outcome: run.result.outcome,
    expected: run.scenario.expected,
    steps: run.result.steps,
    limitReached: run.result.limitReached,
    ...(run.result.stop ? { stop: run.result.stop } : {}),
    ...(run.report ? { report: run.report } : {}),
    cpus: snapshot.cpus.map(cpuJson),
  };
}

/** The readable form: header, timeline (its last `tail` steps, when given), and the outcome with each CPU's state. */
export function runText(run: ScenarioRun, options: { readonly tail?: number } = {}): string {
  const { scenario, result, machine } = run;
  const trace = machine.trace;
  const shown = options.tail === undefined ? trace : trace.slice(-options.tail);
  const skipped = trace.length - shown.length;
  const params = Object.entries(run.params)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const lines = [
    `scenario ${scenario.name}${params ? ` (${params})` : ''}: ${scenario.summary}`,
    '',
    ...(skipped > 0 ? [`(${skipped} earlier steps not shown)`] : []),
    formatTimeline(shown, machine.cpus.length),
    '',
    `outcome: ${result.outcome} after ${result.steps} steps${result.limitReached ? ' (step limit reached)' : ''}` +
      (result.outcome === scenario.expected ? '' : ` (this scenario demonstrates ${scenario.expected})`),
  ];
  for (const [key, value] of Object.entries(run.report ?? {})) lines.push(`${key}: ${JSON.stringify(value)}`);
  for (const cpu of machine.cpus) {
    const stop = cpu.stopEvent ? ` (${cpu.stopEvent.outcome}: ${cpu.stopEvent.message.split('\n')[0]})` : '';
    lines.push(
      `  CPU${cpu.id}: ${cpu.state}${stop}, RSP ${formatVirtual(cpu.regs.rsp)}, CR2 ${formatVirtual(cpu.regs.cr2)}`,
    );
  }
  return lines.join('\n');
}
