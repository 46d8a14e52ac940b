// Read-only questions the web view and the metrics ask, paged so that a page costs the same with
// ten runs or ten thousand: every listing is an index range (jobs by name, runs_job for a job's
// runs newest first, the primary keys of artifacts, comparisons and console) with LIMIT/OFFSET.
// Nothing here writes, except writable(), which takes the write lock and lets go of it at once.
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

/** Finished runs counted by platform and result kind (ok: exited 0). */
export interface FinishedCount { platform: string; kind: string; ok: number; n: number }

const RUN_COLUMNS = `r.uuid, r.job, r.platform, r.worker, r.attempt, r.state, r.started, r.finished, r.result,
  (SELECT COUNT(*) FROM artifacts a WHERE a.uuid = r.uuid) AS artifacts,
  (SELECT COALESCE(SUM(a.size), 0) FROM artifacts a WHERE a.uuid = r.uuid) AS artifact_bytes,
  c.verdict AS verdict, c.against_uuid AS against_uuid`;

export function viewStatements(db: Database.Database) {
  const q = {
    // the newest finished run of each job on the page, through runs_job (job, finished)
    jobs: db.prepare<[number, number], JobViewRow>(
      `SELECT j.name, j.kind, j.platform, j.package, j.period, j.cron, j.tz, j.next_run,
              lr.uuid AS last_uuid, lr.started AS last_started, lr.finished AS last_finished, lr.result AS last_result
       FROM jobs j LEFT JOIN runs lr ON lr.uuid = (
         SELECT r.uuid FROM runs r WHERE r.job = j.name AND r.finished IS NOT NULL ORDER BY r.finished DESC, r.rowid DESC LIMIT 1)
       ORDER BY j.name LIMIT ? OFFSET ?`,
    ),
    jobStatesOf: db.prepare<[string], JobStateViewRow>(
      'SELECT job, platform, outcome, verdict, uuid FROM job_state WHERE job = ? ORDER BY platform',
    ),
    queueLengths: db.prepare<[], { platform: string; n: number }>('SELECT platform, COUNT(*) AS n FROM queue GROUP BY platform ORDER BY platform'),
    queueHead: db.prepare<[string, number], { job: string; attempt: number; not_before: number }>(
      'SELECT job, attempt, not_before FROM queue WHERE platform = ? ORDER BY pos LIMIT ?',
    ),
    jobRuns: db.prepare<[string, number, number], RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.job = ? AND r.finished IS NOT NULL ORDER BY r.finished DESC, r.rowid DESC LIMIT ? OFFSET ?`,
    ),
    jobRunCount: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM runs WHERE job = ? AND finished IS NOT NULL'),
    runningOf: db.prepare<[string], RunViewRow>(
      `SELECT ${RUN_COLUMNS} FROM runs r LEFT JOIN comparisons c ON c.uuid = r.uuid
       WHERE r.state = 'running' AND r.job = ? ORDER BY r.started DESC`,
    ),
    consoleAfter: db.prepare<[string, number, number], { seq: number; ms: number; data: Buffer }>(
      'SELECT seq, ms, data FROM console WHERE uuid = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    consoleCount: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM console WHERE uuid = ?'),
    consolePage: db.prepare<[string, number, number], { seq: number; ms: number; data: Buffer }>(
      'SELECT seq, ms, data FROM console WHERE uuid = ? ORDER BY seq LIMIT ? OFFSET ?',
    ),
    artifact: db.prepare<[string, string], { path: string; size: number; mode: number; sha256: string }>(
      'SELECT path, size, mode, sha256 FROM artifacts WHERE uuid = ? AND path = ?',
    ),
    // metrics, read once when the view starts and then kept up to date from events
    finishedCounts: db.prepare<[], FinishedCount>(
      `SELECT platform, json_extract(result, '$.kind') AS kind,
              (json_extract(result, '$.kind') = 'exited' AND json_extract(result, '$.code') = 0) AS ok, COUNT(*) AS n
       FROM runs WHERE state = 'finished' GROUP BY 1, 2, 3`,
    ),
    durations: db.prepare<[], { platform: string; ms: number }>(
      "SELECT platform, finished - started AS ms FROM runs WHERE state = 'finished'",
    ),
    artifactBytes: db.prepare<[], { n: number }>('SELECT COALESCE(SUM(size), 0) AS n FROM artifacts'),
    verdictCounts: db.prepare<[], { platform: string; verdict: Verdict; n: number }>(
      'SELECT platform, verdict, COUNT(*) AS n FROM comparisons GROUP BY platform, verdict',
    ),
    runArtifactBytes: db.prepare<[string], { n: number }>('SELECT COALESCE(SUM(size), 0) AS n FROM artifacts WHERE uuid = ?'),
  };
  return {
    /** a page of the schedule, by name */
    jobs: (limit: number, offset: number) => q.jobs.all(limit, offset),
    jobStatesOf: (job: string) => q.jobStatesOf.all(job),
    queueLengths: () => q.queueLengths.all(),
    queueHead: (platform: string, limit: number) => q.queueHead.all(platform, limit),
    /** a page of a job's finished runs, newest first */
    jobRuns: (job: string, limit: number, offset: number) => q.jobRuns.all(job, limit, offset),
    jobRunCount: (job: string) => q.jobRunCount.get(job)!.n,
    runningOf: (job: string) => q.runningOf.all(job),
    /** a running run's console lines after `seq`, at most `limit` */
    consoleAfter: (uuid: string, seq: number, limit: number) => q.consoleAfter.all(uuid, seq, limit),
    consoleCount: (uuid: string) => q.consoleCount.get(uuid)!.n,
    consolePage: (uuid: string, limit: number, offset: number) => q.consolePage.all(uuid, limit, offset),
    artifact: (uuid: string, path: string) => q.artifact.get(uuid, path),
    finishedCounts: () => q.finishedCounts.all(),
    /** every finished run's duration, one row at a time */
    durations: () => q.durations.iterate(),
    artifactBytes: () => q.artifactBytes.get()!.n,
    runArtifactBytes: (uuid: string) => q.runArtifactBytes.get(uuid)!.n,
    verdictCounts: () => q.verdictCounts.all(),
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
