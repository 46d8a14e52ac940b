// The scale bench's set-up, untimed: state databases filled before the server starts. Jobs and
// queue entries go through the store (its own statements, in transactions of 10,000); a million
// runs go in with one INSERT ... SELECT over a counter in SQL, which takes seconds where a
// million store calls would take minutes. The rows are shaped as the server writes them.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../src/server/store/index.js';
import type { Period } from '../src/protocol/messages.js';

export const jobName = (i: number): string => `job-${String(i).padStart(6, '0')}`;

export interface JobSeed {
  count: number;
  platform: string;
  /** when the jobs are next due (ms); null: never */
  nextRun: number | null;
  period?: Period;
  cron?: string;
  /** also put every job in its platform's queue (a fresh schedule: each new job is queued at once) */
  queued?: boolean;
  /** the first job's number (names job-NNNNNN) */
  from?: number;
}

/** Creates the state directory (0700) and fills its state.db with jobs. */
export function seedJobs(stateDir: string, seed: JobSeed): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const store = openStore(join(stateDir, 'state.db'));
  try {
    const now = Date.now();
    const from = seed.from ?? 0;
    store.tx(() => store.addPlatform(seed.platform));
    for (let start = 0; start < seed.count; start += 10_000) {
      store.tx(() => {
        for (let i = start; i < Math.min(seed.count, start + 10_000); i++) {
          const name = jobName(from + i);
          store.insertJob({
            name, kind: 'script', platform: seed.platform, script: `echo job ${i}\n`, package: null,
            period: seed.cron !== undefined ? null : (seed.period ?? 'daily'), cron: seed.cron ?? null, tz: seed.cron !== undefined ? 'UTC' : null,
            timeout_sec: 3600, next_run: seed.nextRun, created: now,
          });
          if (seed.queued) store.enqueue(seed.platform, name);
        }
      });
    }
  } finally {
    store.close();
  }
}

export interface RunSeed {
  runs: number;
  /** jobs the runs are spread over (job-000000...); one more job, `hot`, gets `hotShare` of them */
  jobs: number;
  hotShare: number;
  platform: string;
}

export const HOT_JOB = 'hot';
export const RUNS_T0 = Date.parse('2025-01-01T00:00:00Z');

/** A uuid-shaped id for run number i, so lookups by uuid work as on a real server. */
export const runUuid = (i: number): string =>
  `${(i >>> 16).toString(16).padStart(8, '0')}-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

/**
 * Adds `runs` finished runs (one a minute from RUNS_T0, every 7th failed) with a comparison for
 * each successful one, and each job's reproducibility state; in one transaction, without fsyncs
 * (a set-up that crashes is simply made again).
 */
export function seedRuns(stateDir: string, seed: RunSeed): void {
  const db = new Database(join(stateDir, 'state.db'));
  try {
    db.pragma('synchronous = OFF');
    const hotEvery = Math.max(1, Math.round(1 / seed.hotShare));
    db.transaction(() => {
      db.prepare(
        `INSERT INTO jobs (name, kind, platform, script, package, period, cron, tz, timeout_sec, next_run, created, source_date_epoch)
         VALUES (?, 'script', ?, 'true', NULL, 'daily', NULL, NULL, 3600, NULL, ?, ?)`,
      ).run(HOT_JOB, seed.platform, RUNS_T0, RUNS_T0 / 1000);
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @runs)
         INSERT INTO runs (uuid, job, platform, worker, script, attempt, timeout_sec, state, started, finished, result, stats, refusals, dir, secret)
         SELECT printf('%08x-0000-4000-8000-%012x', i >> 16, i),
                CASE WHEN i % @hotEvery = 0 THEN @hot ELSE printf('job-%06d', i % @jobs) END,
                @platform, printf('w-%d', i % 50), 'true', 1, 3600, 'finished',
                @t0 + i * 60000, @t0 + i * 60000 + 30000,
                CASE WHEN i % 7 = 3 THEN '{"kind":"exited","code":1}' ELSE '{"kind":"exited","code":0}' END,
                '{"cpuMs":100}', '[]', @dir || '/results/' || printf('job-%06d', i % @jobs) || '/' || i, NULL
         FROM n`,
      ).run({ runs: seed.runs, hotEvery, hot: HOT_JOB, jobs: seed.jobs, platform: seed.platform, t0: RUNS_T0, dir: stateDir });
      // each successful run compared with the one before it: "reproduced" mostly
      db.prepare(
        `INSERT INTO comparisons (uuid, job, platform, against_uuid, verdict, changed, added, removed, report, created)
         SELECT uuid, job, platform, uuid, CASE WHEN rowid % 5 = 0 THEN 'differs' ELSE 'reproduced' END, '[]', '[]', '[]', NULL, finished
         FROM runs WHERE result = '{"kind":"exited","code":0}'`,
      ).run();
      db.prepare(
        `INSERT OR REPLACE INTO job_state (job, platform, outcome, verdict, uuid, updated)
         SELECT job, platform, 'ok', 'reproduced', MAX(uuid), MAX(finished) FROM runs GROUP BY job, platform`,
      ).run();
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}
