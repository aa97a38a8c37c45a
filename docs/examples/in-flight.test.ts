import { expect, test } from 'vitest';
import { type Assembler, Machine } from 'x86slice';

test('an IPI stays in flight while its target runs on, until a delivery event', () => {
  const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
  const seen: number[] = [];
  m.cpu(1).setGate(0xf0, {
    ist: 0,
    type: 'interrupt',
    handler: function* (x, ctx) {
      seen.push(ctx.vector);
      yield x.eoi();
    },
  });
  m.load(0, function* (x) {
    yield x.sendIpi(1, 0xf0);
  });
  m.load(1, function* (x) {
    for (let i = 0; i < 10; i++) yield x.pause();
  });

  m.run({ schedule: '0,1*3' }); // sent, then three more CPU1 instructions: the IPI is still on its way
  expect(m.snapshot().inFlightIpis).toEqual([{ from: 0, to: 1, vector: 0xf0, mode: 'fixed' }]);
  m.run({ schedule: 'deliver:1,1' }); // it reaches CPU1's IRR; CPU1 accepts it at its next boundary
  expect(m.trace.map((e) => e.op).slice(-2)).toEqual(['deliver', 'interrupt']);
  expect(m.run().outcome).toBe('ok');
  expect(seen).toEqual([0xf0]);
});

test('copyPage moves a stack page exactly: return addresses survive the copy', () => {
  const m = Machine.create({ cpus: 1 });
  const stack = m.boot!.taskStacks[0]!;
  const page = stack.top - 4096;
  const oldFrame = m.physicalAddress(page)!;
  const newFrame = m.physicalAddress(m.map(0xffffc90001000000n, { writable: true }))!;
  const pte = m.directMap(m.pteAddress(page));
  function* migrate(x: Assembler) {
    // The return address of this call is on the page being moved: a kernel-text address above 2^53.
    yield x.copyPage(m.directMap(newFrame), m.directMap(oldFrame)); // rep movsq: 512 steps of 8 bytes
    const low: number = yield x.load(pte, 4);
    yield x.store(pte, 4, (low & 0xfff) | newFrame); // point the PTE at the copy (frames below 4 GiB here)
    yield x.invlpg(page);
  }
  m.load(0, function* (x) {
    yield x.call(migrate); // ret pops the return address from the copy
    yield x.push(1);
  });
  expect(m.run().outcome).toBe('ok');
  expect(m.physicalAddress(page)).toBe(newFrame);
});
