import type { StepEvent } from '../cpu/step-event.ts';
import { describeException } from '../cpu/step-format.ts';
import { describeValue, InputError, requireOptions } from '../mmu/input-error.ts';
import { checkTrace, ipiName, linkIpis, listAt } from './links.ts';

// A Mermaid sequence diagram of a trace: one participant per CPU, what passes between CPUs (IPIs) as arrows, what
// happens on one CPU (exceptions, deliveries, acceptances, stops) as notes over it. Ordinary steps are summarised:
// before each arrow or note, every CPU's ordinary steps since its last summary become one note ("steps 3–9: push ×2,
// call, load"), so a diagram of a few hundred steps stays readable. Memory is no participant: a store and the load
// that sees it are one CPU's note each.

export interface MermaidOptions {
  /** Draw only the last `maxEvents` events (a note says how many earlier ones are left out). Default 500. */
  readonly maxEvents?: number;
}

const DEFAULT_MAX_EVENTS = 500;
/** Mnemonic groups a summary note lists before it ends in "…". */
const SUMMARY_GROUPS = 6;
/** Longest note text, in characters (a stop's message can be a whole oops report). */
const MAX_TEXT = 160;

/**
 * Mermaid text: in a sequence diagram `#` starts a comment (or an entity code), `;` ends a statement, `%%` starts a
 * comment, and `<`, `>`, `&` and `"` are read as HTML; each is written as its entity code (`#35;`), which Mermaid
 * decodes before drawing, so it renders as the character.
 */
function mermaidText(text: string): string {
  const line = text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
  return line.replace(/[#;%<>&"]/g, (c) => `#${c.charCodeAt(0)};`);
}

/** Ordinary steps of one CPU not yet drawn. */
interface Batch {
  first: number;
  last: number;
  count: number;
  /** Mnemonics, run-length encoded. */
  readonly ops: { op: string; n: number }[];
}

function summary(b: Batch): string {
  const range =
    b.first === b.last
      ? `step ${b.first}`
      : b.count === b.last - b.first + 1
        ? `steps ${b.first}–${b.last}`
        : `${b.count} steps in ${b.first}–${b.last}`;
  const shown = b.ops.slice(0, SUMMARY_GROUPS).map(({ op, n }) => (n === 1 ? op : `${op} ×${n}`));
  if (b.ops.length > SUMMARY_GROUPS) shown.push('…');
  return `${range}: ${shown.join(', ')}`;
}

/**
 * Formats step events (`machine.trace`) as a Mermaid `sequenceDiagram` (renders in GitHub, GitLab and most
 * Markdown viewers inside a ```mermaid block).
 */
export function formatMermaid(events: readonly StepEvent[], cpuCount: number, options: MermaidOptions = {}): string {
  checkTrace(events, cpuCount, 'formatMermaid');
  const o = requireOptions<MermaidOptions>(options, 'formatMermaid options', ['maxEvents']);
  const maxEvents = o.maxEvents === undefined ? DEFAULT_MAX_EVENTS : o.maxEvents;
  if (typeof maxEvents !== 'number' || !Number.isSafeInteger(maxEvents) || maxEvents < 1) {
    throw new InputError(`formatMermaid option maxEvents ${describeValue(maxEvents)} must be an integer >= 1`);
  }
  const shown = events.length > maxEvents ? events.slice(events.length - maxEvents) : events;
  const cpu = (id: number) => `CPU${id}`;
  const lines = ['sequenceDiagram'];
  for (let id = 0; id < cpuCount; id++) lines.push(`  participant ${cpu(id)}`);
  const note = (id: number, text: string) => lines.push(`  Note over ${cpu(id)}: ${mermaidText(text)}`);
  if (shown !== events) {
    const span = cpuCount === 1 ? cpu(0) : `${cpu(0)},${cpu(cpuCount - 1)}`;
    lines.push(`  Note over ${span}: ${mermaidText(`${events.length - shown.length} earlier events not shown`)}`);
  }

  const links = linkIpis(shown);
  const sent = new Map<number, (typeof links)[number][]>();
  for (const link of links) {
    if (link.send === undefined) continue;
    listAt(sent, link.send).push(link);
  }
  const batches = new Map<number, Batch>();
  const flush = () => {
    for (const b of [...batches.entries()].sort((x, y) => x[1].first - y[1].first)) note(b[0], summary(b[1]));
    batches.clear();
  };

  for (const [j, e] of shown.entries()) {
    const exceptions = e.exceptions ?? [];
    const notable = e.ipi !== undefined || e.accepted !== undefined || exceptions.length > 0 || e.stop !== undefined;
    if (!notable) {
      const b = batches.get(e.cpu);
      if (b === undefined) batches.set(e.cpu, { first: e.step, last: e.step, count: 1, ops: [{ op: e.op, n: 1 }] });
      else {
        b.last = e.step;
        b.count++;
        const run = b.ops[b.ops.length - 1]!;
        if (run.op === e.op) run.n++;
        else b.ops.push({ op: e.op, n: 1 });
      }
      continue;
    }
    flush();
    const at = `step ${e.step}`;
    if (e.op === 'send-ipi' && e.ipi) {
      for (const link of sent.get(j) ?? []) {
        // An IPI held in flight until a delivery event is drawn as an asynchronous (open) arrow.
        const arrow = link.deliver === undefined ? '->>' : '-)';
        const held = link.deliver === undefined ? '' : ' (in flight)';
        lines.push(
          `  ${cpu(e.cpu)}${arrow}${cpu(link.to)}: ${mermaidText(`${at}: ${ipiName(link.vector, link.mode)}${held}`)}`,
        );
      }
    } else if (e.op === 'deliver' && e.ipi) {
      const from = e.ipi.from === undefined ? '' : ` from CPU${e.ipi.from}`;
      note(e.cpu, `${at}: ${ipiName(e.ipi.vector, e.ipi.mode)}${from} delivered`);
    }
    let rest = exceptions;
    if (e.accepted) {
      const what = e.accepted.nmi ? 'NMI' : ipiName(e.accepted.vector, 'fixed');
      const first = exceptions[0];
      note(e.cpu, `${at}: accepts ${what}${first ? `: ${describeException(first)}` : ''}`);
      rest = exceptions.slice(1);
    }
    for (const x of rest) note(e.cpu, `${at} ${e.op}: ${describeException(x)}`);
    if (e.stop) note(e.cpu, `${at}: STOP ${e.stop.outcome}: ${e.stop.message.split('\n')[0]}`);
  }
  flush();
  return `${lines.join('\n')}\n`;
}
