import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { Machine } from '../../src/machine/machine.ts';
import { direct } from '../../src/mm/kernel-page-tables.ts';
import { formatVirtual, LAYOUT, toVirtual } from '../../src/mmu/address.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { USER_CS, USER_RFLAGS, USER_SS, USER_STACK, USER_STACK_TOP } from '../cpu/fixtures.ts';

// The kernel's #PF path (arch/x86/mm/fault.c do_kern_addr_fault) as a program: vmalloc_fault, the spurious-fault
// check, exception fixup, then an oops.

describe('the kernel #PF handler', () => {
  it('an access to a vmalloc address init_mm does not map either is an oops, reported as Linux reports it', () => {
    const m = Machine.create({ cpus: 1, kernel: {} });
    const va = LAYOUT.vmallocStart + 2 ** 40;
    let rip = 0;
    m.load(0, function* (x: Assembler) {
      rip = m.cpu(0).rip;
      yield x.store(va, 8, 1);
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.firstStop!.message).toBe(
      `BUG: unable to handle page fault for address: ${formatVirtual(va)}\n` +
        '#PF: supervisor write access in kernel mode\n' +
        '#PF: error_code(0x0002) - not-present page\n' +
        `RIP: 0010:${formatVirtual(rip)}`,
    );
  });

  it('a write through a stale read-only TLB entry whose PTE is writable now is spurious: retried, no oops', () => {
    const m = Machine.create({ cpus: 1, kernel: {} });
    const va = m.map(0xffffc90001000000n, { writable: false });
    const pte = direct(m.pteAddress(va));
    m.load(0, function* (x: Assembler) {
      yield x.load(va, 8); // the TLB caches the read-only translation
      const lo: number = yield x.load(pte, 4);
      yield x.store(pte, 4, lo | PTE_LO.RW); // made writable, with no flush (as Linux's lazy spurious-fault handling)
      yield x.store(va, 8, 7); // #PF(W|P) through the stale entry: spurious, the retry walks and succeeds
    });
    expect(m.run().outcome).toBe('ok');
    const faults = m.trace.filter((e) => e.exceptions);
    expect(faults).toHaveLength(1);
    expect(faults[0]!.exceptions![0]).toMatchObject({ name: '#PF', errorCode: 3 });
    expect(m.memory.read64(m.physicalAddress(va)!)).toBe(7);
  });

  it('a fault on an instruction with an exception-table fixup completes it with the fixup value', () => {
    const m = Machine.create({ cpus: 1, kernel: {} });
    let got = 0;
    m.load(0, function* (x: Assembler) {
      got = yield x.load(toVirtual(0xffffc90100000000n), 8, { fixup: 0xbad });
    });
    expect(m.run().outcome).toBe('ok');
    expect(got).toBe(0xbad);
  });

  it('with sync preallocated, vmalloc_fault is not there: a missing entry is an oops at once', () => {
    const m = Machine.create({ cpus: 1, kernel: { sync: 'preallocated' } });
    m.load(0, function* (x: Assembler) {
      yield x.load(LAYOUT.vmallocStart + 2 ** 40, 8);
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.trace.some((e) => e.op === 'mov-from-cr')).toBe(false);
  });
});

describe('a fault from user mode', () => {
  it('kills the user task with a segfault report naming it, and the kernel runs on (the CPU idles, no oops)', () => {
    const m = Machine.create({ cpus: 2, kernel: {} });
    m.map(USER_STACK, { writable: true, user: true });
    m.kernel!.current[0] = 'a.out';
    let after = 0;
    function* user(x: Assembler) {
      yield x.load(0x1000, 8); // nothing mapped there: #PF from CPL 3
      after++;
    }
    m.load(0, function* (x: Assembler) {
      for (const slot of [USER_SS, USER_STACK_TOP, USER_RFLAGS, USER_CS, x.userEntry(user)]) yield x.push(slot);
      yield x.iret();
    });
    let other = 0;
    m.load(1, function* (x: Assembler) {
      for (let i = 0; i < 50; i++) {
        yield x.pause();
        other++;
      }
    });
    expect(m.run().outcome).toBe('ok');
    expect(after).toBe(0); // the task never resumed
    expect(other).toBe(50); // the other CPU ran on
    expect(m.cpu(0).state).toBe('halted');
    expect(m.cpu(0).interruptsEnabled).toBe(true);
    expect(m.kernel!.log).toEqual([
      expect.stringMatching(/^a\.out\[cpu0\]: segfault at 0x0000000000001000 ip 0x0000000000400\w+ error 4$/),
    ]);
  });
});
