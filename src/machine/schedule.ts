import type { DeliverySelector } from '../cpu/ipi-bus.ts';
import { formatVirtual, isCanonical, toVirtual } from '../mmu/address.ts';
import { describeValue, InputError, requireOneOf, requireOptions } from '../mmu/input-error.ts';

// Which CPU moves at each step, and the hardware events the scheduler may choose between steps (DESIGN.md: a TLB
// may drop an entry or fill one speculatively at any time; an IPI in flight may reach its target at any time).

export type TlbEvent = { readonly cpu: number; readonly tlb: 'evict' | 'fill'; readonly va: number };
/** An in-flight IPI to `cpu` reaches its IRR: the oldest, the oldest NMI, or the oldest of a vector. */
export type DeliveryEvent = { readonly cpu: number; readonly deliver: DeliverySelector };
/** The oldest store in `cpu`'s store buffer reaches memory (x86-TSO). */
export type DrainEvent = { readonly cpu: number; readonly drain: true };
/** Paging-structure-cache entry kinds, as schedule tokens name them (evict-pde:1:0x...). */
export const PSC_ENTRY_KINDS = ['pml4e', 'pdpte', 'pde'] as const;
export type PscEntryKind = (typeof PSC_ENTRY_KINDS)[number];
/** `cpu`'s paging-structure cache drops its `psc` entry for `va` (the hardware's freedom, as a TLB eviction). */
export type PscEvent = { readonly cpu: number; readonly psc: PscEntryKind; readonly va: number };
/**
 * `cpu` walks the upper levels for `va` speculatively and caches the paging-structure entries down to `pscFill`
 * (SDM §4.10.3.1: an entry may be cached whether or not any address it covers is translated).
 */
export type PscFillEvent = { readonly cpu: number; readonly pscFill: PscEntryKind; readonly va: number };
/** A hardware event between steps. */
export type HardwareEvent = TlbEvent | DeliveryEvent | DrainEvent | PscEvent | PscFillEvent;
/** A CPU id to step, or a hardware event. */
export type ScheduleEntry = number | HardwareEvent;
export type SchedulePolicy = 'round-robin' | 'random' | 'timed' | readonly ScheduleEntry[] | string;

const SYNTAX =
  'a schedule is a comma- or space-separated list of CPU ids ("0,1,1"), repeats ("1*3"), ' +
  'TLB events ("evict:1:0xffffc90000001000", "fill:0:0xffffc90000001000"), IPI deliveries ' +
  '("deliver:1", "deliver:1:0xf0", "deliver:1:nmi"), store-buffer drains ("drain:1"), paging-structure-cache ' +
  'evictions ("evict-pde:1:0xffffc90000000000", "evict-pdpte:...", "evict-pml4e:...") and fills ' +
  '("fill-pde:1:0xffffc90000000000", "fill-pdpte:...", "fill-pml4e:...")';

/** Longest repeat one token may ask for ("1*1000000"). */
export const MAX_REPEAT = 1_000_000;
/** Most entries parseSchedule expands a string to; run() consumes strings lazily and has no such limit. */
export const MAX_EXPANDED_ENTRIES = 10_000_000;

/** A schedule in compact form: a CPU moving `times` steps in a row, or one hardware event. */
export type ScheduleRun = StepRun | HardwareEvent;
export type StepRun = { readonly cpu: number; readonly times: number };

/** Whether a run steps a CPU (rather than being a hardware event). */
export function isStepRun(run: ScheduleRun): run is StepRun {
  return 'times' in run;
}

/** Schedule entries a run stands for: `times` steps, or 1 for an event. */
function entryCount(run: ScheduleRun): number {
  return isStepRun(run) ? run.times : 1;
}

/**
 * Parses a schedule string into runs without expanding repeats: the cost is proportional to the string, whatever
 * its repeat counts add up to. Every token is checked before any is used.
 */
export function parseScheduleRuns(text: string): ScheduleRun[] {
  if (typeof text !== 'string') throw new InputError(`schedule ${describeValue(text)} must be a string or an array`);
  const runs: ScheduleRun[] = [];
  for (const token of text.split(/[\s,]+/)) {
    if (token.length === 0) continue;
    const repeat = /^(\d{1,7})(?:\*(\d{1,8}))?$/.exec(token);
    if (repeat) {
      const cpu = Number(repeat[1]);
      const times = repeat[2] === undefined ? 1 : Number(repeat[2]);
      if (times < 1 || times > MAX_REPEAT) {
        throw new InputError(`schedule token '${token}': repeat count must be 1..${MAX_REPEAT}`);
      }
      runs.push({ cpu, times });
      continue;
    }
    const event = /^(evict|fill):(\d{1,7}):(\S+)$/.exec(token);
    if (event) {
      runs.push({ cpu: Number(event[2]), tlb: event[1] as 'evict' | 'fill', va: eventAddress(event[3]!, token) });
      continue;
    }
    const drain = /^drain:(\d{1,7})$/.exec(token);
    if (drain) {
      runs.push({ cpu: Number(drain[1]), drain: true });
      continue;
    }
    const psc = /^evict-(pml4e|pdpte|pde):(\d{1,7}):(\S+)$/.exec(token);
    if (psc) {
      runs.push({ cpu: Number(psc[2]), psc: psc[1] as PscEntryKind, va: eventAddress(psc[3]!, token) });
      continue;
    }
    const pscFill = /^fill-(pml4e|pdpte|pde):(\d{1,7}):(\S+)$/.exec(token);
    if (pscFill) {
      runs.push({ cpu: Number(pscFill[2]), pscFill: pscFill[1] as PscEntryKind, va: eventAddress(pscFill[3]!, token) });
      continue;
    }
    const delivery = /^deliver:(\d{1,7})(?::(nmi|0x[0-9a-f]{1,2}|\d{1,3}))?$/i.exec(token);
    if (delivery) {
      const which = delivery[2]?.toLowerCase();
      runs.push({ cpu: Number(delivery[1]), deliver: which === undefined ? 'oldest' : deliverySelector(which, token) });
      continue;
    }
    const shown = token.length > 60 ? `${token.slice(0, 60)}...` : token;
    throw new InputError(`malformed schedule token '${shown}': ${SYNTAX}`);
  }
  return runs;
}

function deliverySelector(text: string, token: string): DeliverySelector {
  if (text === 'nmi') return 'nmi';
  const vector = Number(text);
  if (vector < 16 || vector > 255) {
    throw new InputError(`schedule token '${token}': a fixed IPI's vector is 16..255 (SDM §11.5.2), or nmi`);
  }
  return vector;
}

function eventAddress(text: string, token: string): number {
  let va: number;
  try {
    va = toVirtual(text);
  } catch (error) {
    throw new InputError(`schedule token '${token}': ${(error as Error).message}`);
  }
  if (!isCanonical(va)) {
    throw new InputError(`schedule token '${token}': ${text} is not a canonical address (bits 63:47 differ)`);
  }
  return va;
}

/** Parses a schedule string such as "0,1*3,evict:1:0xffffc90000001000,0" into one entry per step or event. */
export function parseSchedule(text: string): ScheduleEntry[] {
  const runs = parseScheduleRuns(text);
  let total = 0;
  for (const r of runs) total += entryCount(r);
  if (total > MAX_EXPANDED_ENTRIES) {
    throw new InputError(
      `schedule expands to ${total} entries, more than ${MAX_EXPANDED_ENTRIES}: ` +
        'pass the string to run(), which consumes it lazily, or use parseScheduleRuns',
    );
  }
  const entries: ScheduleEntry[] = [];
  for (const r of runs) {
    if (!isStepRun(r)) entries.push(r);
    else for (let i = 0; i < r.times; i++) entries.push(r.cpu);
  }
  return entries;
}

const TLB_EVENT_KINDS = ['evict', 'fill'] as const;

function isFixedVector(v: number): boolean {
  return Number.isInteger(v) && v >= 16 && v <= 255;
}

/** Whether an object has `key` of its own, answering false where looking throws (a revoked Proxy). */
function hasKey(value: object, key: string): boolean {
  try {
    return Object.hasOwn(value, key);
  } catch {
    return false;
  }
}

/** Array.isArray that answers false for a revoked Proxy instead of throwing. */
function isArray(value: unknown): value is unknown[] {
  try {
    return Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * Checks a schedule array entry by entry (holes, null, unknown event kinds and bad fields are refused, naming the
 * index) and returns it as runs. `cpus` is the machine's CPU count.
 */
export function checkScheduleArray(entries: unknown, cpus: number): ScheduleRun[] {
  if (!isArray(entries)) throw new InputError(`schedule ${describeValue(entries)} must be a string or an array`);
  const runs: ScheduleRun[] = [];
  for (let index = 0; index < entries.length; index++) {
    const where = `schedule entry ${index}`;
    const entry: unknown = entries[index];
    if (typeof entry === 'number') {
      checkCpu(entry, where, cpus);
      const last = runs[runs.length - 1];
      if (last && isStepRun(last) && last.cpu === entry) runs[runs.length - 1] = { cpu: entry, times: last.times + 1 };
      else runs.push({ cpu: entry, times: 1 });
      continue;
    }
    if (typeof entry !== 'object' || entry === null || isArray(entry)) {
      throw new InputError(
        `${where} is ${index in entries ? describeValue(entry) : 'a hole'}: ` +
          'each entry is a CPU id, a TLB event { cpu, tlb: "evict" | "fill", va }, an IPI delivery ' +
          '{ cpu, deliver: "oldest" | "nmi" | vector }, a store-buffer drain { cpu, drain: true } or a ' +
          'paging-structure-cache eviction { cpu, psc: "pml4e" | "pdpte" | "pde", va } or fill ' +
          '{ cpu, pscFill: "pml4e" | "pdpte" | "pde", va }',
      );
    }
    if (hasKey(entry, 'drain')) {
      const d = requireOptions<DrainEvent>(entry, where, ['cpu', 'drain']);
      if (d.drain !== true) throw new InputError(`${where} drain ${describeValue(d.drain)} must be true`);
      runs.push({ cpu: checkCpu(d.cpu, where, cpus), drain: true });
      continue;
    }
    if (hasKey(entry, 'psc')) {
      const e = requireOptions<PscEvent>(entry, where, ['cpu', 'psc', 'va']);
      const psc = requireOneOf(e.psc, `${where} paging-structure-cache entry kind`, PSC_ENTRY_KINDS);
      const cpu = checkCpu(e.cpu, where, cpus);
      const va = toVirtual(e.va as number, `${where} address`);
      if (!isCanonical(va)) throw new InputError(`${where} address ${formatVirtual(va)} is not canonical`);
      runs.push({ cpu, psc, va });
      continue;
    }
    if (hasKey(entry, 'pscFill')) {
      const e = requireOptions<PscFillEvent>(entry, where, ['cpu', 'pscFill', 'va']);
      const pscFill = requireOneOf(e.pscFill, `${where} paging-structure-cache entry kind`, PSC_ENTRY_KINDS);
      const cpu = checkCpu(e.cpu, where, cpus);
      const va = toVirtual(e.va as number, `${where} address`);
      if (!isCanonical(va)) throw new InputError(`${where} address ${formatVirtual(va)} is not canonical`);
      runs.push({ cpu, pscFill, va });
      continue;
    }
    if (hasKey(entry, 'deliver')) {
      const d = requireOptions<DeliveryEvent>(entry, where, ['cpu', 'deliver']);
      const cpu = checkCpu(d.cpu, where, cpus);
      const which = d.deliver;
      if (which !== 'oldest' && which !== 'nmi' && !(typeof which === 'number' && isFixedVector(which))) {
        throw new InputError(
          `${where} deliver ${describeValue(which)} must be 'oldest', 'nmi' or a fixed IPI vector 16..255`,
        );
      }
      runs.push({ cpu, deliver: which });
      continue;
    }
    const e = requireOptions<TlbEvent>(entry, where, ['cpu', 'tlb', 'va']);
    const tlb = requireOneOf(e.tlb, `${where} TLB event kind`, TLB_EVENT_KINDS);
    const cpu = checkCpu(e.cpu, where, cpus);
    const va = toVirtual(e.va as number, `${where} address`);
    if (!isCanonical(va)) throw new InputError(`${where} address ${formatVirtual(va)} is not canonical`);
    runs.push({ cpu, tlb, va });
  }
  return runs;
}

/**
 * Checks every CPU the runs name against the machine before the first step, so a refused schedule changes nothing:
 * the CPU exists, and a CPU the schedule steps has a program (`hasProgram[cpu]`; an idle CPU that only takes
 * interrupts is given one that returns at once).
 */
export function checkScheduledCpus(runs: readonly ScheduleRun[], hasProgram: readonly boolean[]): void {
  let index = 0;
  for (const run of runs) {
    const where = `schedule entry ${index}`;
    const cpu = checkCpu(run.cpu, where, hasProgram.length);
    if (isStepRun(run) && !hasProgram[cpu]) {
      throw new InputError(
        `${where} names CPU ${cpu}, which has no program: load one with ` +
          `machine.load(${cpu}, program) (function* () {} for a CPU that only takes interrupts)`,
      );
    }
    index += entryCount(run);
  }
}

function checkCpu(cpu: unknown, where: string, cpus: number): number {
  if (typeof cpu !== 'number' || !Number.isInteger(cpu) || cpu < 0 || cpu >= cpus) {
    throw new InputError(`${where} names CPU ${describeValue(cpu)}, which does not exist (0..${cpus - 1})`);
  }
  return cpu;
}

/** Whether two schedule entries name the same choice (a CPU's step, a delivery, a hardware event). */
export function sameEntry(a: ScheduleEntry | undefined, b: ScheduleEntry): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  for (const k of Object.keys(y)) if (x[k] !== y[k]) return false;
  return Object.keys(x).length === Object.keys(y).length;
}

/** The inverse of parseSchedule, with runs of one CPU folded ("1*3"). */
export function formatSchedule(entries: readonly ScheduleEntry[]): string {
  const out: string[] = [];
  for (let i = 0; i < entries.length; ) {
    const e = entries[i]!;
    if (typeof e !== 'number') {
      out.push(formatEvent(e));
      i++;
      continue;
    }
    let j = i + 1;
    while (j < entries.length && entries[j] === e) j++;
    out.push(j - i > 1 ? `${e}*${j - i}` : `${e}`);
    i = j;
  }
  return out.join(',');
}

/**
 * The text of `text`'s schedule with entry `e` appended, as formatSchedule would give it; `last` is the schedule's
 * last entry (a step of the same CPU lengthens its run). Linear in the text's length, never in the entries'.
 */
export function appendToSchedule(text: string, last: ScheduleEntry | undefined, e: ScheduleEntry): string {
  if (typeof e === 'number' && last === e) {
    const cut = text.lastIndexOf(',') + 1;
    const star = text.indexOf('*', cut);
    const times = star < 0 ? 1 : Number(text.slice(star + 1));
    return `${text.slice(0, cut)}${e}*${times + 1}`;
  }
  const token = typeof e === 'number' ? `${e}` : formatEvent(e);
  return text === '' ? token : `${text},${token}`;
}

/** A hardware event as its schedule token: evict:1:0xffffc90000001000, deliver:1, deliver:1:0xf0, deliver:1:nmi. */
export function formatEvent(e: HardwareEvent): string {
  if ('tlb' in e) return `${e.tlb}:${e.cpu}:${formatVirtual(e.va)}`;
  if ('drain' in e) return `drain:${e.cpu}`;
  if ('psc' in e) return `evict-${e.psc}:${e.cpu}:${formatVirtual(e.va)}`;
  if ('pscFill' in e) return `fill-${e.pscFill}:${e.cpu}:${formatVirtual(e.va)}`;
  if (e.deliver === 'oldest') return `deliver:${e.cpu}`;
  return `deliver:${e.cpu}:${e.deliver === 'nmi' ? 'nmi' : `0x${e.deliver.toString(16)}`}`;
}

/** A small seeded PRNG (mulberry32): the model's only source of randomness, so runs replay bit for bit. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw new InputError(`seed ${describeValue(seed)} must be an integer`);
    }
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return this.nextU32() % n;
  }
}
