import { expect, test } from 'vitest';
import { Machine } from '../../src/machine/machine.ts';

test('#DF is not restartable: a #DF handler that returns stops the CPU instead of resuming', () => {
  const m = Machine.create({ cpus: 1 });
  const stack = m.boot!.taskStacks[0]!;
  const cpu = m.cpu(0);
  cpu.setGate(8, {
    ist: 1,
    type: 'interrupt',
    *handler() {
      // returns: the implicit iret
    },
  });
  m.boot!.pageTables.clearPresent(stack.top - 4096);
  m.load(0, function* (x) {
    yield x.push(1); // #PF -> #PF while pushing its frame -> #DF on IST1
  });
  const result = m.run();
  expect(result.outcome).toBe('double-fault');
  expect(result.stop?.message).toContain('not restartable');
});
