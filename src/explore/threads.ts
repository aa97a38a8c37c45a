import { Worker } from 'node:worker_threads';

/**
 * A worker thread running `name` (worker or stateful-worker) next to this module: its .js in the package; under a
 * TypeScript loader (tests, a user's tsx), a small script that registers tsx in the worker's thread first (a loader
 * given with --import does not reach worker threads), so the worker and the build module load as TypeScript.
 */
export function startWorker(name: string, workerData: unknown): Worker {
  return startWorkerBeside(import.meta.url, name, workerData);
}

/**
 * A worker thread running module `name` next to the module at `here` (its import.meta.url), the same way:
 * for the other layers' workers (the fragmentation experiment's, the mutation check's).
 */
export function startWorkerBeside(here: string, name: string, workerData?: unknown): Worker {
  const options = workerData === undefined ? {} : { workerData };
  if (!here.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, here), options);
  const script = new URL(`./${name}.ts`, here).href;
  const code = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script)}); });`;
  return new Worker(code, { eval: true, ...options });
}
