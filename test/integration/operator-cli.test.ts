// What an operator meets at the command line against a real server: typos refused with a
// message that says what to do instead, and a follow that says at once why it is waiting.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync } from 'node:fs';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('operator cli');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-opcli-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

interface RunJson { uuid: string; job: string; result: { kind: string; code?: number } }

t('history of a job that never existed exits 1 with "no such job"; an unscheduled job keeps its history', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const missing = await h.client(server, ['history', 'nope']);
  assert.is(missing.code, 1, missing.stderr);
  assert.is(missing.stderr, 'builder-client: no such job: nope\n');
  assert.is((await h.client(server, ['schedule', 'once', 'p', h.script('o', 'echo hi\n')])).code, 0);
  await eventually(async () => (await h.history<RunJson>(server, 'once')).length === 1, 20_000, 'the run');
  assert.is((await h.client(server, ['unschedule', 'once'])).code, 0);
  const kept = await h.history<RunJson>(server, 'once');
  assert.equal(kept.map((r) => [r.job, r.result.kind]), [['once', 'exited']]);
  // a job that exists but has not run yet: an empty history, not an error
  assert.is((await h.client(server, ['schedule', 'later', 'p', h.script('l', 'true\n'), '--period', 'never'])).code, 0);
  const empty = await h.client(server, ['history', 'later', '--json']);
  assert.is(empty.code, 0, empty.stderr);
  assert.equal(JSON.parse(empty.stdout), []);
}));

t('reschedule into the past is refused, changes nothing, and points to execute', withTimeout(20_000, async () => {
  const server = await h.server();
  assert.is((await h.client(server, ['schedule', 'nightly', 'p', h.script('n', 'true\n'), '--period', 'never'])).code, 0);
  const past = await h.client(server, ['reschedule', 'nightly', '2020-01-01T00:00:00Z']);
  assert.is(past.code, 1);
  assert.is(past.stderr, 'builder-client: 2020-01-01T00:00:00Z is in the past; to run nightly now, use builder-client execute nightly\n');
  const info = await h.info(server);
  assert.is(info.schedule[0].next, null, 'nothing changed');
}));

t('execute --follow says at once that no worker serves the platform, keeps waiting, and follows the run when one comes', withTimeout(30_000, async () => {
  const server = await h.server();
  assert.is((await h.client(server, ['schedule', 'hello', 'debian-12', h.script('h', 'echo from-the-run\n'), '--period', 'never'])).code, 0);
  const follow = h.clientProc(server, ['execute', 'hello', '--follow']);
  await follow.waitFor(/queued for debian-12; no worker of that platform is connected\n/, 5000);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(follow.running, 'the follow keeps waiting');
  h.worker(server, 'debian-12');
  await follow.waitFor(/from-the-run/, 20_000);
  assert.equal(await follow.exited, { code: 0, signal: null });
  // with a worker there, nothing of the kind is said
  const again = await h.client(server, ['execute', 'hello']);
  assert.is(again.code, 0, again.stderr);
  assert.not.match(again.stderr, /no worker/);
}));

t.run();
