// info-summary and info-page answer from counts and index ranges instead of the whole listing:
// what they say must be what the whole listing (info) says, on one store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Info, InfoPage, InfoSummary } from '../../src/protocol/replies.js';
import type { Request } from '../../src/protocol/messages.js';
import { handleRequest, type RequestContext } from '../../src/server/requests.js';
import type { Scheduler } from '../../src/server/scheduler.js';
import { Rig } from '../helpers/coordinator-rig.js';

type Body = Request extends infer R ? (R extends { op: string } ? Omit<R, 't' | 'id'> : never) : never;

async function ask<T>(ctx: RequestContext, body: Body): Promise<T> {
  return (await handleRequest(ctx, undefined as never, { t: 'req', id: 1, ...body } as Request)) as T;
}

function setup(): { rig: Rig; ctx: RequestContext } {
  const rig = new Rig();
  const ctx: RequestContext = {
    store: rig.store, coordinator: rig.coordinator, config: rig.config, uploader: undefined,
    scheduler: { changed: () => undefined } as unknown as Scheduler,
  };
  const { store, clock } = rig;
  const job = (name: string, platform: string | null, next: number | null, period: 'daily' | 'never' = 'daily'): void =>
    store.tx(() => {
      store.insertJob({
        name, kind: platform === null ? 'orb' : 'script', platform, script: platform === null ? null : 'true', package: platform === null ? 'hello' : null,
        period, cron: null, tz: null, timeout_sec: 60, next_run: next, created: clock.now(),
      });
      if (platform !== null) store.addPlatform(platform);
    });
  // p: five jobs, three queued; q: two jobs, then dropped (paused); an orb-build job; two only by execute
  for (const [i, name] of ['p-e', 'p-a', 'p-d', 'p-c', 'p-b'].entries()) job(name, 'p', clock.now() + (5 - i) * 60_000);
  job('q-1', 'q', clock.now() + 1000);
  job('q-2', 'q', clock.now() + 2000);
  job('orb', null, clock.now() + 30 * 60_000);
  job('manual-1', 'p', null, 'never');
  job('manual-2', 'r', null, 'never');
  store.tx(() => {
    for (const name of ['p-c', 'p-a', 'p-e']) store.enqueue('p', name);
    store.enqueue('q', 'q-1');
    store.dropPlatform('q');
  });
  return { rig, ctx };
}

test('the summary counts what the whole listing lists, per platform, and leaves paused and execute-only jobs out of the next runs due', async () => {
  const { rig, ctx } = setup();
  try {
    // a worker of p takes the head of p's queue: one running run
    rig.join('w1', 'p', [], 2);
    const all = await ask<Info>(ctx, { op: 'info' });
    const s = await ask<InfoSummary>(ctx, { op: 'info-summary', due: 3 });
    assert.is(s.jobs, all.schedule.length);
    assert.is(s.orbJobs, 1);
    assert.is(s.paused, all.schedule.filter((j) => j.paused).length);
    assert.is(s.paused, 2);
    assert.equal(s.dropped, all.dropped);
    assert.equal(s.platforms.map((p) => p.platform), ['p', 'q', 'r']);
    const p = s.platforms[0]!;
    assert.is(p.jobs, all.schedule.filter((j) => j.platform === 'p').length);
    assert.equal([p.queued, p.head], [all.queues.p!.length, all.queues.p!.slice(0, 3)]);
    assert.equal([p.workers, p.capacity, p.running], [1, 2, 2]);
    assert.equal(s.platforms[1], { platform: 'q', jobs: 2, queued: 1, head: ['q-1'], running: 0, workers: 0, capacity: 0, dropped: true });
    assert.is(s.runningCount, all.running.length);
    assert.equal(s.running, all.running);
    assert.is(s.workers, all.workers.length);
    const due = all.schedule.filter((j) => j.next !== null && !j.paused).sort((a, b) => a.next!.localeCompare(b.next!));
    assert.equal(s.nextDue, due.slice(0, 3).map((j) => ({ name: j.name, platform: j.platform, next: j.next })));
    assert.equal(s.nextDue.map((j) => j.name), ['p-b', 'p-c', 'p-d'], 'soonest first; paused q-1, q-2 left out');
  } finally {
    rig.close();
  }
});

test('pages of the schedule, followed by their next, give every job of the whole listing once, in the same order and form', async () => {
  const { rig, ctx } = setup();
  try {
    const all = await ask<Info>(ctx, { op: 'info' });
    const seen: Info['schedule'] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page: InfoPage = await ask<InfoPage>(ctx, { op: 'info-page', limit: 3, ...(after !== undefined ? { after } : {}) });
      seen.push(...page.schedule);
      pages++;
      if (page.next === null) break;
      assert.is(page.next, page.schedule[page.schedule.length - 1]!.name);
      after = page.next;
    }
    assert.equal(seen, all.schedule);
    assert.is(pages, Math.ceil(all.schedule.length / 3));
    const last = await ask<InfoPage>(ctx, { op: 'info-page', limit: 3, after: all.schedule[all.schedule.length - 1]!.name });
    assert.equal(last, { schedule: [], next: null });
    for (const limit of [0, 1001]) {
      try {
        await ask(ctx, { op: 'info-page', limit });
        assert.unreachable(`limit ${limit} accepted`);
      } catch (err) {
        assert.match((err as Error).message, /limit must be from 1 to 1000/);
      }
    }
  } finally {
    rig.close();
  }
});

test.run();
