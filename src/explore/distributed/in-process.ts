import type { Machine } from '../../machine/machine.ts';
import { copiedWordRead, deadWordsRead } from '../stateful.ts';
import { type LevelLimits, LevelMerge, type LevelResult } from './level-merge.ts';
import {
  type Arrival,
  emptyReport,
  inPathOrder,
  LevelSearch,
  type LevelSearchOptions,
  rangeOf,
} from './level-search.ts';

// The level-by-level search with its owners in this process and its messages in arrays: what a broker run does,
// with no broker (tests of the search itself, and the reference a broker run is compared with).

export interface InProcessResult extends LevelResult {
  /** Steps taken to restore states by their paths. */
  readonly replayed: number;
  /** Why dead words were not left out (one was read, and the search ran again with every word). */
  readonly deadWordsOff?: string;
}

/**
 * Searches with `owners` owners sharing o.ranges ranges (range k is owner k mod owners'). Each owner has its own
 * machine: `builds` makes a build function per owner (a scenario's build hands out one machine, reset at each call).
 */
export function exploreLevelsInProcess(
  builds: () => () => Machine,
  o: LevelSearchOptions,
  limits: LevelLimits,
  owners = 1,
): InProcessResult {
  const searches = Array.from({ length: owners }, () => new LevelSearch(builds(), o));
  for (let k = 0; k < o.ranges; k++) searches[k % owners]!.own(k);
  const root = searches[0]!.root;
  let queues: Arrival[][] = Array.from({ length: o.ranges }, () => []);
  queues[rangeOf(root.fpB, o.ranges)]!.push(root);
  const merge = new LevelMerge(limits);
  try {
    for (;;) {
      const next: Arrival[][] = Array.from({ length: o.ranges }, () => []);
      let sent = 0;
      const emit = (range: number, fpA: number, fpB: number, path: string) => {
        next[range]!.push({ fpA, fpB, path });
        sent++;
      };
      // As a worker does (broker-worker.ts): each owner takes its ranges' new states in one order.
      for (let w = 0; w < owners; w++) {
        const report = emptyReport();
        const states: Arrival[] = [];
        for (let k = w; k < o.ranges; k += owners) states.push(...searches[w]!.fresh(k, queues[k]!));
        for (const a of inPathOrder(states)) {
          searches[w]!.explore(a, report, emit);
          if (report.deadRead >= 0) break;
        }
        merge.add(report);
      }
      if (!merge.next(sent)) break;
      queues = next;
    }
    if (merge.deadRead >= 0 && o.deadWords && merge.deadReadCopied && !o.copiedLive) {
      // As the stateful search does: a word of a frame copied away was read, so again with those frames' words in
      // the states and the other dead words left out.
      const again = exploreLevelsInProcess(builds, { ...o, copiedLive: true }, limits, owners);
      return { ...again, deadWordsOff: copiedWordRead(merge.deadRead, undefined, again.deadWordsOff) };
    }
    if (merge.deadRead >= 0 && o.deadWords) {
      // As the stateful search does: a dead word was read, so states merged for their dead words do not stand.
      const again = exploreLevelsInProcess(builds, { ...o, deadWords: false, copiedLive: false }, limits, owners);
      return { ...again, deadWordsOff: deadWordsRead(merge.deadRead) };
    }
    const bytes = searches.reduce((n, s) => n + s.visitedBytes, 0);
    return {
      ...merge.result(bytes, o.deadWords, o.copiedLive),
      replayed: searches.reduce((n, s) => n + s.replayed, 0),
    };
  } finally {
    for (const s of searches) s.detach();
  }
}
