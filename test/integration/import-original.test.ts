// Moving over from the original: `builder-server import-original` reads the state files and
// `full` results the original wrote (test/fixtures/original-state/), and a server started on the
// new state directory has the same schedule, queues, dropped platforms and results.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TAG, tlv } from '../../src/builder-web/der.js';
import { openStore } from '../../src/server/store/index.js';
import { Harness, bin, repoRoot, withTimeout } from '../helpers/processes.js';

const vectors = join(repoRoot, 'test', 'fixtures', 'original-state');
const UUID = '30573575-a041-4e57-a133-1790363f9e41';

const t = suite('import-original');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-import-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

/** An original state directory: its `state` file and its stored results. */
function oldDir(vector: 'basic' | 'after-run'): string {
  const dir = h.path(`old-${vector}`);
  mkdirSync(dir, { recursive: true });
  cpSync(join(vectors, `${vector}.state`), join(dir, 'state'));
  if (vector === 'after-run') cpSync(join(vectors, 'after-run'), dir, { recursive: true });
  return dir;
}

async function runImport(args: string[]) {
  const p = h.spawn(bin('server'), ['import-original', ...args], 'import');
  const { code } = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** The imported schedule straight from the store, before a server's scheduler moves next runs on. */
function storedJobs(state: string) {
  const store = openStore(join(state, 'state.db'));
  try {
    return {
      jobs: store.jobs().map((j) => ({ name: j.name, kind: j.kind, platform: j.platform, package: j.package, period: j.period,
        next: j.next_run === null ? null : new Date(j.next_run).toISOString(), timeout: j.timeout_sec, script: store.job(j.name)!.script })),
      queues: Object.fromEntries(store.platforms().map((p) => [p.name, store.queue(p.name).map((q) => q.job)])),
      dropped: store.platforms().filter((p) => p.dropped).map((p) => p.name),
    };
  } finally {
    store.close();
  }
}

const HELLO = '#!/bin/sh\necho hello from a daily job\nmkdir -p bin && echo x > bin/x\n';
const UNICODE = '#!/bin/sh\n# héllo unicode script\necho weekly\n';

t('basic.state: every job with its period and next run, every queue in order', withTimeout(30_000, async () => {
  const state = h.path('state');
  const r = await runImport([oldDir('basic'), '--dir', state]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), [
    'imported job manual-only (script on freebsd-14, never)',
    'imported job solo5-hvt (orb-build of solo5, weekly, next 2026-12-01T00:13:29.828Z)',
    'imported job weekly-unicode (script on ubuntu-24.04, weekly, next 2026-12-01T00:13:29.680Z)',
    'imported job nightly-hello (script on debian-12, daily, next 2026-11-25T00:13:29.632Z)',
    'imported job hourly-check (script on debian-12, hourly, next 2026-11-24T01:13:29.728Z)',
    'imported queue ubuntu-24.04: weekly-unicode, solo5-hvt',
    'imported queue freebsd-14: manual-only, solo5-hvt',
    'imported queue debian-12: nightly-hello, hourly-check, solo5-hvt',
    '8 imported, 0 not imported',
  ]);
  const s = storedJobs(state);
  assert.equal(s.jobs, [
    { name: 'hourly-check', kind: 'script', platform: 'debian-12', package: null, period: 'hourly', next: '2026-11-24T01:13:29.728Z', timeout: 3600, script: '#!/bin/sh\necho never\n' },
    { name: 'manual-only', kind: 'script', platform: 'freebsd-14', package: null, period: 'never', next: null, timeout: 3600, script: '#!/bin/sh\necho never\n' },
    { name: 'nightly-hello', kind: 'script', platform: 'debian-12', package: null, period: 'daily', next: '2026-11-25T00:13:29.632Z', timeout: 3600, script: HELLO },
    { name: 'solo5-hvt', kind: 'orb', platform: null, package: 'solo5', period: 'weekly', next: '2026-12-01T00:13:29.828Z', timeout: 3600, script: null },
    { name: 'weekly-unicode', kind: 'script', platform: 'ubuntu-24.04', package: null, period: 'weekly', next: '2026-12-01T00:13:29.680Z', timeout: 3600, script: UNICODE },
  ]);
  assert.equal(s.queues, {
    'debian-12': ['nightly-hello', 'hourly-check', 'solo5-hvt'],
    'freebsd-14': ['manual-only', 'solo5-hvt'],
    'ubuntu-24.04': ['weekly-unicode', 'solo5-hvt'],
  });
  assert.equal(s.dropped, []);

  // and a server on it serves them
  const server = await h.server({ dir: state });
  const info = await h.info(server);
  assert.equal(info.schedule.map((j: { name: string; period: string }) => [j.name, j.period]),
    [['hourly-check', 'hourly'], ['manual-only', 'never'], ['nightly-hello', 'daily'], ['solo5-hvt', 'weekly'], ['weekly-unicode', 'weekly']]);
  assert.equal(info.queues, s.queues);
}));

t('after-run: the dropped platform, the queues, and the stored result as a run history and builder-inspect show', withTimeout(30_000, async () => {
  const state = h.path('state');
  const r = await runImport([oldDir('after-run'), '--dir', state]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), [
    'imported dropped platform freebsd-14',
    'imported job solo5-hvt (orb-build of solo5, weekly, next 2026-12-01T00:13:29.828Z)',
    'imported job weekly-unicode (script on ubuntu-24.04, weekly, next 2026-12-01T00:13:29.680Z)',
    'imported job nightly-hello (script on debian-12, daily, next 2026-11-25T00:13:29.632Z)',
    'imported job hourly-check (script on debian-12, hourly, next 2026-11-24T01:13:29.728Z)',
    'imported queue ubuntu-24.04: weekly-unicode, solo5-hvt',
    'imported queue debian-12: hourly-check, solo5-hvt',
    `imported run ${UUID} of nightly-hello on debian-12 (exited 0, finished 2026-11-24T00:13:38.064Z, 1 console line, 1 artifact)`,
    '8 imported, 0 not imported',
  ]);
  const s = storedJobs(state);
  assert.equal(s.jobs.map((j) => j.name), ['hourly-check', 'nightly-hello', 'solo5-hvt', 'weekly-unicode']);
  assert.equal(s.queues, { 'debian-12': ['hourly-check', 'solo5-hvt'], 'freebsd-14': [], 'ubuntu-24.04': ['weekly-unicode', 'solo5-hvt'] });
  assert.equal(s.dropped, ['freebsd-14']);

  const server = await h.server({ dir: state });
  const info = await h.info(server);
  assert.equal(info.dropped, ['freebsd-14']);
  // the imported queues, then nightly-hello, whose imported next run (2026-11-25) has passed:
  // the scheduler queues a job that missed its runs once at start, as after any downtime
  assert.equal(info.queues, { 'debian-12': ['hourly-check', 'solo5-hvt', 'nightly-hello'], 'ubuntu-24.04': ['weekly-unicode', 'solo5-hvt'] });
  const [run, ...more] = await h.history(server);
  assert.is(more.length, 0);
  assert.equal({ uuid: run.uuid, job: run.job, platform: run.platform, worker: run.worker, result: run.result, started: run.started, finished: run.finished },
    { uuid: UUID, job: 'nightly-hello', platform: 'debian-12', worker: 'original-builder', result: { kind: 'exited', code: 0 },
      started: '2026-11-24T00:13:38.001Z', finished: '2026-11-24T00:13:38.064Z' });
  assert.is(run.dir, join(state, 'results', 'nightly-hello', UUID));
  assert.is(readFileSync(join(run.dir, 'artifacts', 'bin', 'x'), 'utf8'), 'x\n');

  const shown = await h.inspect(['--dir', state, UUID]);
  assert.is(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /result:\s+exited 0/);
  assert.match(shown.stdout, /bin\/x \(2 bytes\)/);
  const cons = await h.inspect(['--dir', state, UUID, '--console']);
  assert.match(cons.stdout, /\+0\.062s hello from a daily job/);
  const script = await h.inspect(['--dir', state, UUID, '--script']);
  assert.is(script.stdout, HELLO);
}));

const utf8 = (s: string) => tlv(TAG.UTF8String, Buffer.from(s));
const scriptJob = (name: string, platform: string) => tlv(TAG.explicit(0), tlv(TAG.SEQUENCE, utf8(name), utf8('true\n'), tlv(TAG.SEQUENCE), utf8(platform)));

t('what cannot come over is named with its reason, the rest is imported, and the exit status is 1', withTimeout(30_000, async () => {
  const old = h.path('old');
  mkdirSync(join(old, 'broken', '11111111-2222-3333-4444-555555555555'), { recursive: true });
  writeFileSync(join(old, 'broken', '11111111-2222-3333-4444-555555555555', 'full'), 'not DER');
  cpSync(join(vectors, 'after-run'), old, { recursive: true });
  const schedule = tlv(TAG.explicit(3), tlv(TAG.SEQUENCE, tlv(TAG.GeneralizedTime, Buffer.from('20270101000000Z')),
    tlv(TAG.explicit(0), tlv(TAG.NULL)), scriptJob('kept', 'p')));
  const badName = tlv(TAG.explicit(3), tlv(TAG.SEQUENCE, tlv(TAG.GeneralizedTime, Buffer.from('20270101000000Z')),
    tlv(TAG.explicit(0), tlv(TAG.NULL)), scriptJob('no spaces', 'p')));
  const queue = tlv(TAG.explicit(4), tlv(TAG.SEQUENCE, utf8('p'), tlv(TAG.SEQUENCE, scriptJob('gone', 'p'), scriptJob('kept', 'p'))));
  writeFileSync(join(old, 'state'), tlv(TAG.SEQUENCE, schedule, badName, queue));
  const state = h.path('state');
  const r = await runImport([old, '--dir', state]);
  assert.is(r.code, 1);
  assert.equal(r.stdout.trim().split('\n'), [
    'imported job kept (script on p, hourly, next 2027-01-01T00:00:00.000Z)',
    'not imported: job no spaces (script on p, hourly, next 2027-01-01T00:00:00.000Z): invalid job name "no spaces": use letters, digits and . _ + - (up to 128, not starting with a symbol)',
    'not imported: queue entry gone on p: no such job in the schedule (unscheduled after it was queued)',
    'imported queue p: kept',
    `not imported: result ${join(old, 'broken', '11111111-2222-3333-4444-555555555555', 'full')}: expected the exec record [0] EXPLICIT as [0] EXPLICIT (0xa0), got tag 0x6e (at byte 0)`,
    `imported run ${UUID} of nightly-hello on debian-12 (exited 0, finished 2026-11-24T00:13:38.064Z, 1 console line, 1 artifact)`,
    '3 imported, 3 not imported',
  ]);
  assert.equal(storedJobs(state).queues, { p: ['kept'] });
}));

t('refused into a state directory with jobs (unless --merge), while a server uses it, and without OLD_STATEDIR', withTimeout(30_000, async () => {
  const state = h.path('state');
  assert.is((await runImport([oldDir('basic'), '--dir', state])).code, 0);
  const again = await runImport([oldDir('basic'), '--dir', state]);
  assert.is(again.code, 1);
  assert.match(again.stderr, /has jobs or runs already; import into an empty state directory, or give --merge/);
  const merged = await runImport([oldDir('after-run'), '--dir', state, '--merge']);
  assert.is(merged.code, 1, 'the jobs that exist already are not imported again');
  assert.match(merged.stdout, /not imported: job nightly-hello \(script on debian-12, daily, next 2026-11-25T00:13:29\.632Z\): a job of that name exists already/);
  assert.match(merged.stdout, /imported dropped platform freebsd-14/);
  assert.match(merged.stdout, new RegExp(`imported run ${UUID} of nightly-hello`));

  const server = await h.server({ dir: h.path('busy') });
  const busy = await runImport([oldDir('basic'), '--dir', server.dir]);
  assert.is(busy.code, 1);
  assert.match(busy.stderr, /state\.db is in use \(is a builder-server running on this state directory\? stop it first\)/);
  assert.is((await h.info(server)).schedule.length, 0, 'nothing was imported under the running server');

  const usage = await runImport([]);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /import-original needs OLD_STATEDIR/);
}));

t.run();
