// Examples from README.md and docs/guide.md. They run in `npm test`; test/docs.test.ts checks that the
// code shown in the docs is exactly the code here.
import { expect, test } from 'vitest';
import { Machine } from 'x86slice';

test('CPU1 reads through its stale TLB entry until it executes INVLPG', () => {
  const m = Machine.create({ cpus: 2 });
  const va = m.map(0xffffc90001000000n, { writable: true });
  const flag = m.map(0xffffc90001001000n, { writable: true });
  const pte = m.directMap(m.pteAddress(va)); // the PTE, as kernel code reaches it

  m.load(1, function* (x) {
    yield x.store(va, 8, 42);
    yield x.spinUntil(flag, 8, (v) => v === 1); // blocked until CPU0 sets the flag
    expect(yield x.load(va, 8)).toBe(42); // the stale entry still translates
    yield x.invlpg(va);
    yield x.load(va, 8, { fixup: 0xdead }); // now faults: #PF, error code 0, CR2 = va
  });
  m.load(0, function* (x) {
    const low = yield x.load(pte, 4);
    yield x.store(pte, 4, low & ~1); // clear the present bit
    yield x.store(flag, 8, 1);
  });

  const result = m.run({ schedule: '1,1,0,0,0,1*6' });
  expect(result.outcome).toBe('ok');
  expect(m.cpu(1).lastException).toMatchObject({ vector: 14, errorCode: 0, cr2: va });
});

test('step one instruction at a time and compare snapshots', () => {
  const m = Machine.create({ cpus: 2 });
  const va = m.map(0xffffc90001000000n, { writable: true });
  m.load(0, function* (x) {
    yield x.push(7);
    yield x.store(va, 8, 0x1234);
  });

  const before = m.snapshot();
  m.step(0); // push
  const after = m.snapshot();
  expect(after.cpus[0]!.registers.rsp).toBe(before.cpus[0]!.registers.rsp - 8);
  expect(before.cpus[0]!.tlb).toHaveLength(0); // snapshots are immutable views
  expect(after.cpus[0]!.tlb).toHaveLength(1); // the push filled one TLB entry

  const event = m.step(0)!; // store: the trace event says where it went
  expect(event).toMatchObject({ op: 'store', va, tlb: 'miss', value: 0x1234 });
  expect(m.memory.read64(m.physicalAddress(va)!)).toBe(0x1234);
  // The walker set A and D in the PTE, in memory.
  expect(m.memory.read32(m.pteAddress(va)) & 0x60).toBe(0x60);
});

test('an IPI waits in IRR while IF=0 and is taken after sti', () => {
  const m = Machine.create({ cpus: 2 });
  const seen = m.map(0xffffc90001000000n, { writable: true });
  m.cpu(1).setGate(0xf0, {
    ist: 0,
    type: 'interrupt',
    handler: function* (x) {
      yield x.store(seen, 8, 1);
      yield x.eoi(); // returning from the handler is the iret
    },
  });
  m.load(1, function* (x) {
    yield x.cli();
    yield x.pause();
    yield x.sti();
    yield x.pause(); // the STI shadow: interrupts are taken after the next instruction
    yield x.pause();
  });
  m.load(0, function* (x) {
    yield x.sendIpi(1, 0xf0);
  });

  m.run({ schedule: [1, 0, 1] }); // cli; send-IPI; pause with IF=0
  expect(m.snapshot().cpus[1]!.apic.pending).toEqual([0xf0]);
  m.run({ schedule: [1, 1, 1] }); // sti; pause (shadow); the interrupt is accepted
  expect(m.trace.at(-1)).toMatchObject({ cpu: 1, op: 'interrupt', accepted: { vector: 0xf0 } });
  m.run({ schedule: [1, 1, 1, 1] }); // handler: store, eoi, iret; then the last pause
  expect(m.memory.read64(m.physicalAddress(seen)!)).toBe(1);
  expect(m.snapshot().cpus[1]!.apic).toMatchObject({ pending: [], inService: [] });
});
