// The scheduler against a real SQLite store and an injected clock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore, type JobRow } from '../../src/server/store/index.js';
import { queueDue } from '../../src/server/scheduler.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const H = 3_600_000;

function storeWith(jobs: Array<Partial<JobRow> & { name: string }>) {
  const store = openStore(':memory:');
  store.tx(() => {
    for (const j of jobs) {
      store.insertJob({
        kind: 'script', platform: 'p', script: 'true', package: null, period: 'hourly', cron: null, tz: null,
        timeout_sec: 60, next_run: T0, created: T0, ...j,
      });
      store.addPlatform('p');
    }
  });
  return store;
}

test('a due job is queued once and its next run moves past now', () => {
  const store = storeWith([{ name: 'a' }, { name: 'later', next_run: T0 + 5 * H }]);
  assert.equal([...queueDue(store, '/nonexistent', T0 + 1000)], ['p']);
  assert.equal(store.queue('p').map((e) => e.job), ['a']);
  assert.is(store.job('a')!.next_run, T0 + H);
  // the same instant again (a second tick) queues nothing new
  assert.equal([...queueDue(store, '/nonexistent', T0 + 2000)], []);
  assert.equal(store.queue('p').map((e) => e.job), ['a']);
});

test('after ten hours of downtime an hourly job is queued once, and keeps its phase', () => {
  const store = storeWith([{ name: 'a' }]);
  queueDue(store, '/nonexistent', T0 + 10 * H + 60_000);
  assert.equal(store.queue('p').map((e) => e.job), ['a']);
  assert.is(store.job('a')!.next_run, T0 + 11 * H);
});

test('a clock going backwards queues nothing twice and loses no job', () => {
  const store = storeWith([{ name: 'a' }]);
  queueDue(store, '/nonexistent', T0 + 1000);
  store.dequeue('p', 'a'); // it ran
  // the clock jumps back an hour: the job is not due again until its stored next run
  assert.equal([...queueDue(store, '/nonexistent', T0 - H)], []);
  assert.is(store.job('a')!.next_run, T0 + H);
  queueDue(store, '/nonexistent', T0 + H);
  assert.equal(store.queue('p').map((e) => e.job), ['a']);
});

test('never-jobs are never due; dropped platforms get nothing', () => {
  const store = storeWith([{ name: 'manual', period: 'never', next_run: null }, { name: 'x' }]);
  store.tx(() => store.dropPlatform('p'));
  assert.equal([...queueDue(store, '/nonexistent', T0 + 10 * H)], []);
  assert.equal(store.queue('p'), []);
});

test('a paused job (its platform dropped) keeps its jobs and queue, is never due, and runs once after undrop', () => {
  const store = storeWith([{ name: 'queued' }, { name: 'later', next_run: T0 + 2 * H }]);
  store.addPlatform('q');
  store.tx(() => store.insertJob({ name: 'other', kind: 'script', platform: 'q', script: 'true', package: null, period: 'hourly',
    cron: null, tz: null, timeout_sec: 60, next_run: T0 + 20 * H, created: T0 }));
  queueDue(store, '/nonexistent', T0 + 1000);
  assert.equal(store.queue('p').map((e) => e.job), ['queued']);
  assert.equal(store.tx(() => store.dropPlatform('p')), ['later', 'queued'], 'the paused jobs');
  assert.equal(store.jobs().map((j) => j.name), ['later', 'other', 'queued'], 'nothing deleted');
  assert.equal(store.queue('p').map((e) => e.job), ['queued'], 'the queue is kept');
  // the scheduler does not wake for a paused job, nor move its next run on
  assert.is(store.earliestNext(), T0 + 20 * H, 'only the other platform\'s job');
  assert.equal([...queueDue(store, '/nonexistent', T0 + 10 * H)], []);
  assert.is(store.job('later')!.next_run, T0 + 2 * H);
  assert.is(store.job('queued')!.next_run, T0 + H);
  store.tx(() => store.setDropped('p', false));
  // each missed its time while paused: queued once, then on its period again
  assert.equal([...queueDue(store, '/nonexistent', T0 + 10 * H + 1000)], ['p']);
  assert.equal(store.queue('p').map((e) => e.job), ['queued', 'later']);
  assert.is(store.job('later')!.next_run, T0 + 11 * H);
});

test('cron jobs advance to the next match after now', () => {
  const store = storeWith([{ name: 'c', period: null, cron: '30 2 * * *', next_run: T0 }]);
  queueDue(store, '/nonexistent', T0 + 3 * 86_400_000);
  assert.is(new Date(store.job('c')!.next_run!).toISOString(), '2026-01-04T02:30:00.000Z');
});

test.run();
