import { formatVirtual, InputError, isCanonical, toVirtual } from '../mmu/address.ts';

// Which CPU moves at each step, and the hardware TLB events the scheduler may choose between steps
// (DESIGN.md: a TLB may drop an entry or fill one speculatively at any time).

export type TlbEvent = { readonly cpu: number; readonly tlb: 'evict' | 'fill'; readonly va: number };
/** A CPU id to step, or a hardware TLB event on a CPU. */
export type ScheduleEntry = number | TlbEvent;
export type SchedulePolicy = 'round-robin' | 'random' | readonly ScheduleEntry[] | string;

const SYNTAX =
  'a schedule is a comma- or space-separated list of CPU ids ("0,1,1"), repeats ("1*3"), ' +
  'and TLB events ("evict:1:0xffffc90000001000", "fill:0:0xffffc90000001000")';

/** Parses a schedule string such as "0,1*3,evict:1:0xffffc90000001000,0". */
export function parseSchedule(text: string): ScheduleEntry[] {
  const entries: ScheduleEntry[] = [];
  const tokens = text.split(/[\s,]+/).filter((t) => t.length > 0);
  for (const token of tokens) {
    const repeat = /^(\d+)(?:\*(\d+))?$/.exec(token);
    if (repeat) {
      const cpu = Number(repeat[1]);
      const times = repeat[2] === undefined ? 1 : Number(repeat[2]);
      if (times < 1 || times > 1_000_000)
        throw new InputError(`schedule token '${token}': repeat count must be 1..1000000`);
      for (let i = 0; i < times; i++) entries.push(cpu);
      continue;
    }
    const event = /^(evict|fill):(\d+):(\S+)$/.exec(token);
    if (event) {
      let va: number;
      try {
        va = toVirtual(event[3]!);
      } catch (error) {
        throw new InputError(`schedule token '${token}': ${(error as Error).message}`);
      }
      if (!isCanonical(va)) {
        throw new InputError(`schedule token '${token}': ${event[3]} is not a canonical address (bits 63:47 differ)`);
      }
      entries.push({ cpu: Number(event[2]), tlb: event[1] as 'evict' | 'fill', va });
      continue;
    }
    throw new InputError(`malformed schedule token '${token}': ${SYNTAX}`);
  }
  return entries;
}

/** The inverse of parseSchedule, with runs of one CPU folded ("1*3"). */
export function formatSchedule(entries: readonly ScheduleEntry[]): string {
  const out: string[] = [];
  for (let i = 0; i < entries.length; ) {
    const e = entries[i]!;
    if (typeof e !== 'number') {
      out.push(`${e.tlb}:${e.cpu}:${formatVirtual(e.va)}`);
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

/** A small seeded PRNG (mulberry32): the model's only source of randomness, so runs replay bit for bit. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new InputError(`seed ${seed} must be an integer`);
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
