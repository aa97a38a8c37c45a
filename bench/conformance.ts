// The differential conformance suite's replay, timed: every case recorded from QEMU run on the model and compared
// field by field (what `npm test` does in test/conformance/replay.test.ts), ROUNDS times in this process after a
// first, cold round (reported on its own). Sources through tsx's ESM loader (conformance/ is not compiled into dist/). One JSON line.
import { compareObservations } from '../conformance/compare.ts';
import { runOnModel } from '../conformance/model-runner.ts';
import { readRecording } from '../conformance/recording.ts';

const ROUNDS = 5;
const { cases } = readRecording();

function replayAll(): { ms: number; unexplained: number } {
  const start = process.hrtime.bigint();
  let unexplained = 0;
  for (const r of cases) {
    unexplained += compareObservations(r.case, r.observed, runOnModel(r.case)).differences.length;
  }
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, unexplained };
}

// The first round is what `npm test` pays (cold JIT); the rest are warm.
const cold = replayAll();
const rounds = Array.from({ length: ROUNDS }, replayAll);
const ms = rounds.map((r) => r.ms).sort((a, b) => a - b);
console.log(
  JSON.stringify({
    cases: cases.length,
    coldMs: cold.ms,
    medianMs: ms[ms.length >> 1],
    spreadMs: [ms[0], ms.at(-1)],
    unexplained: rounds[0]!.unexplained,
  }),
);
