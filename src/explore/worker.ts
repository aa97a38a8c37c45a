import { parentPort, workerData } from 'node:worker_threads';
import { expiresAt, type PartSpec, prepare, resolveOptions, runPart } from './parts.ts';
import { loadSource, type WorkerSetup } from './source.ts';

// A worker of exploreParallel: loads the machine builder named by the source, then runs the parts it is sent and
// posts each result back (see parallel.ts).

const setup = workerData as WorkerSetup;
const { build, check } = await loadSource(setup.source);
const r = resolveOptions({ ...setup.options, ...(check ? { check } : {}) });
const shared = prepare(build, r);
type PartMessage = { id: number; spec: PartSpec; budget: number; deadline?: number };
parentPort!.on('message', (message: PartMessage | 'exit') => {
  if (message === 'exit') {
    parentPort!.close();
    return;
  }
  const progress = (runs: number) => {
    if (runs % 256 === 0) parentPort!.postMessage({ id: message.id, progress: runs });
  };
  const expired = message.deadline === undefined ? undefined : expiresAt(message.deadline);
  const part = runPart(build, r, shared, message.spec, message.budget, progress, expired);
  parentPort!.postMessage({ id: message.id, part });
});
parentPort!.postMessage('ready');
