import { Worker } from 'node:worker_threads';

/**
 * A worker thread running `name` (worker or stateful-worker) next to this module: its .js in the package; under a
 * TypeScript loader (tests, a user's tsx), a small script that registers tsx in the worker's thread first (a loader
 * given with --import does not reach worker threads), so the worker and the build module load as TypeScript.
 */
export function startWorker(name: string, workerData: unknown): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, import.meta.url), { workerData });
  const script = new URL(`./${name}.ts`, import.meta.url).href;
  const code = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script)}); });`;
  return new Worker(code, { eval: true, workerData });
}
