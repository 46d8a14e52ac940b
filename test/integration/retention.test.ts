// Retention with the real programs on 500 stored runs: prune --dry-run lists and deletes
// nothing, prune deletes exactly what the rules allow (rows and directories), the survivors
// still inspect and fetch, check finds nothing wrong; a server started with --keep-days applies
// it at start.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DAY_MS } from '../../src/server/retention.js';
import { openStore } from '../../src/server/store/index.js';
import { Harness, bin, withTimeout } from '../helpers/processes.js';
import { storeRun } from '../helpers/stored-runs.js';

const t = suite('retention');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

/** bytes of every file under dir (directories themselves not counted) */
const du = (dir: string): number => readdirSync(dir, { withFileTypes: true })
  .reduce((n, e) => n + (e.isDirectory() ? du(join(dir, e.name)) : lstatSync(join(dir, e.name)).size), 0);

interface Filled { uuid: string; job: string; dir: string; bytes: number }

/**
 * 5 jobs of 100 runs each, newest first in `byJob`:
 *   a: all succeed, each compared with the one before (as tracking does); ranks 50 and 60 have pending uploads
 *   b: all fail but the oldest, which is the newest success
 *   c, d: all succeed, no comparisons; e: the same, but 40 days old
 */
async function fill(stateDir: string, now: number): Promise<Map<string, Filled[]>> {
  mkdirSync(stateDir, { recursive: true });
  const store = openStore(join(stateDir, 'state.db'));
  const byJob = new Map<string, Filled[]>();
  try {
    for (const job of ['a', 'b', 'c', 'd', 'e']) {
      const runs: Filled[] = [];
      for (let i = 99; i >= 0; i--) { // i: rank - 1, oldest first
        const finished = now - (job === 'e' ? 40 * DAY_MS : 0) - (i + 1) * 60_000;
        const result = job === 'b' && i < 99 ? { kind: 'exited' as const, code: 1 } : { kind: 'exited' as const, code: 0 };
        const r = await storeRun(store, stateDir, {
          job, finished, result, lines: [`run ${i}`], artifacts: [{ path: `out/${job}.bin`, data: randomBytes(8192) }],
        });
        runs.unshift({ ...r, job, bytes: du(r.dir) });
      }
      byJob.set(job, runs);
    }
    const a = byJob.get('a')!;
    store.tx(() => {
      for (let i = 0; i + 1 < a.length; i++) store.addComparison({ uuid: a[i]!.uuid, job: 'a', platform: 'p' }, a[i + 1]!.uuid, { verdict: 'reproduced' }, now);
      for (const i of [49, 59]) store.uploads.add(a[i]!.uuid, 'a', a[i]!.dir, now);
    });
  } finally {
    store.close();
  }
  return byJob;
}

t('500 runs: prune --dry-run lists, prune deletes exactly those, survivors inspect, check is clean; --keep-days applies at start', withTimeout(120_000, async () => {
  const stateDir = h.path('state');
  const byJob = await fill(stateDir, Date.now());
  const all = [...byJob.values()].flat();
  const results = join(stateDir, 'results');
  const before = du(results);
  const server = await h.server({ dir: stateDir });

  // a: ranks 21-100 may go, but rank 21 (rank 20's reference), 50 and 60 (pending) and 51 and 61
  // (their references) stay: 75. b: 79 (rank 100 is the newest success). c, d, e: 80 each.
  const expected = new Map([['a', 75], ['b', 79], ['c', 80], ['d', 80], ['e', 80]]);
  const kept = (job: string, i: number): boolean => i < 20 || (job === 'a' && [20, 49, 50, 59, 60].includes(i)) || (job === 'b' && i === 99);
  const going = all.filter((r) => !kept(r.job, byJob.get(r.job)!.indexOf(r)));
  assert.is(going.length, 394);

  const none = await h.client(server, ['prune', '--dry-run']);
  assert.is(none.code, 1, 'no policy configured and none given');
  assert.match(none.stderr, /keeps every run/);

  const dry = await h.client(server, ['prune', '--dry-run', '--keep-runs', '20', '--json']);
  assert.is(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout);
  assert.equal(plan.runs.map((r: { uuid: string }) => r.uuid).sort(), going.map((r) => r.uuid).sort());
  for (const [job, n] of expected) assert.is(plan.runs.filter((r: { job: string }) => r.job === job).length, n, job);
  assert.is(plan.deleted, 0);
  assert.is(du(results), before, 'a dry run deletes nothing');
  const text = await h.client(server, ['prune', '--dry-run', '--keep-runs', '20']);
  assert.match(text.stderr, /394 runs \(.*\) would be deleted \(keep-runs 20\)/);

  const done = await h.client(server, ['prune', '--keep-runs', '20']);
  assert.is(done.code, 0, done.stderr);
  assert.match(done.stderr, /deleted 394 runs/);
  for (const [job, n] of expected) assert.is((await historyAll(job)).length, 100 - n, job);
  const survivors = all.filter((r) => kept(r.job, byJob.get(r.job)!.indexOf(r)));
  assert.is(du(results), survivors.reduce((n, r) => n + r.bytes, 0) , 'disk usage: the survivors\' files and nothing else');
  assert.ok(going.every((r) => !existsSync(r.dir)));
  assert.is((await h.client(server, ['result', going[0]!.uuid])).code, 1, 'a deleted run is gone from the database');

  const oldest = byJob.get('b')![99]!;
  const inspected = await h.inspect([oldest.dir, '--json']);
  assert.is(inspected.code, 0, inspected.stderr);
  const fetched = await h.client(server, ['artifacts', oldest.uuid, '--output', h.path('dl')]);
  assert.is(fetched.code, 0, fetched.stderr);
  const console = await h.client(server, ['console', byJob.get('a')![60]!.uuid]);
  assert.match(console.stdout, /run 60/);

  const check = h.spawn(bin('server'), ['check', '--dir', stateDir], 'check');
  assert.is((await check.exited).code, 0, check.stdout + check.stderr);
  assert.match(check.stderr, /checked 106 runs, 106 artifacts .*: no problems/);

  // a restart with --keep-days 30: e's survivors are 40 days old, all but its newest success go at start
  server.proc.kill('SIGTERM');
  await server.proc.exited;
  const again = await h.server({ dir: stateDir, args: ['--keep-days', '30'] });
  await again.proc.waitFor(/retention: deleted old runs runs=19 keepDays=30/);
  assert.is((await historyAll('e', again)).length, 1);
  assert.is((await historyAll('a', again)).length, 25, 'recent runs are untouched');

  async function historyAll(job: string, s = server) {
    const r = await h.client(s, ['history', job, '--limit', '1000', '--json']);
    return JSON.parse(r.stdout) as unknown[];
  }
}));

t.run();
