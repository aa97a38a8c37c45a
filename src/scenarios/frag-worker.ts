import { parentPort } from 'node:worker_threads';
import { type FragRunOptions, runFrag } from './frag.ts';

// A worker of the fragmentation experiment (frag-experiment.ts): runs the runs it is sent, one at a time, and posts
// each result back. Runs share nothing, so they spread over worker threads freely.

parentPort!.on('message', (message: { id: number; run: FragRunOptions } | 'exit') => {
  if (message === 'exit') {
    parentPort!.close();
    return;
  }
  try {
    parentPort!.postMessage({ id: message.id, result: runFrag(message.run) });
  } catch (error) {
    parentPort!.postMessage({ id: message.id, error: (error as Error).message });
  }
});
parentPort!.postMessage('ready');
