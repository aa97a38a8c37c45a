import { expect, test } from 'vitest';
import { type Assembler, InputError, Machine } from 'x86slice';

test('bad input is refused where it enters, naming the value, where it came from and the rule', () => {
  expect(() => Machine.create({ cpus: 65 })).toThrow('cpus 65 is impossible: a machine has 1..64 CPUs');
  const m = Machine.create({ cpus: 1 });
  const va = m.map(0xffffc90001000000n, { writable: true });
  expect(() => m.map(va)).toThrow('map(0xffffc90001000000): the address is already mapped');
  m.load(0, function* (x) {
    yield x.store(va, 1, -1); // one meaning per size: a 1-byte -1 is 0xff
    yield x.store(va, 8, 1.5); // refused: the CPU stops and the error propagates out of run()
  });
  expect(() => m.run()).toThrow(InputError);
  expect(m.cpu(0).state).toBe('stopped');
  expect(m.cpu(0).stopEvent!.message).toContain('CPU 0 store value 1.5 does not fit in 8 bytes');
  expect(m.memory.read8(m.physicalAddress(va)!)).toBe(0xff);
});

test('kernel code enters user mode with iret; the user task traps back with int 0x80', () => {
  const m = Machine.create({ cpus: 1 });
  const userStack = m.map(0x7fff_0000_0000n, { writable: true, user: true }) + 4096;
  const calls: number[] = [];
  // A trap gate with DPL 3, like Linux's int 0x80 entry: user code may INT through it.
  m.cpu(0).setGate(0x80, {
    ist: 0,
    type: 'trap',
    dpl: 3,
    handler: function* (x, ctx) {
      calls.push(ctx.vector);
      yield x.pause(); // the handler's work; returning is its iret
    },
  });
  function* user(x: Assembler) {
    yield x.int(0x80); // a trap: the handler's iret resumes at the next instruction
    yield x.int(0x80);
  }
  m.load(0, function* kernel(x) {
    // The frame iret pops to reach user mode: SS, RSP, RFLAGS (IF set), CS, RIP.
    for (const slot of [0x2b, userStack, 0x202, 0x33, x.userEntry(user)]) yield x.push(slot);
    yield x.iret();
  });

  m.run({ schedule: '0*7' }); // five pushes, iret, int 0x80: the handler is about to run
  expect(m.cpu(0).regs.cpl).toBe(0); // delivered through TSS.RSP0, on the kernel stack
  expect(m.cpu(0).exceptionFrame()).toMatchObject({ vector: 0x80, cs: 0x33, ss: 0x2b, rsp: userStack });
  expect(m.run().outcome).toBe('ok');
  expect(calls).toEqual([0x80, 0x80]);
  expect(m.cpu(0).regs.cpl).toBe(3); // the user task finished and the CPU idles in user mode
});
