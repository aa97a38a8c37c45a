// x.copy / x.copyPage: rep movs through the executing CPU's MMU. Bytes move as bytes (a 64-bit word above 2^53
// arrives exactly), one chunk per step; each chunk reads the source then writes the destination; a fault is precise
// at a chunk boundary and the copy goes on from there after iret; an interrupt may be taken between chunks.
import { describe, expect, it } from 'vitest';
import type { Assembler, Program } from '../../src/cpu/assembler.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import type { Instruction } from '../../src/cpu/instruction.ts';
import type { HandlerContext } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { PAGE_SIZE } from '../../src/mmu/address.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import {
  type Body,
  DATA,
  IPI_VECTOR,
  setPresent,
  USER_CS,
  USER_DATA,
  USER_RFLAGS,
  USER_SS,
  USER_STACK,
  USER_STACK_TOP,
} from './fixtures.ts';

/** Kernel data page `i` in vmalloc space (page 0 is DATA). */
const page = (i: number): number => DATA + i * PAGE_SIZE;

/** A kernel-text-like 64-bit word: above 2^53, so no JS number holds it. */
const KERNEL_WORD = 0xffff_ffff_8100_0000n;
/** Words whose doubles differ from them in the low bits. */
const ODD_WORDS = [0xffff_ffff_ffff_ffffn, 0x8000_0000_0000_0001n, 0xdead_beef_cafe_babfn, KERNEL_WORD + 0x123n];

function writeWordAt(m: Machine, pa: number, value: bigint): void {
  m.memory.write32(pa, Number(value & 0xffff_ffffn));
  m.memory.write32(pa + 4, Number(value >> 32n));
}

function wordAt(m: Machine, pa: number): bigint {
  return (BigInt(m.memory.read32(pa + 4)) << 32n) | BigInt(m.memory.read32(pa));
}

function setWord(m: Machine, va: number, value: bigint): void {
  writeWordAt(m, m.physicalAddress(va)!, value);
}

function word(m: Machine, va: number): bigint {
  return wordAt(m, m.physicalAddress(va)!);
}

/** Distinct words above 2^53, one per index, for source patterns. */
const pattern = (i: number): bigint => 0xffff_ff00_0000_0000n + BigInt(i) * 0x1_0000_0101n + 1n;

/** Fills `count` words at `va` with pattern(i + first). */
function fill(m: Machine, va: number, count: number, first = 0): void {
  for (let i = 0; i < count; i++) setWord(m, va + 8 * i, pattern(i + first));
}

function words(m: Machine, va: number, count: number): bigint[] {
  return Array.from({ length: count }, (_, i) => word(m, va + 8 * i));
}

/** Program fragment: points the PTE of `va` at frame `pa` (bits 51:12, both 4-byte halves) through the direct map. */
function* repoint(x: Assembler, m: Machine, va: number, pa: number): Body {
  const pte = m.directMap(m.pteAddress(va));
  const low = yield x.load(pte, 4);
  yield x.store(pte, 4, ((low & 0xfff) | (pa % 2 ** 32)) >>> 0);
  const high = yield x.load(pte + 4, 4);
  yield x.store(pte + 4, 4, ((high & ~0xfffff) | Math.floor(pa / 2 ** 32)) >>> 0);
}

/** The trace's copy steps of CPU `cpu`. */
function copySteps(m: Machine, cpu = 0) {
  return m.trace.filter((e) => e.cpu === cpu && e.op === 'copy');
}

describe('migrating a stack page: frames and return addresses survive the copy', () => {
  /** How the handler moves the page: from `src` to `dst`, both direct-map addresses of whole frames. */
  type Copier = (x: Assembler, dst: number, src: number) => Body;

  /**
   * The task calls f; f does int 0x80 (gate on the current stack). So the top stack page holds f's return address
   * (kernel text) and an interrupt frame (saved RIP in kernel text, saved RSP in vmalloc space), all above 2^53.
   * The handler copies the page to a fresh frame with `copier`, repoints the PTE, invlpg's (unless told not to),
   * then scribbles zeros over the old frame's copy of the frames: only a pop from the new frame can succeed.
   */
  function migrateStack(copier: Copier, options: { invlpg?: boolean } = {}) {
    const m = Machine.create({ cpus: 1 });
    const stack = m.boot!.taskStacks[0]!;
    const stackPage = stack.top - PAGE_SIZE;
    const oldPa = m.physicalAddress(stackPage)!;
    const newPa = m.physicalAddress(m.map(page(0), { writable: true }))!;
    const seen = { frameRsp: 0, returnAddress: 0n, savedRip: 0n, savedRsp: 0n };
    m.cpu(0).setGate(0x80, {
      ist: 0,
      type: 'interrupt',
      handler: function* (x, ctx) {
        seen.frameRsp = ctx.frameRsp;
        seen.returnAddress = wordAt(m, oldPa + PAGE_SIZE - 8);
        seen.savedRip = wordAt(m, oldPa + (ctx.frameRsp - stackPage));
        seen.savedRsp = wordAt(m, oldPa + (ctx.frameRsp - stackPage) + 24);
        yield* copier(x, m.directMap(newPa), m.directMap(oldPa));
        yield* repoint(x, m, stackPage, newPa);
        if (options.invlpg !== false) yield x.invlpg(stackPage);
        // The saved RIP and RSP of the frame and f's return address: the 64-bit values a pop must get right.
        for (const slot of [ctx.frameRsp, ctx.frameRsp + 24, stack.top - 8]) {
          const old = m.directMap(oldPa + (slot - stackPage));
          yield x.store(old, 4, 0);
          yield x.store(old + 4, 4, 0);
        }
      },
    });
    const f: Program = function* (x) {
      yield x.int(0x80);
      return 7;
    };
    const after = { result: 0 };
    m.load(0, function* (x) {
      after.result = yield x.call(f);
      yield x.push(0x1234);
    });
    return { m, stack, stackPage, oldPa, newPa, seen, after };
  }

  it('copyPage of the stack page to a new frame, remapped: the handler irets and f rets through the copy', () => {
    const { m, stack, stackPage, oldPa, newPa, seen, after } = migrateStack(function* (x, dst, src) {
      yield x.copyPage(dst, src);
    });
    const result = m.run({ maxSteps: 2000 });
    expect(result.outcome).toBe('ok');
    expect(result.stop).toBeUndefined();
    // What was on the page: the return address and the frame's RIP and RSP, all 64-bit values above 2^53.
    expect(seen.frameRsp).toBe(stack.top - 56);
    expect(seen.returnAddress >> 32n).toBe(0xffff_ffffn);
    expect(seen.savedRip >> 32n).toBe(0xffff_ffffn);
    expect(seen.savedRsp).toBe(0xffff_0000_0000_0000n + BigInt(stack.top - 8));
    expect(after.result).toBe(7);
    // The later stack accesses hit the new frame; the old one holds the scribble.
    expect(m.physicalAddress(stackPage)).toBe(newPa);
    expect(m.memory.read64(newPa + PAGE_SIZE - 8)).toBe(0x1234);
    expect(m.memory.read64(oldPa + PAGE_SIZE - 8)).toBe(0);
    const push = m.trace.filter((e) => e.op === 'push').at(-1)!;
    expect(push).toMatchObject({ op: 'push', va: stack.top - 8, pa: newPa + PAGE_SIZE - 8 });
    // The copy was 512 chunks of 8 bytes, one per step.
    const steps = copySteps(m);
    expect(steps).toHaveLength(512);
    expect(steps.map((e) => e.pa)).toEqual(Array.from({ length: 512 }, (_, i) => newPa + 8 * i));
    expect(m.trace.filter((e) => e.stop !== undefined)).toEqual([]);
  });

  it('control: without invlpg the stale translation pops the scribbled old frame (stack-corruption)', () => {
    const { m } = migrateStack(
      function* (x, dst, src) {
        yield x.copyPage(dst, src);
      },
      { invlpg: false },
    );
    const result = m.run({ maxSteps: 2000 });
    expect(result.outcome).toBe('stack-corruption');
    expect(result.stop!.message).toMatch(/^iret popped 0x0000000000000000 but the continuation is at /);
  });

  it('a word-by-word copy with 4-byte loads and stores is exact too', () => {
    const { m, stackPage, newPa, after } = migrateStack(function* (x, dst, src) {
      for (let off = 0; off < PAGE_SIZE; off += 4) yield x.store(dst + off, 4, yield x.load(src + off, 4));
    });
    expect(m.run({ maxSteps: 5000 }).outcome).toBe('ok');
    expect(after.result).toBe(7);
    expect(m.physicalAddress(stackPage)).toBe(newPa);
  });

  it('a copy with 8-byte load + store is refused at the store of the first word above 2^53 (InputError)', () => {
    const loaded: number[] = [];
    const { m, stack, oldPa, newPa, seen } = migrateStack(function* (x, dst, src) {
      for (let off = 0; off < PAGE_SIZE; off += 8) {
        const v = yield x.load(src + off, 8);
        loaded.push(v);
        yield x.store(dst + off, 8, v);
      }
    });
    expect(() => m.run({ maxSteps: 5000 })).toThrow(InputError);
    expect(m.cpu(0).state).toBe('stopped');
    expect(m.cpu(0).stopEvent).toMatchObject({ outcome: 'assertion' });
    expect(m.cpu(0).stopEvent!.message).toContain('does not fit in 8 bytes');
    // Refused at the saved RIP, the lowest nonzero word; the number loaded for it is not the word.
    expect(loaded).toHaveLength((seen.frameRsp - (stack.top - PAGE_SIZE)) / 8 + 1);
    expect(loaded.at(-1)!).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
    expect(BigInt(loaded.at(-1)!)).not.toBe(seen.savedRip);
    expect(wordAt(m, oldPa + (seen.frameRsp - (stack.top - PAGE_SIZE)))).toBe(seen.savedRip);
    expect(wordAt(m, newPa + (seen.frameRsp - (stack.top - PAGE_SIZE)))).toBe(0n);
  });
});

describe('exact 8-byte moves', () => {
  it.each(ODD_WORDS.map((w) => [`0x${w.toString(16)}`, w] as const))(
    'copy(dst, src, 8) of %s arrives bit-exactly',
    (_, w) => {
      const m = Machine.create({ cpus: 1 });
      const src = m.map(page(0), { writable: true });
      const dst = m.map(page(1), { writable: true });
      setWord(m, src + 16, w);
      let result = -1;
      m.load(0, function* (x) {
        result = yield x.copy(dst + 40, src + 16, 8);
      });
      expect(m.run().outcome).toBe('ok');
      expect(result).toBe(0);
      const pa = m.physicalAddress(dst + 40)!;
      expect([m.memory.read32(pa), m.memory.read32(pa + 4)]).toEqual([Number(w & 0xffff_ffffn), Number(w >> 32n)]);
      // Neighbours untouched.
      expect(word(m, dst + 32)).toBe(0n);
      expect(word(m, dst + 48)).toBe(0n);
    },
  );
});

describe('one chunk per step', () => {
  it('64 bytes with chunk 8 take 8 steps, each an 8-byte copy at the next address', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    fill(m, src, 8);
    const dstPa = m.physicalAddress(dst)!;
    m.load(0, function* (x) {
      yield x.copy(dst, src, 64, { chunk: 8 });
    });
    expect(m.run().outcome).toBe('ok');
    const steps = copySteps(m);
    expect(steps).toHaveLength(8);
    expect(steps.map((e) => e.va)).toEqual([0, 8, 16, 24, 32, 40, 48, 56].map((o) => dst + o));
    expect(steps.map((e) => e.pa)).toEqual([0, 8, 16, 24, 32, 40, 48, 56].map((o) => dstPa + o));
    expect(new Set(steps.map((e) => e.size))).toEqual(new Set([8]));
    expect(new Set(steps.map((e) => e.rip)).size).toBe(1); // one instruction, pending until the last chunk
    expect(words(m, dst, 8)).toEqual(words(m, src, 8));
  });

  it('chunk 4096 copies a whole page in one step', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    fill(m, src, 512);
    m.load(0, function* (x) {
      yield x.copy(dst, src, PAGE_SIZE, { chunk: PAGE_SIZE });
    });
    const event = m.step(0)!;
    expect(event).toMatchObject({ op: 'copy', va: dst, size: PAGE_SIZE });
    expect(m.memory.frameBytes(m.physicalAddress(dst)! / PAGE_SIZE)).toEqual(
      m.memory.frameBytes(m.physicalAddress(src)! / PAGE_SIZE),
    );
    expect(m.run().outcome).toBe('ok');
    expect(copySteps(m)).toHaveLength(1);
  });

  it('the program resumes with the result only after the last chunk', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    fill(m, src, 8);
    const resumed = { done: false, result: -1 };
    m.load(0, function* (x) {
      resumed.result = yield x.copy(dst, src, 64);
      resumed.done = true;
      yield x.pause();
    });
    const rip = m.cpu(0).rip;
    for (let i = 0; i < 7; i++) {
      m.step(0);
      expect(resumed.done).toBe(false);
      expect(m.cpu(0).rip).toBe(rip);
      expect(m.cpu(0).controlStack()[0]!.pending).toBe('copy');
    }
    expect(word(m, dst + 56)).toBe(0n); // the last chunk is still to come
    m.step(0);
    expect(word(m, dst + 56)).toBe(pattern(7));
    expect(resumed.done).toBe(false); // the generator resumes when the CPU fetches its next instruction
    expect(m.cpu(0).rip).toBe(rip + 4);
    expect(m.step(0)).toMatchObject({ op: 'pause' });
    expect(resumed).toEqual({ done: true, result: 0 });
  });
});

describe('other CPUs and interrupts see every intermediate state', () => {
  it.each([
    ['a written', 0xaa],
    ['a fresh (never written)', 0],
  ] as const)(
    'a second CPU reads %s destination page half-copied: a word is old before its chunk, new after',
    (_, old) => {
      const m = Machine.create({ cpus: 2 });
      const src = m.map(page(0), { writable: true });
      const dst = m.map(page(1), { writable: true });
      for (let i = 0; i < 8; i++) m.memory.write64(m.physicalAddress(src + 8 * i)!, 0x100 + i);
      if (old !== 0) for (let i = 0; i < 8; i++) m.memory.write64(m.physicalAddress(dst + 8 * i)!, old);
      const seen: number[] = [];
      m.load(0, function* (x) {
        yield x.copy(dst, src, 64);
      });
      m.load(1, function* (x) {
        seen.push(yield x.load(dst + 56, 8)); // before any chunk: the page is cached in CPU1's TLB
        seen.push(yield x.load(dst + 16, 8)); // after three chunks: copied
        seen.push(yield x.load(dst + 24, 8)); // chunk 3 not yet copied
        seen.push(yield x.load(dst + 24, 8)); // after chunk 3
        seen.push(yield x.load(dst + 56, 8)); // chunk 7 not yet copied
      });
      expect(m.run({ schedule: [1, 0, 0, 0, 1, 1, 0, 1, 1] }).outcome).toBe('ok');
      expect(m.run().outcome).toBe('ok');
      expect(seen).toEqual([old, 0x102, old, 0x103, old]); // each value is the one its load read at its step
      expect(m.memory.read64(m.physicalAddress(dst + 56)!)).toBe(0x107);
    },
  );

  it('a CPU spinning on a destination word wakes when the chunk that writes it is copied', () => {
    const m = Machine.create({ cpus: 2 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    for (let i = 0; i < 8; i++) m.memory.write64(m.physicalAddress(src + 8 * i)!, 0x100 + i);
    let value = 0;
    m.load(1, function* (x) {
      value = yield x.spinUntil(dst + 40, 8, (v) => v !== 0);
    });
    m.load(0, function* (x) {
      yield x.copy(dst, src, 64);
    });
    m.run({ schedule: [1] });
    expect(m.cpu(1).state).toBe('blocked');
    m.run({ schedule: '0*5' });
    expect(m.cpu(1).state).toBe('blocked'); // chunks 0..4 do not touch the watched word
    m.run({ schedule: '0' }); // chunk 5 writes it
    expect(m.cpu(1).runnable).toBe(true);
    expect(m.run().outcome).toBe('ok');
    expect(value).toBe(0x105);
  });

  it('an IPI is taken between chunks; after iret the copy resumes where it was, no chunk copied twice', () => {
    const m = Machine.create({ cpus: 2 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    fill(m, src, 8);
    const frames: number[] = [];
    m.cpu(0).setGate(IPI_VECTOR, {
      ist: 0,
      type: 'interrupt',
      handler: function* (x) {
        frames.push(m.cpu(0).exceptionFrame()!.rip);
        yield x.store(src, 8, 0x5a5a); // chunk 0 was copied: the destination keeps the old word
        yield x.store(src + 56, 8, 0x7777); // chunk 7 was not: it arrives
        yield x.eoi();
      },
    });
    m.load(0, function* (x) {
      yield x.copy(dst, src, 64);
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    m.run({ schedule: [0, 0, 1] });
    expect(m.run().outcome).toBe('ok');
    const cpu0 = m.trace.filter((e) => e.cpu === 0).map((e) => e.op);
    expect(cpu0).toEqual([
      'copy',
      'copy',
      'interrupt',
      'store',
      'store',
      'eoi',
      'iret',
      ...Array(6).fill('copy'),
      'exit',
    ]);
    const steps = copySteps(m);
    expect(steps.map((e) => e.va)).toEqual([0, 8, 16, 24, 32, 40, 48, 56].map((o) => dst + o));
    expect(frames).toEqual([steps[0]!.rip]); // the frame saved the copy's own RIP: it is still in progress
    expect(words(m, dst, 8)).toEqual([
      ...words(m, src, 8)
        .slice(0, 7)
        .map((w, i) => (i === 0 ? pattern(0) : w)),
      0x7777n,
    ]);
  });
});

describe('rep movs semantics', () => {
  it('a handler that copies between the chunks of an interrupted copy leaves its progress alone', () => {
    const m = Machine.create({ cpus: 2 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    const other = m.map(page(2), { writable: true });
    fill(m, src, 8);
    fill(m, src + 512, 4, 100);
    m.cpu(0).setGate(IPI_VECTOR, {
      ist: 0,
      type: 'interrupt',
      handler: function* (x) {
        yield x.copy(other, src + 512, 32); // the handler's own rep movs: its own RSI/RDI/RCX
        yield x.eoi();
      },
    });
    m.load(0, function* (x) {
      yield x.copy(dst, src, 64);
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    m.run({ schedule: [0, 0, 0, 1] });
    expect(m.run().outcome).toBe('ok');
    expect(words(m, dst, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(pattern));
    expect(words(m, other, 4)).toEqual([100, 101, 102, 103].map(pattern));
    expect(copySteps(m).map((e) => e.va)).toEqual([
      ...[0, 8, 16].map((o) => dst + o),
      ...[0, 8, 16, 24].map((o) => other + o),
      ...[24, 32, 40, 48, 56].map((o) => dst + o),
    ]);
  });

  it('overlapping ranges copy forward one chunk at a time, as rep movsq with DF=0: the first chunk repeats', () => {
    const m = Machine.create({ cpus: 1 });
    const buf = m.map(page(0), { writable: true });
    fill(m, buf, 9);
    m.load(0, function* (x) {
      yield x.copy(buf + 8, buf, 64);
    });
    expect(m.run().outcome).toBe('ok');
    expect(words(m, buf, 9)).toEqual(Array(9).fill(pattern(0)));
  });

  it('each chunk reads the source and writes the destination: A set on both PTEs, D only on the destination', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true, accessed: false, dirty: false });
    const dst = m.map(page(1), { writable: true, accessed: false, dirty: false });
    const A = 0x20;
    const D = 0x40;
    m.load(0, function* (x) {
      yield x.load(dst, 8); // the destination's entry is cached clean: the copy's write must set D
      yield x.copy(dst, src, 8);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.memory.read32(m.pteAddress(src)) & (A | D)).toBe(A);
    expect(m.memory.read32(m.pteAddress(dst)) & (A | D)).toBe(A | D);
  });
});

describe('faults are precise at a chunk boundary', () => {
  /** A source page A (mapped), the page B after it, and a destination page D, each with its own pattern. */
  function faultSetup() {
    const m = Machine.create({ cpus: 1 });
    const a = m.map(page(0), { writable: true });
    const b = m.map(page(1), { writable: true });
    const d = m.map(page(2), { writable: true });
    const bPa = m.physicalAddress(b)!;
    const dPa = m.physicalAddress(d)!;
    fill(m, a + PAGE_SIZE - 32, 4, 0);
    fill(m, b, 4, 4);
    for (let i = 0; i < 8; i++) writeWordAt(m, dPa + 8 * i, 0xaaaa_aaaa_aaaa_aaaan);
    return { m, a, b, d, bPa, dPa, src: a + PAGE_SIZE - 32 };
  }

  it('a source page not present: #PF error code 0 with CR2 at the faulting chunk; earlier chunks arrived', () => {
    const { m, b, d, dPa, src } = faultSetup();
    m.boot!.pageTables.clearPresent(b);
    m.load(0, function* (x) {
      yield x.copy(d, src, 64);
    });
    expect(m.run().outcome).toBe('oops'); // the boot #PF handler: no fixup
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: 0, cr2: b });
    const steps = copySteps(m);
    expect(steps).toHaveLength(5);
    expect(steps[4]!.exceptions![0]).toMatchObject({ vector: VECTOR.PF, errorCode: 0, cr2: b });
    expect(words(m, d, 4)).toEqual([0, 1, 2, 3].map(pattern));
    for (let i = 4; i < 8; i++) expect(wordAt(m, dPa + 8 * i)).toBe(0xaaaa_aaaa_aaaa_aaaan);
  });

  it('a destination page not present: #PF with W (error code 2), and nothing of the chunk is written', () => {
    const { m, a, bPa } = faultSetup();
    const dst = page(1) - 32; // the last 32 bytes of A, then B
    m.boot!.pageTables.clearPresent(page(1));
    const before = m.memory.frameBytes(bPa / PAGE_SIZE);
    m.load(0, function* (x) {
      yield x.copy(dst, page(2), 64);
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: 2, cr2: page(1) });
    expect(copySteps(m)).toHaveLength(5);
    expect(words(m, a + PAGE_SIZE - 32, 4)).toEqual(Array(4).fill(0xaaaa_aaaa_aaaa_aaaan));
    expect(m.memory.frameBytes(bPa / PAGE_SIZE)).toEqual(before);
  });

  it('a read-only destination: #PF P|W (error code 3), destination unchanged', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const ro = m.map(page(1), { writable: false });
    setWord(m, src, KERNEL_WORD);
    m.load(0, function* (x) {
      yield x.copy(ro + 8, src, 8);
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: 3, cr2: ro + 8 });
    expect(word(m, ro + 8)).toBe(0n);
  });

  it.each(['source', 'destination'] as const)(
    'a #PF handler that maps the %s page back: the copy goes on from the faulting chunk, none copied twice',
    (which) => {
      const m = Machine.create({ cpus: 1 });
      const a = m.map(page(0), { writable: true });
      const b = m.map(page(1), { writable: true });
      const c = m.map(page(2), { writable: true });
      const d = m.map(page(3), { writable: true });
      // source: the last 32 bytes of A then B; destination: the last 32 bytes of C then D.
      const src = a + PAGE_SIZE - 32;
      const dst = c + PAGE_SIZE - 32;
      fill(m, src, 4, 0);
      fill(m, b, 4, 4);
      const missing = which === 'source' ? b : d;
      m.boot!.pageTables.clearPresent(missing);
      const seen: HandlerContext[] = [];
      m.cpu(0).setGate(VECTOR.PF, {
        ist: 0,
        type: 'interrupt',
        handler: function* (x, ctx) {
          seen.push(ctx);
          yield x.store(src, 8, 0x5a5a); // chunk 0 was copied: its destination must keep the old word
          yield* setPresent(x, m, ctx.cr2);
        },
      });
      let result = -1;
      m.load(0, function* (x) {
        result = yield x.copy(dst, src, 64);
      });
      expect(m.run({ maxSteps: 100 }).outcome).toBe('ok');
      expect(result).toBe(0);
      expect(seen.map((c) => [c.errorCode, c.cr2])).toEqual([[which === 'source' ? 0 : 2, missing]]);
      const steps = copySteps(m);
      expect(steps.map((e) => e.va! - dst)).toEqual([0, 8, 16, 24, 32, 32, 40, 48, 56]);
      expect(steps.map((e) => e.exceptions !== undefined)).toEqual([
        false,
        false,
        false,
        false,
        true,
        ...Array(4).fill(false),
      ]);
      expect(words(m, dst, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(pattern));
      expect(word(m, src)).toBe(0x5a5an);
    },
  );

  it('through a stale TLB entry the copy reads the old source frame until invlpg', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const other = m.map(page(1), { writable: true });
    const dst = m.map(page(2), { writable: true });
    const otherPa = m.physicalAddress(other)!;
    setWord(m, src, ODD_WORDS[0]!);
    setWord(m, other, ODD_WORDS[1]!);
    m.load(0, function* (x) {
      yield x.load(src, 4); // the translation is cached
      yield* repoint(x, m, src, otherPa);
      yield x.copy(dst, src, 8);
      yield x.invlpg(src);
      yield x.copy(dst + 8, src, 8);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.physicalAddress(src)).toBe(otherPa);
    expect(words(m, dst, 2)).toEqual([ODD_WORDS[0], ODD_WORDS[1]]);
  });

  it('through a stale TLB entry the copy writes the old destination frame until invlpg', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    const other = m.map(page(2), { writable: true });
    const oldPa = m.physicalAddress(dst)!;
    const otherPa = m.physicalAddress(other)!;
    setWord(m, src, ODD_WORDS[2]!);
    setWord(m, src + 8, ODD_WORDS[3]!);
    m.load(0, function* (x) {
      yield x.store(dst, 4, 1); // cached, writable and dirty
      yield* repoint(x, m, dst, otherPa);
      yield x.copy(dst + 8, src, 8);
      yield x.invlpg(dst);
      yield x.copy(dst + 16, src + 8, 8);
    });
    expect(m.run().outcome).toBe('ok');
    expect([wordAt(m, oldPa + 8), wordAt(m, oldPa + 16)]).toEqual([ODD_WORDS[2], 0n]);
    expect([wordAt(m, otherPa + 8), wordAt(m, otherPa + 16)]).toEqual([0n, ODD_WORDS[3]]);
  });

  it('a stale read-only translation gives a spurious #PF P|W; the #PF drops it and the re-executed chunk succeeds', () => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: false });
    setWord(m, src, KERNEL_WORD);
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(VECTOR.PF, {
      ist: 0,
      type: 'interrupt',
      handler: function* (x, ctx) {
        seen.push(ctx);
        yield x.iret(); // the entry is already writable in memory: nothing to fix
      },
    });
    const pte = m.directMap(m.pteAddress(dst));
    m.load(0, function* (x) {
      yield x.load(dst, 8); // cached read-only
      const low = yield x.load(pte, 4);
      yield x.store(pte, 4, low | 0x2); // made writable, no invlpg (permissions only grow)
      yield x.copy(dst, src, 8);
    });
    expect(m.run({ maxSteps: 50 }).outcome).toBe('ok');
    expect(seen.map((c) => [c.errorCode, c.cr2])).toEqual([[3, dst]]);
    expect(copySteps(m).map((e) => e.exceptions?.[0]?.vector)).toEqual([VECTOR.PF, undefined]);
    expect(word(m, dst)).toBe(KERNEL_WORD);
  });

  it('a copy that walks off the lower canonical half raises #GP(0) at that chunk, CR2 untouched', () => {
    const m = Machine.create({ cpus: 1 });
    const top = m.map(0x0000_7fff_ffff_f000n, { writable: true });
    const dst = m.map(page(0), { writable: true });
    setWord(m, top + PAGE_SIZE - 8, KERNEL_WORD);
    m.load(0, function* (x) {
      yield x.copy(dst, top + PAGE_SIZE - 8, 16);
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.GP, errorCode: 0, cr2: 0 });
    expect(copySteps(m)).toHaveLength(2);
    expect(words(m, dst, 2)).toEqual([KERNEL_WORD, 0n]);
  });
  // In 64-bit mode RSI/RDI wrap modulo 2^64 (SDM Vol. 2 MOVS: RSI <- RSI + 8), so the iteration after
  // 0xfffffffffffffff8 accesses linear address 0, which is canonical: an unmapped page 0 is #PF(0) with CR2 = 0.
  it('a copy that runs past the top of the address space wraps to address 0 (#PF at 0, not #GP)', () => {
    const m = Machine.create({ cpus: 1 });
    const last = m.map(0xffff_ffff_ffff_f000n, { writable: true });
    const dst = m.map(page(0), { writable: true });
    setWord(m, last + PAGE_SIZE - 8, KERNEL_WORD);
    m.load(0, function* (x) {
      yield x.copy(dst, last + PAGE_SIZE - 8, 16);
    });
    expect(m.run().outcome).toBe('oops');
    expect(words(m, dst, 2)).toEqual([KERNEL_WORD, 0n]);
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: 0, cr2: 0 });
  });
});

describe('exception-table fixups', () => {
  it('a faulting copy with { fixup } completes with the fixup value; a later copy starts from its beginning', () => {
    const m = Machine.create({ cpus: 1 });
    const a = m.map(page(0), { writable: true });
    const b = m.map(page(1), { writable: true });
    const d = m.map(page(2), { writable: true });
    const src = a + PAGE_SIZE - 32;
    fill(m, src, 4, 0);
    fill(m, b, 4, 4);
    m.boot!.pageTables.clearPresent(b);
    const results: number[] = [];
    m.load(0, function* (x) {
      results.push(yield x.copy(d, src, 64, { fixup: 0xefa }));
      yield* setPresent(x, m, b);
      results.push(yield x.copy(d + 64, src, 64));
    });
    expect(m.run({ maxSteps: 100 }).outcome).toBe('ok');
    expect(results).toEqual([0xefa, 0]);
    expect(m.cpu(0).lastException).toMatchObject({ vector: VECTOR.PF, errorCode: 0, cr2: b });
    // The first copy stopped at the faulting chunk: four words arrived.
    expect(words(m, d, 8)).toEqual([...[0, 1, 2, 3].map(pattern), 0n, 0n, 0n, 0n]);
    // The second copy started over: all eight words, chunk 0 first.
    expect(words(m, d + 64, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(pattern));
    const second = copySteps(m).filter((e) => e.va! >= d + 64);
    expect(second.map((e) => e.va! - d - 64)).toEqual([0, 8, 16, 24, 32, 40, 48, 56]);
  });
});

describe('footprints', () => {
  it('each chunk records exactly the bytes it read and wrote', () => {
    const m = Machine.create({ cpus: 1, footprint: true });
    const src = m.map(page(0), { writable: true });
    const dst = m.map(page(1), { writable: true });
    const srcPa = m.physicalAddress(src)!;
    const dstPa = m.physicalAddress(dst)!;
    m.load(0, function* (x) {
      yield x.copy(dst, src, 128, { chunk: 64 });
    });
    m.step(0);
    expect(m.footprint!.reads).toEqual([srcPa, 64]);
    expect(m.footprint!.writes).toEqual([dstPa, 64]);
    m.step(0);
    expect(m.footprint!.reads).toEqual([srcPa + 64, 64]);
    expect(m.footprint!.writes).toEqual([dstPa + 64, 64]);
  });
});

describe('user mode', () => {
  function userCopy(copy: (x: Assembler) => Instruction) {
    const m = Machine.create({ cpus: 1 });
    m.map(USER_STACK, { writable: true, user: true });
    const user = m.map(USER_DATA, { writable: true, user: true });
    const kernel = m.map(page(0), { writable: true });
    setWord(m, user, ODD_WORDS[0]!);
    setWord(m, kernel, ODD_WORDS[1]!);
    let result = -1;
    const program: Program = function* (x) {
      result = yield copy(x);
    };
    m.load(0, function* (x) {
      for (const slot of [USER_SS, USER_STACK_TOP, USER_RFLAGS, USER_CS, x.userEntry(program)]) yield x.push(slot);
      yield x.iret();
    });
    const outcome = m.run({ maxSteps: 100 }).outcome;
    return { m, user, kernel, outcome, result: () => result };
  }

  it('a copy at CPL 3 from a supervisor page faults with U set (error code 5), nothing written', () => {
    const { m, user, kernel, outcome } = userCopy((x) => x.copy(USER_DATA + 8, page(0), 8));
    expect(outcome).toBe('oops');
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: 5, cr2: kernel });
    expect(word(m, user + 8)).toBe(0n);
  });

  it('a copy at CPL 3 to a supervisor page faults with U and W set (error code 7)', () => {
    const { m, kernel, outcome } = userCopy((x) => x.copy(page(0) + 8, USER_DATA, 8));
    expect(outcome).toBe('oops');
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: 7, cr2: kernel + 8 });
    expect(word(m, kernel + 8)).toBe(0n);
  });

  it('a copy at CPL 3 between user pages moves the bytes', () => {
    const { m, user, outcome, result } = userCopy((x) => x.copy(USER_DATA + 8, USER_DATA, 8));
    expect(outcome).toBe('ok');
    expect(result()).toBe(0);
    expect(m.cpu(0).regs.cpl).toBe(3);
    expect(word(m, user + 8)).toBe(ODD_WORDS[0]);
  });
});

describe('refused operands', () => {
  const D = page(1);
  const S = page(0);
  const CASES: readonly [string, (x: Assembler) => Instruction, RegExp][] = [
    ['chunk 3', (x) => x.copy(D, S, 24, { chunk: 3 }), /chunk 3 must be a power of two in 1\.\.4096/],
    ['chunk 8192', (x) => x.copy(D, S, 8192, { chunk: 8192 }), /chunk 8192 must be a power of two/],
    ['chunk 0', (x) => x.copy(D, S, 8, { chunk: 0 }), /chunk 0 must be a power of two/],
    ['chunk 1.5', (x) => x.copy(D, S, 8, { chunk: 1.5 }), /chunk 1\.5 must be a power of two/],
    ['0 bytes', (x) => x.copy(D, S, 0), /byte count/],
    ['12 bytes of 8-byte chunks', (x) => x.copy(D, S, 12), /must be multiples of the 8-byte chunk/],
    ['a misaligned destination', (x) => x.copy(D + 4, S, 8), /must be multiples of the 8-byte chunk/],
    ['a misaligned source', (x) => x.copy(D, S + 4, 8), /must be multiples of the 8-byte chunk/],
    ['a source misaligned for its chunk', (x) => x.copy(D, S + 8, 64, { chunk: 64 }), /64-byte chunk/],
    ['an unknown option', (x) => x.copy(D, S, 8, { size: 8 } as never), /options/],
    ['copyPage to an unaligned page', (x) => x.copyPage(D + 8, S), /must be 4 KiB aligned/],
    ['copyPage from an unaligned page', (x) => x.copyPage(D, S + 0x800), /must be 4 KiB aligned/],
  ];

  it.each(CASES)('%s: InputError from the yield, the CPU stops (assertion), nothing copied', (_, build, message) => {
    const m = Machine.create({ cpus: 1 });
    const src = m.map(S, { writable: true });
    const dst = m.map(D, { writable: true });
    fill(m, src, 8);
    m.load(0, function* (x) {
      yield build(x);
    });
    expect(() => m.run()).toThrow(InputError);
    expect(m.cpu(0).state).toBe('stopped');
    expect(m.cpu(0).stopEvent!.outcome).toBe('assertion');
    expect(m.cpu(0).stopEvent!.message).toMatch(message);
    expect(words(m, dst, 8)).toEqual(Array(8).fill(0n));
    expect(copySteps(m)).toHaveLength(0);
  });
});

describe('fill and clearPage (rep stosq)', () => {
  it('clearPage zeroes a page, 8 bytes per step, through the MMU', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(0xffffc90001000000n, { writable: true });
    const pa = m.physicalAddress(va)!;
    for (let off = 0; off < 4096; off += 8) m.memory.write64(pa + off, off + 1);
    m.load(0, function* (x) {
      yield x.clearPage(va);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.filter((e) => e.op === 'fill')).toHaveLength(512);
    expect([...m.memory.frameBytes(pa / 4096)].every((b) => b === 0)).toBe(true);
  });

  it('fill stores an 8-byte pattern and faults like a store at the chunk it could not write', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(0xffffc90001000000n, { writable: true });
    m.load(0, function* (x) {
      yield x.fill(va + 4096 - 16, 32, 0x1234, { chunk: 16 });
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.cpu(0).lastException).toMatchObject({ vector: 14, errorCode: 2, cr2: va + 4096 });
    expect(m.memory.read64(m.physicalAddress(va)! + 4096 - 8)).toBe(0x1234);
  });
});
