import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { Machine } from '../../src/machine/machine.ts';
import { BuddyAllocator, MIGRATETYPE } from '../../src/mm/buddy.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { USER_CS, USER_RFLAGS, USER_SS, USER_STACK, USER_STACK_TOP } from './fixtures.ts';

// x.atomic(resource, action): one step that changes bookkeeping kept outside emulated memory, as under a lock.

describe('atomic steps', () => {
  it('an allocation is one step: its result is the program’s, and the trace shows it', () => {
    const m = Machine.create({ cpus: 1 });
    const zone = new BuddyAllocator(0x1000, 1024);
    const got: number[] = [];
    m.load(0, function* (x) {
      got.push(yield x.atomic('zone', () => zone.alloc(0, MIGRATETYPE.MOVABLE)));
      got.push(yield x.atomic('zone', () => zone.alloc(10, MIGRATETYPE.MOVABLE)));
    });
    expect(m.run().outcome).toBe('ok');
    expect(got).toEqual([0x1000, -1]); // the second finds no order-10 block left: NULL
    expect(m.trace.filter((e) => e.op === 'atomic').map((e) => e.value)).toEqual([0x1000, -1]);
  });

  it('the footprint names the resource, so the checker can order two steps on it', () => {
    const m = Machine.create({ cpus: 1, footprint: true });
    m.load(0, function* (x) {
      yield x.atomic('zone', () => 7);
    });
    m.step(0);
    expect(m.footprint!.resources).toEqual(['zone']);
    expect(m.footprint!.copy().resources).toEqual(['zone']);
  });

  it('an action that throws stops the CPU with the error, and the error propagates', () => {
    const m = Machine.create({ cpus: 1 });
    const zone = new BuddyAllocator(0x1000, 1024);
    m.load(0, function* (x) {
      yield x.atomic('zone', () => {
        zone.freeBlock(0x1000, 0); // never allocated: refused
        return 0;
      });
    });
    expect(() => m.run()).toThrow(InputError);
    expect(m.cpu(0).stopEvent).toMatchObject({ outcome: 'assertion' });
    expect(m.cpu(0).stopEvent!.message).toMatch(/^CPU 0 atomic at RIP .* failed: free of pfn 0x1000 order 0/);
  });

  it('it is privileged: at CPL 3 it raises #GP(0) and the action does not run', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(USER_STACK, { writable: true, user: true });
    let ran = false;
    function* user(x: Assembler) {
      yield x.atomic('zone', () => {
        ran = true;
        return 0;
      });
    }
    m.load(0, function* (x) {
      for (const slot of [USER_SS, USER_STACK_TOP, USER_RFLAGS, USER_CS, x.userEntry(user)]) yield x.push(slot);
      yield x.iret();
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.cpu(0).lastException).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(ran).toBe(false);
  });

  it('a resource must be named and the action a function', () => {
    const m = Machine.create({ cpus: 1 });
    m.load(0, function* (x) {
      yield x.atomic('', () => 0);
    });
    expect(() => m.run()).toThrow(/atomic resource '' must be a non-empty string/);
  });
});
