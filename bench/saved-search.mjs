// A stateful search saved and taken up again (explore's saveSearch and resume; the CLI's --save-search and --resume),
// timed in a plain node process on the compiled package (dist/), as users load it:
//  - the search run to its end in one go (CPU seconds);
//  - the same search cut at half its states and saved: the snapshot's bytes per state (what the file takes), the
//    seconds to encode and write it, and to read it back;
//  - the rest taken up from the file: the seconds to rebuild the stack (the saved choices taken from the initial
//    state) and the CPU seconds of both halves together, against the search in one go.
// Medians of --pairs runs. Usage: npm run build && node bench/saved-search.mjs [--rounds N] [--pairs N]
// Prints a table, then one JSON line.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readSavedSearch, writeSavedSearch } from '../dist/cli/saved-search.js';
import { explore, findScenario, resolveParams } from '../dist/index.js';
import { machineFactory } from '../dist/scenarios/scenario-module.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    pairs: { type: 'string', default: '3' },
  },
});
const params = { protocol: 'ipi-switcheroo', sched: 'migrate', cpus: 3, rounds: Number(values.rounds) };
const BUDGET = 2_000_000;
const s = findScenario('stack-migration');
const resolved = resolveParams(s, params);
const build = () => machineFactory(s, resolved);
const options = { strategy: 'exhaustive', search: 'stateful', budget: BUDGET };

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dir = mkdtempSync(join(tmpdir(), 'x86slice-saved-'));
const file = join(dir, 'search');

const rows = [];
try {
  for (let pair = 0; pair < Number(values.pairs); pair++) {
    let t = cpu();
    const whole = explore(build(), options);
    const wholeCpu = cpu() - t;

    t = cpu();
    const first = explore(build(), { ...options, budget: BUDGET / 2, saveSearch: true });
    const firstCpu = cpu() - t;
    let w = performance.now();
    // As the CLI's --save-search and --resume write and read it.
    writeSavedSearch(file, first.snapshot, { params });
    const writeSeconds = (performance.now() - w) / 1000;
    const fileBytes = statSync(file).size;
    w = performance.now();
    const snapshot = readSavedSearch(file, { params });
    const readSeconds = (performance.now() - w) / 1000;

    // The stack rebuilt: a resume with one state of budget left stops right after it.
    w = performance.now();
    const probe = explore(build(), {
      ...options,
      budget: snapshot.visitedSize + 1,
      saveSearch: true,
      resume: snapshot,
    });
    const rebuildSeconds = (performance.now() - w) / 1000;
    t = cpu();
    const rest = explore(build(), { ...options, resume: probe.snapshot });
    const restCpu = cpu() - t;
    if (rest.states !== whole.states || rest.transitions !== whole.transitions) {
      throw new Error(
        `resumed: ${rest.states} states, ${rest.transitions} transitions; whole: ${whole.states}, ${whole.transitions}`,
      );
    }
    rows.push({
      states: whole.states,
      complete: whole.complete,
      wholeCpu,
      savedAt: first.states,
      bytesPerState: fileBytes / first.states,
      writeSeconds,
      readSeconds,
      rebuildSeconds,
      stackDepth: snapshot.next.length,
      bothCpu: firstCpu + restCpu,
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const m = (k) => median(rows.map((r) => r[k]));
const r0 = rows[0];
const spread = (k) =>
  `${Math.min(...rows.map((r) => r[k])).toFixed(2)}..${Math.max(...rows.map((r) => r[k])).toFixed(2)}`;
console.log(
  `ipi-switcheroo, sched=migrate, 3 CPUs, ${params.rounds} rounds: ${r0.states.toLocaleString('en-US')} states (${r0.complete ? 'complete' : 'cut at the budget'})`,
);
console.log(`  in one go:                 ${m('wholeCpu').toFixed(2)} CPU s (${spread('wholeCpu')})`);
console.log(
  `  saved at ${r0.savedAt.toLocaleString('en-US')} states:  ${m('bytesPerState').toFixed(1)} bytes/state on disk, written in ${m('writeSeconds').toFixed(3)} s, read in ${m('readSeconds').toFixed(3)} s`,
);
console.log(
  `  taken up:                  stack of depth ${r0.stackDepth} rebuilt in ${m('rebuildSeconds').toFixed(3)} s`,
);
console.log(
  `  both halves:               ${m('bothCpu').toFixed(2)} CPU s (${spread('bothCpu')}), ${(100 * (m('bothCpu') / m('wholeCpu') - 1)).toFixed(1)}% over one go`,
);
console.log(JSON.stringify({ bench: 'saved-search', params, rows }));
