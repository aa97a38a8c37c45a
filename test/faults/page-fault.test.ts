import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/instruction.ts';
import { Machine } from '../../src/machine/machine.ts';
import { direct } from '../../src/mm/kernel-page-tables.ts';
import { formatVirtual, LAYOUT, toVirtual } from '../../src/mmu/address.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';

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
