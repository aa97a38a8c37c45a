import type { StepEvent } from '../cpu/step-event.ts';
import { describeException, describeStep } from '../cpu/step-format.ts';
import { formatVirtual } from '../mmu/address.ts';

// A text timeline: one row per step, one lane per CPU, so who did what when reads left to right and top down.
// Exceptions raised in a step follow on their own lines in that CPU's lane.

export interface TimelineOptions {
  /** Width of each CPU lane in characters. Default: 100 for one CPU, 72 for two, 56 for more. */
  readonly laneWidth?: number;
  /** Show each step's RIP. Default false. */
  readonly rip?: boolean;
}

function fitLane(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

function mainLine(e: StepEvent): string {
  // describeStep appends exceptions and the stop; in the timeline those get their own lines.
  const { exceptions: _exceptions, stop: _stop, ...core } = e;
  return describeStep(core);
}

export function formatTimeline(events: readonly StepEvent[], cpuCount: number, options: TimelineOptions = {}): string {
  const width = options.laneWidth ?? (cpuCount === 1 ? 100 : cpuCount === 2 ? 72 : 56);
  const lanes = Array.from({ length: cpuCount }, (_, i) => i);
  const stepWidth = Math.max(4, String(events.length ? events[events.length - 1]!.step : 0).length);
  const lines: string[] = [];
  lines.push(`${'step'.padStart(stepWidth)}  ${lanes.map((i) => fitLane(`CPU${i}`, width)).join(' │ ')}`.trimEnd());
  lines.push(`${'─'.repeat(stepWidth)}──${lanes.map(() => '─'.repeat(width)).join('─┼─')}`);
  const row = (label: string, cpu: number, text: string) =>
    `${label.padStart(stepWidth)}  ${lanes.map((i) => fitLane(i === cpu ? text : '', width)).join(' │ ')}`.trimEnd();
  for (const e of events) {
    const head = options.rip ? `${formatVirtual(e.rip).slice(10)} ${mainLine(e)}` : mainLine(e);
    lines.push(row(String(e.step), e.cpu, head));
    for (const x of e.exceptions ?? []) lines.push(row('', e.cpu, `  ↳ ${describeException(x)}`));
    if (e.stop) {
      for (const [k, text] of e.stop.message.split('\n').entries()) {
        lines.push(row('', e.cpu, `${k === 0 ? `  ■ ${e.stop.outcome}: ` : '    '}${text}`));
      }
    }
  }
  return lines.join('\n');
}
