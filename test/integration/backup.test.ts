// `builder-server backup` under load: a real server with a worker running jobs and a client
// scheduling in a loop while the backup runs; the backup, restored into a new state directory,
// starts a new server that has every job, queue entry and finished run the backup holds.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, bin, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('backup');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-backup-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

async function serverCommand(args: string[]) {
  const p = h.spawn(bin('server'), args, args[0]!);
  const { code } = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** What a database file holds, read with plain SQL (the backup is checked as a file, not through us). */
function contents(file: string) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return {
      integrity: db.pragma('integrity_check', { simple: true }),
      jobs: (db.prepare('SELECT name FROM jobs ORDER BY name').all() as Array<{ name: string }>).map((r) => r.name),
      queue: (db.prepare('SELECT platform, job FROM queue ORDER BY platform, pos').all() as Array<{ platform: string; job: string }>)
        .map((r) => `${r.platform}/${r.job}`),
      finished: (db.prepare("SELECT uuid, job FROM runs WHERE state = 'finished' ORDER BY uuid").all() as Array<{ uuid: string; job: string }>),
      running: (db.prepare("SELECT uuid FROM runs WHERE state = 'running'").all() as Array<{ uuid: string }>).map((r) => r.uuid),
    };
  } finally {
    db.close();
  }
}

t('a backup taken under load restores into a new server with every job, queue entry and finished run it holds', withTimeout(120_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  // a client scheduling in a loop: jobs on a platform with a worker (they run, and leave results
  // with artifacts) and on one without (they stay queued)
  let scheduling = true;
  let scheduled = 0;
  const loop = (async () => {
    const script = h.script('job', 'echo building\nmkdir -p out && echo artefact > out/a.txt\n');
    while (scheduling) {
      const n = scheduled++;
      const r = await h.client(server, ['schedule', `job-${n}`, n % 3 === 2 ? 'nobody' : 'p', script]);
      assert.is(r.code, 0, r.stderr);
    }
  })();
  await eventually(async () => (await h.history(server)).length >= 3, 30_000, 'a few finished runs');

  const backupDir = h.path('backup');
  mkdirSync(backupDir);
  const file = join(backupDir, 'state.db');
  // several backups while the load goes on: each replaces the last, results are copied once
  for (let i = 0; i < 3; i++) {
    const b = await serverCommand(['backup', file, '--dir', server.dir, '--with-results']);
    assert.is(b.code, 0, b.stderr);
    assert.match(b.stdout, new RegExp(`^backed up ${server.dir}/state\\.db to ${file} \\(\\d+ pages, schema version \\d+\\)\\ncopied \\d+ result directories to ${backupDir}/results \\(\\d+ were there already\\)\\n$`));
  }
  scheduling = false;
  await loop;
  assert.is(statSync(file).mode & 0o777, 0o600, 'the backup holds every script: owner only');
  assert.not.ok(existsSync(`${file}.tmp`));

  const saved = contents(file);
  assert.is(saved.integrity, 'ok');
  assert.ok(saved.jobs.length >= 3 && saved.finished.length >= 3, `a backup with substance: ${saved.jobs.length} jobs, ${saved.finished.length} finished runs`);
  assert.ok(saved.queue.some((q) => q.startsWith('nobody/')), 'queue entries that stay queued');

  // restore into a new state directory and start a new server there
  const restoredDir = h.path('restored');
  const restore = await serverCommand(['restore', file, '--dir', restoredDir, '--results', join(backupDir, 'results')]);
  assert.is(restore.code, 0, restore.stderr);
  assert.is(contents(join(restoredDir, 'state.db')).integrity, 'ok');
  const again = await h.server({ dir: restoredDir });
  const info = await h.info(again);
  assert.equal(info.schedule.map((j: { name: string }) => j.name).sort(), [...saved.jobs].sort());
  const queued = Object.entries(info.queues as Record<string, string[]>).flatMap(([p, jobs]) => jobs.map((j) => `${p}/${j}`));
  for (const q of saved.queue) assert.ok(queued.includes(q), `queue entry ${q} restored`);
  const history = await h.client(again, ['history', '--limit', '10000', '--json']);
  const runs = JSON.parse(history.stdout) as Array<{ uuid: string; job: string; dir: string; result: unknown }>;
  assert.equal(runs.map((r) => ({ uuid: r.uuid, job: r.job })).sort((a, b) => (a.uuid < b.uuid ? -1 : 1)), saved.finished);
  for (const run of runs) {
    assert.is(run.dir, join(restoredDir, 'results', run.job, run.uuid), 'result paths point into the new state directory');
    assert.is(readFileSync(join(run.dir, 'artifacts', 'out', 'a.txt'), 'utf8'), 'artefact\n');
    const shown = await h.inspect(['--dir', restoredDir, run.uuid]);
    assert.is(shown.code, 0, shown.stderr);
  }
  // the runs the backup caught running are not lost either: they wait for their worker's lease
  assert.equal(info.running.map((r: { uuid: string }) => r.uuid).sort(), [...saved.running].sort());
}));

t('restore refuses a state directory that has a database, and backup needs a state database', withTimeout(30_000, async () => {
  const server = await h.server();
  const file = h.path('b.db');
  assert.is((await serverCommand(['backup', file, '--dir', server.dir])).code, 0);
  const over = await serverCommand(['restore', file, '--dir', server.dir]);
  assert.is(over.code, 1);
  assert.match(over.stderr, /state\.db exists; move it \(and its -wal and -shm\) away first, with the server stopped/);
  const none = await serverCommand(['backup', h.path('x.db'), '--dir', h.path('nothing')]);
  assert.is(none.code, 1);
  assert.match(none.stderr, /nothing\/state\.db: no state database/);
  const usage = await serverCommand(['backup']);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /backup needs the FILE to write \(try builder-server backup --help\)/);
}));

t.run();
