// Machines whose traces the export tests read: two CPUs passing IPIs, delivered at once or held in flight.
import type { IpiDelivery } from '../../src/cpu/ipi-bus.ts';
import { Machine } from '../../src/machine/machine.ts';
import { IPI_VECTOR, setEoiHandler } from '../cpu/fixtures.ts';

export { IPI_VECTOR };

/**
 * CPU0 sends CPU1 a fixed IPI, then an NMI IPI; CPU1 pauses (IF=1) and its IPI handler EOIs. With `schedule`
 * omitted the machine runs round-robin to the end.
 */
export function ipiMachine(ipiDelivery: IpiDelivery, schedule?: string): Machine {
  const m = Machine.create({ cpus: 2, ipiDelivery });
  setEoiHandler(m, 1);
  m.load(0, function* (x) {
    yield x.sendIpi(1, IPI_VECTOR);
    yield x.sendIpi(1, 2, 'nmi');
  });
  m.load(1, function* (x) {
    for (let i = 0; i < 5; i++) yield x.pause();
  });
  m.run(schedule === undefined ? {} : { schedule });
  return m;
}

/** CPU0 sends the same vector to CPU1 twice before CPU1 steps: the two IPIs coalesce into one acceptance. */
export function coalescedIpis(): Machine {
  const m = Machine.create({ cpus: 2 });
  setEoiHandler(m, 1);
  m.load(0, function* (x) {
    yield x.sendIpi(1, IPI_VECTOR);
    yield x.sendIpi(1, IPI_VECTOR);
  });
  m.load(1, function* (x) {
    yield x.pause();
  });
  m.run({ schedule: '0,0,0,1*5' });
  return m;
}
