import type { Worker } from 'node:worker_threads';
import { startWorkerBeside } from '../explore/threads.ts';
import { PROTOCOL_PHASES, type ProtocolName } from '../mm/migrate.ts';
import { formatPhases, type PhaseList, parsePhases, phaseMutants } from '../mm/migration-phases.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import { findScenario } from './catalogue.ts';
import { clean, firstKill, PROBE_STATES } from './mutant-kill.ts';
import { type Explored, type ExploreRequest, exploreConfig, type MutationConfig } from './mutate-explore.ts';
import { type ParamValue, resolveParams } from './scenario.ts';

export type { Explored, MutationConfig } from './mutate-explore.ts';

// Mutation checking of a protocol's verdict (docs/scenarios/migration.md "Mutation checking"): a "clean" verdict
// counts only if the scenario fails without each step of the protocol. Each mutant (a phase dropped, two adjacent
// phases swapped, a synchronous call's wait dropped) is explored, with the stateful exhaustive search, in the
// configurations where the protocol itself is clean, until one shows a violation (kills it): first a quick look in
// each (PROBE_STATES states), then, if none kills it, completely in each. A mutant no configuration kills is
// equivalent (EQUIVALENT says why) or shows a gap in the scenario.

/**
 * The configurations, cheapest first (each mutant stops at the first that kills it): the task alone on 2 CPUs,
 * with a TLB event, then each remote accessor on a third CPU. Three rounds of the task: the smallest run in which
 * the migration overlaps the task's work (docs/scenarios/migration.md states these bounds with each verdict).
 */
export const MUTATION_CONFIGS: Readonly<Record<string, readonly MutationConfig[]>> = {
  'stack-migration': [
    // One TLB event, of any mapped translation: an eviction, or a speculative fill (SDM 4.10.2.3: a processor may
    // cache a translation at any time). It covers the runs with none.
    { name: 'remote=none, 1 TLB event', params: { rounds: 3 }, tlbEvents: 1, cacheEvents: 'mapped' },
    { name: 'remote=reader, 1 TLB event', params: { rounds: 3, cpus: 3, remote: 'reader' }, tlbEvents: 1 },
    { name: 'remote=csd', params: { rounds: 3, cpus: 3, remote: 'csd' }, tlbEvents: 0 },
    { name: 'remote=completion', params: { rounds: 3, cpus: 3, remote: 'completion' }, tlbEvents: 0 },
  ],
  // data-migration's migration starts after CPU1's first round, so two rounds overlap it.
  'data-migration': [{ name: '1 TLB event', params: { rounds: 2 }, tlbEvents: 1, cacheEvents: 'mapped' }],
};

/**
 * Why the switcheroo can drop its check that the task is still current, wherever it is clean. The check is a step
 * only with a scheduler (migration-phases.ts: a handler checks only for a named task), so with none (every
 * configuration here) the mutant takes the protocol's steps exactly, and it is not explored (mutate()).
 */
const CHECK_CURRENT =
  'the check matters only once the task can move to another CPU, and where it can (stack-migration with ' +
  'sched=migrate) the protocol itself loses a write: the task moves back to a CPU the flush has not reached ' +
  '(docs/scenarios/migration.md, "With the scheduler"); where the protocol is clean, the task stays on its CPU and the ' +
  'check is no step. It does change a run under sched=migrate: test/scenarios/migration-verdicts.test.ts replays ' +
  'a schedule this mutant loses a write on and the protocol does not';

/** Why the switcheroo's own wait can go: the flush waits for the same csd first. */
const CSD_REUSE =
  "the flush's IPI to the task's CPU reuses the csd the switcheroo's call holds (one csd per initiator and target, " +
  "as Linux's per-CPU cfd_data), and csd_lock_wait() before filling it waits for the switcheroo's handler to " +
  'finish: the flush, and so the free after it, cannot run ahead of the switcheroo with or without its wait';

/** Why the park protocol's own INVLPG can go in stack-migration. */
const INITIATOR_UNTOUCHED =
  "in stack-migration the migrating CPU never touches the task's stack, so its own INVLPG has nothing to drop " +
  '(data-migration, where it wrote the page first, kills this mutant with a use after free)';

/** Why the park protocol's last INVLPG and free can trade places. */
const BACK_TO_BACK =
  'the migrating CPU runs the free and its own INVLPG back to back, and nothing it runs between them touches ' +
  'the page: its stale entry cannot be used in between';

/** Why the park protocol's handler may install the new PTE before the copy. */
const INSTALL_BEFORE_COPY =
  'between the new PTE and the copy no CPU can read the new frame: the others are parked, and the task is ' +
  'interrupted by the handler that does both';

/** Why park and unpark are no steps in data-migration. */
const NO_ONE_TO_PARK =
  "data-migration has two CPUs, the migrating CPU and the task's: park and unpark stop every other CPU, and " +
  'there is none, so they do nothing there';

/** Why, in data-migration, what the switcheroo does for CPUs other than the task's can be weakened. */
const TWO_CPUS =
  "data-migration has two CPUs: the task's CPU drops its translation in the handler, and the only other CPU that " +
  'ever held one is the migrating CPU, which touches nothing between the switcheroo and its own flush (stack-migration ' +
  'with remote=reader, a third CPU holding a translation, kills this mutant)';

/**
 * Mutants no configuration kills, and why each cannot change the outcome: by scenario, then the protocol's phase
 * list, then the mutant's. docs/scenarios/migration.md repeats these.
 */
export const EQUIVALENT: Readonly<Record<string, Readonly<Record<string, Readonly<Record<string, string>>>>>> = {
  'stack-migration': {
    [PROTOCOL_PHASES['ipi-switcheroo']]: {
      'ipi(check-current,copy,install,invlpg),flush,wait,free': CSD_REUSE,
      'ipi(check-current,copy,install,invlpg),flush,free': CSD_REUSE,
      'wait,ipi(check-current,copy,install,invlpg),flush,free': CSD_REUSE,
      'ipi(copy,install,invlpg),wait,flush,free': CHECK_CURRENT,
    },
    [PROTOCOL_PHASES['switcheroo-entry']]: {
      'migration-entry,flush-others,ipi(copy,install,invlpg),wait,free':
        'the check matters only once the task can move to another CPU, and where it can (sched=migrate) the ' +
        'protocol itself double-faults: the task moves onto a CPU that holds the migration entry ' +
        '(docs/scenarios/migration.md, "With the scheduler"); where the protocol is clean, the task stays on its CPU',
      'migration-entry,flush-others,ipi(check-current,copy,invlpg,install),wait,free':
        'equivalent wherever the protocol is clean, not on every machine: between the INVLPG and the new PTE the ' +
        "task's CPU runs the handler, which touches nothing on the page, so only a speculative fill could cache the " +
        'old translation there; where the scenario offers TLB events the protocol itself double-faults (an eviction ' +
        'after the migration entry), and for ipi-switcheroo such a fill kills this mutant',
    },
    [PROTOCOL_PHASES['park-switcheroo']]: {
      'park,ipi(copy,install,invlpg),wait,unpark,free': INITIATOR_UNTOUCHED,
      'park,ipi(copy,install,invlpg),wait,unpark,free,invlpg': BACK_TO_BACK,
      'park,ipi(copy,install,invlpg),wait,invlpg,unpark,free':
        "in stack-migration the migrating CPU never touches the task's stack: its INVLPG, before or after the " +
        'unpark, drops nothing, and the free comes after both',
      'park,ipi(install,copy,invlpg),wait,unpark,invlpg,free': INSTALL_BEFORE_COPY,
    },
  },
  'data-migration': {
    [PROTOCOL_PHASES['ipi-switcheroo']]: {
      'ipi(check-current,copy,install,invlpg),flush,wait,free': CSD_REUSE,
      'ipi(check-current,copy,install,invlpg),flush,free': CSD_REUSE,
      'wait,ipi(check-current,copy,install,invlpg),flush,free': CSD_REUSE,
      'ipi(copy,install,invlpg),wait,flush,free': CHECK_CURRENT,
      'ipi(check-current,copy,install,invlpg),wait,free,flush': TWO_CPUS,
      'ipi(check-current,copy,install,invlpg),wait,flush:nowait,free': TWO_CPUS,
      'ipi(check-current,install,copy,invlpg),wait,flush,free':
        "between the new PTE and the copy only the task's CPU could read the new frame, and it is in the handler " +
        'that does both while the migrating CPU waits (stack-migration with remote=reader kills this mutant)',
    },
    [PROTOCOL_PHASES['park-switcheroo']]: {
      'ipi(copy,install,invlpg),wait,unpark,invlpg,free': NO_ONE_TO_PARK,
      'park,ipi(copy,install,invlpg),wait,invlpg,free': NO_ONE_TO_PARK,
      'ipi(copy,install,invlpg),park,wait,unpark,invlpg,free': NO_ONE_TO_PARK,
      'park,ipi(copy,install,invlpg),unpark,wait,invlpg,free': NO_ONE_TO_PARK,
      'park,ipi(copy,install,invlpg),wait,invlpg,unpark,free': NO_ONE_TO_PARK,
      'park,ipi(copy,install,invlpg),wait,unpark,free,invlpg': BACK_TO_BACK,
      'park,ipi(install,copy,invlpg),wait,unpark,invlpg,free': INSTALL_BEFORE_COPY,
    },
    [PROTOCOL_PHASES['migration-entry']]: {
      'migration-entry,flush,copy,free,install':
        'after the flush no CPU holds a translation of the old frame, and the migration entry only makes an ' +
        'accessor wait: nothing reaches the old frame between the free and the install, and nothing allocates in ' +
        'between to reuse it (Linux keeps a reference on the old page until remove_migration_ptes(), so the early ' +
        'free is harmless here only because the scenario allocates nothing else)',
    },
  },
};

export interface MutantReport {
  readonly phases: string;
  readonly change: string;
  /**
   * The configuration that killed it and what it found there: the first, in MUTATION_CONFIGS' order, where a quick
   * look (PROBE_STATES states) found a violation; where none did, the first whose complete exploration did.
   */
  readonly killedBy?: Explored;
  /** Why it is equivalent, when no configuration kills it and it is a known equivalent mutant. */
  readonly equivalent?: string;
  /** Milliseconds its explorations took (every one run for it, quick looks included). */
  readonly ms: number;
}

export interface MutationReport {
  readonly scenario: string;
  readonly protocol: string;
  readonly phases: string;
  /** The protocol itself in each configuration: the mutants are explored where it is clean. */
  readonly configurations: readonly Explored[];
  /**
   * Configurations where the protocol is clean, completely. With none, no mutant is checked (the protocol's own
   * verdict is a violation, or the budget cut it), and none counts as surviving.
   */
  readonly cleanConfigurations: number;
  readonly mutants: readonly MutantReport[];
  readonly killed: number;
  readonly equivalent: number;
  /** Mutants no configuration kills and no reason covers, where some configuration is clean: a gap in the scenario. */
  readonly survived: number;
  readonly ms: number;
}

export interface MutateOptions {
  /** States each exploration may store (default 5,000,000). */
  readonly budget?: number;
  /** Explorations run at once, each on a worker thread; default 1: one at a time, on this thread. */
  readonly workers?: number;
  /** Called after each exploration (for progress). */
  readonly onExplored?: (what: string, e: Explored) => void;
}

/** The phase list of a protocol parameter: a built-in protocol's, or the text itself. */
export function protocolPhases(protocol: string): PhaseList {
  const builtIn = Object.hasOwn(PROTOCOL_PHASES, protocol) ? PROTOCOL_PHASES[protocol as ProtocolName] : undefined;
  return parsePhases(builtIn ?? protocol);
}

/** How urgent an exploration is (lower first): the protocol's own, the quick looks, then the complete ones. */
const BASELINE = 0;
const PROBE = 1;
const COMPLETE = 2;

/** An exploration waiting for a worker: by priority, then `size` (larger first), then in the order asked. */
interface Waiting {
  readonly priority: number;
  readonly size: () => number;
  readonly order: number;
  readonly start: (w: Worker) => void;
}

/** Whether `a` goes to a worker before `b`. */
function before(a: Waiting, b: Waiting): boolean {
  if (a.priority !== b.priority) return a.priority < b.priority;
  const sizeA = a.size();
  const sizeB = b.size();
  return sizeA !== sizeB ? sizeA > sizeB : a.order < b.order;
}

/**
 * Where explorations run: on this thread (one lane), or each on a worker thread of a pool; a call waits for a free
 * worker, the most urgent first (see Waiting), and is dropped (undefined) if `wanted()` is false by then.
 */
class ExploreLanes {
  private readonly idle: Worker[] = [];
  private readonly waiting: Waiting[] = [];
  private readonly all: Worker[] = [];
  private nextId = 0;
  private asked = 0;

  constructor(private readonly workers: number) {}

  async explore(
    request: ExploreRequest,
    priority = BASELINE,
    size: () => number = () => 0,
    wanted: () => boolean = () => true,
  ): Promise<Explored | undefined> {
    if (this.workers <= 1) return wanted() ? exploreConfig(request) : undefined;
    const worker = await this.take(priority, size);
    // The worker came free as an exploration finished: let what that finish sets off run first (a mutant killed by
    // it no longer wants its later explorations).
    await new Promise((resolve) => setImmediate(resolve));
    if (!wanted()) {
      this.give(worker);
      return undefined;
    }
    try {
      return await new Promise<Explored>((resolve, reject) => {
        const id = this.nextId++;
        const onMessage = (m: { id: number; result?: Explored; error?: string }) => {
          if (m.id !== id) return;
          worker.off('message', onMessage);
          worker.off('error', reject);
          if (m.error !== undefined) reject(new InputError(m.error));
          else resolve(m.result!);
        };
        worker.on('message', onMessage);
        worker.once('error', reject);
        worker.postMessage({ id, request });
      });
    } finally {
      this.give(worker);
    }
  }

  private take(priority: number, size: () => number): Promise<Worker> {
    const w = this.idle.pop();
    if (w !== undefined) return Promise.resolve(w);
    if (this.all.length < this.workers) {
      const started = startWorkerBeside(import.meta.url, 'mutate-worker');
      this.all.push(started);
      return Promise.resolve(started);
    }
    return new Promise((resolve) => this.waiting.push({ priority, size, order: this.asked++, start: resolve }));
  }

  private give(w: Worker): void {
    const waiting = this.waiting;
    if (waiting.length === 0) {
      this.idle.push(w);
      return;
    }
    let best = 0;
    for (let k = 1; k < waiting.length; k++) if (before(waiting[k]!, waiting[best]!)) best = k;
    const [next] = waiting.splice(best, 1);
    next!.start(w);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}

/**
 * Mutation-checks `protocol` on `scenario` (stack-migration or data-migration): explores the protocol in each
 * configuration, then each mutant where the protocol is clean, until one kills it. `params` are the scenario's other
 * parameters (store-buffer, psc, chunk), applied to every configuration.
 */
export async function mutate(
  scenario: string,
  protocol: string,
  params: Readonly<Record<string, ParamValue>> = {},
  options: MutateOptions = {},
): Promise<MutationReport> {
  const configs = MUTATION_CONFIGS[scenario];
  if (configs === undefined) {
    throw new InputError(
      `mutate: scenario ${describeValue(scenario)} has no mutation configurations; it takes ${Object.keys(MUTATION_CONFIGS).join(', ')}`,
    );
  }
  for (const key of ['protocol', 'rounds', 'cpus', 'remote', 'schedule']) {
    if (Object.hasOwn(params, key)) {
      throw new InputError(`mutate: parameter ${key} is set by each configuration (MUTATION_CONFIGS), not by -p`);
    }
  }
  const budget = options.budget ?? 5_000_000;
  const phases = protocolPhases(protocol);
  // Every configuration's parameters are checked before anything runs: a bad one is refused, nothing half-done.
  // And whether each has a scheduler (a task that can move or be switched out).
  const s = findScenario(scenario);
  const scheduled = configs.map((c) => {
    const sched = resolveParams(s, { ...params, ...c.params, protocol: formatPhases(phases) }).sched;
    return sched !== undefined && sched !== 'pinned';
  });
  const text = formatPhases(phases);
  const start = performance.now();
  // The protocol's own first violation in a configuration is enough to leave it out; where it has none, the
  // search ran to its end: clean, complete.
  const workers = options.workers ?? 1;
  // With workers, explorations run on worker threads, `workers` at a time; the report is the same either way.
  const lanes = new ExploreLanes(workers);
  try {
    // The protocol's own explorations first; each mutant's quick looks and complete explorations queue behind them,
    // each deciding by the protocol's result in its configuration (awaited: a look may start before it is known).
    const known: (Explored | undefined)[] = configs.map(() => undefined);
    const baselines = configs.map(async (c, i) => {
      const e = (await lanes.explore({ scenario, protocol: text, params, config: c, stopAtViolation: true, budget }))!;
      known[i] = e;
      options.onExplored?.(`${protocol} in ${c.name}`, e);
      return e;
    });
    const equivalents = EQUIVALENT[scenario]?.[text] ?? {};
    const mutants = await Promise.all(
      phaseMutants(phases).map(async (m): Promise<MutantReport> => {
        const mutantText = formatPhases(m.phases);
        // Without a scheduler the check that the task is current is no step (migration-phases.ts), so a mutant
        // that drops it takes the protocol's steps: its exploration would be the protocol's, clean.
        const skip = configs.map((_, i) => m.change.endsWith('drop check-current') && !scheduled[i]);
        let ms = 0;
        const explore = async (i: number, quick: boolean, wanted: () => boolean) => {
          const c = configs[i]!;
          const e = await lanes.explore(
            {
              scenario,
              protocol: mutantText,
              params,
              config: c,
              stopAtViolation: true,
              budget: quick ? Math.min(PROBE_STATES, budget) : budget,
            },
            quick ? PROBE : COMPLETE,
            // The largest explorations first, so that the last to finish is a short one.
            () => (known[i] === undefined ? Number.POSITIVE_INFINITY : known[i]!.states),
            wanted,
          );
          if (e !== undefined) {
            options.onExplored?.(`${quick ? 'a quick look at ' : ''}mutant ${mutantText} in ${c.name}`, e);
            ms += e.ms;
          }
          return e;
        };
        const killedBy = await firstKill({
          configs: configs.length,
          eligible: (i) => !skip[i],
          baseline: (i) => baselines[i]!,
          known: (i) => known[i],
          explore,
        });
        const reason = killedBy === undefined ? equivalents[mutantText] : undefined;
        return {
          phases: mutantText,
          change: m.change,
          ...(killedBy === undefined ? {} : { killedBy }),
          ...(reason === undefined ? {} : { equivalent: reason }),
          ms,
        };
      }),
    );
    const configurations = await Promise.all(baselines);
    return report(scenario, protocol, text, configurations, mutants, start);
  } finally {
    await lanes.close();
  }
}

function report(
  scenario: string,
  protocol: string,
  text: string,
  configurations: readonly Explored[],
  mutants: readonly MutantReport[],
  start: number,
): MutationReport {
  const killed = mutants.filter((m) => m.killedBy !== undefined).length;
  const equivalent = mutants.filter((m) => m.equivalent !== undefined).length;
  const cleanConfigurations = configurations.filter(clean).length;
  return {
    scenario,
    protocol,
    phases: text,
    configurations,
    cleanConfigurations,
    mutants,
    killed,
    equivalent,
    survived: cleanConfigurations === 0 ? 0 : mutants.length - killed - equivalent,
    ms: Math.round(performance.now() - start),
  };
}
