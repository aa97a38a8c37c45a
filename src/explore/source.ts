import type { Machine } from '../machine/machine.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import type { FinalCheck } from './execution.ts';
import type { ExploreOptions } from './options.ts';

// A machine builder named by a module, so that worker threads can make the same machine: functions cannot be sent
// to a worker, but a module URL, an export name and arguments can.

export interface BuildSource {
  /** Absolute file URL (or path) of an ES module. */
  readonly module: string;
  /** The export: a factory `(...args) => build | { build, check } | a Promise of either`. */
  readonly export: string;
  /** Arguments for the factory (structured-cloneable: numbers, strings, plain objects). */
  readonly args: readonly unknown[];
}

/** Options a worker gets: everything but the functions. */
export type WorkerOptions = Omit<ExploreOptions, 'check' | 'onProgress'>;

export interface WorkerSetup {
  readonly source: BuildSource;
  readonly options: WorkerOptions;
}

export interface LoadedSource {
  readonly build: () => Machine;
  readonly check: FinalCheck | undefined;
}

export async function loadSource(source: BuildSource): Promise<LoadedSource> {
  if (typeof source !== 'object' || source === null || typeof source.module !== 'string') {
    throw new InputError(`build source ${describeValue(source)} must be { module, export, args }`);
  }
  const mod = (await import(source.module)) as Record<string, unknown>;
  const factory = mod[source.export];
  if (typeof factory !== 'function') {
    throw new InputError(`module ${source.module} has no function export ${describeValue(source.export)}`);
  }
  const made: unknown = await factory(...(source.args ?? []));
  if (typeof made === 'function') return { build: made as () => Machine, check: undefined };
  const m = made as Partial<LoadedSource> | null;
  if (m && typeof m === 'object' && typeof m.build === 'function') {
    if (m.check !== undefined && typeof m.check !== 'function') {
      throw new InputError(`${source.export}(...) returned a check ${describeValue(m.check)} that is not a function`);
    }
    return { build: m.build, check: m.check };
  }
  throw new InputError(
    `${source.export}(...) must return a build function or { build, check }, not ${describeValue(made)}`,
  );
}
