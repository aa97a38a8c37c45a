// Examples from docs/scenarios/*.md: running the catalogue from a test and reading what happened.
import { expect, test } from 'vitest';
import { formatTimeline, runScenario } from 'x86slice';

test('pf-in-pf: #PF during #PF delivery becomes #DF on IST1', () => {
  const { machine, result } = runScenario('pf-in-pf');
  expect(result.outcome).toBe('double-fault');
  const push = machine.trace.find((e) => e.exceptions)!;
  expect(push.exceptions!.map((e) => `${e.name} ${e.outcome}`)).toEqual([
    '#PF frame-fault', // the push faulted; pushing the #PF frame on the same stack faulted again
    '#PF double-fault', // SDM Table 6-5: page fault during page-fault delivery -> #DF
    '#DF delivered', // on IST1, its own stack
  ]);
  expect(formatTimeline(machine.trace, machine.cpus.length)).toContain('#DF(0x0) delivered on ist1');
});

test('df-triple: a fault while delivering #DF shuts the CPU down', () => {
  const { machine, result } = runScenario('df-triple');
  expect(result.outcome).toBe('triple-fault');
  expect(machine.cpu(0).state).toBe('shutdown');
});

test('stale-tlb: a stale translation is used until this CPU invalidates it', () => {
  const { machine, result } = runScenario('stale-tlb', { reads: 3 });
  expect(result.outcome).toBe('ok');
  const staleHits = machine.trace.filter((e) => e.cpu === 1 && e.op === 'load' && e.tlb === 'hit');
  expect(staleHits).toHaveLength(3);
});

test('vmalloc-fault: a missing top-level entry is copied from init_mm on the first access', () => {
  const lazy = runScenario('vmalloc-fault');
  expect(lazy.result.outcome).toBe('ok');
  const faults = lazy.machine.trace.filter((e) => e.exceptions);
  expect(faults).toHaveLength(1); // the store: #PF, vmalloc_fault fixes the PGD, the store is retried
  expect(faults[0]!.exceptions![0]).toMatchObject({ name: '#PF', errorCode: 2, outcome: 'delivered' });

  const preallocated = runScenario('vmalloc-fault', { sync: 'preallocated' });
  expect(preallocated.result.outcome).toBe('ok');
  expect(preallocated.machine.trace.filter((e) => e.exceptions)).toEqual([]); // the entry was there from boot
});

test('vmap-stack-switch: a switch onto an mm that lacks the current stack double-faults unless switch_mm syncs it', () => {
  const unsynced = runScenario('vmap-stack-switch');
  expect(unsynced.result.outcome).toBe('double-fault');
  const push = unsynced.machine.trace.find((e) => e.exceptions)!;
  expect(push.op).toBe('push'); // switch_to's first push, right after switch_mm's CR3 load
  expect(push.exceptions!.map((e) => e.name)).toEqual(['#PF', '#PF', '#DF']);

  const synced = runScenario('vmap-stack-switch', { 'sync-stack': true });
  expect(synced.result.outcome).toBe('ok');
});
