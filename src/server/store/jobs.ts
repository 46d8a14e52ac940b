// The schedule (jobs) and the platforms known to it.
import type Database from 'better-sqlite3';
import type { Period, ScriptBytes } from '../../protocol/messages.js';

export interface JobRow {
  name: string;
  kind: 'script' | 'orb';
  platform: string | null;
  /** bytes (a BLOB); a row written before scripts were bytes reads back as its text */
  script: ScriptBytes | null;
  package: string | null;
  period: Period | null;
  cron: string | null;
  tz: string | null;
  timeout_sec: number;
  next_run: number | null;
  created: number;
  /** Unix seconds; null only in a row a migration could not reach (never written so) */
  source_date_epoch: number | null;
}

export type JobSummary = Omit<JobRow, 'script'>;

export interface PlatformRow { name: string; dropped: number }

const SUMMARY_COLUMNS = 'name, kind, platform, package, period, cron, tz, timeout_sec, next_run, created, source_date_epoch';
/** a JobSummary's cells in SUMMARY_COLUMNS order */
type SummaryCells = [string, JobRow['kind'], string | null, string | null, Period | null, string | null, string | null, number, number | null, number, number | null];
const summaryOf = (c: SummaryCells): JobSummary => ({
  name: c[0], kind: c[1], platform: c[2], package: c[3], period: c[4], cron: c[5], tz: c[6],
  timeout_sec: c[7], next_run: c[8], created: c[9], source_date_epoch: c[10],
});

/** a job row that is paused: a script job whose platform is dropped (orb jobs run on the others) */
const PAUSED = "(kind = 'script' AND platform IN (SELECT name FROM platforms WHERE dropped = 1))";

export function jobStatements(db: Database.Database) {
  const q = {
    job: db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE name = ?'),
    // everything but the scripts, which can be large and are not shown in listings; as arrays
    // (raw), made into objects by summaryOf: half the time of better-sqlite3's own row objects
    // at 10,000 jobs (info's whole listing reads them all)
    jobs: db.prepare<[], SummaryCells>(`SELECT ${SUMMARY_COLUMNS} FROM jobs ORDER BY name`).raw(),
    insertJob: db.prepare(
      `INSERT INTO jobs (name, kind, platform, script, package, period, cron, tz, timeout_sec, next_run, created, source_date_epoch)
       VALUES (@name, @kind, @platform, @script, @package, @period, @cron, @tz, @timeout_sec, @next_run, @created, @source_date_epoch)`,
    ),
    removeJob: db.prepare<[string]>('DELETE FROM jobs WHERE name = ?'),
    setNext: db.prepare<[number | null, string]>('UPDATE jobs SET next_run = ? WHERE name = ?'),
    setTiming: db.prepare<[number | null, string | null, string | null, string | null, string]>(
      'UPDATE jobs SET next_run = ?, period = ?, cron = ?, tz = ? WHERE name = ?',
    ),
    // a paused job (a script job of a dropped platform) is never due: its next run stays as it
    // was, so undrop-platform finds it due once if it missed its time, as after downtime
    // LIMIT -1: all of them; the scheduler takes them a batch at a time (scheduler.ts)
    due: db.prepare<[number, number], JobRow>(
      `SELECT * FROM jobs WHERE next_run IS NOT NULL AND next_run <= ? AND NOT ${PAUSED} ORDER BY next_run LIMIT ?`,
    ),
    // walks the next_run index and stops at the first job that is not paused
    earliest: db.prepare<[], { t: number | null }>(`SELECT next_run AS t FROM jobs WHERE next_run IS NOT NULL AND NOT ${PAUSED} ORDER BY next_run LIMIT 1`),
    orbJobs: db.prepare<[], JobRow>("SELECT * FROM jobs WHERE kind = 'orb'"),
    platformScriptJobs: db.prepare<[string], { name: string }>("SELECT name FROM jobs WHERE kind = 'script' AND platform = ? ORDER BY name"),
    jobCount: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM jobs'),
    // info-summary and info-page: counts, the head of the next_run index, a range of the name key
    jobCounts: db.prepare<[], { platform: string | null; kind: 'script' | 'orb'; n: number }>(
      'SELECT platform, kind, COUNT(*) AS n FROM jobs GROUP BY platform, kind',
    ),
    nextDue: db.prepare<[number], { name: string; platform: string | null; next_run: number }>(
      `SELECT name, platform, next_run FROM jobs WHERE next_run IS NOT NULL AND NOT ${PAUSED} ORDER BY next_run LIMIT ?`,
    ),
    jobsAfter: db.prepare<[string, number], SummaryCells>(`SELECT ${SUMMARY_COLUMNS} FROM jobs WHERE name > ? ORDER BY name LIMIT ?`).raw(),
    platform: db.prepare<[string], PlatformRow>('SELECT * FROM platforms WHERE name = ?'),
    platforms: db.prepare<[], PlatformRow>('SELECT * FROM platforms ORDER BY name'),
    addPlatform: db.prepare<[string]>('INSERT OR IGNORE INTO platforms (name) VALUES (?)'),
    setDropped: db.prepare<[number, string]>('UPDATE platforms SET dropped = ? WHERE name = ?'),
  };
  return {
    job: (name: string) => q.job.get(name),
    jobs: (): JobSummary[] => q.jobs.all().map(summaryOf),
    jobCount: () => q.jobCount.get()!.n,
    /** how many jobs per platform and kind (orb-build jobs have platform null) */
    jobCounts: () => q.jobCounts.all(),
    /** the `limit` jobs due soonest that are not paused */
    nextDue: (limit: number) => q.nextDue.all(limit),
    /** at most `limit` jobs named after `after` (''), by name */
    jobsAfter: (after: string, limit: number): JobSummary[] => q.jobsAfter.all(after, limit).map(summaryOf),
    insertJob: (row: Omit<JobRow, 'source_date_epoch'> & { source_date_epoch?: number | null }) =>
      void q.insertJob.run({ ...row, source_date_epoch: row.source_date_epoch ?? Math.floor(row.created / 1000) }),
    /** the job row only; Store.deleteJob also takes it out of its queues */
    removeJob: (name: string) => void q.removeJob.run(name),
    setNext: (name: string, next: number | null) => void q.setNext.run(next, name),
    setTiming: (name: string, next: number | null, period: Period | null, cron: string | null, tz: string | null) =>
      void q.setTiming.run(next, period, cron, tz, name),
    /** the jobs due at `now`, earliest first, at most `limit` of them (default all) */
    due: (now: number, limit = -1) => q.due.all(now, limit),
    earliestNext: () => q.earliest.get()?.t ?? null,
    orbJobs: () => q.orbJobs.all(),
    /** the names of a platform's script jobs (paused while it is dropped) */
    platformScriptJobs: (platform: string): string[] => q.platformScriptJobs.all(platform).map((j) => j.name),

    platform: (name: string) => q.platform.get(name),
    platforms: () => q.platforms.all(),
    /** true when the platform was new */
    addPlatform: (name: string) => q.addPlatform.run(name).changes > 0,
    isDropped: (name: string) => (q.platform.get(name)?.dropped ?? 0) === 1,
    setDropped: (name: string, dropped: boolean) => {
      q.addPlatform.run(name);
      q.setDropped.run(dropped ? 1 : 0, name);
    },
  };
}
