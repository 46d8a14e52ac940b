// What the coordinator gives a run besides its script, in-process: the job's SOURCE_DATE_EPOCH
// and secrets in the Job message, secrets masked before lines are stored or shown, and a
// templated run whose template cannot be rendered stored as a failed run (not retried, not sent).
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Job, Message } from '../../src/protocol/messages.js';
import { Rig, T0, fakePort } from '../helpers/coordinator-rig.js';

let rig: Rig;
test.before.each(() => {
  rig = new Rig();
});
test.after.each(() => rig.close());

const jobMessages = (sent: Message[]): Job[] => sent.flatMap((m) => (m.t === 'job' ? [m] : []));

function orbJob(name: string, sourceDateEpoch?: number): void {
  rig.store.tx(() => {
    rig.store.insertJob({
      name, kind: 'orb', platform: null, script: null, package: 'solo5', period: 'never', cron: null, tz: null,
      timeout_sec: 60, next_run: null, created: rig.clock.now(), ...(sourceDateEpoch !== undefined ? { source_date_epoch: sourceDateEpoch } : {}),
    });
    rig.store.addPlatform('p');
    rig.store.enqueue('p', name);
  });
}

function template(body: string): string {
  mkdirSync(rig.config.configDir, { recursive: true });
  const file = join(rig.config.configDir, 'orb-build.template.p');
  writeFileSync(file, body);
  return file;
}

test('the Job message carries the job\'s SOURCE_DATE_EPOCH: its creation time by default, the same on every run', () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [first] = jobMessages(w.port.sent);
  assert.is(first!.sourceDateEpoch, Math.floor(T0 / 1000));
  assert.is(first!.env, undefined, 'a job without secrets gets no extra variables');
});

test('a given SOURCE_DATE_EPOCH reaches the template and the Job message', () => {
  template('echo {{source_date_epoch}} %%OPAM_PACKAGE%% {{uuid}}\n');
  orbJob('o', 1_234_567_890);
  const { w } = rig.join('w1');
  const [job] = jobMessages(w.port.sent);
  assert.is(job!.sourceDateEpoch, 1_234_567_890);
  assert.is(job!.script, `echo 1234567890 solo5 ${job!.uuid}\n`, 'rendered at the run\'s start, with its own uuid');
});

test('secrets go to their job alone in the Job message, are stored 0600, and are masked before anything stores or shows a line', async () => {
  const secret = 'tok-3f9a1c77e2';
  rig.coordinator.secrets.put('a', { TOKEN: secret });
  rig.schedule('a');
  rig.schedule('b');
  const { w } = rig.join('w1', 'p', [], 2);
  const [ja, jb] = jobMessages(w.port.sent);
  assert.equal(ja!.env, { TOKEN: secret });
  assert.is(jb!.env, undefined);
  assert.not.ok(ja!.script.includes(secret));
  const file = join(rig.dir, 'secrets', 'a.json');
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.is(statSync(join(rig.dir, 'secrets')).mode & 0o777, 0o700);

  const observer = fakePort();
  rig.coordinator.observe(observer, 3, ja!.uuid);
  const b64 = Buffer.from(secret).toString('base64');
  rig.coordinator.output(w, {
    t: 'output', uuid: ja!.uuid, seq: 0,
    lines: [[0, Buffer.from(`token=${secret};`)], [1, Buffer.from(b64)], [2, Buffer.from('plain')]],
  });
  const stored = [...rig.store.pagedLines(ja!.uuid)].map((l) => l.data.toString());
  assert.equal(stored, ['token=***;', '***', 'plain']);
  assert.equal(observer.sent.flatMap((m) => (m.t === 'line' ? [m.data.toString()] : [])), stored);

  await rig.finish(w, ja!.uuid, { kind: 'failed', message: `could not use ${secret}`, infra: false }, 2);
  const run = rig.store.run(ja!.uuid)!;
  assert.equal(JSON.parse(run.result!), { kind: 'failed', message: 'could not use ***', infra: false });
  const meta = readFileSync(join(run.dir!, 'run.json'), 'utf8');
  assert.not.ok(meta.includes(secret));
  assert.not.ok(readFileSync(join(run.dir!, 'console'), 'utf8').includes(secret));
});

test('a template with an unknown variable fails that run with FILE:LINE; nothing is sent and it is not retried', async () => {
  const file = template('#!/bin/sh\necho {{opam_package}}\necho {{opam_pakage}}\n');
  orbJob('o');
  const finished = rig.next('run:finished');
  const { w } = rig.join('w1');
  const done = await finished;
  assert.equal(jobMessages(w.port.sent), []);
  assert.is(done.result.kind, 'failed');
  assert.ok(done.result.kind === 'failed' && !done.result.infra, 'not an infrastructure failure');
  assert.match(done.result.kind === 'failed' ? done.result.message : '', `${file}:3: unknown variable "opam_pakage"`);
  assert.not.ok(done.retried);
  assert.equal(rig.store.queue('p'), []);
  assert.is(rig.store.history('o', 10).length, 1);
  assert.is(w.runs.size, 0, 'the failed run holds no slot of the worker');
});

test.run();
