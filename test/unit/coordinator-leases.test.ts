// Leases, re-attach and the timeout backstop, in-process against a fake clock: no worker
// process and no waiting for real seconds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rig } from '../helpers/coordinator-rig.js';

let rig: Rig;
test.before.each(() => {
  rig = new Rig({ leaseMs: 30_000 });
});
test.after.each(() => rig.close());

test('a worker that does not come back within the lease loses its run; the job goes to the front of its queue at once', async () => {
  rig.schedule('a');
  rig.schedule('b');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  rig.drop(w);
  rig.clock.advance(29_999);
  assert.ok(rig.coordinator.live.has(uuid!), 'the run waits for its worker during the lease');
  assert.equal(rig.store.queue('p').map((e) => e.job), ['b']);

  const finished = rig.next('run:finished');
  rig.clock.advance(1);
  const end = await finished;
  assert.equal(end.result, { kind: 'failed', message: 'worker w1 lost', infra: true });
  assert.not.ok(rig.coordinator.live.has(uuid!));
  // back at the front, second attempt, due now (a lost worker says nothing about the job)
  const [front] = rig.store.queue('p');
  assert.equal([front!.job, front!.attempt, front!.not_before <= rig.clock.now()], ['a', 2, true]);

  // a new worker gets it under a new uuid; the old uuid stays dead
  const { w: w2 } = rig.join('w2');
  const [again] = rig.jobsSent(w2);
  assert.ok(again && again !== uuid);
  assert.is(rig.store.run(again)!.attempt, 2);
  const late = rig.join('w1', 'p', [{ uuid: uuid!, lastSeq: 0, finished: true }]);
  assert.equal(late.welcome.abandon, [uuid]);
});

test('a worker that re-attaches within the lease keeps its run, and the lease no longer runs', async () => {
  rig.schedule('a', 'p', 3600);
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq: 0, lines: [[5, Buffer.from('one')], [6, Buffer.from('two')]] });
  rig.drop(w);
  rig.clock.advance(20_000);
  const { w: back, welcome } = rig.join('w1', 'p', [{ uuid: uuid!, lastSeq: 3, finished: false, secret: rig.secretOf(w, uuid!) }]);
  assert.equal(welcome.attach, [{ uuid: uuid!, haveSeq: 1 }]);
  assert.equal(welcome.abandon, []);
  rig.clock.advance(60_000);
  assert.ok(rig.coordinator.live.has(uuid!), 'the lease was cancelled by the re-attach');
  // the re-attached worker speaks for the run; the old session no longer does
  rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq: 2, lines: [[7, Buffer.from('stale')]] });
  assert.equal(w.port.sent.at(-1), { t: 'refused', uuid: uuid!, reason: 'this run is not held by you (finished, cancelled, or handed to another worker)' });
  const done = rig.next('run:finished');
  await rig.finish(back, uuid!, { kind: 'exited', code: 0 }, 1);
  assert.equal((await done).result, { kind: 'exited', code: 0 });
  assert.equal(back.port.sent.at(-1), { t: 'ack', uuid: uuid! });
});

test('a second worker cannot take over a run whose worker is still connected', () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  const other = rig.join('w1', 'p', [{ uuid: uuid!, lastSeq: -1, finished: false }]);
  assert.equal(other.welcome.abandon, [uuid]);
});

test('a run past its timeout without a result is ended as timeout and its worker told to cancel', async () => {
  rig.schedule('slow', 'p', 60);
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  const finished = rig.next('run:finished');
  rig.clock.advance(60_000 + 9_999);
  assert.ok(rig.coordinator.live.has(uuid!), 'the worker gets a grace period to report the timeout itself');
  rig.clock.advance(1);
  assert.ok(w.port.sent.some((m) => m.t === 'cancel' && m.uuid === uuid && m.reason === 'timeout'));
  assert.equal((await finished).result, { kind: 'timeout', reason: 'timeout' });
  // a timed-out job is not queued again: it runs at its next scheduled time
  assert.equal(rig.store.queue('p'), []);
});

test('stop leaves no timer armed', () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  rig.drop(w);
  assert.ok(rig.clock.armed > 0);
  rig.coordinator.stop();
  assert.is(rig.clock.armed, 0);
});

test.run();
