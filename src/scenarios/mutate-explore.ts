import { explore } from '../explore/explore.ts';
import { findScenario } from './catalogue.ts';
import { type ParamValue, resolveParams } from './scenario.ts';
import { buildScenario, machineFactory } from './scenario-module.ts';

// One exploration of the mutation check (mutate.ts): a protocol, or a mutant, in one configuration of a scenario;
// run on the calling thread or in mutate-worker.ts.

/** One configuration of a scenario the mutants are explored in. */
export interface MutationConfig {
  readonly name: string;
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly tlbEvents: number;
  /** Which TLB events are offered (explore's cacheEvents); default held. */
  readonly cacheEvents?: 'held' | 'mapped';
}

/** What one exploration found. */
export interface Explored {
  readonly config: string;
  /** The first violation's kind, or undefined: clean (complete) or cut by the budget (complete false). */
  readonly violation?: string;
  readonly schedule?: string;
  readonly message?: string;
  readonly complete: boolean;
  readonly states: number;
  readonly ms: number;
}

/** What to explore: plain data, so that it can be sent to a worker thread. */
export interface ExploreRequest {
  readonly scenario: string;
  /** The phase list's text. */
  readonly protocol: string;
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly config: MutationConfig;
  readonly stopAtViolation: boolean;
  readonly budget: number;
}

/** Explores the request with the stateful exhaustive search. */
export function exploreConfig(q: ExploreRequest): Explored {
  const s = findScenario(q.scenario);
  const p = resolveParams(s, { ...q.params, ...q.config.params, protocol: q.protocol });
  const start = performance.now();
  const { maxSteps } = buildScenario(s, p, { trace: false }).run;
  const r = explore(machineFactory(s, p), {
    strategy: 'exhaustive',
    search: 'stateful',
    ...(maxSteps === undefined ? {} : { maxSteps }),
    tlbEvents: q.config.tlbEvents,
    ...(q.config.cacheEvents === undefined ? {} : { cacheEvents: q.config.cacheEvents }),
    budget: q.budget,
    stopAtViolation: q.stopAtViolation,
  });
  const v = r.violations[0];
  return {
    config: q.config.name,
    ...(v === undefined
      ? {}
      : { violation: v.kind, schedule: v.schedule, ...(v.message ? { message: v.message } : {}) }),
    complete: r.complete,
    states: r.states ?? 0,
    ms: Math.round(performance.now() - start),
  };
}
