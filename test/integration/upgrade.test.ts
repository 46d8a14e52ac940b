// An upgrade keeps everything: a database made by the migrations of release 0.1.0 (the first
// three; 0.1.0 shipped exactly those), filled with plain SQL the way 0.1.0 wrote its rows, is
// opened by the current server, which migrates it to whatever is current (so every migration
// added later is covered by this test too) and serves every job, queue entry, result and upload.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrations } from '../../src/server/store/migrations.js';
import { Harness, bin, withTimeout } from '../helpers/processes.js';

/** The schema version of release 0.1.0. */
const RELEASED_SCHEMA = 3;

const t = suite('upgrade');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-upgrade-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const DAY = 86_400_000;
const uuid = (n: number) => `0000000${n}-0000-4000-8000-00000000000${n}`;

/** A result directory as 0.1.0 wrote it: console, script, run.json, artifacts/. */
function resultDir(state: string, job: string, id: string, started: number): string {
  const dir = join(state, 'results', job, id);
  mkdirSync(join(dir, 'artifacts', 'bin'), { recursive: true });
  writeFileSync(join(dir, 'artifacts', 'bin', 'tool'), 'binary\n');
  writeFileSync(join(dir, 'console'), '5 compiling\n40 done\n');
  writeFileSync(join(dir, 'script'), 'make\n');
  writeFileSync(join(dir, 'run.json'), JSON.stringify({
    uuid: id, job, platform: 'debian-12', worker: 'w1', attempt: 1, started: new Date(started).toISOString(),
    finished: new Date(started + 1000).toISOString(), result: { kind: 'exited', code: 0 }, stats: { peakMemoryBytes: 1024, cpuMs: 7 },
    refusals: [], artifacts: [{ path: 'bin/tool', size: 7, mode: 0o755, sha256: createHash('sha256').update('binary\n').digest('hex') }],
  }, null, 2) + '\n');
  return dir;
}

function releasedDatabase(state: string, now: number): void {
  mkdirSync(state, { recursive: true });
  const db = new Database(join(state, 'state.db'));
  db.pragma('journal_mode = WAL');
  for (let v = 0; v < RELEASED_SCHEMA; v++) db.exec(migrations[v]!);
  db.pragma(`user_version = ${RELEASED_SCHEMA}`);
  const job = db.prepare(`INSERT INTO jobs (name, kind, platform, script, package, period, cron, tz, timeout_sec, next_run, created)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  job.run('hello', 'script', 'debian-12', 'echo hello\n', null, 'daily', null, null, 3600, now + DAY, now - 10 * DAY);
  job.run('mondays', 'script', 'freebsd-14', 'make\n', null, null, '0 3 * * 1', 'Europe/Berlin', 600, now + 2 * DAY, now - 9 * DAY);
  job.run('solo5', 'orb', null, null, 'solo5', 'weekly', null, null, 3600, now + 3 * DAY, now - 8 * DAY);
  job.run('by-hand', 'script', 'debian-12', 'true\n', null, 'never', null, null, 3600, null, now - 7 * DAY);
  const platform = db.prepare('INSERT INTO platforms (name, dropped) VALUES (?, ?)');
  platform.run('debian-12', 0);
  platform.run('freebsd-14', 0);
  platform.run('gone', 1);
  const queue = db.prepare('INSERT INTO queue (platform, job, pos, attempt, not_before) VALUES (?, ?, ?, ?, ?)');
  queue.run('debian-12', 'solo5', 1, 1, 0);
  queue.run('debian-12', 'hello', 2, 2, now + DAY);
  queue.run('freebsd-14', 'mondays', -1, 1, 0);
  const run = db.prepare(`INSERT INTO runs (uuid, job, platform, worker, script, attempt, timeout_sec, state, started, finished, result, stats, refusals, dir)
    VALUES (?, ?, 'debian-12', 'w1', 'make\n', 1, 3600, 'finished', ?, ?, ?, ?, '[]', ?)`);
  const artifact = db.prepare('INSERT INTO artifacts (uuid, path, size, mode, sha256) VALUES (?, ?, ?, ?, ?)');
  const upload = db.prepare(`INSERT INTO uploads (uuid, job, dir, state, attempts, next_attempt, last_error, created, updated)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const states = [
    ['pending', 2, now + DAY, 'HTTP 503'],
    ['uploaded', 1, null, null],
    ['refused', 1, null, 'HTTP 400: bad record'],
    ['failed', 5, null, 'connect ECONNREFUSED'],
  ] as const;
  states.forEach(([upState, attempts, next, error], i) => {
    const id = uuid(i + 1);
    const started = now - (5 - i) * DAY;
    const dir = resultDir(state, 'hello', id, started);
    run.run(id, 'hello', started, started + 1000, JSON.stringify({ kind: 'exited', code: 0 }), JSON.stringify({ peakMemoryBytes: 1024, cpuMs: 7 }), dir);
    artifact.run(id, 'bin/tool', 7, 0o755, createHash('sha256').update('binary\n').digest('hex'));
    upload.run(id, 'hello', dir, upState, attempts, next, error, started + 1000, started + 2000);
  });
  db.prepare('INSERT INTO upload_settings (key, value) VALUES (?, ?)').run('enabled_since', String(now - 10 * DAY));
  db.close();
}

t('a database of the released schema, opened by this server, keeps every job, queue entry, result and upload state', withTimeout(60_000, async () => {
  const state = h.path('state');
  const now = Date.now();
  releasedDatabase(state, now);
  // builder-web is never reached: the pending upload waits a day, the rest are settled
  const server = await h.server({ dir: state, args: ['--upload', 'http://127.0.0.1:9/upload'] });

  const info = await h.info(server);
  assert.equal(info.schedule.map((j: Record<string, unknown>) => [j.name, j.kind, j.platform, j.package, j.period, j.cron, j.tz, j.timeoutSec, j.next]), [
    ['by-hand', 'script', 'debian-12', null, 'never', null, null, 3600, null],
    ['hello', 'script', 'debian-12', null, 'daily', null, null, 3600, new Date(now + DAY).toISOString()],
    ['mondays', 'script', 'freebsd-14', null, null, '0 3 * * 1', 'Europe/Berlin', 600, new Date(now + 2 * DAY).toISOString()],
    ['solo5', 'orb', null, 'solo5', 'weekly', null, null, 3600, new Date(now + 3 * DAY).toISOString()],
  ]);
  assert.equal(info.queues, { 'debian-12': ['solo5', 'hello'], 'freebsd-14': ['mondays'] });
  assert.equal(info.dropped, ['gone']);

  const history = await h.history(server);
  assert.equal(history.map((r) => [r.uuid, r.job, r.result, r.stats]), [4, 3, 2, 1].map((n) =>
    [uuid(n), 'hello', { kind: 'exited', code: 0 }, { peakMemoryBytes: 1024, cpuMs: 7 }]));
  const shown = await h.inspect(['--dir', state, uuid(1), '--console']);
  assert.is(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /compiling(.|\n)*done/);
  const job = await h.inspect(['--dir', state, uuid(2)]);
  assert.match(job.stdout, /bin\/tool \(7 bytes\)/);

  const uploads = await h.client(server, ['uploads', '--json']);
  assert.is(uploads.code, 0, uploads.stderr);
  const reply = JSON.parse(uploads.stdout);
  assert.equal(reply.counts, { pending: 1, uploaded: 1, refused: 1, failed: 1 });
  const byUuid = Object.fromEntries(reply.uploads.map((u: { uuid: string; state: string; attempts: number; lastError?: string | null }) =>
    [u.uuid, [u.state, u.attempts]]));
  assert.equal(byUuid, { [uuid(1)]: ['pending', 2], [uuid(2)]: ['uploaded', 1], [uuid(3)]: ['refused', 1], [uuid(4)]: ['failed', 5] });
  assert.match(uploads.stdout, /HTTP 400: bad record/);
  assert.match(uploads.stdout, /connect ECONNREFUSED/);

  // the migrated database is at the current version and sound
  await server.proc.kill();
  await server.proc.exited;
  const db = new Database(join(state, 'state.db'), { readonly: true });
  assert.is(db.pragma('user_version', { simple: true }), migrations.length);
  assert.is(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
}));

t('a database newer than this server is refused, untouched', withTimeout(30_000, async () => {
  const state = h.path('state');
  mkdirSync(state, { recursive: true });
  const db = new Database(join(state, 'state.db'));
  db.pragma(`user_version = ${migrations.length + 1}`);
  db.close();
  const p = h.spawn(bin('server'), ['--dir', state, '--port', '0'], 'server');
  const { code } = await p.exited;
  assert.is(code, 1);
  assert.match(p.stderr, new RegExp(`has schema version ${migrations.length + 1}, newer than this builder-server knows \\(${migrations.length}\\)`));
}));

t.run();
