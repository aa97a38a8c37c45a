import { IPI_DELIVERY_MODES, type IpiDelivery } from '../cpu/ipi-bus.ts';
import { MAX_STORE_BUFFER_ENTRIES } from '../cpu/store-buffer.ts';
import { type KernelOptions, VMALLOC_POLICIES, VMALLOC_SYNCS } from '../mm/kernel.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import {
  describeHex,
  describeValue,
  InputError,
  requireBoolean,
  requireOneOf,
  requireOptions,
} from '../mmu/input-error.ts';
import { MAX_PSC_ENTRIES } from '../mmu/paging-structure-cache.ts';
import type { TlbConfig } from '../mmu/tlb.ts';

// Machine.create's options and their checks: every option is checked before anything is built (docs/guide.md
// "Errors"), so a refused configuration builds nothing.

export const MAX_CPUS = 64;
const DEFAULT_MEMORY = 64 * 1024 * 1024;
/**
 * The most memory a machine may have: 64 TiB, what Linux's 4-level direct map (0xffff888000000000, 64 TiB) and
 * the model's MAXPHYADDR (46 bits) can hold. Memory is sparse, so any size up to it costs what is touched.
 */
export const MAX_MEMORY = 2 ** 46;
/** Memory the minimal boot needs for page tables and stacks. */
export const MIN_BOOT_MEMORY = 4 * 1024 * 1024;
export interface MachineConfig {
  /** Number of CPUs, 1..64. Default 2. */
  readonly cpus?: number;
  /** Physical memory in bytes (multiple of 4 KiB). Default 64 MiB; a larger machine costs what it touches. */
  readonly memory?: number;
  readonly tlb?: TlbConfig;
  /** Record a StepEvent per step in `trace`. Default true. */
  readonly trace?: boolean;
  /**
   * Keep only the last `traceLimit` events of the trace (an integer >= 1), so a long run does not grow without
   * bound; `machine.traceLog.dropped` counts the events evicted. Default: no limit. (`undefined` is the default, so
   * an image's settings can be passed on as they are.)
   */
  readonly traceLimit?: number | undefined;
  /** Record each step's footprint (for the checker). Default false. */
  readonly footprint?: boolean;
  /** Build page tables, stacks and IDTs (bootMinimal). Default true; false leaves bare CPUs. */
  readonly boot?: boolean;
  /**
   * When a sent IPI reaches its target: `immediate` (default; in the sending step) or `scheduled` (in flight until
   * a delivery event: a schedule's `deliver:` entry, `deliverIpi`, or the built-in policies' bus turn).
   */
  readonly ipiDelivery?: IpiDelivery;
  /**
   * Boot the Linux-like kernel too: the zone's buddy allocator over the memory above an 8 MiB boot reserve, vmap
   * areas, and the vmalloc policies (`vmalloc`: 'order0' (default) | 'high-order' | 'huge' | 'high-order+migratable';
   * `sync`: 'lazy-fault' (default) | 'preallocated'). Kernel programs (vmalloc, vfree) take `machine.kernel`.
   */
  readonly kernel?: KernelOptions;
  /**
   * Store-buffer entries per CPU (x86-TSO, SDM §8.2): stores wait in a FIFO and reach memory by `drain:` events
   * (the checker's choice, a schedule's `drain:N`, `drainStoreBuffer`), when the buffer is full, or at MFENCE, a
   * locked or serializing instruction or an event delivery. Default 0: no store buffer, memory is sequentially
   * consistent.
   */
  readonly storeBuffer?: number;
  /**
   * Paging-structure-cache entries per level per CPU (SDM §4.10.3): walks start from a cached PML4E, PDPTE or PDE
   * and keep using it after the entry in memory changes, until INVLPG or a CR3 write. Default 0: none.
   */
  readonly pagingStructureCaches?: number;
}

export interface ResolvedConfig {
  readonly cpus: number;
  readonly memory: number;
  readonly tlb: TlbConfig;
  readonly trace: boolean;
  readonly traceLimit: number | undefined;
  readonly footprint: boolean;
  readonly boot: boolean;
  readonly ipiDelivery: IpiDelivery;
  readonly kernel: Required<KernelOptions> | undefined;
  readonly storeBuffer: number;
  readonly pagingStructureCaches: number;
}

const CONFIG_KEYS = [
  'cpus',
  'memory',
  'tlb',
  'trace',
  'traceLimit',
  'footprint',
  'boot',
  'ipiDelivery',
  'kernel',
  'storeBuffer',
  'pagingStructureCaches',
] as const;

/** An entry count 0..max (0: the structure is absent), or an InputError naming the option and the rule. */
function resolveEntries(value: unknown, option: string, max: number, zero: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new InputError(
      `Machine.create option ${option} ${describeValue(value)} must be an integer in 0..${max} (${zero})`,
    );
  }
  return value;
}

function resolveKernel(value: unknown, boot: boolean): Required<KernelOptions> | undefined {
  if (value === undefined) return undefined;
  const k = requireOptions<KernelOptions>(value, 'Machine.create option kernel', ['vmalloc', 'sync']);
  if (!boot) throw new InputError('Machine.create option kernel needs boot: a kernel boots on the minimal boot');
  return {
    vmalloc: k.vmalloc === undefined ? 'order0' : requireOneOf(k.vmalloc, 'kernel option vmalloc', VMALLOC_POLICIES),
    sync: k.sync === undefined ? 'lazy-fault' : requireOneOf(k.sync, 'kernel option sync', VMALLOC_SYNCS),
  };
}

function resolveTraceLimit(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InputError(
      `Machine.create option traceLimit ${describeValue(value)} must be an integer >= 1 (the events the trace ` +
        'keeps; omit it for no limit)',
    );
  }
  return value;
}

/** Checks every option of Machine.create before anything is built (docs/guide.md "Errors"). */
export function resolveConfig(config: MachineConfig): ResolvedConfig {
  const c = requireOptions<MachineConfig>(config, 'Machine.create options', CONFIG_KEYS);
  const cpus = c.cpus === undefined ? 2 : c.cpus;
  if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) {
    throw new InputError(`cpus ${describeValue(cpus)} is impossible: a machine has 1..${MAX_CPUS} CPUs`);
  }
  const boot = requireBoolean(c.boot, 'Machine.create option boot', true);
  const memory = c.memory === undefined ? DEFAULT_MEMORY : c.memory;
  if (typeof memory !== 'number' || !Number.isSafeInteger(memory) || memory <= 0 || memory % PAGE_SIZE !== 0) {
    throw new InputError(`memory size ${describeValue(memory)} must be a positive multiple of the page size (4096)`);
  }
  if (memory > MAX_MEMORY) {
    throw new InputError(
      `memory ${describeHex(memory)} is impossible: at most 64 TiB (2^46 bytes), what the direct map ` +
        '(0xffff888000000000, 64 TiB) and MAXPHYADDR (46 bits) can hold',
    );
  }
  if (boot && memory < MIN_BOOT_MEMORY) {
    throw new InputError(`memory of ${memory} bytes is too small to boot: the minimal boot needs 4 MiB`);
  }
  const tlb = requireOptions<TlbConfig>(c.tlb, 'Machine.create option tlb', ['entries', 'ways', 'largeEntries']);
  return {
    cpus,
    memory,
    tlb,
    trace: requireBoolean(c.trace, 'Machine.create option trace', true),
    traceLimit: resolveTraceLimit(c.traceLimit),
    footprint: requireBoolean(c.footprint, 'Machine.create option footprint', false),
    boot,
    kernel: resolveKernel(c.kernel, boot),
    storeBuffer: resolveEntries(c.storeBuffer, 'storeBuffer', MAX_STORE_BUFFER_ENTRIES, '0: no store buffer'),
    pagingStructureCaches: resolveEntries(
      c.pagingStructureCaches,
      'pagingStructureCaches',
      MAX_PSC_ENTRIES,
      '0: no paging-structure caches',
    ),
    ipiDelivery:
      c.ipiDelivery === undefined
        ? 'immediate'
        : requireOneOf(c.ipiDelivery, 'Machine.create option ipiDelivery', IPI_DELIVERY_MODES),
  };
}
