import type { Outcome } from '../cpu/instruction.ts';
import type { Machine, RunOptions, RunResult } from '../machine/machine.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';

// A scenario is a named, parameterised machine set-up plus how to run it: the catalogue users start from.

export type ParamValue = number | boolean | string;

export interface ScenarioParam {
  readonly name: string;
  readonly description: string;
  readonly kind: 'integer' | 'boolean' | 'choice' | 'string';
  readonly default: ParamValue;
  /** Inclusive range for integers. */
  readonly min?: number;
  readonly max?: number;
  /** The values a choice takes (a string parameter's named values, beside what `validate` accepts). */
  readonly choices?: readonly string[];
  /** A string parameter's rule: throws an InputError naming the value and the rule it breaks. */
  readonly validate?: (value: string) => void;
}

/** How a parameter's values are written: 0..2, true|false, lazy-fault|preallocated. */
export function paramRange(p: ScenarioParam): string {
  if (p.kind === 'integer') return `${p.min ?? '-inf'}..${p.max ?? 'inf'}`;
  if (p.kind === 'choice') return (p.choices ?? []).join('|');
  if (p.kind === 'string') return p.choices ? `${p.choices.join('|')}|text` : 'text';
  return 'true|false';
}

export type ScenarioParams = Readonly<Record<string, ParamValue>>;

export interface BuiltScenario {
  readonly machine: Machine;
  readonly run: RunOptions;
  /** What the scenario measured, after the run (printed by `x86slice run`, in its JSON as `report`). */
  readonly report?: () => Readonly<Record<string, unknown>>;
}

/** What a scenario is, without the code that builds it (see listing.ts). */
export type ScenarioInfo = Omit<Scenario, 'build'>;

export interface Scenario {
  readonly name: string;
  /** The docs page family (docs/scenarios/<family>.md). */
  readonly family: string;
  readonly summary: string;
  /** The outcome the scenario demonstrates with default parameters. */
  readonly expected: Outcome;
  readonly params: readonly ScenarioParam[];
  /**
   * Its programs keep no per-machine state outside emulated memory and the kernel object, so the checker may run
   * it from a MachineImage (an instance reset per execution) instead of building it every time.
   */
  readonly imageSafe?: boolean;
  build(params: ScenarioParams, options: { readonly trace: boolean }): BuiltScenario;
}

export interface ScenarioRun {
  readonly scenario: Scenario;
  readonly params: ScenarioParams;
  readonly machine: Machine;
  readonly result: RunResult;
  /** The scenario's own measurements, when it has any. */
  readonly report?: Readonly<Record<string, unknown>>;
}

function describeParam(p: ScenarioParam): string {
  const range = ` (${paramRange(p)})`;
  return `${p.name}${range}, default ${p.default}`;
}

/** Validates `key=value` strings (or already-typed values) against a scenario's parameters; fills defaults. */
export function resolveParams(scenario: Scenario, raw: Readonly<Record<string, string | ParamValue>>): ScenarioParams {
  if (typeof raw !== 'object' || raw === null) {
    throw new InputError(`parameters ${describeValue(raw)} for scenario ${scenario.name} must be an object`);
  }
  // A prototype-less record: a parameter named __proto__ or toString is an unknown parameter, not an accessor.
  const out: Record<string, ParamValue> = Object.create(null);
  for (const p of scenario.params) out[p.name] = p.default;
  for (const key of Reflect.ownKeys(raw)) {
    const value: unknown = (raw as Record<PropertyKey, unknown>)[key];
    const p = typeof key === 'string' ? scenario.params.find((q) => q.name === key) : undefined;
    if (!p || typeof key !== 'string') {
      const valid = scenario.params.length ? scenario.params.map(describeParam).join('; ') : 'none';
      throw new InputError(
        `unknown parameter ${describeValue(key)} for scenario ${scenario.name}; valid parameters: ${valid}`,
      );
    }
    // A value from the command line is shown as typed; any other value is described safely.
    const shown = typeof value === 'string' ? value : describeValue(value);
    if (p.kind === 'choice') {
      if (typeof value === 'string' && (p.choices ?? []).includes(value)) out[key] = value;
      else throw new InputError(`parameter ${key}=${shown} must be one of ${paramRange(p)}`);
      continue;
    }
    if (p.kind === 'string') {
      if (typeof value !== 'string') throw new InputError(`parameter ${key}=${shown} must be a string`);
      if (!p.choices?.includes(value)) p.validate?.(value);
      out[key] = value;
      continue;
    }
    if (p.kind === 'boolean') {
      if (typeof value === 'boolean') out[key] = value;
      else if (value === 'true' || value === 'false') out[key] = value === 'true';
      else throw new InputError(`parameter ${key}=${shown} must be true or false`);
      continue;
    }
    const n = typeof value === 'number' ? value : /^-?\d{1,15}$/.test(String(value)) ? Number(value) : Number.NaN;
    if (!Number.isInteger(n) || (p.min !== undefined && n < p.min) || (p.max !== undefined && n > p.max)) {
      throw new InputError(`parameter ${key}=${shown} must be an integer in ${p.min ?? '-inf'}..${p.max ?? 'inf'}`);
    }
    out[key] = n;
  }
  return { ...out };
}

/** Parses CLI `-p key=value` strings into a record (values stay strings until resolveParams). */
export function parseParamStrings(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InputError(`parameter ${describeValue(pair)} must be written key=value`);
    const key = pair.slice(0, eq);
    if (Object.hasOwn(out, key)) throw new InputError(`parameter ${key} is given twice (-p ${key}=...)`);
    out[key] = pair.slice(eq + 1);
  }
  return out;
}
