import { describe, expect, it } from 'vitest';
import type { StepEvent } from '../../src/cpu/step-event.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { formatMermaid } from '../../src/trace/mermaid.ts';
import { coalescedIpis, ipiMachine } from './fixtures.ts';

/** The diagram's statements after the header and participants. */
const body = (diagram: string) =>
  diagram
    .trimEnd()
    .split('\n')
    .filter((l) => !/^(sequenceDiagram| {2}participant )/.test(l));

/**
 * What Mermaid reads as syntax in a statement's text: a `#` that starts no entity code (a comment), `;` (a new
 * statement), `%%` (a comment), and HTML's `<`, `>`, `&` and `"`.
 */
function breaksMermaid(line: string): boolean {
  const text = line.slice(line.indexOf(':') + 1).replace(/#\d+;/g, '');
  return /[#;<>&"%]/.test(text);
}

describe('Mermaid sequence diagram export', () => {
  it('is a sequenceDiagram with one participant per CPU, in CPU order', () => {
    const diagram = formatMermaid(ipiMachine('immediate').trace, 2);
    const lines = diagram.split('\n');
    expect(lines.slice(0, 3)).toEqual(['sequenceDiagram', '  participant CPU0', '  participant CPU1']);
  });

  it('an IPI is an arrow from the sender to the target, its acceptance a note over the target', () => {
    const lines = body(formatMermaid(ipiMachine('immediate').trace, 2));
    expect(lines).toContain('  CPU0->>CPU1: step 0: IPI 0xf0');
    expect(lines).toContain('  CPU0->>CPU1: step 2: NMI');
    expect(lines.find((l) => l.startsWith('  Note over CPU1: step 1: accepts IPI 0xf0'))).toBeDefined();
    expect(lines.find((l) => l.startsWith('  Note over CPU1: step 3: accepts NMI'))).toBeDefined();
  });

  it('an IPI held in flight is an open arrow, its delivery a note over the target before the acceptance', () => {
    const lines = body(formatMermaid(ipiMachine('scheduled', '0,1,deliver:1,1,1,0,deliver:1,1*8').trace, 2));
    expect(lines.slice(0, 4)).toEqual([
      '  CPU0-)CPU1: step 0: IPI 0xf0 (in flight)',
      '  Note over CPU1: step 1: pause',
      '  Note over CPU1: step 2: IPI 0xf0 from CPU0 delivered',
      '  Note over CPU1: step 2: accepts IPI 0xf0: INT240(0x0) delivered on current (RSP=0xffffc90000017fd8)',
    ]);
  });

  it('every IPI sent is an arrow, also when two coalesce into one acceptance', () => {
    const lines = body(formatMermaid(coalescedIpis().trace, 2));
    expect(lines.filter((l) => l.includes('->>'))).toEqual([
      '  CPU0->>CPU1: step 0: IPI 0xf0',
      '  CPU0->>CPU1: step 1: IPI 0xf0',
    ]);
    expect(lines.filter((l) => l.includes('accepts'))).toHaveLength(1);
  });

  it('a double fault: #PF and #DF notes over the CPU with # written as an entity code, then the stop', () => {
    const { machine } = runScenario('pf-in-pf');
    const lines = body(formatMermaid(machine.trace, 1));
    expect(lines).toEqual([
      '  Note over CPU0: steps 0–3: push, load, store, invlpg',
      '  Note over CPU0: step 4 push: #35;PF(0x2) CR2=0xffffc90000007ff0: pushing its frame faulted',
      '  Note over CPU0: step 4 push: #35;PF(0x2) CR2=0xffffc90000007fe8 during delivery -#62; #35;DF',
      '  Note over CPU0: step 4 push: #35;DF(0x0) delivered on ist1 (RSP=0xfffffe0000001fd0)',
      '  Note over CPU0: step 5: STOP double-fault: PANIC: double fault, error_code: 0x0',
    ]);
    expect(lines.some(breaksMermaid)).toBe(false);
  });

  it('characters that are Mermaid syntax in a message are written as entity codes', () => {
    const event: StepEvent = {
      step: 0,
      cpu: 0,
      rip: 0,
      op: 'die',
      stop: { outcome: 'oops', message: 'a; b <c> 50%% "d" & #e\nsecond line' },
      state: 'stopped',
    };
    const [line] = body(formatMermaid([event], 1));
    expect(line).toBe('  Note over CPU0: step 0: STOP oops: a#59; b #60;c#62; 50#37;#37; #34;d#34; #38; #35;e');
    expect(breaksMermaid(line!)).toBe(false);
  });

  it('ordinary steps between notable ones are one note per CPU, in the order they began', () => {
    const { machine } = runScenario('stale-tlb');
    const lines = body(formatMermaid(machine.trace, 2));
    expect(lines.slice(0, 3)).toEqual([
      '  Note over CPU0: 5 steps in 0–8: spin-until ×2, load, store ×2',
      '  Note over CPU1: 5 steps in 1–9: load, assert, store, spin-until ×2',
      expect.stringMatching(/^ {2}Note over CPU0: step 10 load: #35;PF\(0x0\)/),
    ]);
    expect(lines.some(breaksMermaid)).toBe(false);
  });

  it('a run of two thousand steps stays a short diagram: the last 500 events, summarised', () => {
    const { machine } = runScenario('vmalloc-fault');
    expect(machine.trace.length).toBeGreaterThan(2000);
    const lines = body(formatMermaid(machine.trace, 1));
    expect(lines[0]).toBe(`  Note over CPU0: ${machine.trace.length - 500} earlier events not shown`);
    expect(lines.length).toBeLessThan(10);
    expect(lines.find((l) => l.includes('#35;PF'))).toBeDefined();
    expect(lines.some(breaksMermaid)).toBe(false);
  });

  it('maxEvents chooses how many of the last events are drawn', () => {
    const trace = ipiMachine('immediate').trace;
    const lines = body(formatMermaid(trace, 2, { maxEvents: 2 }));
    expect(lines).toEqual([
      `  Note over CPU0,CPU1: ${trace.length - 2} earlier events not shown`,
      `  Note over CPU1: steps ${trace.length - 2}–${trace.length - 1}: pause, exit`,
    ]);
  });

  it('refuses a bad maxEvents, an unknown option and a cpuCount the events do not fit', () => {
    const trace = ipiMachine('immediate').trace;
    for (const maxEvents of [0, -1, 1.5, Number.NaN, '10', null]) {
      expect(() => formatMermaid(trace, 2, { maxEvents: maxEvents as never })).toThrow(InputError);
      expect(() => formatMermaid(trace, 2, { maxEvents: maxEvents as never })).toThrow(
        /^formatMermaid option maxEvents .+ must be an integer >= 1$/,
      );
    }
    expect(() => formatMermaid(trace, 2, { max: 3 } as never)).toThrow(/^formatMermaid options has an unknown option/);
    expect(() => formatMermaid(trace, 1)).toThrow(/^formatMermaid: event .+ is not on a CPU of this machine/);
    expect(() => formatMermaid(trace, 65)).toThrow(/^formatMermaid cpuCount 65 must be an integer in 1\.\.64$/);
  });
});
