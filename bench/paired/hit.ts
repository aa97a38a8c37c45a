// A/B scratch: one TLB-hit case, as bench/measure.ts measureHit does, plus an xchg kind. Prints one JSON line with
// the median chunk's wall ns/step (as the bench) and its process-CPU ns/step (less moved by other processes).
import type { Program } from '../../src/cpu/assembler.ts';
import { Machine } from '../../src/machine/machine.ts';
import { hitProgram, mapDataPages } from '../programs.ts';

const [kind, cpusText, traceText] = process.argv.slice(2);
const cpus = Number(cpusText);
const trace = traceText === 'on';
const m = Machine.create({ cpus, trace });
const data = mapDataPages(m, cpus);
const program: Program =
  kind === 'xchg'
    ? function* xchgLoop(x) {
        const va = data[x.cpuId]! + 8;
        let value = 0;
        for (;;) {
          yield x.xchg(va, 8, value);
          value = (value + 1) & 0xffff;
        }
      }
    : hitProgram(kind as 'load', data);
for (let id = 0; id < cpus; id++) m.load(id, program);
const CHUNK = 100_000;
for (let c = 0; c < 5; c++) m.run({ maxSteps: CHUNK });
m.clearTrace();
const wall: number[] = [];
const cpu: number[] = [];
for (let c = 0; c < (trace ? 15 : 40); c++) {
  const u0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const r = m.run({ maxSteps: CHUNK });
  m.clearTrace();
  const t1 = process.hrtime.bigint();
  const u1 = process.cpuUsage(u0);
  if (r.steps !== CHUNK) throw new Error('stopped');
  wall.push(Number(t1 - t0) / CHUNK);
  cpu.push(((u1.user + u1.system) * 1000) / CHUNK);
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(JSON.stringify({ kind, cpus, trace, ns: med(wall), cpuNs: med(cpu) }));
