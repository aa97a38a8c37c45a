import { formatVirtual, isCanonical, PAGE_SIZE, toVirtual } from '../mmu/address.ts';
import { describeHex, InputError, requireBoolean, requireInteger, requireOptions } from '../mmu/input-error.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import { lookupTables } from '../mmu/table-lookup.ts';
import type { BootInfo } from './boot.ts';
import type { MapFlags } from './page-tables.ts';

// What Machine.map, pteAddress, entryAddress and physicalAddress do: a test's or scenario's boot-time edits and
// reads of the page tables, through physical memory and off the step path (programs use instructions instead).

/** The boot record, or a refusal naming `what` needs it. */
export function requireBoot(boot: BootInfo | undefined, what: string): BootInfo {
  if (!boot) throw new InputError(`${what} needs a booted machine (Machine.create({ boot: true }))`);
  return boot;
}

/** Machine.map: a zeroed boot frame mapped at `va` (4 KiB) in the boot page tables, never over a mapping. */
export function mapBootPage(
  memory: PhysicalMemory,
  bootInfo: BootInfo | undefined,
  va: number | bigint,
  flags: MapFlags,
): number {
  const boot = requireBoot(bootInfo, 'map()');
  const v = toVirtual(va, 'map() address');
  const where = `map(${formatVirtual(v)})`;
  if (!isCanonical(v) || v % PAGE_SIZE !== 0) {
    throw new InputError(`${where}: the address must be canonical and 4 KiB aligned`);
  }
  const f = requireOptions<MapFlags>(flags, `${where} flags`, [
    'writable',
    'user',
    'global',
    'noExecute',
    'accessed',
    'dirty',
  ]);
  const user = requireBoolean(f.user, `${where} flag user`, false);
  const checked: MapFlags = {
    writable: requireBoolean(f.writable, `${where} flag writable`, true),
    user,
    global: requireBoolean(f.global, `${where} flag global`, true),
    noExecute: requireBoolean(f.noExecute, `${where} flag noExecute`, true),
    // As Linux's PAGE_KERNEL: a kernel page is mapped accessed and dirty (see MapFlags).
    accessed: requireBoolean(f.accessed, `${where} flag accessed`, !user),
    dirty: requireBoolean(f.dirty, `${where} flag dirty`, !user),
  };
  const existing = lookupTables(memory, boot.pml4, v);
  if (existing.present) {
    const by = existing.pageSize > PAGE_SIZE ? ` by a ${existing.pageSize / 2 ** 20} MiB page` : '';
    throw new InputError(
      `${where}: the address is already mapped (to physical ${describeHex(existing.pa)}${by}); ` +
        'map() never replaces a mapping',
    );
  }
  // The leaf frame and every missing table below the first non-present entry: all or nothing.
  const needed = existing.level;
  if (boot.frames.remaining < needed) {
    throw new InputError(
      `${where}: out of boot memory: it needs ${needed} frames and ${boot.frames.remaining} are left; give the machine more`,
    );
  }
  boot.pageTables.map4k(v, boot.frames.alloc(), checked);
  return v;
}

/** Machine.entryAddress: the paging entry for `va` at `level` under `root` (default: the boot tables). */
export function entryAddress(
  memory: PhysicalMemory,
  boot: BootInfo | undefined,
  va: number | bigint,
  level: 1 | 2 | 3 | 4,
  root: number | undefined,
): number {
  const v = toVirtual(va, 'entryAddress() address');
  requireInteger(level, 'entryAddress() level', 1, 4);
  const r =
    root === undefined
      ? requireBoot(boot, 'entryAddress()').pml4
      : requireInteger(root, 'entryAddress() root', 0, memory.size - 1);
  if (!isCanonical(v)) throw new InputError(`entryAddress(${formatVirtual(v)}): the address is not canonical`);
  const t = lookupTables(memory, r, v);
  const entry = t.entries[level]!;
  if (entry < 0) {
    const stop = t.present ? `a ${t.pageSize / 2 ** 20} MiB page` : 'a non-present entry';
    throw new InputError(
      `entryAddress(${formatVirtual(v)}, ${level}): the walk stops at level ${t.level} (${stop}), above level ${level}`,
    );
  }
  return entry;
}

/** Machine.physicalAddress: where `va` maps in the boot page tables now, or undefined. */
export function mappedAddress(boot: BootInfo | undefined, va: number | bigint): number | undefined {
  const v = toVirtual(va, 'physicalAddress() address');
  const m = requireBoot(boot, 'physicalAddress()').pageTables.lookup(v);
  if (!m?.pte.present) return undefined;
  return m.pte.address - (m.pte.address % m.pageSize) + (v % m.pageSize);
}
