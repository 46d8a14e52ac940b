// What retention asks of the tables, and the one way a stored run is deleted: its row in runs
// and every row that hangs off it (console, artifacts, its comparison, its upload). The job's
// reproducibility state (job_state) is kept: it describes the job, not the run.
import type Database from 'better-sqlite3';
import type { UploadState } from './uploads.js';

/** A finished run as retention weighs it. */
export interface RetentionRow {
  uuid: string;
  platform: string;
  finished: number;
  dir: string | null;
  /** 1 when it exited 0 */
  ok: 0 | 1;
  /** its upload's state, null when it has no upload row */
  upload: UploadState | null;
  /** the sum of its recorded artifacts' sizes */
  bytes: number;
}

export function retentionStatements(db: Database.Database) {
  const q = {
    // runs_job (job, finished) serves both of these
    jobs: db.prepare<[], { job: string }>("SELECT DISTINCT job FROM runs WHERE state = 'finished' ORDER BY job"),
    runs: db.prepare<[string], RetentionRow>(
      `SELECT r.uuid, r.platform, r.finished, r.dir,
         (json_extract(r.result, '$.kind') = 'exited' AND json_extract(r.result, '$.code') = 0) AS ok,
         (SELECT u.state FROM uploads u WHERE u.uuid = r.uuid) AS upload,
         (SELECT COALESCE(SUM(a.size), 0) FROM artifacts a WHERE a.uuid = r.uuid) AS bytes
       FROM runs r WHERE r.job = ? AND r.state = 'finished' ORDER BY r.finished DESC, r.rowid DESC`,
    ),
    // comparisons_latest (job, platform, created) narrows this to the job
    references: db.prepare<[string], { uuid: string; against_uuid: string }>('SELECT uuid, against_uuid FROM comparisons WHERE job = ?'),
    deleteRun: db.prepare<[string]>("DELETE FROM runs WHERE uuid = ? AND state = 'finished'"),
    deleteConsole: db.prepare<[string]>('DELETE FROM console WHERE uuid = ?'),
    deleteArtifacts: db.prepare<[string]>('DELETE FROM artifacts WHERE uuid = ?'),
    deleteComparison: db.prepare<[string]>('DELETE FROM comparisons WHERE uuid = ?'),
    deleteUpload: db.prepare<[string]>('DELETE FROM uploads WHERE uuid = ?'),
  };
  return {
    /** the names of jobs with finished runs (also of jobs since unscheduled) */
    retentionJobs: (): string[] => q.jobs.all().map((r) => r.job),
    /** the job's finished runs, newest first */
    retentionRuns: (job: string): RetentionRow[] => q.runs.all(job),
    /** which run each of the job's comparisons was made against */
    retentionReferences: (job: string) => q.references.all(job),
    /** Deletes a finished run and its rows (call inside tx); false when it was not there. */
    deleteStoredRun: (uuid: string): boolean => {
      const gone = q.deleteRun.run(uuid).changes > 0;
      q.deleteConsole.run(uuid);
      q.deleteArtifacts.run(uuid);
      q.deleteComparison.run(uuid);
      q.deleteUpload.run(uuid);
      return gone;
    },
  };
}
