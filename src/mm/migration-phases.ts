import type { Assembler } from '../cpu/assembler.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { InputError } from '../mmu/input-error.ts';
import { type Kernel, LOCK } from './kernel.ts';
import { direct, type KernelProgram, walkToEntry } from './kernel-page-tables.ts';
import type { MigrationPage } from './kernel-program.ts';
import { csdAddress, flushInfo, flushTlbKernelRange, kernelRangeFlush, lockWord, smpCallFunctionMany } from './smp.ts';

// A migration protocol as a list of named phases (docs/scenarios/migration.md "The protocols"; the Linux functions
// named below as of v6.6): the unit the
// mutation check drops or swaps. A phase list is written as text, phases separated by commas, a handler's phases in
// parentheses after `ipi`:
//
//   naive            clear-pte,flush,copy,install,free
//   ipi-switcheroo   ipi(check-current,copy,install,invlpg),wait,flush,free
//
// Each phase is a few kernel steps (migrate.ts's copyFrame, installNewPte, freeOldFrame, smp.ts's flush):
//
//   clear-pte        the PTE's present half is cleared in one store
//   migration-entry  the PTE becomes a migration entry (not present, the old frame kept): accesses fault and wait
//   flush            flush_tlb_kernel_range(): every other CPU by IPI, waiting for each, and this one
//   flush:nowait     the same IPIs, not waited for (the no-wait protocol); this CPU's INVLPG
//   flush-others     the IPIs and the wait, leaving out the task's CPU and this one
//   copy             copy_page() from the old frame to the new, which is then marked copied
//   install          the PTE maps the new frame
//   invlpg           INVLPG of the page on the CPU running the list
//   free             the old frame goes back to the zone
//   ipi(...)         smp_call_function_single() to the task's CPU, not waited for: its handler runs the inner list
//                    (on its IRQ stack, IF=0, the task interrupted)
//   wait             csd_lock_wait() for the last ipi: the wait of a synchronous call, as its own phase; when the
//                    handler found the task gone (check-current), the protocol holds the task off and runs the
//                    naive list instead (see phaseProtocol)
//   check-current    in a handler: if the task is not current on this CPU (it was switched out or migrated since
//                    the initiator read task_cpu), return at once and tell the initiator
//   pin, unpin       migrate_disable() / migrate_enable() for the task: pin keeps it on the CPU it runs on (in a
//                    handler that found it current), unpin lets it move again (sched.ts's pinTask)
//   park             stop_machine()'s rendezvous for every CPU but this one and the task's: each takes an IPI and
//                    spins in its handler, interrupts off, until unpark; this CPU waits until all have arrived
//   unpark           releases them; each INVLPGs the page before it leaves its handler; waits until all have left

/** One phase of a protocol. */
export type Phase =
  | { readonly kind: 'clear-pte' | 'migration-entry' | 'copy' | 'install' | 'invlpg' | 'free' | 'wait' }
  | { readonly kind: 'park' | 'unpark' | 'flush-others' | 'check-current' | 'pin' | 'unpin' }
  | { readonly kind: 'flush'; readonly wait: boolean }
  | { readonly kind: 'ipi'; readonly handler: readonly Phase[] };

export type PhaseList = readonly Phase[];

const SIMPLE = [
  'clear-pte',
  'migration-entry',
  'copy',
  'install',
  'invlpg',
  'free',
  'wait',
  'park',
  'unpark',
  'flush-others',
  'check-current',
  'pin',
  'unpin',
] as const;
type SimpleKind = (typeof SIMPLE)[number];

/** The phase list as text (the form `-p protocol=` takes and mutants are named by). */
export function formatPhases(list: PhaseList): string {
  return list
    .map((p) => {
      if (p.kind === 'flush') return p.wait ? 'flush' : 'flush:nowait';
      if (p.kind === 'ipi') return `ipi(${formatPhases(p.handler)})`;
      return p.kind;
    })
    .join(',');
}

/**
 * Parses a phase list (`clear-pte,flush,copy,install,free`); a malformed one is refused naming the text and the
 * rule it breaks.
 */
export function parsePhases(text: string): PhaseList {
  let at = 0;
  const fail = (rule: string): never => {
    throw new InputError(`protocol phases '${text}': ${rule} at character ${at + 1}`);
  };
  const list = (depth: number): Phase[] => {
    const out: Phase[] = [];
    for (;;) {
      const m = /^[a-z-]+(:nowait)?/.exec(text.slice(at));
      if (!m) fail(`expected a phase (${[...SIMPLE, 'flush', 'flush:nowait', 'ipi(...)'].join(', ')})`);
      const word = m![0];
      at += word.length;
      if (word === 'ipi') {
        if (text[at] !== '(') fail("expected '(' after ipi");
        if (depth > 0) fail('an ipi handler cannot send its own ipi phase');
        at++;
        const handler = list(depth + 1);
        if (text[at] !== ')') fail("expected ')'");
        at++;
        out.push({ kind: 'ipi', handler });
      } else if (word === 'flush' || word === 'flush:nowait') out.push({ kind: 'flush', wait: word === 'flush' });
      else if ((SIMPLE as readonly string[]).includes(word)) out.push({ kind: word as SimpleKind });
      else {
        at -= word.length;
        fail(`'${word}' is not a phase`);
      }
      if (text[at] !== ',') break;
      at++;
    }
    return out;
  };
  const phases = list(0);
  if (at !== text.length) fail('unexpected text');
  return phases;
}

/** Lock words the phases talk through (smp.ts's SMP area). */
const WORDS = {
  /**
   * Lock words 48..87: each initiating CPU's request to the task's CPU: the page, its old frame, its new one, the
   * task's id (0: none), and what the handler did (HANDLED).
   */
  REQUEST: 48,
  /** How many CPUs the park phase has parked, and the word that releases them. */
  PARKED: 104,
  RELEASE: 105,
} as const;

/** What a handler leaves in its request's last word. */
const HANDLED = { RAN: 1, NOT_CURRENT: 2 } as const;

/** The request word `k` (0 page, 1 old frame, 2 new frame, 3 task, 4 handled) of `initiator`. */
function requestWord(kernel: Kernel, initiator: number, k: number): number {
  return lockWord(kernel, WORDS.REQUEST + 5 * initiator + k);
}

/** The page a handler works on, from its initiator's request words. */
function* requestedPage(x: Assembler, kernel: Kernel, initiator: number, chunk: number): KernelProgram<MigrationPage> {
  const va: number = yield x.load(requestWord(kernel, initiator, 0), 8);
  const oldPfn: number = yield x.load(requestWord(kernel, initiator, 1), 8);
  const newPfn: number = yield x.load(requestWord(kernel, initiator, 2), 8);
  const task: number = yield x.load(requestWord(kernel, initiator, 3), 8);
  const pte = yield* walkToEntry(x, kernel, kernel.initMm, va, 1, false);
  return { va, pte, oldPfn, newPfn, chunk, taskCpu: x.cpuId, ...(task === 0 ? {} : { task }) };
}

/** The steps each phase takes, given what migrate.ts's steps are (it owns copy, install and free). */
export interface PhaseSteps {
  copyFrame(x: Assembler, kernel: Kernel, page: MigrationPage): KernelProgram<void>;
  installNewPte(x: Assembler, page: MigrationPage): KernelProgram<void>;
  freeOldFrame(x: Assembler, kernel: Kernel, page: MigrationPage): KernelProgram<void>;
  migrationEntry(x: Assembler, page: MigrationPage): KernelProgram<void>;
  /** Whether `task` is current on this CPU (sched.ts's isCurrentOn): 1 or 0. */
  isCurrent(x: Assembler, kernel: Kernel, task: number): KernelProgram;
  /** Keeps the running `task` on its CPU, or lets it move again (sched.ts's pinTask). */
  pin(x: Assembler, kernel: Kernel, task: number, pinned: boolean): KernelProgram<void>;
}

/** How a phase list ended: it ran to its end, or its ipi's handler found the task gone (check-current). */
export type PhaseOutcome = 'done' | 'not-current';

/** The CPUs the park and flush-others phases reach: all but this one and the task's. */
function otherCpus(kernel: Kernel, me: number, taskCpu: number | undefined): number[] {
  return Array.from({ length: kernel.cpus }, (_, i) => i).filter((i) => i !== me && i !== taskCpu);
}

/**
 * The protocol a phase list describes. With no other CPU running the task (taskCpu undefined or this CPU), an ipi
 * phase runs its handler's list here, in order, and wait is nothing.
 */
export function phaseProtocol(
  list: PhaseList,
  steps: PhaseSteps,
): (x: Assembler, kernel: Kernel, page: MigrationPage) => KernelProgram<PhaseOutcome> {
  // Call functions are registered by identity (a csd holds their number): one per kernel, handler list and chunk,
  // each closing over its kernel, so nothing outside emulated memory passes between CPUs.
  const made = new WeakMap<Kernel, Map<string, (x: Assembler, initiator: number) => KernelProgram<void>>>();
  const callFunction = (
    kernel: Kernel,
    key: string,
    make: () => (x: Assembler, initiator: number) => KernelProgram<void>,
  ) => {
    let byKey = made.get(kernel);
    if (byKey === undefined) {
      byKey = new Map();
      made.set(kernel, byKey);
    }
    let fn = byKey.get(key);
    if (fn === undefined) {
      fn = make();
      byKey.set(key, fn);
    }
    return fn;
  };
  const handlerOf = (kernel: Kernel, inner: PhaseList, chunk: number) =>
    callFunction(
      kernel,
      `${formatPhases(inner)}/${chunk}`,
      () =>
        function* switcheroo(x: Assembler, initiator: number): KernelProgram<void> {
          const page = yield* requestedPage(x, kernel, initiator, chunk);
          const outcome = yield* run(x, kernel, page, inner);
          const handled = outcome === 'done' ? HANDLED.RAN : HANDLED.NOT_CURRENT;
          yield x.store(requestWord(kernel, initiator, 4), 8, handled);
        },
    );
  // multi_cpu_stop()'s shape: arrive, spin with interrupts off until released, then flush this CPU's translation.
  const parkOf = (kernel: Kernel) =>
    callFunction(
      kernel,
      'park',
      () =>
        function* park(x: Assembler, initiator: number): KernelProgram<void> {
          yield* increment(x, lockWord(kernel, WORDS.PARKED));
          yield x.waitUntil(lockWord(kernel, WORDS.RELEASE), 8, (v) => v !== 0);
          const va: number = yield x.load(requestWord(kernel, initiator, 0), 8);
          yield x.invlpg(va);
        },
    );
  function* request(x: Assembler, kernel: Kernel, page: MigrationPage): KernelProgram<void> {
    yield x.store(requestWord(kernel, x.cpuId, 0), 8, page.va);
    yield x.store(requestWord(kernel, x.cpuId, 1), 8, page.oldPfn);
    yield x.store(requestWord(kernel, x.cpuId, 2), 8, page.newPfn);
    yield x.store(requestWord(kernel, x.cpuId, 3), 8, page.task ?? 0);
    yield x.store(requestWord(kernel, x.cpuId, 4), 8, 0);
  }
  function* run(x: Assembler, kernel: Kernel, page: MigrationPage, phases: PhaseList): KernelProgram<PhaseOutcome> {
    const me = x.cpuId;
    const remote = page.taskCpu !== undefined && page.taskCpu !== me;
    /** With `kernel.timing`, when the last ipi was sent: its wait records the round trip, as a waiting call does. */
    let sent: number | undefined;
    // Once the task is found gone, the rest of the list is left out but for unpark: parked CPUs must go free.
    let gone = false;
    for (const p of phases) {
      if (gone && p.kind !== 'unpark') continue;
      switch (p.kind) {
        case 'clear-pte':
          yield x.store(direct(page.pte), 4, 0);
          break;
        case 'migration-entry':
          yield* steps.migrationEntry(x, page);
          break;
        case 'flush':
          if (p.wait) yield* flushTlbKernelRange(x, kernel, page.va, page.va + PAGE_SIZE);
          else {
            const all = Array.from({ length: kernel.cpus }, (_, i) => i);
            yield* smpCallFunctionMany(x, kernel, all, kernelRangeFlush, flushInfo(page.va, 1), false);
            yield x.invlpg(page.va);
          }
          break;
        case 'flush-others':
          yield* smpCallFunctionMany(
            x,
            kernel,
            otherCpus(kernel, me, page.taskCpu),
            kernelRangeFlush,
            flushInfo(page.va, 1),
            true,
          );
          break;
        case 'copy':
          yield* steps.copyFrame(x, kernel, page);
          break;
        case 'install':
          yield* steps.installNewPte(x, page);
          break;
        case 'invlpg':
          yield x.invlpg(page.va);
          break;
        case 'free':
          yield* steps.freeOldFrame(x, kernel, page);
          break;
        case 'check-current':
          // Only a handler on the task's CPU checks (the initiator's own list has nothing to check).
          if (page.task !== undefined && !remote) {
            const current = yield* steps.isCurrent(x, kernel, page.task);
            if (current === 0) gone = true;
          }
          break;
        case 'pin':
        case 'unpin':
          // With no scheduler (no task named) the task never moves: nothing to keep it from.
          if (page.task !== undefined) yield* steps.pin(x, kernel, page.task, p.kind === 'pin');
          break;
        case 'ipi':
          if (!remote) {
            if ((yield* run(x, kernel, page, p.handler)) === 'not-current') gone = true;
          } else {
            yield* request(x, kernel, page);
            const handler = handlerOf(kernel, p.handler, page.chunk);
            if (kernel.timing) sent = yield x.rdtsc();
            yield* smpCallFunctionMany(x, kernel, [page.taskCpu!], handler, me, false);
          }
          break;
        case 'wait':
          // csd_lock_wait() on the last ipi's csd.
          if (!remote) break;
          yield x.waitUntil(csdAddress(kernel, me, page.taskCpu!), 8, (v) => (v & 1) === 0);
          if (page.task !== undefined) {
            const handled: number = yield x.load(requestWord(kernel, me, 4), 8);
            if (handled === HANDLED.NOT_CURRENT) gone = true;
          }
          if (kernel.timing && sent !== undefined) {
            const start = sent;
            const end: number = yield x.rdtsc();
            yield x.atomic(LOCK.STATS, () => {
              kernel.timings.ipiRoundTrips.push(end - start);
              return 0;
            });
          }
          break;
        case 'park': {
          const others = otherCpus(kernel, me, page.taskCpu);
          if (others.length === 0) break;
          yield x.store(lockWord(kernel, WORDS.RELEASE), 8, 0);
          yield x.store(lockWord(kernel, WORDS.PARKED), 8, 0);
          yield* request(x, kernel, page);
          yield* smpCallFunctionMany(x, kernel, others, parkOf(kernel), me, false);
          yield x.waitUntil(lockWord(kernel, WORDS.PARKED), 8, (v) => v >= others.length);
          break;
        }
        case 'unpark': {
          const others = otherCpus(kernel, me, page.taskCpu);
          if (others.length === 0) break;
          yield x.store(lockWord(kernel, WORDS.RELEASE), 8, 1);
          for (const t of others) yield x.waitUntil(csdAddress(kernel, me, t), 8, (v) => (v & 1) === 0);
          break;
        }
      }
    }
    return gone ? 'not-current' : 'done';
  }
  return function* phases(x, kernel, page) {
    return yield* run(x, kernel, page, list);
  };
}

/** An atomic increment of a word (lock cmpxchg loop). */
function* increment(x: Assembler, word: number): KernelProgram<void> {
  for (;;) {
    const v: number = yield x.load(word, 8);
    const old: number = yield x.cmpxchg(word, 8, v, v + 1);
    if (old === v) return;
  }
}

/** What a mutant changed, for reports. */
export interface Mutant {
  readonly phases: PhaseList;
  /** "drop copy", "swap flush and free", "drop the wait of flush", in the handler: "in ipi: drop invlpg". */
  readonly change: string;
}

/**
 * The mutants of a phase list: each phase dropped, each two adjacent phases swapped (but for check-current, a guard,
 * which is only dropped), the wait of each synchronous call dropped (flush becomes flush:nowait; the wait phase is
 * dropped like any phase), in the top list and in each ipi handler's. Mutants with the same text as the list or as an earlier mutant are left out.
 */
export function phaseMutants(list: PhaseList): Mutant[] {
  const seen = new Set<string>([formatPhases(list)]);
  const out: Mutant[] = [];
  const add = (phases: PhaseList, change: string) => {
    const key = formatPhases(phases);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ phases, change });
  };
  const name = (p: Phase) => (p.kind === 'ipi' ? 'ipi' : formatPhases([p]));
  const mutate = (phases: PhaseList, wrap: (inner: PhaseList) => PhaseList, where: string) => {
    phases.forEach((p, i) => {
      add(wrap(phases.filter((_, j) => j !== i)), `${where}drop ${name(p)}`);
    });
    for (let i = 0; i + 1 < phases.length; i++) {
      // check-current is a guard on what follows it: moving it past a phase makes that phase unconditional, a
      // weaker form of dropping it, which is a mutant of its own; so it is dropped, never swapped.
      if (phases[i]!.kind === 'check-current' || phases[i + 1]!.kind === 'check-current') continue;
      const swapped = [...phases];
      [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
      add(wrap(swapped), `${where}swap ${name(phases[i]!)} and ${name(phases[i + 1]!)}`);
    }
    phases.forEach((p, i) => {
      if (p.kind === 'flush' && p.wait) {
        add(
          wrap(phases.map((q, j) => (j === i ? { kind: 'flush', wait: false } : q))),
          `${where}drop the wait of flush`,
        );
      }
      if (p.kind === 'ipi') {
        mutate(
          p.handler,
          (inner) => wrap(phases.map((q, j) => (j === i ? { kind: 'ipi', handler: inner } : q))),
          `${where}in ipi: `,
        );
      }
    });
  };
  mutate(list, (l) => l, '');
  return out;
}
