import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { explore } from '../../src/explore/explore.ts';
import { MemoryTracker } from '../../src/explore/memory-tracker.ts';
import { StatefulSearch } from '../../src/explore/stateful.ts';
import { Machine } from '../../src/machine/machine.ts';
import { FRAME_COPIED, FRAME_FREE } from '../../src/mmu/frame-guard.ts';
import { scenarioBuilder } from '../../src/scenarios/scenario-module.ts';
import { FRAME_READER_DATA, frameReader } from './fixtures/frame-reader.ts';

// Dead words (src/explore/memory-tracker.ts): a word a stack pop read is left out of the stateful search's state
// until something writes it, so that interleavings that differ only in what lies below a stack pointer are one
// state; a read of one makes the search run again with every word in the state.

const DATA = 0xffffc90001000000n;

/** A machine whose CPU 0 runs `body`, with a tracker of dead words (and an undo log) attached before its first step. */
function tracked(body: (x: Assembler) => Generator<ReturnType<Assembler['push']>, void, number>, deadWords = true) {
  const m = Machine.create({ cpus: 1, trace: false });
  m.map(DATA, { writable: true });
  m.load(0, body);
  const tracker = new MemoryTracker(m.memory, { undo: true, deadWords });
  return { m, tracker, steps: (n: number) => Array.from({ length: n }, () => m.step(0)) };
}

/** The physical address of the stack word just below CPU 0's stack pointer. */
function belowStack(m: Machine): number {
  const rsp = m.cpu(0).regs.rsp;
  return m.physicalAddress(BigInt(rsp - 8) | 0xffff000000000000n)!;
}

describe('dead words: what a stack pop leaves below the stack pointer', () => {
  it('two runs that popped different values hash the same, and differently without dead words', () => {
    const sums = (value: number, deadWords: boolean) => {
      const { tracker, steps } = tracked(function* (x) {
        yield x.push(value);
        yield x.pop();
      }, deadWords);
      steps(2);
      return [tracker.sumA, tracker.sumB, tracker.deadCount];
    };
    expect(sums(5, true)).toEqual(sums(7, true));
    expect(sums(5, true)[2]).toBe(1);
    expect(sums(5, false)).not.toEqual(sums(7, false));
  });

  it('a write to a dead word brings it back: a value pushed again counts as if it had never been popped', () => {
    const pushedAgain = tracked(function* (x) {
      yield x.push(5);
      yield x.pop();
      yield x.push(9);
    });
    pushedAgain.steps(3);
    const pushedOnce = tracked(function* (x) {
      yield x.push(9);
    });
    pushedOnce.steps(1);
    expect(pushedAgain.tracker.deadCount).toBe(0);
    expect([pushedAgain.tracker.sumA, pushedAgain.tracker.sumB]).toEqual([
      pushedOnce.tracker.sumA,
      pushedOnce.tracker.sumB,
    ]);
  });

  it('going back past a pop makes the word live again, with the hash it had', () => {
    const { m, tracker, steps } = tracked(function* (x) {
      yield x.push(5);
      yield x.pop();
    });
    steps(1);
    const before = [tracker.sumA, tracker.sumB];
    const mark = tracker.length;
    const pa = belowStack(m) + 8; // the pushed word: RSP points at it
    steps(1);
    expect(tracker.deadAt(pa)).toBe(true);
    expect([tracker.sumA, tracker.sumB]).not.toEqual(before);
    tracker.rollback(mark);
    expect(tracker.deadAt(pa)).toBe(false);
    expect(tracker.deadCount).toBe(0);
    expect([tracker.sumA, tracker.sumB]).toEqual(before);
  });

  it('a copy of a dead word is dead (a migration copies a stack page), a copy of a live one is live', () => {
    const { m, tracker, steps } = tracked(function* (x) {
      yield x.push(5);
      yield x.push(6);
      yield x.pop();
    });
    steps(3);
    const dead = belowStack(m);
    const live = dead + 8;
    expect(tracker.deadAt(dead)).toBe(true);
    expect(tracker.deadAt(live)).toBe(false);
    const page = dead - (dead % 4096);
    const copy = m.physicalAddress(DATA)!;
    m.memory.copy(page, copy, 4096);
    expect(tracker.deadAt(copy + (dead - page))).toBe(true);
    expect(tracker.deadAt(copy + (live - page))).toBe(false);
    expect(m.memory.read64(copy + (live - page))).toBe(5);
    expect(tracker.deadRead).toBe(-1);
  });

  it('a frame freed or copied away is dead, word for word: what it held is out of the hash, and comes back on undo', () => {
    const fill = (value: number) => {
      const { m, tracker } = tracked(function* () {});
      const pa = m.physicalAddress(DATA)!;
      const before = [tracker.sumA, tracker.sumB];
      const mark = tracker.length;
      m.memory.write64(pa + 16, value);
      // The allocator's hook (kernel-boot.ts): a free, or a migration's copy, of the frame.
      m.memory.guardChanged(pa / 4096, 1);
      return { m, tracker, pa, before, mark };
    };
    const a = fill(5);
    const b = fill(7);
    expect(a.tracker.deadAt(a.pa)).toBe(true);
    expect(a.tracker.deadAt(a.pa + 4088)).toBe(true);
    expect(a.tracker.deadCount).toBe(512);
    expect([a.tracker.sumA, a.tracker.sumB]).toEqual([b.tracker.sumA, b.tracker.sumB]);
    a.tracker.rollback(a.mark);
    expect(a.tracker.deadCount).toBe(0);
    expect([a.tracker.sumA, a.tracker.sumB]).toEqual(a.before);
    expect(a.m.memory.read64(a.pa + 16)).toBe(0);
  });

  it('with copiedLive, a frame copied away keeps its words until it is freed, and a read of it is told apart', () => {
    const { m } = tracked(function* () {});
    const pa = m.physicalAddress(DATA)!;
    const pfn = pa / 4096;
    // The kernel's frame states as the allocator keeps them (frame-guard.ts): this frame copied away, not freed.
    const owner = new Int32Array(1).fill(FRAME_COPIED);
    m.memory.guard = {
      firstPfn: pfn,
      frames: 1,
      owner,
      generation: new Uint32Array(1),
      recordChanges: false,
      changes: [],
    };
    const live = new MemoryTracker(m.memory, { undo: true, deadWords: true, copiedLive: true });
    m.memory.write64(pa + 16, 5);
    const before = [live.sumA, live.sumB];
    m.memory.guardChanged(pfn, 1);
    expect(live.deadAt(pa + 16)).toBe(false);
    expect([live.sumA, live.sumB]).toEqual(before);
    // Freed: dead as any freed frame.
    owner[0] = FRAME_FREE;
    m.memory.guardChanged(pfn, 1);
    expect(live.deadAt(pa + 16)).toBe(true);
    live.detach();
    // Without copiedLive the copied-away frame dies at once, and a read of it says the frame was copied away.
    owner[0] = FRAME_COPIED;
    const dead = new MemoryTracker(m.memory, { undo: true, deadWords: true });
    m.memory.guardChanged(pfn, 1);
    expect(dead.deadAt(pa + 16)).toBe(true);
    m.memory.read64(pa + 16);
    expect(dead.deadRead).toBe(pa + 16);
    expect(dead.deadReadCopied).toBe(true);
  });

  it('a read of a dead word is recorded with its address, through the CPU and through physical memory alike', () => {
    const { m, tracker, steps } = tracked(function* (x) {
      yield x.push(5);
      yield x.pop();
    });
    steps(2);
    const pa = belowStack(m);
    expect(tracker.deadRead).toBe(-1);
    m.memory.read32(pa + 4);
    expect(tracker.deadRead).toBe(pa + 4);
  });
});

describe('the stateful search with dead words', () => {
  it('a read of a frame an IRET left dead makes the search run again with every word, and it finds every RIP', () => {
    const rips = (o: { search: 'stateful' | 'stateless' }) => {
      const seen = new Set<number>();
      const result = explore(frameReader, {
        strategy: 'exhaustive',
        ...o,
        ...(o.search === 'stateless' ? { reduction: 'none' as const } : {}),
        check: (m) => {
          seen.add(m.memory.read64(m.physicalAddress(FRAME_READER_DATA)!));
          return true;
        },
      });
      return { result, seen: [...seen].sort() };
    };
    const stateful = rips({ search: 'stateful' });
    const naive = rips({ search: 'stateless' });
    expect(stateful.result.deadWords).toBe(false);
    expect(stateful.result.deadWordsOff).toMatch(
      /a dead word \(popped from a stack, or in a frame freed or copied away\) was read/,
    );
    // 0 (no frame there yet when CPU0 read) and the RIP of each point where CPU1 could take the IPI.
    expect(naive.seen.length).toBe(5);
    expect(stateful.seen).toEqual(naive.seen);
  });

  it('proves the switcheroo with the words of popped stack slots and of the old stack page left out, reading none', () => {
    const build = () => scenarioBuilder('stack-migration', { protocol: 'ipi-switcheroo' });
    return build().then((b) => {
      const r = explore(b, { strategy: 'exhaustive', search: 'stateful', tlbEvents: 1 });
      expect(r).toMatchObject({ complete: true, violations: [], deadWords: true });
      expect(r.deadWordsOff).toBeUndefined();
    });
  }, 60_000);

  it('a remote reader reading the old stack page before the flush reaches it: the search runs again keeping the other dead words', async () => {
    // The reader holds a translation of the task's stack page (docs/scenarios/migration.md, remote=reader) and reads
    // the old frame after the copy: legitimately, so that frame's words go back into the state, and the words of
    // popped stack slots stay out (not every word, as after any other dead read).
    const build = await scenarioBuilder('stack-migration', {
      protocol: 'ipi-switcheroo',
      rounds: '3',
      chunk: '4096',
      cpus: '3',
      remote: 'reader',
    });
    const r = new StatefulSearch(build, {
      maxSteps: 100_000,
      tlbEvents: 0,
      check: undefined,
      invariant: undefined,
      maxStates: 30_000,
      samples: 0,
    }).run();
    expect(r).toMatchObject({ deadWords: true, copiedLive: true, violations: [] });
    expect(r.deadWordsOff).toMatch(
      /a word of a frame a migration copied away was read \(physical 0x[0-9a-f]+, by the last step of schedule '[^']+'\), by a CPU still translating to it/,
    );
  }, 60_000);

  it('finds the same violations with dead words and without, on every migration protocol, stack and data', async () => {
    const cases = ['naive', 'no-wait', 'migration-entry', 'ipi-switcheroo'].flatMap((protocol) => [
      ['stack-migration', { protocol, rounds: '3', chunk: '4096' }] as const,
      ['data-migration', { protocol, rounds: '2', chunk: '4096' }] as const,
    ]);
    for (const [scenario, params] of cases) {
      const protocol = `${scenario} ${params.protocol}`;
      const build = await scenarioBuilder(scenario, params);
      const kinds = (deadWords: boolean) => {
        const r = new StatefulSearch(build, {
          maxSteps: 100_000,
          tlbEvents: 1,
          check: undefined,
          invariant: undefined,
          maxStates: 5_000_000,
          samples: 0,
          deadWords,
        }).run();
        expect(r.complete, protocol).toBe(true);
        return { kinds: r.violations.map((v) => v.kind).sort(), states: r.states };
      };
      const without = kinds(false);
      const withDead = kinds(true);
      expect(withDead.kinds, protocol).toEqual(without.kinds);
      expect(withDead.states, protocol).toBeLessThanOrEqual(without.states);
    }
  }, 120_000);
});
