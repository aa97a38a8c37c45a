// The checker's differential soundness harness at scale: random small programs (test/explore/fixtures/
// random-programs.ts), each searched exhaustively with DPOR (no bound, and bounds 0, 1, 2) and with naive
// enumeration (`reduction: 'none'`) at the same bounds; every search must reach the same violation kinds and the
// same final states. `npm test` runs 2,000 (test/explore/soundness.test.ts); this runs 100,000 by default.
//
//   npx tsx bench/soundness.ts [--programs N] [--seed S] [--budget B] [--stateful] [--tso 1]
//
// With --stateful, the programs have PTE remaps, fresh A/D bits and up to two TLB events, and the stateful search
// with and without its TLB-event reduction is compared with naive enumeration (test/explore/fixtures/soundness.ts
// compareStateful) instead. With --tso 1, issue 19's programs (store buffers, paging-structure caches, MFENCE,
// every cache event) are compared instead: DPOR, the stateful search and naive enumeration, with no bound.
//
// A program whose naive enumeration needs more than B executions (default 1,000) at some bound is skipped. A
// disagreement stops the run: fast-check shrinks the program and prints it, ready to paste into a regression test.
// Prints progress every 5,000 programs, then one JSON line.
import fc from 'fast-check';
import { randomProgram, randomTlbProgram, randomTsoProgram } from '../test/explore/fixtures/random-programs.ts';
import { compareAllSearches, compareSearches, compareStateful } from '../test/explore/fixtures/soundness.ts';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} ${process.argv[at + 1]}: an integer >= 0`);
  return value;
}

const programs = flag('programs', 100_000);
const seed = flag('seed', 18);
const budget = flag('budget', 1_000);
const stateful = process.argv.includes('--stateful');
const tso = flag('tso', 0) === 1;

let run = 0;
let compared = 0;
let naiveExecutions = 0;
let dporExecutions = 0;
const start = process.hrtime.bigint();
const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
let failure: string | undefined;
try {
  fc.assert(
    fc.property(tso ? randomTsoProgram() : stateful ? randomTlbProgram() : randomProgram(), (p) => {
      const c = tso
        ? compareAllSearches(p, budget)
        : stateful
          ? { ...compareStateful(p, budget), naiveExecutions: 0, dporExecutions: 0 }
          : compareSearches(p, budget);
      run++;
      if (!c.skipped) compared++;
      naiveExecutions += c.naiveExecutions;
      dporExecutions += c.dporExecutions;
      if (run % 5_000 === 0) {
        console.log(`${run} programs, ${compared} compared, ${elapsed().toFixed(0)} s`);
      }
      return c.disagreements.length === 0;
    }),
    { numRuns: programs, seed },
  );
} catch (error) {
  failure = error instanceof Error ? error.message : String(error);
  console.log(failure);
}
console.log(
  JSON.stringify({
    harness: stateful ? 'stateful' : 'dpor',
    seed,
    programs: run,
    compared,
    skipped: run - compared,
    disagreements: failure === undefined ? 0 : 1,
    naiveExecutions,
    dporExecutions,
    seconds: Math.round(elapsed()),
  }),
);
process.exitCode = failure === undefined ? 0 : 1;
