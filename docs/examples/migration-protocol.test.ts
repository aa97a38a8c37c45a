import { expect, test, vi } from 'vitest';
import {
  copyFrame,
  dataMigrationMachine,
  explore,
  flushTlbKernelRange,
  freeOldFrame,
  installNewPte,
  type MigrationProtocol,
  replay,
} from 'x86slice';

// An exhaustive search within preemption bound 1, and a minimised schedule: seconds on a busy machine.
vi.setConfig({ testTimeout: 30_000 });

// A protocol of your own: copy while the page is still mapped, then switch the PTE to the new frame, shoot the
// old translation down, and free the old frame. It never unmaps the page, so nobody faults... but a store that
// lands between the copy and the switch goes to the old frame, and the new one never gets it.
const copyThenSwap: MigrationProtocol = function* copyThenSwap(x, kernel, page) {
  yield* copyFrame(x, kernel, page); // marks the old frame copied: a store to it from now on is lost
  yield* installNewPte(x, page);
  yield* flushTlbKernelRange(x, kernel, page.va, page.va + 4096);
  yield* freeOldFrame(x, kernel, page);
};

test('a protocol written in a test gets the same checks: copy-then-swap loses a write', () => {
  // CPU0 migrates a vmalloc data page with the protocol; CPU1 keeps writing to it and reading back.
  const build = () => dataMigrationMachine({ protocol: copyThenSwap, rounds: 2 }).machine;
  const result = explore(build, { strategy: 'exhaustive', preemptions: 1 });
  expect(result.violations.map((v) => v.kind)).toContain('lost-write');
  const lost = result.violations.find((v) => v.kind === 'lost-write')!;
  expect(lost.message).toMatch(/^lost write: CPU 1 stores to 0xffffc9/);
  expect(replay(build, lost.schedule).kind).toBe('lost-write'); // paste it into a regression test
}, 60_000); // an exhaustive search within bound 1: seconds, more on a busy machine
