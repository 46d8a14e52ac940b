// Infrastructure failures are retried with a doubling back-off, in-process with a fake clock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RunResult } from '../../src/protocol/messages.js';
import { Rig } from '../helpers/coordinator-rig.js';

let rig: Rig;
test.before.each(() => {
  rig = new Rig({ retryBackoffMs: 10_000, maxAttempts: 3 });
});
test.after.each(() => rig.close());

const infra: RunResult = { kind: 'failed', message: 'cannot create sandbox', infra: true };

test('an infrastructure failure is retried after 10 s, then 20 s, and no more after the last attempt', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const attempts: number[] = [];
  const waited: number[] = [];
  for (let i = 0; i < 3; i++) {
    const uuids = rig.jobsSent(w);
    const uuid = uuids[uuids.length - 1]!;
    attempts.push(rig.store.run(uuid)!.attempt);
    await rig.finish(w, uuid, infra);
    const entry = rig.store.queue('p')[0];
    if (!entry) break;
    // the worker is free, but the job waits for its back-off
    const failedAt = rig.clock.now();
    assert.is(rig.jobsSent(w).length, i + 1);
    rig.clock.advance(entry.not_before - failedAt - 1);
    assert.is(rig.jobsSent(w).length, i + 1, 'not before the back-off is over');
    rig.clock.advance(10);
    assert.is(rig.jobsSent(w).length, i + 2, 'the retry timer hands it out once due');
    waited.push(entry.not_before - failedAt);
  }
  assert.equal(attempts, [1, 2, 3]);
  assert.equal(waited, [10_000, 20_000]);
  assert.equal(rig.store.queue('p'), []);
  assert.is(rig.store.history('a', 10).length, 3);
});

test('a build failure is a result, not retried', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  await rig.finish(w, rig.jobsSent(w)[0]!, { kind: 'exited', code: 2 });
  assert.equal(rig.store.queue('p'), []);
  rig.clock.advance(3_600_000);
  assert.is(rig.jobsSent(w).length, 1);
});

test('a finished run frees the worker slot at once: the next queued job goes out while the result is stored', async () => {
  rig.schedule('a');
  rig.schedule('b');
  rig.schedule('c');
  const { w } = rig.join('w1');
  const [first] = rig.jobsSent(w);
  await rig.finish(w, first!, { kind: 'exited', code: 0 });
  // b is handed out when a's result arrives, before a's ack; c waits for a slot
  assert.equal(w.port.sent.map((m) => m.t), ['job', 'job', 'ack']);
  assert.equal(w.storing.size, 0, 'a is stored and acknowledged');
  assert.equal(rig.store.queue('p').map((e) => e.job), ['c']);
});

test.run();
