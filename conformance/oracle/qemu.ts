import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Case, hex64, LAYOUT, type Observation, type StepResult, stackOf } from '../case.ts';
import { casesSource } from './kernel.ts';

// Builds the test kernel for a batch of cases (GNU as and ld, then objcopy to ELF32 for QEMU's multiboot loader),
// runs it under QEMU TCG with the debug console and `-d int`, and turns what it printed into Observations.

/** The tools the oracle runs; `npm run oracle` checks each before it starts. */
export const TOOLS = ['qemu-system-x86_64', 'as', 'ld', 'objcopy'] as const;

/**
 * The QEMU command line, without the kernel and output paths. TCG (no KVM), the qemu64 CPU with 1 GiB pages and
 * MAXPHYADDR 46 (the model's), no reboot on a triple fault, and the ISA debug-exit device to power off.
 */
export const QEMU_ARGS = [
  '-machine',
  'pc,accel=tcg',
  '-cpu',
  'qemu64,+pdpe1gb,phys-bits=46',
  '-m',
  '64M',
  '-smp',
  '1',
  '-display',
  'none',
  '-serial',
  'none',
  '-monitor',
  'none',
  '-no-reboot',
  '-nodefaults',
  '-device',
  'isa-debug-exit,iobase=0xf4,iosize=0x04',
  '-d',
  'int,cpu_reset',
] as const;

const LINKER_SCRIPT = `ENTRY(_start)
SECTIONS {
  . = 0x100000;
  .text : { *(.multiboot) *(.text) }
  .data : { *(.data) *(.bss) }
}
`;

export function qemuVersion(): string {
  return execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
}

/** What the kernel printed for one case: its step lines, its entries line, and the vectors -d int logged. */
interface RawCase {
  steps: bigint[][];
  end?: bigint[];
  attempts: number[][];
}

/** Runs cases [first, first + cases.length) in one kernel; returns the raw records and the last case begun. */
function runKernel(
  cases: readonly Case[],
  first: number,
  work: string,
): { raw: Map<number, RawCase>; done: boolean; last: number } {
  writeFileSync(join(work, 'cases.S'), casesSource(cases, first));
  copyFileSync(new URL('./harness.S', import.meta.url), join(work, 'harness.S'));
  writeFileSync(join(work, 'link.ld'), LINKER_SCRIPT);
  const run = (cmd: string, args: string[]) =>
    execFileSync(cmd, args, { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  run('as', ['--64', '-I', work, '-o', 'kernel.o', 'harness.S']);
  run('ld', ['-m', 'elf_x86_64', '--no-warn-rwx-segments', '-T', 'link.ld', '-o', 'kernel64.elf', 'kernel.o']);
  run('objcopy', ['-O', 'elf32-i386', 'kernel64.elf', 'kernel.elf']);
  rmSync(join(work, 'debugcon.txt'), { force: true });
  rmSync(join(work, 'int.log'), { force: true });
  const args = [...QEMU_ARGS, '-D', 'int.log', '-debugcon', 'file:debugcon.txt', '-kernel', 'kernel.elf'];
  const result = spawnSync('qemu-system-x86_64', args, { cwd: work, timeout: 600_000, encoding: 'utf8' });
  if (result.error) throw result.error;
  // The debug-exit device ends a run with status 1, a triple fault with 0; no output at all means QEMU never ran it.
  if (!existsSync(join(work, 'debugcon.txt'))) {
    throw new Error(`oracle: qemu-system-x86_64 ran nothing (status ${result.status}): ${result.stderr.trim()}`);
  }
  const out = readFileSync(join(work, 'debugcon.txt'), 'utf8');
  const raw = new Map<number, RawCase>();
  let last = -1;
  for (const line of out.split('\n')) {
    const [tag, ...fields] = line.trim().split(/\s+/);
    if (tag === 'B' || tag === 'S' || tag === 'E') {
      const values = fields.map((f) => BigInt(`0x${f}`));
      const n = Number(values[0]);
      if (tag === 'B') {
        raw.set(n, { steps: [], attempts: [] });
        last = n;
      } else if (tag === 'S') raw.get(n)!.steps.push(values.slice(1));
      else raw.get(n)!.end = values.slice(1);
    }
  }
  // -d int: "v=XX" for every delivery QEMU began. INT 0x90 (RAX = the case number) marks a case, INT 0x91 each
  // of its steps; INT 0x81 is user code returning to the harness and is not an attempt.
  const log = readFileSync(join(work, 'int.log'), 'utf8');
  let current: RawCase | undefined;
  for (const match of log.matchAll(/ v=([0-9a-f]{2}) .*?(?:env->regs\[R_EAX\]=([0-9a-f]+))?$/gm)) {
    const vector = Number.parseInt(match[1]!, 16);
    if (vector === 0x90) current = raw.get(Number.parseInt(match[2]!, 16));
    else if (vector === 0x91) current?.attempts.push([]);
    else if (vector !== LAYOUT.returnVector) current?.attempts.at(-1)?.push(vector);
  }
  const done = out.includes('DONE');
  // -d cpu_reset logs "Triple fault" when the CPU shuts down; a run that ended any other way is a harness failure.
  if (!done && !/^Triple fault$/m.test(log)) {
    throw new Error(`oracle: the run stopped in case ${last} (${cases[last - first]?.id}) without a triple fault`);
  }
  return { raw, done, last };
}

/** Turns one case's raw record into an Observation (see case.ts for each field). */
function observe(c: Case, r: RawCase): Observation {
  const accessSteps = c.family === 'delivery' ? [] : c.steps.filter((s) => s.op === 'access');
  const steps: StepResult[] = r.steps.map((s, i) => {
    const [event, value, vector, entryRsp, cr2, faultRip, nextRip, ...slots] = s as [bigint, ...bigint[]];
    const kind = accessSteps[i]?.kind;
    if (event === 0n) return kind === 'read' ? { event: false, value: hex64(value!) } : { event: false };
    const entry = Number(entryRsp);
    const { stack, offset } = stackOf(entry);
    const withCode = hasErrorCodeSlot(stack, entry, slots);
    const k = withCode ? 1 : 0;
    const rip = slots[k]!;
    return {
      event: true,
      delivered: {
        vector: Number(vector),
        errorCode: withCode ? Number(slots[0]!) : null,
        cr2: hex64(cr2!),
        stack,
        frameOffset: offset,
        rip:
          rip === faultRip ? 'fault' : rip === nextRip ? 'next' : rip === BigInt(LAYOUT.testVa) ? 'target' : hex64(rip),
        cs: Number(slots[k + 1]!),
        rflags: hex64(slots[k + 2]!),
        rsp: hex64(slots[k + 3]!),
        ss: Number(slots[k + 4]!),
      },
    };
  });
  return { steps, ...(r.end ? { entries: r.end.slice(0, -1).map(hex64), memory: hex64(r.end.at(-1)!) } : {}) };
}

/**
 * Whether the frame at `entry` has an error-code slot, from its size: a frame on a TSS stack (IST, RSP0) ends at
 * the page top the case put in the TSS; one on the interrupted stack ends at the saved RSP aligned down to 16, and
 * only one reading of the slots (RSP at slot 3 or 4) is consistent with that.
 */
function hasErrorCodeSlot(stack: string, entry: number, slots: readonly bigint[]): boolean {
  if (stack !== 'current' && stack !== 'user') return (entry & ~0xfff) + 0x1000 - entry === 48;
  const alignedTop = (i: number) => Number(slots[i]! & ~15n);
  return alignedTop(4) - entry === 48 && alignedTop(3) - entry !== 40;
}

/** Runs every case under QEMU, in batches; a triple fault ends a run, and the next run starts after that case. */
export function recordWithQemu(
  cases: readonly Case[],
  options: { batch?: number; onProgress?: (done: number) => void } = {},
): Observation[] {
  const batch = options.batch ?? 400;
  const work = mkdtempSync(join(tmpdir(), 'x86slice-oracle-'));
  const observations: Observation[] = new Array(cases.length);
  try {
    let next = 0;
    while (next < cases.length) {
      const slice = cases.slice(next, next + batch);
      const { raw, done, last } = runKernel(slice, next, work);
      const end = done ? next + slice.length : last + 1;
      for (let n = next; n < end; n++) {
        const r = raw.get(n);
        if (!r) throw new Error(`oracle: case ${n} (${cases[n]!.id}) printed nothing`);
        const obs = observe(cases[n]!, r);
        const steps = obs.steps.map((step, i) => (step.event ? { ...step, attempts: r.attempts[i] ?? [] } : step));
        // A triple fault ends the run inside the case's last step: it printed no step line.
        if (!done && n === last) steps.push({ event: true, attempts: r.attempts[steps.length] ?? [], shutdown: true });
        observations[n] = { ...obs, steps };
      }
      next = end;
      options.onProgress?.(next);
    }
  } finally {
    if (process.env.X86SLICE_ORACLE_KEEP) process.stderr.write(`oracle: kept ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
  return observations;
}
