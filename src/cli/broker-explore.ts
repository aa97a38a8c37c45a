import { hostname } from 'node:os';
import { runCoordinator } from '../explore/distributed/broker-coordinator.ts';
import { runBrokerWorker } from '../explore/distributed/broker-worker.ts';
import type { ExploreOptions, ExploreResult } from '../explore/explore.ts';
import { delivering, resolveOptions } from '../explore/parts.ts';
import { finishStateful } from '../explore/stateful-explore.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import type { Scenario, ScenarioParams } from '../scenarios/scenario.ts';
import { resolveParams } from '../scenarios/scenario.ts';
import { findScenarioRef, machineFactory } from '../scenarios/scenario-module.ts';
import { optionText } from './explore-command.ts';
import { type CliIo, EXIT_OK } from './io.ts';
import { VERSION } from './version.ts';

// The distributed stateful search on the command line (docs/distributed.md): `explore --broker` coordinates,
// `x86slice worker --broker` serves. The search itself is src/explore/distributed/.

export interface BrokerFlags {
  readonly ranges: number;
  readonly minWorkers: number;
  readonly io: CliIo;
}

/** `explore --broker`: publishes the run, waits for workers, and reports as the stateful search does. */
export async function exploreOverBroker(
  broker: string,
  scenario: Scenario,
  scenarioRef: string,
  params: ScenarioParams,
  options: ExploreOptions,
  flags: BrokerFlags,
): Promise<{ result: ExploreResult; broker: Record<string, unknown> }> {
  const { onProgress: _bar, ...rest } = options;
  const r = resolveOptions({ ...rest, strategy: 'exhaustive', search: 'stateful' });
  const build = delivering(machineFactory(scenario, params), r);
  const started = Date.now();
  const done = await runCoordinator({
    broker,
    config: {
      version: VERSION,
      scenario: scenarioRef,
      params,
      maxSteps: r.maxSteps,
      tlbEvents: r.tlbEvents,
      cacheEvents: r.cacheEvents,
      ipiDelivery: r.ipiDelivery,
      deadWords: r.deadWords ?? r.reduce,
      ranges: flags.ranges,
    },
    build,
    limits: {
      budget: r.budget,
      stopAtViolation: false,
      ...(r.timeLimit === undefined ? {} : { deadline: started + r.timeLimit }),
    },
    minWorkers: flags.minWorkers,
    onProgress: (p) =>
      flags.io.err(
        `level ${p.level}: ${p.states.toLocaleString('en-US')} states; queue ${p.queue} messages; ` +
          p.workers.map((w) => `${w.name} ${w.statesPerSecond} states/s`).join(', '),
      ),
    log: (line) => flags.io.err(line),
  });
  const result = finishStateful(
    build,
    {
      maxSteps: r.maxSteps,
      tlbEvents: r.tlbEvents,
      cacheEvents: r.cacheEvents,
      ipiDelivery: r.ipiDelivery,
      check: undefined,
      invariant: undefined,
      reduce: r.reduce,
      budget: r.budget,
      timeLimit: r.timeLimit,
      onProgress: undefined,
    },
    { ...done, ...(done.deadWordsOff === undefined ? {} : { deadWordsOff: done.deadWordsOff }) },
    done.workers,
  );
  return {
    result,
    broker: {
      workers: done.workers,
      ranges: flags.ranges,
      lost: done.lost,
      levels: done.depth + 1,
      messages: done.messages,
      statesSent: done.sent,
    },
  };
}

/** `x86slice worker`: serves runs until stopped (or one, with --once). */
export async function workerCommand(flags: Record<string, unknown>, argv: readonly string[], io: CliIo) {
  const broker = optionText(argv, '--broker', flags.broker);
  if (broker === undefined || broker === '') {
    throw new InputError('worker needs --broker <url>: the Redis broker the coordinator uses (redis://host:port)');
  }
  const name = optionText(argv, '--name', flags.name);
  if (name !== undefined && !/^[\w.-]{1,64}$/.test(name)) {
    throw new InputError(`--name ${describeValue(name)} must be 1 to 64 letters, digits, '.', '_' or '-'`);
  }
  await runBrokerWorker({
    broker,
    version: VERSION,
    name: name ?? `${hostname()}-${process.pid}`,
    once: flags.once === true,
    resolve: async (config) => {
      const scenario = await findScenarioRef(config.scenario);
      const build = machineFactory(scenario, resolveParams(scenario, config.params as ScenarioParams));
      return {
        build: () => {
          const m = build();
          m.ipiDelivery = config.ipiDelivery;
          return m;
        },
        check: undefined,
      };
    },
    log: (line) => io.err(line),
  });
  return EXIT_OK;
}
