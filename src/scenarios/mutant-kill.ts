import type { Explored } from './mutate-explore.ts';

// How the mutation check (mutate.ts) looks for the configuration that kills one mutant: a quick look in each
// configuration first, in order, then a complete exploration in each the quick looks did not settle.

/**
 * States a quick look at a mutant in a configuration stores at most. A mutant is mostly killed within a few thousand
 * states where it is killed at all, and a complete exploration of a configuration where it is not can take millions:
 * a quick look in every configuration first keeps a mutant that one configuration kills at once from being explored
 * completely in the configurations before it (a mutant killed in `remote=reader` used to cost a complete exploration
 * of `remote=none` first).
 */
export const PROBE_STATES = 20_000;

/** Whether the protocol is clean in a configuration, completely: only there does a violation kill a mutant. */
export function clean(e: Explored): boolean {
  return e.violation === undefined && e.complete;
}

/** What firstKill needs of the configurations (numbered 0 ..< configs, in order) and of the explorations. */
export interface KillSearch {
  readonly configs: number;
  /** Whether the mutant is explored in configuration i at all (false where it takes the protocol's steps). */
  readonly eligible: (i: number) => boolean;
  /** The protocol's own exploration of configuration i, and its result if it is known already. */
  readonly baseline: (i: number) => Promise<Explored>;
  readonly known: (i: number) => Explored | undefined;
  /**
   * Explores the mutant in configuration i, quickly (PROBE_STATES) or completely; undefined when `wanted()` is false
   * by the time it would start.
   */
  readonly explore: (i: number, quick: boolean, wanted: () => boolean) => Promise<Explored | undefined>;
}

/**
 * The exploration that kills the mutant, or undefined: the first configuration, in order, where the protocol is clean
 * and a quick look finds a violation; where no quick look does, the first whose complete exploration does. The
 * complete explorations start together (each is needed unless one before it kills the mutant, which the quick looks
 * make rare); any of them may start before the protocol's own result there is known, and counts only once it is
 * clean. The result depends only on what the explorations find, never on their timing.
 */
export async function firstKill(k: KillSearch): Promise<Explored | undefined> {
  const unclean = (i: number) => {
    const e = k.known(i);
    return e !== undefined && !clean(e);
  };
  const settled: boolean[] = [];
  for (let i = 0; i < k.configs; i++) {
    if (!k.eligible(i) || unclean(i)) continue;
    const e = (await k.explore(i, true, () => true))!;
    if (e.violation !== undefined) {
      if (clean(await k.baseline(i))) return e;
    } else if (e.complete) settled[i] = true; // its whole space within the quick look: clean there
  }
  let killedAt = k.configs;
  const complete = Array.from({ length: k.configs }, (_, i) =>
    !k.eligible(i) || settled[i] === true || unclean(i)
      ? undefined
      : k.explore(i, false, () => i < killedAt && !unclean(i)),
  );
  for (let i = 0; i < k.configs; i++) {
    const e = await complete[i];
    if (e === undefined || !clean(await k.baseline(i))) continue;
    if (e.violation !== undefined) {
      killedAt = i;
      // Those of later configurations already running are waited for; those not started yet are dropped.
      await Promise.all(complete.slice(i + 1));
      return e;
    }
  }
  return undefined;
}
