import type { ViolationKind } from '../explore/explore.ts';
import type { Machine } from '../machine/machine.ts';
import type { CpuSnapshot } from '../machine/snapshot.ts';
import { formatVirtual } from '../mmu/address.ts';
import type { Scenario, ScenarioParams, ScenarioRun } from '../scenarios/scenario.ts';
import { formatTimeline } from '../trace/timeline.ts';

// What `x86slice run` and `replay` print: a JSON object for scripts, or a readable per-CPU timeline for people.

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
  const params = paramText(run.params);
  const lines = [
    `scenario ${scenario.name}${params ? ` (${params})` : ''}: ${scenario.summary}`,
    '',
    ...(skipped > 0 ? [`(${skipped} earlier steps not shown)`] : []),
    formatTimeline(shown, machine.cpus.length),
    '',
    `outcome: ${result.outcome} after ${result.steps} steps${result.limitReached ? ' (step limit reached)' : ''}` +
      (result.outcome === scenario.expected ? '' : ` (this scenario demonstrates ${scenario.expected})`),
  ];
  if (result.deadlock) lines.push(result.deadlock);
  for (const [key, value] of Object.entries(run.report ?? {})) lines.push(`${key}: ${JSON.stringify(value)}`);
  lines.push(...cpuLines(machine));
  return lines.join('\n');
}

/** Each CPU's final state, one line each: state (and why it stopped), RSP, CR2. */
function cpuLines(machine: Machine): string[] {
  return machine.cpus.map((cpu) => {
    const stop = cpu.stopEvent ? ` (${cpu.stopEvent.outcome}: ${cpu.stopEvent.message.split('\n')[0]})` : '';
    return `  CPU${cpu.id}: ${cpu.state}${stop}, RSP ${formatVirtual(cpu.regs.rsp)}, CR2 ${formatVirtual(cpu.regs.cr2)}`;
  });
}

function paramText(params: ScenarioParams): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** A replayed schedule: the scenario, the schedule and what the replay found. */
export interface ReplayRun {
  readonly scenario: Scenario;
  readonly params: ScenarioParams;
  readonly schedule: string;
  readonly machine: Machine;
  readonly kind: ViolationKind | undefined;
  readonly message: string | undefined;
}

/**
 * The replay as one JSON-ready object, in the shape of `run --json` (scenario, params, outcome, expected, steps,
 * limitReached, stop, per-CPU final state) with the schedule, whether the run is a violation, and its message.
 * `outcome` is what the text form prints: the violation's kind (a check's `assertion`, `step-bound` included),
 * else the machine's outcome.
 */
export function replayReport(r: ReplayRun) {
  const snapshot = r.machine.snapshot();
  return {
    scenario: r.scenario.name,
    params: r.params,
    schedule: r.schedule,
    outcome: r.kind ?? r.machine.outcome,
    violation: r.kind !== undefined,
    expected: r.scenario.expected,
    steps: r.machine.stepCount,
    limitReached: r.kind === 'step-bound',
    ...(r.machine.firstStop ? { stop: r.machine.firstStop } : {}),
    ...(r.message === undefined ? {} : { message: r.message }),
    cpus: snapshot.cpus.map(cpuJson),
  };
}

/** One line: the replay's outcome, whether it is a violation, and the first line of the stop message. */
export function replayOutcome(r: ReplayRun): string {
  const steps = `after ${r.machine.trace.length} steps`;
  if (r.kind === undefined) return `outcome: ${r.machine.outcome} ${steps}: no violation`;
  const why = r.message ? `: ${r.message.split('\n')[0]}` : '';
  return `outcome: ${r.kind} ${steps}: a violation${why}`;
}

/** What `x86slice replay` prints: header, the per-CPU timeline of the replayed run, the outcome, each CPU's state. */
export function replayText(r: ReplayRun): string {
  const params = paramText(r.params);
  return [
    `replay ${r.scenario.name}${params ? ` (${params})` : ''} --schedule '${r.schedule}': ${r.scenario.summary}`,
    '',
    formatTimeline(r.machine.trace, r.machine.cpus.length),
    '',
    replayOutcome(r),
    ...cpuLines(r.machine),
  ].join('\n');
}
