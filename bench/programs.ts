// Benchmark programs: infinite loops yielding one kind of instruction, so every step is that instruction.

import type { Program } from '../src/cpu/assembler.ts';
import type { Machine } from '../src/machine/machine.ts';
import { LAYOUT, PAGE_SIZE } from '../src/mmu/address.ts';

export const HIT_KINDS = ['load', 'store', 'push+pop', 'xchg'] as const;
/** `mixed`: load, store, push and pop in turn, one program (a diagnostic: every kind through one set of JIT code). */
export type HitKind = (typeof HIT_KINDS)[number] | 'mixed';

/** Maps `count` pages at `base`, `stride` bytes apart; returns their addresses. */
export function mapPages(m: Machine, base: number, stride: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => m.map(base + i * stride));
}

/** One mapped data page per CPU (in vmalloc space), indexed by CPU id. */
export function mapDataPages(m: Machine, cpus: number): number[] {
  return mapPages(m, LAYOUT.vmallocStart + 0x100_0000, PAGE_SIZE, cpus);
}

/** A program whose every step is a TLB-hit `kind` instruction (after the first access). */
export function hitProgram(kind: HitKind, data: readonly number[]): Program {
  switch (kind) {
    case 'load':
      return function* loadLoop(x) {
        const va = data[x.cpuId]! + 8;
        for (;;) yield x.load(va, 8);
      };
    case 'store':
      return function* storeLoop(x) {
        const va = data[x.cpuId]! + 8;
        let value = 0;
        for (;;) {
          yield x.store(va, 8, value);
          value = (value + 1) & 0xffff;
        }
      };
    case 'mixed':
      return function* mixedLoop(x) {
        const va = data[x.cpuId]! + 8;
        let value = 0;
        for (;;) {
          value = (value + 1) & 0xffff;
          yield x.load(va, 8);
          yield x.store(va, 8, value);
          yield x.push(value);
          yield x.pop();
        }
      };
    case 'xchg':
      // An allocated instruction (not the reused load/store object): the step's dispatch path, not its fast path.
      return function* xchgLoop(x) {
        const va = data[x.cpuId]! + 8;
        let value = 0;
        for (;;) {
          yield x.xchg(va, 8, value);
          value = (value + 1) & 0xffff;
        }
      };
    case 'push+pop':
      // Alternating push and pop keeps RSP within the top 8 bytes of the mapped task stack.
      return function* pushPopLoop(x) {
        for (;;) {
          yield x.push(7);
          yield x.pop();
        }
      };
  }
}

/** Loads cycling over `pages` (one per page, in order), forever. */
export function cycleLoads(pages: readonly number[]): Program {
  return function* cycleLoadLoop(x) {
    for (;;) {
      for (let i = 0; i < pages.length; i++) yield x.load(pages[i]! + 8, 8);
    }
  };
}
