import { migrationProtocol, PROTOCOLS } from '../mm/migrate.ts';
import type { ScenarioInfo, ScenarioParam } from './scenario.ts';

// What `x86slice list` shows: each scenario's name, family, summary and parameters, apart from the code that
// builds it, so listing the catalogue loads no machine. Each scenario module spreads its entry from here.

const cpusParam = {
  name: 'cpus',
  description: 'number of CPUs (CPU 0 runs the task; the others idle)',
  kind: 'integer',
  default: 1,
  min: 1,
  max: 64,
} as const;

export const PF_IN_PF: ScenarioInfo = {
  name: 'pf-in-pf',
  family: 'double-fault',
  summary: 'a #PF whose frame push faults (the running stack page is unmapped) -> #DF on IST1',
  expected: 'double-fault',
  params: [
    cpusParam,
    {
      name: 'df-ist',
      description: 'IST index of the #DF gate; 0 delivers #DF on the (unmapped) current stack -> triple fault',
      kind: 'integer',
      default: 1,
      min: 0,
      max: 2,
    },
  ],
};

export const DF_TRIPLE: ScenarioInfo = {
  name: 'df-triple',
  family: 'double-fault',
  summary: 'as pf-in-pf, but the #DF stack (IST1) is unmapped too -> triple fault, CPU shutdown',
  expected: 'triple-fault',
  params: [cpusParam],
};

export const STALE_TLB: ScenarioInfo = {
  name: 'stale-tlb',
  family: 'tlb-coherence',
  summary: 'CPU1 reads through its stale TLB entry after CPU0 cleared the PTE, until CPU1 executes INVLPG',
  expected: 'ok',
  params: [
    {
      name: 'reads',
      description: 'reads CPU1 makes through the stale entry before its INVLPG',
      kind: 'integer',
      default: 1,
      min: 1,
      max: 100,
    },
  ],
};

export const VMALLOC_FAULT: ScenarioInfo = {
  name: 'vmalloc-fault',
  family: 'vmalloc',
  summary: "a process's mm lacks the top-level entry of a fresh vmalloc area: vmalloc_fault copies it from init_mm",
  expected: 'ok',
  params: [
    {
      name: 'sync',
      description:
        'lazy-fault (pre-5.8: the access faults and vmalloc_fault fixes it) or preallocated (5.9+: no fault)',
      kind: 'choice',
      default: 'lazy-fault',
      choices: ['lazy-fault', 'preallocated'],
    },
    {
      name: 'cpus',
      description: 'CPUs, each running the process at once (its own mm and vmalloc area): for the checker',
      kind: 'integer',
      default: 1,
      min: 1,
      max: 4,
    },
  ],
};

export const VMAP_STACK_SWITCH: ScenarioInfo = {
  name: 'vmap-stack-switch',
  family: 'vmalloc',
  summary:
    "a context switch to a task whose mm lacks the current stack's top-level entry: switch_to's push double-faults",
  expected: 'double-fault',
  params: [
    {
      name: 'sync-stack',
      description: "switch_mm first copies the current stack's top-level entry into the next mm (pre-5.8)",
      kind: 'boolean',
      default: false,
    },
    {
      name: 'cpus',
      description: 'CPUs; CPUs 1.. run a process that vmallocs and writes at the same time (for the checker)',
      kind: 'integer',
      default: 1,
      min: 1,
      max: 4,
    },
  ],
};

export const STACK_OVERFLOW: ScenarioInfo = {
  name: 'stack-overflow',
  family: 'double-fault',
  summary: 'unbounded recursion pushes into the guard page below a VMAP stack: #DF reports a kernel stack overflow',
  expected: 'double-fault',
  params: [],
};

export const VMALLOC_ORDERS: ScenarioInfo = {
  name: 'vmalloc-orders',
  family: 'vmalloc',
  summary: 'a seeded vmalloc/vfree workload beside other allocations: orders obtained, buddyinfo, fragmentation',
  expected: 'ok',
  params: [
    {
      name: 'policy',
      description: 'how vmalloc backs an area',
      kind: 'choice',
      default: 'order0',
      choices: ['order0', 'high-order', 'huge'],
    },
    { name: 'seed', description: 'the workload PRNG seed', kind: 'integer', default: 1, min: 0, max: 2 ** 31 - 1 },
    { name: 'ops', description: 'operations in the workload', kind: 'integer', default: 300, min: 1, max: 100_000 },
  ],
};

/** Every scenario, in the order `x86slice list` shows them (the catalogue holds them in the same order). */
/** Who else uses the migrating task's stack (issue 20): nobody, a reader, an on-stack csd's target, a completer. */
export const REMOTE_ACCESSORS = ['none', 'reader', 'csd', 'completion'] as const;
export type RemoteAccessor = (typeof REMOTE_ACCESSORS)[number];

const PROTOCOL_PARAM: ScenarioParam = {
  name: 'protocol',
  description:
    'how the page moves: a built-in protocol or a phase list such as clear-pte,flush,copy,install,free ' +
    '(docs/scenarios/migration.md)',
  kind: 'string',
  default: 'naive',
  choices: PROTOCOLS,
  validate: (value) => {
    migrationProtocol(value);
  },
};

const CHUNK_PARAM = {
  name: 'chunk',
  description: 'bytes the copy moves per step (rep movsq moves 8; larger is a coarser grain to explore)',
  kind: 'integer',
  default: 512,
  min: 8,
  max: 4096,
} as const;

/** How long the other CPU works: a bounded loop, so every schedule ends (the checker needs runs to end). */
const ROUNDS_PARAM = {
  name: 'rounds',
  description: "rounds of the other CPU's work on the page (fewer: a smaller space to explore)",
  kind: 'integer',
  max: 1000,
} as const;

const SCHEDULE_PARAM = {
  name: 'schedule',
  description: "the run's schedule: round-robin (IPIs delivered once a round) or a schedule string",
  kind: 'string',
  default: 'round-robin',
} as const;

/** x86-TSO and paging-structure caches for the machine (issue 19): off by default, as Machine.create has them. */
const STORE_BUFFER_PARAM = {
  name: 'store-buffer',
  description: "entries of each CPU's store buffer (x86-TSO; 0: sequentially consistent memory)",
  kind: 'integer',
  default: 0,
  min: 0,
  max: 64,
} as const;

const PSC_PARAM = {
  name: 'psc',
  description: "entries per level of each CPU's paging-structure caches (PML4E, PDPTE, PDE; 0: none)",
  kind: 'integer',
  default: 0,
  min: 0,
  max: 64,
} as const;

export const STACK_MIGRATION: ScenarioInfo = {
  name: 'stack-migration',
  imageSafe: true,
  family: 'migration',
  summary: "CPU0 migrates the page under CPU1's running task's VMAP stack: naive double-faults, the switcheroo works",
  expected: 'double-fault',
  params: [
    PROTOCOL_PARAM,
    {
      name: 'cpus',
      description: 'CPUs (CPU0 migrates, CPU1 runs the task, the rest idle)',
      kind: 'integer',
      default: 2,
      min: 2,
      max: 8,
    },
    CHUNK_PARAM,
    { ...ROUNDS_PARAM, default: 8, min: 3 },
    {
      name: 'remote',
      description:
        "another CPU (the last: cpus=3 or more, 4 with sched=migrate) also uses the task's stack: none, reader (an " +
        'unwinder reads it), csd (the task waits in smp_call_function_single with the csd on its stack), ' +
        'completion (an on-stack completion the other CPU completes)',
      kind: 'choice',
      default: 'none',
      choices: REMOTE_ACCESSORS,
    },
    {
      name: 'sched',
      description:
        'how the task is scheduled: pinned (switched to once, on CPU1), preempt (timer ticks switch CPU1 between it ' +
        'and another task), migrate (ticks move it between CPU1 and CPU2; cpus=3 or more)',
      kind: 'choice',
      default: 'pinned',
      choices: ['pinned', 'preempt', 'migrate'],
    },
    SCHEDULE_PARAM,
    STORE_BUFFER_PARAM,
    PSC_PARAM,
  ],
};

export const DATA_MIGRATION: ScenarioInfo = {
  name: 'data-migration',
  imageSafe: true,
  family: 'migration',
  summary: 'CPU0 migrates a vmalloc data page that CPU1 keeps writing and reading back',
  expected: 'ok',
  params: [
    PROTOCOL_PARAM,
    CHUNK_PARAM,
    { ...ROUNDS_PARAM, default: 6, min: 1 },
    SCHEDULE_PARAM,
    STORE_BUFFER_PARAM,
    PSC_PARAM,
  ],
};

export const IPI_IRQS_OFF_DEADLOCK: ScenarioInfo = {
  name: 'ipi-irqs-off-deadlock',
  imageSafe: true,
  family: 'migration',
  summary: 'smp_call_function with interrupts off to a CPU spinning, interrupts off, on a lock the caller holds',
  expected: 'deadlock',
  params: [],
};

export const SCENARIO_LIST: readonly ScenarioInfo[] = [
  PF_IN_PF,
  DF_TRIPLE,
  STALE_TLB,
  STACK_OVERFLOW,
  VMALLOC_FAULT,
  VMAP_STACK_SWITCH,
  VMALLOC_ORDERS,
  STACK_MIGRATION,
  DATA_MIGRATION,
  IPI_IRQS_OFF_DEADLOCK,
];
