import { describe, expect, it } from 'vitest';
import type { Program } from '../../src/cpu/assembler.ts';
import type { ExceptionFrame } from '../../src/cpu/exception-frame.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { type HandlerContext, RFLAGS } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError, LAYOUT, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { DATA, EXTRA_STACK, IPI_VECTOR, NON_CANONICAL, readFrame, UNMAPPED, useIstStack } from '../cpu/fixtures.ts';

// Readers of machine state for tests: cpu.exceptionFrame() (the frame a handler received, SDM Vol. 3 Figure 6-9,
// read from memory) and machine.entryAddress() (the paging entry at each level, SDM Vol. 3 §4.5, Figure 4-11).

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const ERROR_CODE_FRAME = 48;
const FRAME = 40;

const stackTop = (m: Machine): number => m.boot!.taskStacks[0]!.top;

/** The physical address of the paging entry for `va` at `level`, found by reading the tables by hand. */
function walkByHand(m: Machine, va: number, level: 1 | 2 | 3 | 4): number {
  let table = m.cpu(0).regs.cr3;
  for (let l = 4; ; l--) {
    const entry = table + (Math.floor(va / 2 ** (12 + 9 * (l - 1))) % 512) * 8;
    if (l === level) return entry;
    const lo = m.memory.read32(entry);
    const hi = m.memory.read32(entry + 4);
    table = (lo & 0xffff_f000) + (hi & 0x3fff) * 2 ** 32;
  }
}

interface Seen {
  readonly ctx: HandlerContext;
  readonly frame: ExceptionFrame | undefined;
}

describe('cpu.exceptionFrame', () => {
  it('a #PF frame: the error code slot, the faulting RIP, CS 0x10, RFLAGS with IF, the interrupted RSP, SS 0x18', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx) {
        seen.push({ ctx, frame: m.cpu(0).exceptionFrame() });
        yield x.iret({ fixup: true });
      },
      ist: 0,
      type: 'interrupt',
    });
    let faultingRip = 0;
    m.load(0, function* (x) {
      yield x.push(1);
      faultingRip = m.cpu(0).rip;
      yield x.load(UNMAPPED, 8, { fixup: 0 });
      yield x.pop();
    });
    expect(m.run().outcome).toBe('ok');
    const { ctx, frame } = seen[0]!;
    const top = stackTop(m);
    expect(frame).toEqual({
      vector: VECTOR.PF,
      errorCode: 0,
      rip: faultingRip,
      cs: 0x10,
      rflags: RFLAGS.FIXED | RFLAGS.IF,
      rsp: top - 8,
      ss: 0x18,
      address: top - 16 - ERROR_CODE_FRAME,
    });
    expect(frame!.address).toBe(ctx.frameRsp);
    // The same bytes read independently through the page tables.
    expect(readFrame(m, ctx.frameRsp, true)).toEqual({
      errorCode: frame!.errorCode,
      rip: frame!.rip,
      cs: frame!.cs,
      rflags: frame!.rflags,
      rsp: frame!.rsp,
      ss: frame!.ss,
    });
    // Nothing runs a handler any more.
    expect(m.cpu(0).exceptionFrame()).toBeUndefined();
  });

  it('a write #PF frame carries the W bit in its error code slot', () => {
    const m = Machine.create({ cpus: 1 });
    const frames: (ExceptionFrame | undefined)[] = [];
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x) {
        frames.push(m.cpu(0).exceptionFrame());
        yield x.iret({ fixup: true });
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.store(UNMAPPED, 8, 1, { fixup: 0 });
    });
    m.run();
    expect(frames[0]).toMatchObject({ vector: VECTOR.PF, errorCode: 2 });
  });

  it('an IPI frame has no errorCode field; its RIP is the instruction the interrupt came before', () => {
    const m = Machine.create({ cpus: 1 });
    const frames: (ExceptionFrame | undefined)[] = [];
    m.cpu(0).setGate(IPI_VECTOR, {
      handler: function* (x) {
        frames.push(m.cpu(0).exceptionFrame());
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.sendIpi('self', IPI_VECTOR);
      yield x.pause();
    });
    expect(m.run().outcome).toBe('ok');
    const accepted = m.trace.find((e) => e.op === 'interrupt')!;
    expect(frames[0]).toEqual({
      vector: IPI_VECTOR,
      rip: accepted.rip,
      cs: 0x10,
      rflags: RFLAGS.FIXED | RFLAGS.IF,
      rsp: stackTop(m),
      ss: 0x18,
      address: stackTop(m) - FRAME,
    });
    expect(frames[0]).not.toHaveProperty('errorCode');
  });

  it('is undefined when no handler runs: before a program, in the task program, and after the handler returned', () => {
    const m = Machine.create({ cpus: 1 });
    expect(m.cpu(0).exceptionFrame()).toBeUndefined();
    const inTask: (ExceptionFrame | undefined)[] = [];
    m.load(0, function* (x) {
      inTask.push(m.cpu(0).exceptionFrame());
      yield x.int3(); // the boot #BP handler oopses: replaced below
    });
    m.cpu(0).setGate(3, {
      handler: function* (x) {
        yield x.pause();
      },
      ist: 0,
      type: 'interrupt',
    });
    expect(m.run().outcome).toBe('ok');
    expect(inTask).toEqual([undefined]);
    expect(m.cpu(0).exceptionFrame()).toBeUndefined();
    expect(m.cpu(0).exceptionFrame(0)).toBeUndefined();
  });

  it('picks the handler at a control-stack level; the default is the innermost handler, past calls', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Record<string, unknown> = {};
    const helper: Program = function* (x) {
      const c = m.cpu(0);
      seen.inCall = { innermost: c.exceptionFrame()?.vector, level3: c.exceptionFrame(3) };
      yield x.pause();
    };
    m.cpu(0).setGate(0x81, {
      handler: function* (x) {
        const c = m.cpu(0);
        seen.nested = {
          depth: c.depth,
          innermost: c.exceptionFrame()?.vector,
          level0: c.exceptionFrame(0),
          level1: c.exceptionFrame(1)?.vector,
          level2: c.exceptionFrame(2)?.vector,
        };
        yield x.call(helper);
      },
      ist: 0,
      type: 'interrupt',
    });
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x) {
        yield x.int(0x81);
        yield x.iret({ fixup: true });
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.load(UNMAPPED, 8, { fixup: 0 });
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen.nested).toEqual({ depth: 3, innermost: 0x81, level0: undefined, level1: VECTOR.PF, level2: 0x81 });
    // Inside a program the handler called, the innermost handler is still 0x81; level 3 is the call, no handler.
    expect(seen.inCall).toEqual({ innermost: 0x81, level3: undefined });
  });

  it('refuses a level outside the control stack', () => {
    const m = Machine.create({ cpus: 1 });
    let error: unknown;
    m.load(0, function* (x) {
      try {
        m.cpu(0).exceptionFrame(1);
      } catch (e) {
        error = e;
      }
      yield x.pause();
    });
    m.run();
    expect(error).toBeInstanceOf(InputError);
    expect(() => m.cpu(0).exceptionFrame(-1)).toThrow(InputError);
    expect(() => m.cpu(0).exceptionFrame(0.5)).toThrow(InputError);
  });

  it('reads the frame from memory as it is now: a handler that rewrites its saved RIP sees the new value', () => {
    const m = Machine.create({ cpus: 1 });
    const frames: (ExceptionFrame | undefined)[] = [];
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx) {
        frames.push(m.cpu(0).exceptionFrame());
        yield x.store(ctx.frameRsp + 8, 8, 0x1234); // the RIP slot, above the error code
        frames.push(m.cpu(0).exceptionFrame());
        yield x.die('oops', 'done');
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.load(UNMAPPED, 8);
    });
    m.run();
    expect(frames[0]!.rip).not.toBe(0x1234);
    expect(frames[1]).toEqual({ ...frames[0], rip: 0x1234 });
  });

  it('is undefined when a slot of the frame is no longer mapped', () => {
    const m = Machine.create({ cpus: 1 });
    useIstStack(m, 0, 3);
    const frames: (ExceptionFrame | undefined)[] = [];
    m.cpu(0).setGate(IPI_VECTOR, {
      handler: function* (x) {
        frames.push(m.cpu(0).exceptionFrame());
        m.memory.write32(m.pteAddress(EXTRA_STACK), m.memory.read32(m.pteAddress(EXTRA_STACK)) & ~PTE_LO.P);
        frames.push(m.cpu(0).exceptionFrame());
        yield x.die('oops', 'done');
      },
      ist: 3,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.sendIpi('self', IPI_VECTOR);
      yield x.pause();
    });
    m.run();
    expect(frames[0]).toMatchObject({ vector: IPI_VECTOR, address: EXTRA_STACK + PAGE_SIZE - FRAME });
    expect(frames[1]).toBeUndefined();
  });

  it('of a #DF: error code 0 on IST1, with the RSP the #PF could not push its frame on', () => {
    const m = Machine.create({ cpus: 1 });
    m.boot!.pageTables.clearPresent(stackTop(m) - PAGE_SIZE);
    const frames: (ExceptionFrame | undefined)[] = [];
    const doubleFault = m.cpu(0).idt[VECTOR.DF]!;
    m.cpu(0).setGate(VECTOR.DF, {
      ...doubleFault,
      handler: function* (x, ctx) {
        frames.push(m.cpu(0).exceptionFrame());
        yield* doubleFault.handler(x, ctx);
      },
    });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
    });
    expect(m.run().outcome).toBe('double-fault');
    const ist1 = m.boot!.doubleFaultStacks[0]!.top;
    // (The saved CS:RIP of a #DF is undefined on hardware, SDM §6.15 interrupt 8: not asserted.)
    expect(frames[0]).toMatchObject({
      vector: VECTOR.DF,
      errorCode: 0,
      cs: 0x10,
      rflags: RFLAGS.FIXED | RFLAGS.IF,
      rsp: stackTop(m),
      ss: 0x18,
      address: ist1 - ERROR_CODE_FRAME,
    });
  });
});

describe('machine.entryAddress', () => {
  it('gives the entry at each level 4..1, as a walk of the tables by hand; level 1 is pteAddress', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    for (const level of [4, 3, 2, 1] as const) {
      expect(m.entryAddress(DATA, level)).toBe(walkByHand(m, DATA, level));
    }
    expect(m.entryAddress(DATA, 1)).toBe(m.pteAddress(DATA));
    expect(m.entryAddress(0xffff_c900_0100_0000n, 1)).toBe(m.pteAddress(DATA));
    expect(m.entryAddress(DATA + 0x123, 1)).toBe(m.pteAddress(DATA));
    // The level-1 entry maps the frame the page lives in.
    const lo = m.memory.read32(m.entryAddress(DATA, 1));
    expect((lo & 0xffff_f000) >>> 0).toBe(m.physicalAddress(DATA));
  });

  it('takes another root: the same tables under CR3 give the same entries', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    expect(m.entryAddress(DATA, 2, m.cpu(0).regs.cr3)).toBe(m.entryAddress(DATA, 2));
    expect(() => m.entryAddress(DATA, 2, m.memory.size)).toThrow(InputError);
  });

  it('refuses a level below a 2 MiB page of the direct map, naming the level the walk stopped at', () => {
    const m = Machine.create({ cpus: 1 }); // 64 MiB: no whole GiB, so the direct map uses 2 MiB pages
    const va = m.directMap(3 * MiB);
    expect(() => m.entryAddress(va, 1)).toThrow(InputError);
    expect(() => m.entryAddress(va, 1)).toThrow(
      /^entryAddress\(0xffff888000300000, 1\): the walk stops at level 2 \(a 2 MiB page\), above level 1$/,
    );
    expect(m.entryAddress(va, 2)).toBe(m.pteAddress(va));
    expect(m.entryAddress(va, 2)).toBe(walkByHand(m, va, 2));
    expect(m.memory.read32(m.entryAddress(va, 2)) & PTE_LO.PS).toBe(PTE_LO.PS);
  });

  it('refuses a level below a non-present entry, naming its level', () => {
    const m = Machine.create({ cpus: 1 });
    expect(() => m.entryAddress(UNMAPPED, 1)).toThrow(
      /the walk stops at level 2 \(a non-present entry\), above level 1$/,
    );
    expect(m.entryAddress(UNMAPPED, 2)).toBe(walkByHand(m, UNMAPPED, 2));
    const lowerHalf = toVirtual(0x0000_1000_0000_0000n); // no PML4E at all
    expect(() => m.entryAddress(lowerHalf, 3)).toThrow(
      /the walk stops at level 4 \(a non-present entry\), above level 3$/,
    );
    expect(m.entryAddress(lowerHalf, 4)).toBe(walkByHand(m, lowerHalf, 4));
  });

  it('refuses levels other than 1..4 and non-canonical addresses', () => {
    const m = Machine.create({ cpus: 1 });
    expect(() => m.entryAddress(DATA, 0 as 1)).toThrow(InputError);
    expect(() => m.entryAddress(DATA, 5 as 1)).toThrow(InputError);
    expect(() => m.entryAddress(NON_CANONICAL, 4)).toThrow(InputError);
  });

  it('a machine of exactly 1 GiB maps its direct map with one 1 GiB page: level 2 is refused', () => {
    const m = Machine.create({ cpus: 1, memory: GiB });
    const va = m.directMap(GiB - PAGE_SIZE);
    expect(() => m.entryAddress(va, 2)).toThrow(/the walk stops at level 3 \(a 1024 MiB page\), above level 2$/);
    expect(m.entryAddress(va, 3)).toBe(m.pteAddress(va));
  });

  it('memory of 1 GiB + 2 MiB: the last 2 MiB get a 2 MiB page', () => {
    const m = Machine.create({ cpus: 1, memory: GiB + 2 * MiB });
    const first = m.directMap(0);
    const last = m.directMap(GiB);
    expect(() => m.entryAddress(first, 2)).toThrow(/level 3/);
    expect(() => m.entryAddress(last, 1)).toThrow(/level 2 \(a 2 MiB page\)/);
  });
});

describe('a 1 TiB machine', () => {
  it('boots; the direct map reaches 0xffff888000000000 + 512 GiB through a 1 GiB page', () => {
    const m = Machine.create({ cpus: 1, memory: 2 ** 40 });
    const pa = 512 * GiB;
    const va = m.directMap(pa);
    expect(va).toBe(toVirtual(0xffff_8880_0000_0000n + 512n * 2n ** 30n));
    expect(va).toBe(LAYOUT.directMap + pa);
    const lastPage = m.directMap(2 ** 40 - PAGE_SIZE);
    const values: number[] = [];
    m.load(0, function* (x) {
      yield x.store(va + 8, 8, 0x1234_5678);
      values.push(yield x.load(va + 8, 8));
      yield x.store(lastPage, 4, 0xcafe);
      values.push(yield x.load(lastPage, 4));
    });
    expect(m.run().outcome).toBe('ok');
    expect(values).toEqual([0x1234_5678, 0xcafe]);
    // The bytes are where the direct map says: physical 512 GiB + 8, and the last page of memory.
    expect(m.memory.read64(pa + 8)).toBe(0x1234_5678);
    expect(m.memory.read32(2 ** 40 - PAGE_SIZE)).toBe(0xcafe);
    expect(m.physicalAddress(va + 8)).toBe(pa + 8);
    // One 1 GiB TLB entry translates it; the walk cannot go below level 3.
    const entry = m.snapshot().cpus[0]!.tlb.find((e) => e.va <= va && va < e.va + e.pageSize);
    expect(entry).toMatchObject({ va, pa, pageSize: GiB, global: true, noExecute: true });
    expect(() => m.entryAddress(va, 2)).toThrow(/^entryAddress\(0xffff890000000000, 2\): the walk stops at level 3/);
    expect(m.entryAddress(va, 3)).toBe(m.pteAddress(va));
    expect(m.entryAddress(va, 3)).toBe(walkByHand(m, va, 3));
    // 512 GiB is past the first PML4 entry's reach: the direct map uses a second one.
    expect(m.entryAddress(va, 4)).toBe(m.entryAddress(m.directMap(0), 4) + 8);
    expect(m.snapshot().memory.size).toBe(2 ** 40);
  });

  it('the task stacks and vmalloc mappings work as on a small machine', () => {
    const m = Machine.create({ cpus: 2, memory: 2 ** 40 });
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.push(7);
      yield x.store(DATA, 8, yield x.pop());
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(7);
  });
});
