// Dispatch with many idle workers: a pass starts at most DISPATCH_BATCH runs per turn of the event
// loop, so thousands of workers and a full queue never hold the server for seconds, and every
// queued job still goes out, once, to a free worker.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DISPATCH_BATCH } from '../../src/server/dispatch.js';
import { Rig, type FakeWorker } from '../helpers/coordinator-rig.js';

let rig: Rig;
test.before.each(() => {
  rig = new Rig();
});
test.after.each(() => rig.close());

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a full queue and 250 idle workers: 100 runs in the first turn, the rest in the next ones, one per worker', async () => {
  const workers: FakeWorker[] = [];
  for (let i = 0; i < 250; i++) workers.push(rig.join(`w${String(i).padStart(3, '0')}`).w);
  rig.store.tx(() => {
    for (let i = 0; i < 250; i++) {
      const name = `j${String(i).padStart(3, '0')}`;
      rig.store.insertJob({
        name, kind: 'script', platform: 'p', script: `echo ${name}`, package: null, period: 'never', cron: null, tz: null,
        timeout_sec: 60, next_run: null, created: rig.clock.now(),
      });
      rig.store.enqueue('p', name);
    }
  });
  const sent = (): number => workers.reduce((n, w) => n + rig.jobsSent(w).length, 0);
  rig.coordinator.dispatch('p');
  assert.is(sent(), DISPATCH_BATCH, 'one batch in this turn');
  for (let i = 0; i < 5 && sent() < 250; i++) await turn();
  assert.is(sent(), 250);
  assert.ok(workers.every((w) => rig.jobsSent(w).length === 1), 'each worker one job');
  assert.equal(rig.store.queue('p'), []);
});

test('a pass cut short and another asked for meanwhile go on as one pass', async () => {
  const workers: FakeWorker[] = [];
  for (let i = 0; i < 150; i++) workers.push(rig.join(`w${i}`).w);
  for (let i = 0; i < 150; i++) rig.schedule(`j${i}`);
  // schedule() queues without dispatching; two passes asked for in the same turn
  rig.coordinator.dispatch('p');
  rig.coordinator.dispatch('p');
  await turn();
  await turn();
  const counts = workers.map((w) => rig.jobsSent(w).length);
  assert.ok(counts.every((c) => c === 1), `every worker exactly one job: ${counts.filter((c) => c !== 1).length} differ`);
});

test.run();
