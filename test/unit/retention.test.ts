// Retention's rules with a real store and real result directories, at a fixed time: what goes
// by count and by age, and what always stays (the newest success per platform, pending uploads,
// the runs kept runs were compared against, one step deep).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../src/common/log.js';
import type { RunResult } from '../../src/protocol/messages.js';
import { DAY_MS, Retention, type RetentionPolicy } from '../../src/server/retention.js';
import { openStore, type Store } from '../../src/server/store/index.js';
import { storeRun } from '../helpers/stored-runs.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const NOW = Date.parse('2026-06-01T00:00:00Z');
const OK: RunResult = { kind: 'exited', code: 0 };
const FAIL: RunResult = { kind: 'exited', code: 1 };

const t = suite('retention');
let dir: string;
let store: Store;
t.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'builder-retention-'));
  store = openStore(join(dir, 'state.db'));
});
t.after.each(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const retention = (policy: Partial<RetentionPolicy>): Retention =>
  new Retention({ store, stateDir: dir, log: quiet, policy: { keepRuns: null, keepDays: null, ...policy }, now: () => NOW });

/** Stores runs of a job, oldest first, one hour apart, the last finishing an hour before NOW; returns uuids newest first. */
async function runs(job: string, results: RunResult[], opts: { platform?: (i: number) => string; ageDays?: number } = {}): Promise<string[]> {
  const uuids: string[] = [];
  for (const [i, result] of results.entries()) {
    const finished = NOW - (opts.ageDays ?? 0) * DAY_MS - (results.length - i) * 3_600_000;
    const { uuid } = await storeRun(store, dir, {
      job, finished, result, platform: opts.platform?.(i) ?? 'p', artifacts: [{ path: 'out.txt', data: Buffer.from(`${job} ${i}\n`) }],
    });
    uuids.unshift(uuid);
  }
  return uuids;
}

const compareChain = (job: string, newestFirst: string[]): void => {
  for (let i = 0; i + 1 < newestFirst.length; i++) {
    store.addComparison({ uuid: newestFirst[i]!, job, platform: 'p' }, newestFirst[i + 1]!, { verdict: 'reproduced' }, NOW);
  }
};

const alive = (uuid: string): boolean => store.run(uuid) !== undefined;

t('keep-runs deletes all but the newest N runs of each job, keeping the newest success whatever its age', async () => {
  // newest first: three failures, then the newest success, then two older successes
  const r = await runs('a', [OK, OK, OK, FAIL, FAIL, FAIL]);
  const other = await runs('b', [OK, OK]);
  const before = r.map((u) => store.run(u)!.dir!);
  const plan = await retention({ keepRuns: 2 }).plan();
  assert.equal(plan.map((p) => p.uuid), [r[5], r[4], r[2]], 'oldest first: ranks 6, 5 and 3; rank 4 is the newest success');
  assert.ok(plan.every((p) => p.reason === 'count' && p.job === 'a' && p.artifactBytes === 4));
  assert.ok(r.every(alive), 'a plan deletes nothing');

  const done = await retention({ keepRuns: 2 }).prune();
  assert.is(done.deleted, 3);
  assert.equal(r.map(alive), [true, true, false, true, false, false]);
  assert.equal(before.map((d) => existsSync(d)), [true, true, false, true, false, false], 'directories go with their rows');
  assert.equal(store.artifacts(r[2]!), [], 'artifact rows go too');
  assert.is(store.artifacts(r[3]!).length, 1);
  assert.ok(other.every(alive), 'another job within its limit is untouched');
});

t('a run with a pending upload stays, and so does the run each kept run was compared against, one step deep', async () => {
  const r = await runs('c', [OK, OK, OK, OK, OK, OK, OK]);
  compareChain('c', r);
  store.tx(() => {
    store.uploads.add(r[4]!, 'c', store.run(r[4]!)!.dir!, NOW); // pending
    store.uploads.add(r[6]!, 'c', store.run(r[6]!)!.dir!, NOW);
    store.uploads.settle(r[6]!, 'failed', null, 'gone', NOW); // not pending: no protection
  });
  const done = await retention({ keepRuns: 2 }).prune();
  // rank 3: the reference of kept rank 2; rank 5: pending; rank 6: the reference of rank 5 (kept);
  // rank 4 is only the reference of rank 3, which is kept as a reference itself: not kept
  assert.equal(done.runs.map((p) => p.uuid).sort(), [r[3], r[6]].sort());
  assert.equal(r.map(alive), [true, true, true, false, true, true, false]);
  assert.is(store.comparison(r[3]!), undefined, 'the deleted run\'s comparison goes');
  assert.is(store.comparison(r[2]!)?.against_uuid, r[3], 'a run kept as a reference keeps its own comparison, though that one names a deleted run');
  assert.is(store.uploads.get(r[6]!), undefined, 'its upload row goes');
  assert.is(store.uploads.get(r[4]!)?.state, 'pending');
});

t('keep-days deletes runs older than D days; per platform the newest success stays; an emptied job directory goes', async () => {
  const old = await runs('d', [OK, FAIL, OK, FAIL], { platform: (i) => (i < 2 ? 'p1' : 'p2'), ageDays: 40 });
  const recent = await runs('d', [FAIL, FAIL], { platform: () => 'p1' });
  const failing = await runs('e', [FAIL, FAIL], { ageDays: 40 });
  const done = await retention({ keepDays: 30 }).prune();
  assert.ok(done.runs.every((p) => p.reason === 'age'));
  // old, newest first: [FAIL p2, OK p2, FAIL p1, OK p1]: both OKs are their platform's newest success
  assert.equal(old.map(alive), [false, true, false, true]);
  assert.ok(recent.every(alive));
  assert.ok(failing.every((u) => !alive(u)), 'a job that never succeeded has nothing to keep');
  assert.not.ok(existsSync(join(dir, 'results', 'e')), 'the emptied job directory is removed');
  assert.ok(existsSync(join(dir, 'results', 'd')));
});

t('no limits: nothing is planned or deleted', async () => {
  const r = await runs('f', [FAIL, FAIL, FAIL]);
  assert.equal(await retention({}).plan(), []);
  assert.ok(r.every(alive));
});

t.run();
