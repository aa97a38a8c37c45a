import { parentPort, workerData } from 'node:worker_threads';
import { parseSchedule } from '../machine/schedule.ts';
import { checkContract } from './contract-check.ts';
import { delivering, resolveOptions } from './parts.ts';
import { SharedStateSet } from './shared-state-set.ts';
import { loadSource } from './source.ts';
import { StatefulSearch } from './stateful.ts';
import { statefulOptions } from './stateful-explore.ts';
import type { StatefulWorkerSetup } from './stateful-parallel.ts';

// A worker of the parallel stateful search (stateful-parallel.ts): builds the machine from the source, searches from
// the initial state with the shared set of finished states, checks the program contract on the paths it sampled,
// and posts its result (or the error that stopped it).

const setup = workerData as StatefulWorkerSetup;
const shared = new SharedStateSet(setup.buffers);
try {
  const { build, check } = await loadSource(setup.source);
  const r = resolveOptions({ ...setup.options, ...(check ? { check } : {}) });
  const o = {
    ...statefulOptions(r, setup.deadline),
    ...(setup.deadWords === undefined ? {} : { deadWords: setup.deadWords }),
    ...(setup.first === undefined ? {} : { first: parseSchedule(setup.first) }),
    ...(setup.copiedLive === undefined ? {} : { copiedLive: setup.copiedLive }),
    shared,
    worker: setup.worker,
  };
  const built = delivering(build, r);
  const result = new StatefulSearch(built, o).run();
  // The contract check runs here, on this thread's paths and its own build (see stateful-parallel.ts).
  checkContract(built, result.samples, result.deadWords, result.copiedLive);
  parentPort!.postMessage({ result: { ...result, samples: [] } });
} catch (error) {
  shared.stop();
  parentPort!.postMessage({
    error: error instanceof Error ? { name: error.name, message: error.message } : String(error),
  });
}
