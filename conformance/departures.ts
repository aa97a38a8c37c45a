import { VECTOR } from '../src/cpu/exceptions.ts';
import { type Case, type Difference, hex64, LAYOUT, type Observation, type StepResult } from './case.ts';

// Where QEMU (7.2, TCG) departs from the SDM, the model follows the SDM, and the recorded cases that show it are
// explained here. Each entry names the SDM section and explains only the differences its cause produces (the
// field, and how the two values relate), so any other disagreement still fails the replay. One entry is not a
// QEMU departure but a choice the SDM leaves open, where the model takes the other branch on purpose.
// docs/deviations.md lists the same entries for readers (a test checks that every name appears there).

export interface KnownDeparture {
  readonly name: string;
  /** The SDM section the model follows. */
  readonly sdm: string;
  /** What QEMU does and what the SDM says, in a sentence. */
  readonly summary: string;
  /** Whether this departure explains a difference as it stands. */
  readonly explains?: (c: Case, d: Difference, oracle: Observation, model: Observation) => boolean;
  /**
   * For a departure in a single value: what the SDM gives where QEMU recorded `value` at `path`, or undefined when
   * this departure does not apply there. Departures of this kind combine (QEMU's error code for a missing gate
   * after an external event is off in both its index and its EXT bit).
   */
  readonly toSdm?: (c: Case, path: string, value: unknown, oracle: Observation) => unknown;
}

const PF_P = 1;
const EXT = 1;
/** Vectors whose error code has the selector format, with EXT and IDT flags (SDM §6.13). */
const SELECTOR_FORMAT: ReadonlySet<number> = new Set([VECTOR.TS, VECTOR.NP, VECTOR.SS, VECTOR.GP]);
const PF_RSVD = 8;
const IDT_FLAG = 2;
const ACCESSED = 0x20n;
const GLOBAL = 1 << 8;

/** The index of the step a path names ("steps[2]...") or -1. */
function stepOf(path: string): number {
  const m = /^steps\[(\d+)\]/.exec(path);
  return m ? Number(m[1]) : -1;
}

/** Whether a path is inside the last step, or is the target qword (what the last step's outcome decides). */
function inLastStepOrMemory(d: Difference, oracle: Observation): boolean {
  return stepOf(d.path) === oracle.steps.length - 1 || d.path === 'memory';
}

const last = (o: Observation): StepResult | undefined => o.steps.at(-1);

/** The delivered record of the step a path names. */
const deliveredAt = (o: Observation, path: string) => o.steps[stepOf(path)]?.delivered;

/** A 64-bit hex string as a bigint. */
const big = (hex: unknown) => BigInt(`0x${String(hex)}`);

/** Whether `rsp - 8` (a push's write, 64-bit) is a non-canonical address. */
function pushIsNonCanonical(rsp: string): boolean {
  const write = BigInt.asUintN(64, big(rsp) - 8n);
  const upper = write >> 47n;
  return upper !== 0n && upper !== 0x1ffffn;
}

export const KNOWN_DEPARTURES: readonly KnownDeparture[] = [
  {
    name: 'qemu-rsvd-without-p',
    sdm: 'SDM Vol. 3 §4.7 (Figure 4-12)',
    summary:
      "A reserved-bit #PF has P = 0 in QEMU's error code; the SDM finds reserved bits only in present entries and " +
      'reports P = 1 with RSVD = 1 (Linux checks PF_RSVD only together with PF_PROT).',
    toSdm: (_c, path, value, oracle) =>
      path.endsWith('delivered.errorCode') &&
      typeof value === 'number' &&
      deliveredAt(oracle, path)?.vector === VECTOR.PF &&
      (value & (PF_RSVD | PF_P)) === PF_RSVD
        ? value | PF_P
        : undefined,
  },
  {
    name: 'qemu-idt-error-code-scaled',
    sdm: 'SDM Vol. 2 INT n pseudocode, IA-32e mode: error_code(vector, 1, EXT); Vol. 3 §6.13 (Figure 6-7)',
    summary:
      'An error code that names an IDT gate (a missing, not-present or DPL-blocked gate) carries the vector times 16 ' +
      'in QEMU, the byte offset of the 16-byte gate; the SDM puts the vector in the index field (bits 15:3), so it ' +
      'is vector * 8 + 2 (+ EXT). Visible where the #NP or #GP is delivered: after INT n (a benign event).',
    toSdm: (_c, path, value, oracle) =>
      path.endsWith('delivered.errorCode') &&
      typeof value === 'number' &&
      SELECTOR_FORMAT.has(deliveredAt(oracle, path)?.vector ?? -1) &&
      (value & IDT_FLAG) !== 0
        ? (value >> 4) * 8 + (value & 7)
        : undefined,
  },
  {
    name: 'qemu-no-ext-during-delivery',
    sdm: 'SDM Vol. 3 §6.13 (EXT: the fault was raised while delivering an external interrupt or an exception)',
    summary:
      'QEMU never sets EXT (bit 0) in the error code of a fault raised while delivering an event; the SDM sets it ' +
      'unless the event being delivered is INT n, INT3 or INTO. Visible where the #NP, #GP, #SS or #TS is ' +
      'delivered: after an IPI or NMI (benign), or after INT n when a second fault follows the first.',
    toSdm: (c, path, value, oracle) => {
      if (!path.endsWith('delivered.errorCode') || typeof value !== 'number' || (value & EXT) !== 0) return undefined;
      const step = oracle.steps[stepOf(path)];
      const chain = step?.attempts ?? [];
      if (!SELECTOR_FORMAT.has(step?.delivered?.vector ?? -1) || chain.length < 2) return undefined;
      // Raised while delivering the INT n itself (the first attempt of an int trigger): EXT is 0.
      const duringSoftware = c.family === 'delivery' && c.trigger.kind === 'int' && chain.length === 2;
      return duringSoftware ? undefined : value | EXT;
    },
  },
  {
    name: 'qemu-gp-for-non-canonical-stack',
    sdm: 'SDM Vol. 3 §6.15 (Interrupt 12: a non-canonical address referenced through SS is #SS); Vol. 1 §3.3.7.1',
    summary:
      'A push to a non-canonical address raises #GP(0) in QEMU; the SDM raises #SS(0). What follows differs from ' +
      'there on: the #SS and #GP gates, their stacks, and for a same-privilege delivery on the non-canonical RSP ' +
      'the SDM checks the new RSP (#SS, then #DF) where QEMU pushes below it into canonical memory (#PF, then #DF).',
    explains: (c, d, oracle, model) =>
      c.family === 'delivery' &&
      c.trigger.kind === 'push' &&
      pushIsNonCanonical(c.trigger.rsp) &&
      stepOf(d.path) === 0 &&
      oracle.steps[0]?.attempts?.[0] === VECTOR.GP &&
      model.steps[0]?.attempts?.[0] === VECTOR.SS,
  },
  {
    name: 'qemu-iret-non-canonical-rip',
    sdm: 'SDM Vol. 2 IRET pseudocode, IA-32e mode (IF tempRIP is non-canonical THEN #GP(0))',
    summary:
      'IRETQ to a non-canonical RIP completes in QEMU, which then faults the fetch at CPL 3 (the #GP frame saves ' +
      'the user CS and the bad RIP, on RSP0); the SDM checks the RIP in the IRET itself, so the #GP(0) is raised at ' +
      'CPL 0 and saves the IRET.',
    explains: (c, d, oracle, model) =>
      c.family === 'delivery' &&
      c.trigger.kind === 'iret' &&
      c.trigger.rip === 'non-canonical' &&
      stepOf(d.path) === 0 &&
      oracle.steps[0]?.delivered?.vector === VECTOR.GP &&
      oracle.steps[0]?.delivered?.rip === hex64(LAYOUT.nonCanonical) &&
      model.steps[0]?.delivered?.vector === VECTOR.GP &&
      model.steps[0]?.delivered?.rip === 'fault',
  },
  {
    name: 'qemu-1g-leaf-accessed-on-fault',
    sdm: 'SDM Vol. 3 §4.8 (A is set in an entry used for a translation) and §4.5 (reserved bits: no translation)',
    summary:
      'When an access through a 1 GiB page faults (rights at an upper level, XD, or a reserved bit in the PDPTE), ' +
      'QEMU has already set A in the PDPTE: it writes A before it finds PS = 1. For 2 MiB and 4 KiB leaves it does ' +
      'not, and neither does the model at any size: a leaf that gives no translation was not used for one.',
    explains: (c, d, oracle, model) => {
      if (c.family === 'delivery' || c.leaf !== 3 || d.path !== 'entries' || last(model)?.event !== true) return false;
      const o = oracle.entries ?? [];
      const m = model.entries ?? [];
      if (o.length !== m.length || o.length === 0) return false;
      const leaf = o.length - 1;
      return o.every((e, i) => (i === leaf ? big(e) === (big(m[i]) | ACCESSED) && big(e) !== big(m[i]) : e === m[i]));
    },
  },
  {
    name: 'qemu-cr3-write-flushes-global',
    sdm: 'SDM Vol. 3 §4.10.4.1 (MOV to CR3 invalidates non-global translations; global ones stay with CR4.PGE = 1)',
    summary:
      'A CR3 write drops every TLB entry in QEMU, global ones too; on the SDM (and the model) a global translation ' +
      'survives it, so the access after it uses the stale entry (a read or write hits, a write to a page made ' +
      'writable takes the spurious #PF of §4.10.4.3).',
    explains: (c, d, oracle, model) =>
      c.family === 'tlb' &&
      c.steps.some((s) => s.op === 'reload-cr3') &&
      !c.steps.some((s) => s.op === 'invlpg' || s.op === 'toggle-pge') &&
      ((c.entries.at(-1)?.[0] ?? 0) & GLOBAL) !== 0 &&
      inLastStepOrMemory(d, oracle) &&
      last(oracle)?.event !== last(model)?.event,
  },
  {
    name: 'sdm-allows-spurious-fault',
    sdm: 'SDM Vol. 3 §4.10.4.3 (a R/W 0 -> 1 change without invalidation may give a spurious #PF)',
    summary:
      'Not a QEMU departure: the SDM lets a write through a translation cached read-only, since made writable in ' +
      'memory, either fault or walk again. QEMU walks again; the model faults, the behaviour Linux handles in ' +
      'spurious_kernel_fault(), so kernel code under test meets it.',
    explains: (c, d, oracle, model) =>
      c.family === 'tlb' &&
      c.id.includes('/read-only-read-then-writable-no-flush-then-write') &&
      inLastStepOrMemory(d, oracle) &&
      last(oracle)?.event === false &&
      last(model)?.delivered?.errorCode === 3,
  },
];
