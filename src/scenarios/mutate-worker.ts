import { parentPort } from 'node:worker_threads';
import { type ExploreRequest, exploreConfig } from './mutate-explore.ts';

// A worker of the mutation check (mutate.ts): explores each request it is sent and posts the result back.

parentPort!.on('message', (m: { id: number; request: ExploreRequest }) => {
  try {
    parentPort!.postMessage({ id: m.id, result: exploreConfig(m.request) });
  } catch (error) {
    parentPort!.postMessage({ id: m.id, error: (error as Error).message });
  }
});
