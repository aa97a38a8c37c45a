import { describe, expect, it } from 'vitest';
import { explore, replay } from '../../src/explore/explore.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';

// Is a clean exhaustive search a proof? DPOR (with or without a preemption bound) must reach exactly the violation
// kinds and the final states that naive enumeration (`reduction: 'none'`: every schedule within the bound) reaches.
// Programs from issue 18 it used to miss.

const PAGE = 0xffffc90001000000n;
const FLAG = 0xffffc90001001000n;
const ACK = 0xffffc90001002000n;
const VECTOR = 0xf0;
const MARKER = 0xdead;

/**
 * Issue 18, example 1, on 3 CPUs. CPU1 stores twice to a page with interrupts on (its first store caches the
 * page). CPU0 clears the page's PTE, sets a flag, sends a shootdown IPI to CPU1 (whose handler INVLPGs and
 * acknowledges) and waits for the acknowledgement. CPU2 waits for the flag and writes a marker into the page's frame,
 * as a new owner of the freed frame would. The marker must survive; it does not when CPU1's second store goes
 * through its stale TLB entry after the marker and before the IPI is sent. (A CPU1 store after the shootdown faults
 * and the kernel-less #PF handler stops the CPU: an `oops`, also reachable.)
 */
function staleStoreOverFreedFrame() {
  const m = Machine.create({ cpus: 3, trace: false });
  const page = m.map(PAGE, { writable: true });
  const flag = m.map(FLAG, { writable: true });
  const ack = m.map(ACK, { writable: true });
  const frame = m.physicalAddress(page)!;
  const pte = m.directMap(m.pteAddress(page));
  m.cpu(1).setGate(VECTOR, {
    ist: 0,
    type: 'interrupt',
    handler: function* (x) {
      yield x.invlpg(page);
      yield x.store(ack, 8, 1);
      yield x.eoi();
    },
  });
  m.load(1, function* (x) {
    yield x.store(page, 8, 1);
    yield x.store(page, 8, 2);
  });
  m.load(0, function* (x) {
    const low: number = yield x.load(pte, 4);
    yield x.store(pte, 4, (low & ~PTE_LO.P) >>> 0);
    yield x.store(flag, 8, 1);
    yield x.sendIpi(1, VECTOR);
    yield x.spinUntil(ack, 8, (v) => v === 1);
  });
  m.load(2, function* (x) {
    yield x.spinUntil(flag, 8, (v) => v === 1);
    yield x.store(m.directMap(frame), 8, MARKER);
  });
  const image = MachineImage.capture(m);
  return { image, markerSurvives: (machine: Machine) => machine.memory.read64(frame) === MARKER };
}

/**
 * Issue 18, example 2: a no-wait shootdown on 2 CPUs. CPU1 stores twice to a page (the first caches it); CPU0
 * clears the PTE, sends the shootdown IPI without waiting for it, and reuses the frame (a marker). CPU1's second
 * store through its stale entry, while the IPI is still in flight, overwrites the marker: one preemption (CPU1 is
 * switched away from after its first store).
 */
function noWaitShootdown() {
  const m = Machine.create({ cpus: 2, trace: false });
  const page = m.map(PAGE, { writable: true });
  const frame = m.physicalAddress(page)!;
  const pte = m.directMap(m.pteAddress(page));
  m.cpu(1).setGate(VECTOR, {
    ist: 0,
    type: 'interrupt',
    handler: function* (x) {
      yield x.invlpg(page);
      yield x.eoi();
    },
  });
  m.load(0, function* (x) {
    const low: number = yield x.load(pte, 4);
    yield x.store(pte, 4, (low & ~PTE_LO.P) >>> 0);
    yield x.sendIpi(1, VECTOR);
    yield x.store(m.directMap(frame), 8, MARKER);
  });
  m.load(1, function* (x) {
    yield x.store(page, 8, 1);
    yield x.store(page, 8, 2);
  });
  const image = MachineImage.capture(m);
  return { image, markerSurvives: (machine: Machine) => machine.memory.read64(frame) === MARKER };
}

const kinds = (r: { violations: readonly { kind: string }[] }) => r.violations.map((v) => v.kind);

describe('issue 18: reachable violations the search used to miss', () => {
  it('a stale store over a freed frame, with the shootdown IPI delivered immediately, is found at every bound that allows it', () => {
    const { image, markerSurvives } = staleStoreOverFreedFrame();
    const o = { strategy: 'exhaustive', check: markerSurvives, ipiDelivery: 'immediate' } as const;
    // The ground truth: CPU1 caches the page, CPU0 clears the PTE and sets the flag, CPU2 writes the marker, CPU1's
    // second store lands on it through the stale entry; only then is the IPI sent.
    expect(replay(image, '1,0*3,2*2,1', { check: markerSurvives, ipiDelivery: 'immediate' }).kind).toBe('assertion');
    // Naive enumeration needs bound 2 for it; DPOR now finds it there, above it, and with no bound. It used to say
    // 62 executions, complete, no violation (no bound), and the same at bounds 2 and 3.
    expect(kinds(explore(image, { ...o, reduction: 'none', preemptions: 1 }))).not.toContain('assertion');
    expect(kinds(explore(image, { ...o, reduction: 'none', preemptions: 2 }))).toContain('assertion');
    for (const preemptions of [undefined, 2, 3]) {
      const result = explore(image, { ...o, ...(preemptions === undefined ? {} : { preemptions }) });
      expect(result.complete).toBe(true);
      expect(kinds(result)).toEqual(['oops', 'assertion']);
      const found = result.violations.find((v) => v.kind === 'assertion')!;
      const again = { check: markerSurvives, ipiDelivery: 'immediate' } as const;
      expect(replay(image, found.schedule, again).kind).toBe('assertion');
    }
    // With the IPI in flight until delivered (explore's default), the window is wider: found as well.
    expect(kinds(explore(image, { strategy: 'exhaustive', check: markerSurvives }))).toContain('assertion');
  });

  it('a no-wait shootdown that loses the new owner’s data needs one preemption, and bound 1 finds it', () => {
    const { image, markerSurvives } = noWaitShootdown();
    const o = { strategy: 'exhaustive', check: markerSurvives } as const;
    expect(kinds(explore(image, { ...o, preemptions: 0 }))).not.toContain('assertion');
    expect(kinds(explore(image, { ...o, reduction: 'none', preemptions: 1 }))).toContain('assertion');
    // With sleep sets under the bound, this search was complete and clean at bound 1; bound 2 found it.
    const bounded = explore(image, { ...o, preemptions: 1 });
    expect(bounded).toMatchObject({ complete: true, preemptionBound: 1 });
    const found = bounded.violations.find((v) => v.kind === 'assertion')!;
    // CPU1's first store, then CPU0 runs to its end (the IPI stays in flight), then CPU1's second store.
    expect(found.schedule).toBe('1');
    expect(replay(image, found.schedule, { check: markerSurvives }).kind).toBe('assertion');
  });
});
