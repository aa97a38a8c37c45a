import type { Case, Difference, Observation } from './case.ts';
import { KNOWN_DEPARTURES, type KnownDeparture } from './departures.ts';

// Field-by-field comparison of an oracle's recording with the model's observation of the same case. Every field
// that differs is a Difference; one that a known departure of the oracle from the SDM explains is set aside
// with that departure's name, and every other one is a model bug to fix.

export interface Comparison {
  readonly differences: readonly Difference[];
  /** Differences explained by known departures, with their names (joined by '+' when two combine). */
  readonly explained: readonly (Difference & { readonly departure: string })[];
}

function walk(path: string, a: unknown, b: unknown, out: Difference[]): void {
  if (a === b) return;
  if (Array.isArray(a) && Array.isArray(b)) {
    // Arrays of numbers (attempt chains) compare whole; arrays of records element by element.
    if (a.every((x) => typeof x !== 'object') && b.every((x) => typeof x !== 'object')) {
      if (a.length !== b.length || a.some((x, i) => x !== b[i])) out.push({ path, oracle: a, model: b });
      return;
    }
    for (let i = 0; i < Math.max(a.length, b.length); i++) walk(`${path}[${i}]`, a[i], b[i], out);
    return;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      walk(
        path ? `${path}.${key}` : key,
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        out,
      );
    }
    return;
  }
  out.push({ path, oracle: a, model: b });
}

/** Compares `oracle` (recorded) with `model` for case `c`. */
export function compareObservations(
  c: Case,
  oracle: Observation,
  model: Observation,
  departures: readonly KnownDeparture[] = KNOWN_DEPARTURES,
): Comparison {
  const all: Difference[] = [];
  walk('', oracle, model, all);
  const differences: Difference[] = [];
  const explained: (Difference & { departure: string })[] = [];
  for (const d of all) {
    const departure = departures.find((k) => k.explains?.(c, d, oracle, model));
    if (departure) {
      explained.push({ ...d, departure: departure.name });
      continue;
    }
    // Departures that say what the SDM's value would be, applied in turn (an error code can carry two).
    let value = d.oracle;
    const used: string[] = [];
    for (const k of departures) {
      const sdm = k.toSdm?.(c, d.path, value, oracle);
      if (sdm !== undefined && sdm !== value) {
        value = sdm;
        used.push(k.name);
      }
    }
    if (used.length > 0 && value === d.model) explained.push({ ...d, departure: used.join('+') });
    else differences.push(d);
  }
  return { differences, explained };
}

/** One line for a report: the case, the field, and both values. */
export function describeDifference(c: Case, d: Difference): string {
  return `${c.id}: ${d.path}: oracle ${JSON.stringify(d.oracle)}, model ${JSON.stringify(d.model)}`;
}
