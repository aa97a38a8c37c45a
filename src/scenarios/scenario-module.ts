import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MachineImage } from '../machine/image.ts';
import type { Machine, RunOptions } from '../machine/machine.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import { findScenario } from './catalogue.ts';
import { type ParamValue, resolveParams, type Scenario, type ScenarioParam, type ScenarioParams } from './scenario.ts';

// A scenario from the catalogue or from a user's own module (`x86slice explore ./my-scenario.ts`), and the machine
// factory exploration needs from it. `scenarioBuilder` is the export parallel workers import (a BuildSource): each
// worker rebuilds the same factory from the scenario reference and its parameters, which are plain data.

/** Whether a scenario reference names a file rather than a catalogue scenario. */
export function isScenarioPath(ref: string): boolean {
  return /^\.{0,2}\//.test(ref) || /\.(?:[cm]?ts|m?js)$/.test(ref);
}

const PARAM_KINDS = ['integer', 'boolean', 'choice', 'string'] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** What makes an export a scenario candidate: a name, a parameter list and a build function. */
function looksLikeScenario(value: unknown): boolean {
  return isObject(value) && typeof value.name === 'string' && Array.isArray(value.params) && 'build' in value;
}

function checkParam(p: unknown, index: number, where: string): ScenarioParam {
  const at = `${where}: parameter ${index}`;
  if (!isObject(p)) throw new InputError(`${at} ${describeValue(p)} must be an object { name, kind, default }`);
  if (typeof p.name !== 'string' || !/^[\w-]+$/.test(p.name)) {
    throw new InputError(`${at} name ${describeValue(p.name)} must be a word (letters, digits, - and _)`);
  }
  const named = `${where}: parameter ${p.name}`;
  if (!PARAM_KINDS.includes(p.kind as never)) {
    throw new InputError(
      `${named} kind ${describeValue(p.kind)} must be one of 'integer', 'boolean', 'choice', 'string'`,
    );
  }
  const value = p.default;
  if (p.kind === 'choice') {
    const choices = p.choices;
    if (!Array.isArray(choices) || choices.length === 0 || !choices.every((c) => typeof c === 'string')) {
      throw new InputError(`${named} choices ${describeValue(choices)} must be a non-empty array of strings`);
    }
    if (typeof value !== 'string' || !choices.includes(value)) {
      throw new InputError(`${named} default ${describeValue(value)} must be one of its choices`);
    }
  } else if (p.kind === 'string') {
    if (typeof value !== 'string') throw new InputError(`${named} default ${describeValue(value)} must be a string`);
  } else if (p.kind === 'boolean' ? typeof value !== 'boolean' : !Number.isSafeInteger(value)) {
    throw new InputError(
      `${named} default ${describeValue(value)} must be ${p.kind === 'boolean' ? 'a boolean' : 'an integer'}`,
    );
  }
  for (const bound of ['min', 'max'] as const) {
    if (p[bound] !== undefined && !Number.isSafeInteger(p[bound])) {
      throw new InputError(`${named} ${bound} ${describeValue(p[bound])} must be an integer`);
    }
  }
  return { description: '', ...p } as unknown as ScenarioParam;
}

/**
 * Checks a user's scenario: what resolveParams and the commands rely on. `family`, `summary` and `expected` may be
 * left out: a scenario written to be explored expects no violation, so `expected` defaults to ok.
 */
function checkScenario(value: unknown, where: string): Scenario {
  if (!isObject(value)) throw new InputError(`${where} ${describeValue(value)} must be a scenario object`);
  if (typeof value.name !== 'string' || value.name.length === 0) {
    throw new InputError(`${where} name ${describeValue(value.name)} must be a non-empty string`);
  }
  const named = `${where} (scenario ${value.name})`;
  if (typeof value.build !== 'function') {
    throw new InputError(
      `${named} build ${describeValue(value.build)} must be a function (params, { trace }) => { machine, run }`,
    );
  }
  if (!Array.isArray(value.params)) {
    throw new InputError(`${named} params ${describeValue(value.params)} must be an array (empty for none)`);
  }
  for (const key of ['family', 'summary', 'expected'] as const) {
    if (value[key] !== undefined && typeof value[key] !== 'string') {
      throw new InputError(`${named} ${key} ${describeValue(value[key])} must be a string`);
    }
  }
  const params = value.params.map((p, i) => checkParam(p, i, named));
  const build = value.build as Scenario['build'];
  return {
    name: value.name,
    family: (value.family as string | undefined) ?? 'user',
    summary: (value.summary as string | undefined) ?? `a scenario from ${where}`,
    expected: (value.expected as Scenario['expected'] | undefined) ?? 'ok',
    params,
    // Called as a method: a scenario written as a class instance keeps its `this`.
    build: (p, o) => build.call(value, p, o),
  };
}

/** An error in one line: its name, the first line of its message, and where it was thrown. */
function describeThrown(error: unknown): string {
  if (!(error instanceof Error)) return describeValue(error);
  const at = error.stack
    ?.split('\n')
    .find((line) => line.trimStart().startsWith('at '))
    ?.trim();
  return `${error.name}: ${error.message.split('\n')[0]}${at ? ` (${at})` : ''}`;
}

/**
 * Imports a module; a TypeScript file that node itself cannot load goes through tsx's loader. tsx is an optional
 * peer dependency, not a dependency: the package and its bin run with plain node, and only a user who writes a
 * scenario in TypeScript needs a loader, which such a project usually has already.
 */
async function importModule(url: string, path: string): Promise<Record<string, unknown>> {
  try {
    // Vitest (and a node that strips types) imports .ts directly, sharing the caller's module instances.
    return await import(/* @vite-ignore */ url);
  } catch (error) {
    const typescript = /\.[cm]?tsx?$/.test(path);
    if (!typescript || (error as { code?: unknown }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
  }
  let tsx: typeof import('tsx/esm/api');
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    throw new InputError(
      `scenario file ${describeValue(path)} is TypeScript, which node cannot load by itself: install tsx ` +
        '(npm install --save-dev tsx) where x86slice is installed, or compile the file to .js/.mjs',
    );
  }
  return await tsx.tsImport(url, import.meta.url);
}

/**
 * Loads a scenario from a module file (a path relative to the working directory): its default export, or else its
 * one export that looks like a scenario (a name, a params array, a build function). A missing file, a module that
 * fails to load and a module with no (or more than one) scenario are InputErrors naming the path.
 */
export async function loadScenarioModule(path: string): Promise<Scenario> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InputError(`scenario file ${describeValue(path)} must be a path`);
  }
  const file = resolve(process.cwd(), path);
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    throw new InputError(`scenario file ${describeValue(path)} does not exist (looked for ${file})`);
  }
  if (!isFile) throw new InputError(`scenario file ${describeValue(path)} is not a file (${file})`);
  let exports: Record<string, unknown>;
  try {
    exports = await importModule(pathToFileURL(file).href, path);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`scenario file ${describeValue(path)} could not be loaded: ${describeThrown(error)}`, {
      cause: error,
    });
  }
  const where = `scenario file ${describeValue(path)}`;
  if (looksLikeScenario(exports.default)) return checkScenario(exports.default, `${where} default export`);
  const candidates = Object.entries(exports).filter(([key, value]) => key !== 'default' && looksLikeScenario(value));
  if (candidates.length === 1) return checkScenario(candidates[0]![1], `${where} export ${candidates[0]![0]}`);
  if (candidates.length > 1) {
    throw new InputError(
      `${where} exports ${candidates.length} scenarios (${candidates.map(([k]) => k).join(', ')}); ` +
        'export the one to use as default',
    );
  }
  // A default export that is not quite a scenario: say what is wrong with it.
  if (isObject(exports.default)) return checkScenario(exports.default, `${where} default export`);
  const names = Object.keys(exports);
  throw new InputError(
    `${where} does not export a scenario (a default export, or one export with name, params and build); ` +
      `its exports: ${names.length ? names.join(', ') : 'none'}`,
  );
}

/** A catalogue scenario by name, or a module's scenario when `ref` looks like a path. */
export async function findScenarioRef(ref: string): Promise<Scenario> {
  return isScenarioPath(ref) ? loadScenarioModule(ref) : findScenario(ref);
}

/** Builds the scenario once, checking that build returned a machine. */
export function buildScenario(
  scenario: Scenario,
  params: ScenarioParams,
  options: { readonly trace: boolean },
): { readonly machine: Machine; readonly run: RunOptions } {
  let built: unknown;
  try {
    built = scenario.build(params, options);
  } catch (error) {
    // A refusal passes through as it is; anything else thrown by a (user's) build is reported as the scenario's
    // fault, with where it was thrown, rather than as a crash.
    if (error instanceof Error && error.name === 'InputError') throw error;
    throw new InputError(`scenario ${scenario.name} build threw ${describeThrown(error)}`, { cause: error });
  }
  const machine = isObject(built) ? built.machine : undefined;
  if (!isObject(machine) || typeof machine.step !== 'function') {
    throw new InputError(
      `scenario ${scenario.name} build returned ${describeValue(built)}; it must return { machine, run }`,
    );
  }
  const run = (built as { run?: unknown }).run;
  return { machine: machine as unknown as Machine, run: isObject(run) ? (run as RunOptions) : {} };
}

/**
 * The machine factory exploration and replay take: a fresh machine each call, with the scenario's IPI delivery mode
 * (explore and replay choose the schedule themselves, so the scenario's `run.schedule` is not used, and set the
 * delivery mode from their own `ipiDelivery` option).
 */
export function machineFactory(
  scenario: Scenario,
  params: ScenarioParams,
  options: { readonly trace: boolean } = { trace: false },
): () => Machine {
  const make = () => {
    const { machine, run } = buildScenario(scenario, params, options);
    if (run.ipiDelivery !== undefined) machine.ipiDelivery = run.ipiDelivery;
    return machine;
  };
  if (!scenario.imageSafe || options.trace) return make;
  // One image, one instance reset for every execution (a kernel boot costs milliseconds, a reset microseconds).
  let image: MachineImage | undefined;
  let instance: Machine | undefined;
  return () => {
    if (image === undefined || instance === undefined) {
      image = MachineImage.capture(make());
      instance = image.instantiate({ trace: false });
      return instance;
    }
    return image.reset(instance);
  };
}

/**
 * A BuildSource factory (src/explore/parallel.ts): `ref` is a catalogue name or a module path (absolute, so every
 * worker finds the same file), `params` as `-p` gives them or typed.
 */
export async function scenarioBuilder(
  ref: string,
  params: Readonly<Record<string, string | ParamValue>>,
): Promise<() => Machine> {
  const scenario = await findScenarioRef(ref);
  return machineFactory(scenario, resolveParams(scenario, params), { trace: false });
}
