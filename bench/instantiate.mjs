// MachineImage.instantiate() of a booted 4-CPU 256 MiB kernel machine, timed in a plain node process on the
// compiled package (dist/, what users and the checker load): no TypeScript loader in the process, whose hooks
// thread and keepNames wrappers would add tens of microseconds that say nothing about the library. Prints one JSON
// line; bench/run.ts runs it (after `npm run build`, which `npm run bench` does first).
import { Machine, MachineImage } from '../dist/index.js';

const image = MachineImage.capture(Machine.create({ cpus: 4, memory: 256 * 1024 * 1024, trace: false, kernel: {} }));
for (let i = 0; i < 3000; i++) image.instantiate({ trace: false }); // warm-up: the JIT settles
const times = Array.from({ length: 500 }, () => {
  const start = process.hrtime.bigint();
  image.instantiate({ trace: false });
  return Number(process.hrtime.bigint() - start) / 1000;
}).sort((a, b) => a - b);
console.log(JSON.stringify({ instantiateUs: times[250], instantiateBestUs: times[0] }));
