// Read-only questions the web view and the metrics ask, paged so that a page costs the same with
// ten runs or a million: every listing is an index range (jobs by name, the primary keys of
// artifacts, comparisons and console). A job's runs are paged by key, not by OFFSET: a page
// starts after a cursor (finished, rowid) on runs_job (job, finished, and the rowid every index
// ends with), so the oldest page of a job with 100,000 runs costs what its newest does (OFFSET
// read every newer run: 284 ms there). The metrics' totals are the small tables migration 10's
// triggers keep. Nothing here writes, except writable(), which takes the write lock and lets
// go of it at once.
import type Database from 'better-sqlite3';
import type { Verdict } from '../../repro/compare.js';
import type { Outcome } from './comparisons.js';

/** A job on the front page, with its newest finished run (null columns: it never ran). */
export interface JobViewRow {
  name: string;
  kind: 'script' | 'orb';
  platform: string | null;
  package: string | null;
  period: string | null;
  cron: string | null;
  tz: string | null;
  next_run: number | null;
  last_uuid: string | null;
  last_started: number | null;
  last_finished: number | null;
  last_result: string | null;
}

/** A run in a listing, with its artifacts summed up and its verdict when it has one. */
export interface RunViewRow {
  /** with finished, the run's place in its job's listing (a page cursor) */
  rowid: number;
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  attempt: number;
  state: 'running' | 'finished';
  started: number;
  finished: number | null;
  result: string | null;
  artifacts: number;
  artifact_bytes: number;
  verdict: Verdict | null;
  against_uuid: string | null;
}

export interface JobStateViewRow { job: string; platform: string; outcome: Outcome; verdict: Verdict | null; uuid: string }

/** Finished runs counted by platform and result kind (success: exited 0). */
export interface FinishedCount { platform: string; kind: string; success: number; n: number }

/** A job's finished runs in order: where a page starts, exclusive. */
export interface RunCursor { finished: number; rowid: number }

const RUN_COLUMNS = `r.rowid AS rowid, r.uuid, r.job, r.platform, r.worker, r.attempt, r.state, r.started, r.finished, r.result,
  (SELECT COUNT(*) FROM artifacts a WHERE a.uuid = r.uuid) AS artifacts,
  (SELECT COALESCE(SUM(a.size), 0) FROM artifacts a WHERE a.uuid = r.uuid) AS artifact_bytes,
  c.verdict AS verdict, c.against_uuid AS against_uuid`;

export function viewStatements(db: Database.Database) {
  const q = {
    // the newest finished run of each job on the page, through runs_job (job, finished); the
    // page is cut from the jobs first, so the jobs skipped cost a step of the name index each
    // rather than a look-up of their last run too
    jobs: db.prepare<[number, number], JobViewRow>(
      `SELECT j.name, j.kind, j.platform, j.package, j.period, j.cron, j.tz, j.next_run,
              lr.uuid AS last_uuid, lr.started AS last_started, lr.finished AS last_finished, lr.result AS last_result
       FROM (SELECT * FROM jobs ORDER BY name LIMIT ? OFFSET ?) j LEFT JOIN runs lr ON lr.uuid = (
         SELECT r.uuid FROM runs r WHERE r.job = j.name AND r.finished IS NOT NULL ORDER BY r.finished DESC, r.rowid DESC LIMIT 1)
       ORDER BY j.name`,
    ),
    jobStatesOf: db.prepare<[string], JobStateViewRow>(
      'SELECT job, platform, outcome, verdict, uuid FROM job_state WHERE job = ? ORDER BY platform',
    ),
    queueLengths: db.prepare<[], { platform: string; n: number }>('SELECT platform, COUNT(*) AS n FROM queue GROUP BY platform ORDER BY platform'),
    queueHead: db.prepare<[string, number], { job: string; attempt: number; not_before: number }>(
      'SELECT job, attempt, not_before FROM queue WHERE platform = ? ORDER BY pos LIMIT ?',
    ),
    // "finished <= ? AND (finished < ? OR rowid < ?)" rather than a row value: the first term
    // is the index range, the second is read from the same index entries. INDEXED BY: the
    // range on finished alone would also fit runs_finished, which walks every job's runs; with
    // it SQLite fails the statement rather than plan around runs_job. EXPLAIN QUERY PLAN:
    // "SEARCH r USING INDEX runs_job (job=? AND finished>? AND finished<?)", no sort
    jobRunsNewest: db.prepare<[string, number], RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r INDEXED BY runs_job LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.job = ? AND r.finished IS NOT NULL ORDER BY r.finished DESC, r.rowid DESC LIMIT ?`,
    ),
    jobRunsBefore: db.prepare<{ job: string; finished: number; rowid: number; limit: number }, RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r INDEXED BY runs_job LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.job = @job AND r.finished IS NOT NULL AND r.finished <= @finished AND (r.finished < @finished OR r.rowid < @rowid)
       ORDER BY r.finished DESC, r.rowid DESC LIMIT @limit`,
    ),
    // oldest first: the caller turns the page around
    jobRunsAfter: db.prepare<{ job: string; finished: number; rowid: number; limit: number }, RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r INDEXED BY runs_job LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.job = @job AND r.finished IS NOT NULL AND r.finished >= @finished AND (r.finished > @finished OR r.rowid > @rowid)
       ORDER BY r.finished, r.rowid LIMIT @limit`,
    ),
    jobRunsOldest: db.prepare<[string, number], RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r INDEXED BY runs_job LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.job = ? AND r.finished IS NOT NULL ORDER BY r.finished, r.rowid LIMIT ?`,
    ),
    // ?page=N of before cursors: the runs skipped are read from the index alone (job, finished,
    // rowid), not the table, so it costs ~1 ms per 50,000 runs skipped
    jobRunAt: db.prepare<[string, number], RunCursor>(
      `SELECT finished, rowid FROM runs INDEXED BY runs_job WHERE job = ? AND finished IS NOT NULL
       ORDER BY finished DESC, rowid DESC LIMIT 1 OFFSET ?`,
    ),
    jobRunsOlderThan: db.prepare<{ job: string; finished: number; rowid: number }, { x: number }>(
      `SELECT 1 AS x FROM runs INDEXED BY runs_job WHERE job = @job AND finished IS NOT NULL
       AND finished <= @finished AND (finished < @finished OR rowid < @rowid) LIMIT 1`,
    ),
    jobRunsNewerThan: db.prepare<{ job: string; finished: number; rowid: number }, { x: number }>(
      `SELECT 1 AS x FROM runs INDEXED BY runs_job WHERE job = @job AND finished IS NOT NULL
       AND finished >= @finished AND (finished > @finished OR rowid > @rowid) LIMIT 1`,
    ),
    jobRunCount: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM runs WHERE job = ? AND finished IS NOT NULL'),
    runningOf: db.prepare<[string], RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.state = 'running' AND r.job = ? ORDER BY r.started DESC`,
    ),
    consoleAfter: db.prepare<[string, number, number], { seq: number; ms: number; data: Buffer }>(
      'SELECT seq, ms, data FROM console WHERE uuid = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    artifact: db.prepare<[string, string], { path: string; size: number; mode: number; sha256: string }>(
      'SELECT path, size, mode, sha256 FROM artifacts WHERE uuid = ? AND path = ?',
    ),
    // metrics: the totals migration 10's triggers keep, a few rows each
    finishedTotals: db.prepare<[], FinishedCount>('SELECT platform, kind, success, n FROM total_finished'),
    durationTotals: db.prepare<[], { platform: string; le: string; n: number; ms: number }>('SELECT platform, le, n, ms FROM total_durations'),
    verdictTotals: db.prepare<[], { platform: string; verdict: Verdict; n: number }>('SELECT platform, verdict, n FROM total_verdicts'),
    artifactBytesTotal: db.prepare<[], { bytes: number }>('SELECT bytes FROM total_artifact_bytes'),
  };
  return {
    /** a page of the schedule, by name */
    jobs: (limit: number, offset: number) => q.jobs.all(limit, offset),
    jobStatesOf: (job: string) => q.jobStatesOf.all(job),
    queueLengths: () => q.queueLengths.all(),
    queueHead: (platform: string, limit: number) => q.queueHead.all(platform, limit),
    /**
     * A page of a job's finished runs, newest first: the newest, those just before (older
     * than) or after (newer than) a cursor, or the oldest. A page after a cursor with fewer
     * than `limit` newer runs left is the newest page.
     */
    jobRuns: (job: string, limit: number, from: { before: RunCursor } | { after: RunCursor } | 'newest' | 'oldest'): RunViewRow[] => {
      if (from === 'newest') return q.jobRunsNewest.all(job, limit);
      if (from === 'oldest') return q.jobRunsOldest.all(job, limit).reverse();
      if ('before' in from) return q.jobRunsBefore.all({ job, limit, ...from.before });
      const rows = q.jobRunsAfter.all({ job, limit, ...from.after });
      return rows.length < limit ? q.jobRunsNewest.all(job, limit) : rows.reverse();
    },
    /** the cursor of the run `skip` runs from the newest (a page number's start), if there is one */
    jobRunAt: (job: string, skip: number): RunCursor | undefined => q.jobRunAt.get(job, skip),
    /** whether the job has finished runs older / newer than the cursor */
    jobRunsOlderThan: (job: string, c: RunCursor): boolean => q.jobRunsOlderThan.get({ job, ...c }) !== undefined,
    jobRunsNewerThan: (job: string, c: RunCursor): boolean => q.jobRunsNewerThan.get({ job, ...c }) !== undefined,
    jobRunCount: (job: string) => q.jobRunCount.get(job)!.n,
    runningOf: (job: string) => q.runningOf.all(job),
    /** a running run's console lines after `seq`, at most `limit` */
    consoleAfter: (uuid: string, seq: number, limit: number) => q.consoleAfter.all(uuid, seq, limit),
    artifact: (uuid: string, path: string) => q.artifact.get(uuid, path),
    /** finished runs since the database began, by platform, result kind and success */
    finishedTotals: () => q.finishedTotals.all(),
    /** finished runs by platform and duration bucket ("le", seconds, per bucket: not cumulative) with their summed ms */
    durationTotals: () => q.durationTotals.all(),
    verdictTotals: () => q.verdictTotals.all(),
    artifactBytesTotal: () => q.artifactBytesTotal.get()?.bytes ?? 0,
    /** null when the database takes a write lock, else why not */
    writable: (): string | null => {
      try {
        db.exec('BEGIN IMMEDIATE');
        db.exec('ROLLBACK');
        return null;
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        return `state database not writable: ${(err as Error).message}`;
      }
    },
  };
}
