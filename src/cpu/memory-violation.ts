import { formatPhysical, formatVirtual, PAGE_SIZE } from '../mmu/address.ts';
import { VIOLATION } from '../mmu/frame-guard.ts';
import type { CpuCore } from './core.ts';

/**
 * The access the memory port refused was a memory-safety violation (the kernel's frame guard, mmu/frame-guard.ts):
 * not an x86 event, so nothing is delivered; the CPU stops with `use-after-free` or `lost-write`, naming the
 * address and the frame.
 */
export function stopOnMemoryViolation(cpu: CpuCore): void {
  const f = cpu.port.fault;
  const pa = cpu.port.violationPa;
  const frame = `frame 0x${Math.floor(pa / PAGE_SIZE).toString(16)} (physical ${formatPhysical(pa)})`;
  const at = formatVirtual(f.cr2);
  if (f.errorCode === VIOLATION.LOST_WRITE) {
    cpu.stop({
      outcome: 'lost-write',
      message: `lost write: CPU ${cpu.id} stores to ${at} in ${frame}, which a migration has already copied`,
    });
  } else if (f.errorCode === VIOLATION.STALE_TABLE) {
    cpu.stop({
      outcome: 'use-after-free',
      message:
        `use after free: CPU ${cpu.id} walks to ${at} through a cached paging-structure entry into page-table ` +
        `${frame}, freed since the entry was cached`,
    });
  } else {
    cpu.stop({
      outcome: 'use-after-free',
      message: `use after free: CPU ${cpu.id} accesses ${at} in ${frame}, freed after the translation was made`,
    });
  }
}
