// Reproducibility tracking: each successful run's comparison with the previous successful run
// of its job on its platform, and per job and platform the state that notifications follow
// (last outcome, last verdict). Also the one question this asks of the runs table: which run
// is the reference for a comparison.
import type Database from 'better-sqlite3';
import type { Comparison, Verdict } from '../../repro/compare.js';

export interface ComparisonRow {
  uuid: string;
  job: string;
  platform: string;
  against_uuid: string;
  verdict: Verdict;
  /** JSON arrays of artifact paths */
  changed: string;
  added: string;
  removed: string;
  /** the diff report's file, once written */
  report: string | null;
  created: number;
}

export type Outcome = 'ok' | 'failing';

export interface JobStateRow {
  job: string;
  platform: string;
  outcome: Outcome;
  verdict: Verdict | null;
  /** the run that last changed this row */
  uuid: string;
  updated: number;
}

/** A finished run that exited 0, as a comparison's reference. */
export interface SuccessfulRun { uuid: string; worker: string; finished: number; dir: string | null }

const SUCCESS = "state = 'finished' AND json_extract(result, '$.kind') = 'exited' AND json_extract(result, '$.code') = 0";

export function comparisonStatements(db: Database.Database) {
  const q = {
    add: db.prepare(
      `INSERT OR REPLACE INTO comparisons (uuid, job, platform, against_uuid, verdict, changed, added, removed, report, created)
       VALUES (@uuid, @job, @platform, @against_uuid, @verdict, @changed, @added, @removed, NULL, @created)`,
    ),
    get: db.prepare<[string], ComparisonRow>('SELECT * FROM comparisons WHERE uuid = ?'),
    setReport: db.prepare<[string, string]>('UPDATE comparisons SET report = ? WHERE uuid = ?'),
    ofJob: db.prepare<[string, string], ComparisonRow>(
      'SELECT * FROM comparisons WHERE job = ? AND platform = ? ORDER BY created, rowid',
    ),
    platformsOf: db.prepare<[string], { platform: string }>('SELECT DISTINCT platform FROM comparisons WHERE job = ? ORDER BY platform'),
    // runs_job (job, finished) narrows this to the job's runs, newest first
    successBefore: db.prepare<[string, string, string, number], SuccessfulRun>(
      `SELECT uuid, worker, finished, dir FROM runs WHERE job = ? AND platform = ? AND uuid != ? AND finished <= ? AND ${SUCCESS}
       ORDER BY finished DESC, rowid DESC LIMIT 1`,
    ),
    state: db.prepare<[string, string], JobStateRow>('SELECT * FROM job_state WHERE job = ? AND platform = ?'),
    states: db.prepare<[], JobStateRow>('SELECT * FROM job_state ORDER BY job, platform'),
    statesOf: db.prepare<[string], JobStateRow>('SELECT * FROM job_state WHERE job = ? ORDER BY platform'),
    // an unscheduled job's state stays with its runs: only scheduled jobs are counted (EXISTS
    // looks each up by its key; IN (SELECT name FROM jobs) would first copy every name)
    failing: db.prepare<[], { n: number }>(
      `SELECT COUNT(DISTINCT s.job) AS n FROM job_state s
       WHERE s.outcome = 'failing' AND EXISTS (SELECT 1 FROM jobs j WHERE j.name = s.job)`,
    ),
    setState: db.prepare(
      `INSERT OR REPLACE INTO job_state (job, platform, outcome, verdict, uuid, updated)
       VALUES (@job, @platform, @outcome, @verdict, @uuid, @updated)`,
    ),
  };
  return {
    addComparison: (run: { uuid: string; job: string; platform: string }, against: string, c: Comparison, created: number) =>
      void q.add.run({
        ...run, against_uuid: against, verdict: c.verdict, created,
        changed: JSON.stringify(c.verdict === 'differs' ? c.changed : []),
        added: JSON.stringify(c.verdict === 'differs' ? c.added : []),
        removed: JSON.stringify(c.verdict === 'differs' ? c.removed : []),
      }),
    comparison: (uuid: string) => q.get.get(uuid),
    setComparisonReport: (uuid: string, file: string) => void q.setReport.run(file, uuid),
    /** oldest first */
    comparisonsOf: (job: string, platform: string) => q.ofJob.all(job, platform),
    comparedPlatforms: (job: string) => q.platformsOf.all(job).map((r) => r.platform),
    /** the newest successful run of the job on the platform finished by `before` (other than `exclude`) */
    lastSuccess: (job: string, platform: string, before = Number.MAX_SAFE_INTEGER, exclude = '') =>
      q.successBefore.get(job, platform, exclude, before),
    jobState: (job: string, platform: string) => q.state.get(job, platform),
    jobStates: () => q.states.all(),
    /** one job's states, through the (job, platform) key */
    jobStatesOf: (job: string) => q.statesOf.all(job),
    /** how many jobs failed on some platform at their last run */
    failingJobs: () => q.failing.get()!.n,
    setJobState: (row: JobStateRow) => void q.setState.run(row),
  };
}

/** A stored comparison as the compare module's value. */
export function comparisonOf(row: ComparisonRow): Comparison {
  if (row.verdict === 'reproduced') return { verdict: 'reproduced' };
  return {
    verdict: 'differs',
    changed: JSON.parse(row.changed) as string[],
    added: JSON.parse(row.added) as string[],
    removed: JSON.parse(row.removed) as string[],
  };
}
