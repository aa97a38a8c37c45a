// Examples from docs/guide.md "Trace exports". They run in `npm test`; test/docs.test.ts checks that the code shown
// in the guide is exactly the code here.
import { expect, test } from 'vitest';
import { formatChromeTrace, formatMermaid, Machine } from 'x86slice';

test('a long run keeps its last 1000 events and exports them for Perfetto and Mermaid', () => {
  const m = Machine.create({ cpus: 2, traceLimit: 1000 });
  m.cpu(1).setGate(0xf0, {
    ist: 0,
    type: 'interrupt',
    handler: function* (x) {
      yield x.eoi();
    },
  });
  m.load(0, function* (x) {
    for (let i = 0; i < 5000; i++) yield x.pause();
    yield x.sendIpi(1, 0xf0);
  });
  m.load(1, function* (x) {
    for (let i = 0; i < 5000; i++) yield x.pause();
  });
  m.run();
  expect(m.trace).toHaveLength(1000); // the last 1000 events, oldest first
  expect(m.traceLog.dropped).toBe(m.stepCount - 1000);

  const json = formatChromeTrace(m.trace, 2); // save as run.json; ui.perfetto.dev -> Open trace file
  expect(JSON.parse(json).traceEvents.filter((e: { ph: string }) => e.ph === 'X')).toHaveLength(1000);

  const diagram = formatMermaid(m.trace, 2, { maxEvents: 200 }); // paste into a mermaid code block
  expect(diagram).toMatch(/^sequenceDiagram\n {2}participant CPU0\n {2}participant CPU1\n/);
  expect(diagram).toMatch(/CPU0->>CPU1: step \d+: IPI 0xf0/);
});
