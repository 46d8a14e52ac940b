// Nothing acknowledged is lost: kill -9 of the server or of a worker in the middle of a job.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('durability');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

interface RunJson { uuid: string; job: string; attempt: number; started: string; result: { kind: string; code?: number; message?: string; infra?: boolean }; dir: string }

t('kill -9 of the server mid-job: schedule, queues and results survive, and the running job carries on', withTimeout(60_000, async () => {
  let server = await h.server();
  const port = server.port;
  const worker = h.worker(server, 'p');
  await h.client(server, ['schedule', 'done-before', 'p', h.script('d', 'echo early > early.txt\n')]);
  await eventually(async () => (await h.history<RunJson>(server)).length === 1, 15_000, 'first result');
  const go = h.path('go');
  await h.client(server, ['schedule', 'long', 'p', h.script('long', `echo before\nwhile [ ! -e ${go} ]; do sleep 0.05; done\necho after\necho art > result.txt\n`)]);
  await h.client(server, ['schedule', 'waiting', 'other', h.script('w', 'true\n')]);
  await h.client(server, ['schedule', 'manual', 'p', h.script('m', 'true\n'), '--period', 'never']);
  const uuid = await eventually(async () => (await h.info(server)).running[0]?.uuid as string | undefined);
  await eventually(async () => {
    const o = h.clientProc(server, ['observe', uuid]);
    await o.waitFor(/before/);
    o.kill();
    return true;
  });

  server.proc.kill('SIGKILL');
  await server.proc.exited;
  server = await h.server({ dir: server.dir, port });
  const after = await h.info(server);
  assert.equal(after.schedule.map((j: { name: string }) => j.name).sort(), ['done-before', 'long', 'manual', 'waiting']);
  assert.equal(after.queues.other, ['waiting']);
  assert.equal(after.running.map((r: { uuid: string }) => r.uuid), [uuid]);
  assert.is((await h.history<RunJson>(server, 'done-before')).length, 1);

  await worker.waitFor(/connected.*\n(.|\n)*connected/, 20_000);
  writeFileSync(go, '');
  const [run] = await eventually(async () => {
    const r = await h.history<RunJson>(server, 'long');
    return r.length > 0 && r;
  }, 20_000, 'the long run to finish after the restart');
  assert.is(run!.uuid, uuid, 'the same run carried on; the build was not restarted');
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  const lines = readFileSync(join(run!.dir, 'console'), 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^\d+ /, ''));
  assert.equal(lines, ['before', 'after'], 'every line once, none lost, none doubled');
  assert.ok(existsSync(join(run!.dir, 'artifacts/result.txt')));
}));

t('a job that finishes while the server is down is delivered, artifacts and all, when it comes back', withTimeout(60_000, async () => {
  let server = await h.server();
  const port = server.port;
  const worker = h.worker(server, 'p');
  const go = h.path('go');
  await h.client(server, ['schedule', 'offline', 'p', h.script('off', `echo one\nwhile [ ! -e ${go} ]; do sleep 0.05; done\necho two\nmkdir -p d\nhead -c 3000000 /dev/urandom > d/blob\necho three\n`)]);
  const uuid = await eventually(async () => (await h.info(server)).running[0]?.uuid as string | undefined);
  server.proc.kill('SIGKILL');
  await server.proc.exited;
  writeFileSync(go, '');
  await worker.waitFor(/job ended/, 20_000);
  server = await h.server({ dir: server.dir, port });
  const [run] = await eventually(async () => {
    const r = await h.history<RunJson>(server, 'offline');
    return r.length > 0 && r;
  }, 30_000, 'the result delivered after the restart');
  assert.is(run!.uuid, uuid);
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  const lines = readFileSync(join(run!.dir, 'console'), 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^\d+ /, ''));
  assert.equal(lines, ['one', 'two', 'three']);
  const meta = JSON.parse(readFileSync(join(run!.dir, 'run.json'), 'utf8'));
  assert.equal(meta.artifacts.map((a: { path: string; size: number }) => [a.path, a.size]), [['d/blob', 3000000]]);
  assert.equal(meta.refusals, []);
}));

t('kill -9 of a worker mid-job: after the lease the job goes back to the front of its queue and runs elsewhere', withTimeout(60_000, async () => {
  const server = await h.server({ args: ['--lease', '2'] });
  const w1 = h.worker(server, 'p', ['--name', 'first']);
  await w1.waitFor(/connected/);
  const marker = h.path('attempts');
  await h.client(server, ['schedule', 'flaky', 'p', h.script('f', `echo x >> ${marker}\nn=$(wc -l < ${marker})\nif [ "$n" -eq 1 ]; then sleep 1000; fi\necho finished\n`)]);
  await h.client(server, ['schedule', 'next', 'p', h.script('n', 'echo next\n')]);
  await eventually(() => existsSync(marker), 15_000, 'the first attempt to start');
  w1.kill('SIGKILL');
  await eventually(async () => (await h.history<RunJson>(server, 'flaky')).length === 1, 15_000, 'the lease to run out');
  let queued = (await h.info(server)).queues.p;
  assert.equal(queued, ['flaky', 'next'], 'back at the front of its queue');
  const w2 = h.worker(server, 'p', ['--name', 'second']);
  const runs = await eventually(async () => {
    const r = await h.history<RunJson>(server, 'flaky');
    return r.some((x) => x.result.kind === 'exited') && r;
  }, 30_000, 'the second attempt');
  const lost = runs.find((r) => r.result.kind === 'failed')!;
  const ok = runs.find((r) => r.result.kind === 'exited')!;
  assert.match(lost.result.message!, /worker first lost/);
  assert.is(lost.result.infra, true);
  assert.is(ok.attempt, 2);
  assert.is(runs.length, 2);
  // it went to the front: it ran before "next", which was queued behind it
  const all = await eventually(async () => {
    const r = await h.history<RunJson>(server);
    return r.length === 3 && r;
  });
  const order = all.slice().sort((a, b) => Date.parse(a.started) - Date.parse(b.started)).map((r) => `${r.job}/${r.attempt}`);
  assert.equal(order, ['flaky/1', 'flaky/2', 'next/1']);
  queued = (await h.info(server)).queues.p;
  assert.equal(queued, []);
  void w2;
}));

t('a worker that comes back after its run was handed to another has its late result refused', withTimeout(60_000, async () => {
  const env = { BUILDER_DEAD_AFTER_MS: '1500', BUILDER_HEARTBEAT_MS: '300' };
  const server = await h.server({ args: ['--lease', '1'], env });
  const w1 = h.worker(server, 'p', ['--name', 'sleepy'], env);
  await w1.waitFor(/connected/);
  const go = h.path('go');
  await h.client(server, ['schedule', 'once', 'p', h.script('o', `while [ ! -e ${go} ]; do sleep 0.05; done\necho done-by-$BUILDER_WHO\n`)]);
  await eventually(async () => (await h.info(server)).running.length === 1);
  w1.kill('SIGSTOP');
  await eventually(async () => (await h.history<RunJson>(server, 'once')).length === 1, 20_000, 'the lost run to be recorded');
  const w2 = h.worker(server, 'p', ['--name', 'awake'], env);
  await eventually(async () => (await h.info(server)).running[0]?.worker === 'awake', 15_000, 'the retry on the other worker');
  writeFileSync(go, '');
  w1.kill('SIGCONT');
  await w1.waitFor(/server no longer holds this run|refused/, 20_000);
  const runs = await eventually(async () => {
    const r = await h.history<RunJson>(server, 'once');
    return r.length === 2 && r;
  }, 20_000);
  assert.equal(runs.map((r) => r.result.kind).sort(), ['exited', 'failed']);
  await new Promise((r) => setTimeout(r, 1000));
  assert.is((await h.history<RunJson>(server, 'once')).length, 2, 'no run recorded twice');
  void w2;
}));

t.run();
