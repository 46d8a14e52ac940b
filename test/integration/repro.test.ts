// Reproducibility end to end with real processes: a job whose tarball is built reproducibly is
// `reproduced` on its second run and by `verify` on a second worker (real Docker engine, Debian
// image); one that embeds `date +%s%N` `differs`, naming that artifact, and `compare` shows the
// changed line; the notify command hears "stops reproducing" and "reproduces again" once each.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { need } from '../helpers/env.js';

const t = suite('reproducibility end to end');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const IMAGE = 'builder-test-debian:bookworm';
const debianReady = (): boolean => {
  let ok = false;
  try {
    ok = execFileSync('docker', ['image', 'inspect', IMAGE], { timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).length > 0;
  } catch {
    ok = false;
  }
  return need(`docker engine with ${IMAGE}`, ok, 'start dockerd and run test/env/setup-docker.sh');
};

interface Run {
  uuid: string; job: string; worker: string; dir: string; result: { kind: string; code?: number };
  repro: { verdict: string; against: string; changed: string[]; added: string[]; removed: string[]; report: string | null } | null;
}

/** Runs the job now and returns its finished run (the n-th of the job). */
async function runNow(s: ServerHandle, job: string, n: number): Promise<Run> {
  const r = await h.client(s, ['execute', job]);
  assert.is(r.code, 0, r.stderr);
  return eventually(async () => {
    const runs = await h.history<Run>(s, job);
    return runs.length >= n && runs[0];
  }, 90_000, `run ${n} of ${job}`);
}

// SOURCE_DATE_EPOCH comes from the job's fixed environment; the fallback keeps the test
// meaningful on a tree where it is not set yet
const tarball = `set -eu
epoch=\${SOURCE_DATE_EPOCH:-1700000000}
mkdir -p src out
printf 'hello\\n' > src/a.txt
printf 'world\\n' > src/b.txt
tar --sort=name --mtime=@"$epoch" --owner=0 --group=0 --numeric-owner -cf - src | gzip -n > out/src.tar.gz
rm -rf src
echo built
`;

const stamped = `set -eu
mkdir -p out
printf 'version 1\\nbuilt at %s\\nend\\n' "$(date +%s%N)" > out/stamp.txt
printf 'same\\n' > out/same.txt
`;

t('docker: a reproducible tarball is reproduced on its second run and by verify on a second worker', withTimeout(240_000, async () => {
  if (!debianReady()) return;
  const server = await h.server();
  for (const name of ['deb1', 'deb2']) {
    h.worker(server, 'debian', ['--sandbox', 'docker', '--image', IMAGE, '--name', name, '--network', 'none']);
  }
  await eventually(async () => (await h.info(server)).workers.length === 2, 30_000, 'two workers');
  await h.client(server, ['schedule', 'tarball', 'debian', h.script('tarball', tarball), '--period', 'never']);
  const first = await runNow(server, 'tarball', 1);
  assert.equal(first.result, { kind: 'exited', code: 0 });
  assert.ok(existsSync(join(first.dir, 'artifacts/out/src.tar.gz')));
  assert.is(first.repro, null, 'nothing to compare the first run with');
  const second = await runNow(server, 'tarball', 2);
  assert.equal(second.repro?.verdict, 'reproduced');
  assert.is(second.repro?.against, first.uuid);

  const v = await h.client(server, ['verify', 'tarball', '--json']);
  assert.is(v.code, 0, v.stdout + v.stderr);
  const reply = JSON.parse(v.stdout);
  assert.is(reply.against.uuid, second.uuid);
  assert.ok(reply.otherWorker, 'rebuilt on the other worker');
  assert.is.not(reply.worker, second.worker);
  assert.is(reply.comparison.verdict, 'reproduced');
  const text = await h.client(server, ['verify', 'tarball']);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, 'reproduced: every artifact identical');

  const table = await h.client(server, ['history', 'tarball']);
  assert.match(table.stdout, /REPRO/);
  assert.match(table.stdout, new RegExp(`exited 0 .*reproduced\\s+${second.uuid}`));
  const info = await h.client(server, ['info', '--all']);
  assert.match(info.stdout, /tarball .*reproduced/);
}));

t('docker: a build embedding date +%s%N differs, naming that artifact; compare shows the changed line', withTimeout(240_000, async () => {
  if (!debianReady()) return;
  const server = await h.server();
  h.worker(server, 'debian', ['--sandbox', 'docker', '--image', IMAGE, '--name', 'deb1', '--network', 'none']);
  await h.client(server, ['schedule', 'stamped', 'debian', h.script('stamped', stamped), '--period', 'never']);
  const first = await runNow(server, 'stamped', 1);
  const second = await runNow(server, 'stamped', 2);
  assert.is(second.repro?.verdict, 'differs');
  assert.equal(second.repro?.changed, ['out/stamp.txt']);
  assert.equal([second.repro?.added, second.repro?.removed], [[], []]);

  const oldLine = readFileSync(join(first.dir, 'artifacts/out/stamp.txt'), 'utf8').split('\n')[1]!;
  const newLine = readFileSync(join(second.dir, 'artifacts/out/stamp.txt'), 'utf8').split('\n')[1]!;
  const c = await h.client(server, ['compare', first.uuid, second.uuid]);
  assert.is(c.code, 1, c.stderr);
  assert.match(c.stdout, 'changed out/stamp.txt');
  assert.match(c.stdout, oldLine);
  assert.match(c.stdout, newLine);
  assert.not.match(c.stdout, 'same.txt');
  const same = await h.client(server, ['compare', first.uuid, first.uuid]);
  assert.is(same.code, 0);

  // the stored report, beside the result, once made in the background
  const report = await eventually(async () => (await h.history<Run>(server, 'stamped'))[0]!.repro?.report, 60_000, 'the stored report');
  assert.is(report, join(second.dir, 'compare.txt'));
  assert.match(readFileSync(report, 'utf8'), newLine);

  const v = await h.client(server, ['verify', 'stamped']);
  assert.is(v.code, 1, v.stderr);
  assert.match(v.stdout, 'changed out/stamp.txt');
  assert.match(v.stderr, 'no other worker of debian was connected');
  const record = await h.client(server, ['history', 'stamped', '--repro']);
  assert.match(record.stdout, '0 of 2 compared runs reproduced the one before');
  assert.match(record.stdout, 'out/stamp.txt changed');
}));

t('the notify command fires once when a job stops reproducing and once when it reproduces again', withTimeout(60_000, async () => {
  const notified = h.path('notified.jsonl');
  const control = h.path('content');
  writeFileSync(h.path('notify.sh'), `#!/bin/sh\ncat >> '${notified}'\n`, { mode: 0o755 });
  const server = await h.server({ args: ['--notify-command', h.path('notify.sh')] });
  h.worker(server, 'local', ['--sandbox', 'process']);
  writeFileSync(control, 'one\n');
  await h.client(server, ['schedule', 'flip', 'local', h.script('flip', `cp '${control}' out.txt\n`), '--period', 'never']);
  await runNow(server, 'flip', 1);
  assert.is((await runNow(server, 'flip', 2)).repro?.verdict, 'reproduced');
  writeFileSync(control, 'two\n');
  const broke = await runNow(server, 'flip', 3);
  assert.is(broke.repro?.verdict, 'differs');
  await eventually(() => existsSync(notified) && readFileSync(notified, 'utf8').includes('stops-reproducing'), 15_000, 'the first notification');
  assert.is((await runNow(server, 'flip', 4)).repro?.verdict, 'reproduced');
  assert.is((await runNow(server, 'flip', 5)).repro?.verdict, 'reproduced');
  await eventually(() => readFileSync(notified, 'utf8').includes('reproduces-again'), 15_000, 'the second notification');
  await new Promise((r) => setTimeout(r, 500));
  const events = readFileSync(notified, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events.map((e) => e.event), ['stops-reproducing', 'reproduces-again']);
  assert.is(events[0].uuid, broke.uuid);
  assert.equal(events[0].changed, ['out.txt']);
  assert.is(events[0].job, 'flip');
  assert.match(events[0].report, /compare\.txt$/);
}));

t('verify and compare exit 2 on errors: no such job, nothing to compare with, a failed rebuild, an unknown run', withTimeout(60_000, async () => {
  const server = await h.server();
  h.worker(server, 'local', ['--sandbox', 'process']);
  const nojob = await h.client(server, ['verify', 'nope']);
  assert.is(nojob.code, 2);
  assert.match(nojob.stderr, 'no job named nope');
  writeFileSync(h.path('fail'), '1');
  await h.client(server, ['schedule', 'flaky', 'local', h.script('flaky', `exit $(cat '${h.path('fail')}')\n`), '--period', 'never']);
  await runNow(server, 'flaky', 1);
  const noref = await h.client(server, ['verify', 'flaky']);
  assert.is(noref.code, 2);
  assert.match(noref.stderr, 'no successful run on local to compare a rebuild with');
  writeFileSync(h.path('fail'), '0');
  await runNow(server, 'flaky', 2);
  writeFileSync(h.path('fail'), '5');
  const failing = await h.client(server, ['verify', 'flaky']);
  assert.is(failing.code, 2);
  assert.match(failing.stderr, 'did not succeed: exited 5');
  const unknown = await h.client(server, ['compare', '00000000-0000-4000-8000-000000000000', '00000000-0000-4000-8000-000000000001']);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, 'no run with uuid');
}));

t.run();
