// All durable server state lives in one SQLite file (WAL). Every change is one transaction;
// methods here are the only place SQL is written.
import Database from 'better-sqlite3';
import { BuilderError } from '../common/errors.js';
import type { Period, Refusal, RunResult, RunStats } from '../protocol/messages.js';
import type { ArtifactRow, ConsoleRow } from '../results/index.js';
import { migrations } from './migrations.js';

export interface JobRow {
  name: string;
  kind: 'script' | 'orb';
  platform: string | null;
  script: string | null;
  package: string | null;
  period: Period | null;
  cron: string | null;
  tz: string | null;
  timeout_sec: number;
  next_run: number | null;
  created: number;
}

export type JobSummary = Omit<JobRow, 'script'>;

export interface RunRow {
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  script: string;
  attempt: number;
  timeout_sec: number;
  state: 'running' | 'finished';
  started: number;
  finished: number | null;
  result: string | null;
  stats: string | null;
  refusals: string | null;
  dir: string | null;
}

export interface QueueRow { platform: string; job: string; pos: number; attempt: number; not_before: number }

export interface FinishedRun {
  uuid: string;
  finished: number;
  result: RunResult;
  stats: RunStats;
  refusals: Refusal[];
  dir: string | null;
  artifacts: ArtifactRow[];
}

export type UploadState = 'pending' | 'uploaded' | 'refused' | 'failed';

export interface UploadRow {
  uuid: string;
  job: string;
  dir: string;
  state: UploadState;
  attempts: number;
  next_attempt: number | null;
  last_error: string | null;
  created: number;
  updated: number;
}

/** A finished run with a stored result, as upload-retry needs it. */
export interface StoredRun { uuid: string; job: string; result: string | null; dir: string }

/** How many rows `uploads.list` returns at most: the client shows a table, not an archive. */
export const UPLOAD_LIST_LIMIT = 1000;

export type Store = ReturnType<typeof openStore>;

export function openStore(file: string) {
  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (err) {
    throw new BuilderError('STORE', `cannot open state database ${file}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a killed process loses nothing committed; only a power cut may lose the
  // last transactions, which costs far less than an fsync per console line.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  migrate(db, file);

  const q = {
    job: db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE name = ?'),
    // everything but the scripts, which can be large and are not shown in listings
    jobs: db.prepare<[], JobSummary>(
      'SELECT name, kind, platform, package, period, cron, tz, timeout_sec, next_run, created FROM jobs ORDER BY name',
    ),
    insertJob: db.prepare(
      `INSERT INTO jobs (name, kind, platform, script, package, period, cron, tz, timeout_sec, next_run, created)
       VALUES (@name, @kind, @platform, @script, @package, @period, @cron, @tz, @timeout_sec, @next_run, @created)`,
    ),
    deleteJob: db.prepare<[string]>('DELETE FROM jobs WHERE name = ?'),
    setNext: db.prepare<[number | null, string]>('UPDATE jobs SET next_run = ? WHERE name = ?'),
    setTiming: db.prepare<[number | null, string | null, string | null, string | null, string]>(
      'UPDATE jobs SET next_run = ?, period = ?, cron = ?, tz = ? WHERE name = ?',
    ),
    due: db.prepare<[number], JobRow>('SELECT * FROM jobs WHERE next_run IS NOT NULL AND next_run <= ? ORDER BY next_run'),
    earliest: db.prepare<[], { t: number | null }>('SELECT MIN(next_run) AS t FROM jobs'),
    platform: db.prepare<[string], { name: string; dropped: number }>('SELECT * FROM platforms WHERE name = ?'),
    platforms: db.prepare<[], { name: string; dropped: number }>('SELECT * FROM platforms ORDER BY name'),
    addPlatform: db.prepare<[string]>('INSERT OR IGNORE INTO platforms (name) VALUES (?)'),
    setDropped: db.prepare<[number, string]>('UPDATE platforms SET dropped = ? WHERE name = ?'),
    queued: db.prepare<[string, string], QueueRow>('SELECT * FROM queue WHERE platform = ? AND job = ?'),
    queue: db.prepare<[string], QueueRow>('SELECT * FROM queue WHERE platform = ? ORDER BY pos'),
    maxPos: db.prepare<[string], { p: number | null }>('SELECT MAX(pos) AS p FROM queue WHERE platform = ?'),
    minPos: db.prepare<[string], { p: number | null }>('SELECT MIN(pos) AS p FROM queue WHERE platform = ?'),
    enqueue: db.prepare<[string, string, number, number, number]>(
      'INSERT OR IGNORE INTO queue (platform, job, pos, attempt, not_before) VALUES (?, ?, ?, ?, ?)',
    ),
    setPos: db.prepare<[number, string, string]>('UPDATE queue SET pos = ? WHERE platform = ? AND job = ?'),
    dequeue: db.prepare<[string, string]>('DELETE FROM queue WHERE platform = ? AND job = ?'),
    dequeueJob: db.prepare<[string]>('DELETE FROM queue WHERE job = ?'),
    dropQueue: db.prepare<[string]>('DELETE FROM queue WHERE platform = ?'),
    nextQueued: db.prepare<[string, number], QueueRow>(
      'SELECT * FROM queue WHERE platform = ? AND not_before <= ? ORDER BY pos LIMIT 1',
    ),
    nextRetry: db.prepare<[number], { t: number | null }>('SELECT MIN(not_before) AS t FROM queue WHERE not_before > ?'),
    platformScriptJobs: db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE kind = 'script' AND platform = ?"),
    deletePlatformJobs: db.prepare<[string]>("DELETE FROM jobs WHERE kind = 'script' AND platform = ?"),
    orbJobs: db.prepare<[], JobRow>("SELECT * FROM jobs WHERE kind = 'orb'"),
    insertRun: db.prepare(
      `INSERT INTO runs (uuid, job, platform, worker, script, attempt, timeout_sec, state, started)
       VALUES (@uuid, @job, @platform, @worker, @script, @attempt, @timeout_sec, 'running', @started)`,
    ),
    run: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE uuid = ?'),
    running: db.prepare<[], RunRow>("SELECT * FROM runs WHERE state = 'running' ORDER BY started"),
    finishRun: db.prepare(
      `UPDATE runs SET state = 'finished', finished = @finished, result = @result, stats = @stats,
       refusals = @refusals, dir = @dir WHERE uuid = @uuid AND state = 'running'`,
    ),
    history: db.prepare<[string | null, string | null, number], RunRow>(
      `SELECT * FROM runs WHERE state = 'finished' AND (? IS NULL OR job = ?) ORDER BY finished DESC, rowid DESC LIMIT ?`,
    ),
    addLine: db.prepare<[string, number, number, Buffer]>('INSERT OR IGNORE INTO console (uuid, seq, ms, data) VALUES (?, ?, ?, ?)'),
    lines: db.prepare<[string], ConsoleRow>('SELECT seq, ms, data FROM console WHERE uuid = ? ORDER BY seq'),
    lastSeq: db.prepare<[string], { s: number | null }>('SELECT MAX(seq) AS s FROM console WHERE uuid = ?'),
    dropLines: db.prepare<[string]>('DELETE FROM console WHERE uuid = ?'),
    addArtifact: db.prepare<[string, string, number, number, string]>(
      'INSERT OR REPLACE INTO artifacts (uuid, path, size, mode, sha256) VALUES (?, ?, ?, ?, ?)',
    ),
    artifacts: db.prepare<[string], ArtifactRow>('SELECT path, size, mode, sha256 FROM artifacts WHERE uuid = ? ORDER BY path'),
    storedRun: db.prepare<[string], StoredRun>(
      "SELECT uuid, job, result, dir FROM runs WHERE uuid = ? AND state = 'finished' AND dir IS NOT NULL",
    ),
  };
  const u = {
    add: db.prepare<[string, string, string, number, number, number]>(
      `INSERT OR IGNORE INTO uploads (uuid, job, dir, state, attempts, next_attempt, created, updated)
       VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)`,
    ),
    get: db.prepare<[string], UploadRow>('SELECT * FROM uploads WHERE uuid = ?'),
    nextDue: db.prepare<[], UploadRow>(
      "SELECT * FROM uploads WHERE state = 'pending' ORDER BY next_attempt, created, rowid LIMIT 1",
    ),
    begin: db.prepare<[number, string]>('UPDATE uploads SET attempts = attempts + 1, updated = ? WHERE uuid = ?'),
    settle: db.prepare<[UploadState, number | null, string | null, number, string]>(
      'UPDATE uploads SET state = ?, next_attempt = ?, last_error = ?, updated = ? WHERE uuid = ?',
    ),
    requeue: db.prepare<[number, number, string]>(
      "UPDATE uploads SET state = 'pending', attempts = 0, next_attempt = ?, updated = ? WHERE uuid = ? AND state != 'uploaded'",
    ),
    requeueAll: db.prepare<[number, number]>(
      "UPDATE uploads SET state = 'pending', attempts = 0, next_attempt = ?, updated = ? WHERE state IN ('pending', 'refused', 'failed')",
    ),
    requeueWaiting: db.prepare<[number, number]>(
      "UPDATE uploads SET next_attempt = ? WHERE state = 'pending' AND next_attempt > ?",
    ),
    list: db.prepare<[number], UploadRow>(`SELECT * FROM uploads ORDER BY created DESC, rowid DESC LIMIT ?`),
    listProblems: db.prepare<[number], UploadRow>(
      `SELECT * FROM uploads WHERE state IN ('refused', 'failed') OR (state = 'pending' AND last_error IS NOT NULL)
       ORDER BY created DESC, rowid DESC LIMIT ?`,
    ),
    counts: db.prepare<[], { state: UploadState; n: number }>('SELECT state, COUNT(*) AS n FROM uploads GROUP BY state'),
  };

  const backPos = (platform: string): number => (q.maxPos.get(platform)?.p ?? 0) + 1;
  const frontPos = (platform: string): number => (q.minPos.get(platform)?.p ?? 0) - 1;

  const store = {
    db,
    close: () => db.close(),
    tx: <T>(fn: () => T): T => db.transaction(fn)(),

    job: (name: string) => q.job.get(name),
    jobs: () => q.jobs.all(),
    insertJob: (row: JobRow) => void q.insertJob.run(row),
    deleteJob: (name: string) => {
      q.deleteJob.run(name);
      q.dequeueJob.run(name);
    },
    setNext: (name: string, next: number | null) => void q.setNext.run(next, name),
    setTiming: (name: string, next: number | null, period: Period | null, cron: string | null, tz: string | null) =>
      void q.setTiming.run(next, period, cron, tz, name),
    due: (now: number) => q.due.all(now),
    earliestNext: () => q.earliest.get()?.t ?? null,

    platform: (name: string) => q.platform.get(name),
    platforms: () => q.platforms.all(),
    addPlatform: (name: string) => q.addPlatform.run(name).changes > 0,
    isDropped: (name: string) => (q.platform.get(name)?.dropped ?? 0) === 1,
    setDropped: (name: string, dropped: boolean) => {
      q.addPlatform.run(name);
      q.setDropped.run(dropped ? 1 : 0, name);
    },
    dropPlatform: (name: string) => {
      q.addPlatform.run(name);
      q.setDropped.run(1, name);
      q.dropQueue.run(name);
      const jobs = q.platformScriptJobs.all(name).map((j) => j.name);
      q.deletePlatformJobs.run(name);
      return jobs;
    },
    orbJobs: () => q.orbJobs.all(),

    queue: (platform: string) => q.queue.all(platform),
    /** adds at the back unless already queued; returns whether it was added */
    enqueue: (platform: string, job: string, attempt = 1, notBefore = 0) =>
      q.enqueue.run(platform, job, backPos(platform), attempt, notBefore).changes > 0,
    /** moves to the front, adding it when absent */
    enqueueFront: (platform: string, job: string, attempt = 1, notBefore = 0) => {
      const pos = frontPos(platform);
      if (q.queued.get(platform, job)) q.setPos.run(pos, platform, job);
      else q.enqueue.run(platform, job, pos, attempt, notBefore);
    },
    nextQueued: (platform: string, now: number) => q.nextQueued.get(platform, now),
    dequeue: (platform: string, job: string) => void q.dequeue.run(platform, job),
    /** the earliest time a queue entry held back by a retry back-off becomes due */
    nextRetryAt: (now: number) => q.nextRetry.get(now)?.t ?? null,

    insertRun: (row: Pick<RunRow, 'uuid' | 'job' | 'platform' | 'worker' | 'script' | 'attempt' | 'timeout_sec' | 'started'>) =>
      void q.insertRun.run(row),
    run: (uuid: string) => q.run.get(uuid),
    running: () => q.running.all(),
    /** false when the run was no longer running (finished twice is refused) */
    finishRun: (f: FinishedRun): boolean => {
      const changed = q.finishRun.run({
        uuid: f.uuid,
        finished: f.finished,
        result: JSON.stringify(f.result),
        stats: JSON.stringify(f.stats),
        refusals: JSON.stringify(f.refusals),
        dir: f.dir,
      }).changes;
      if (changed === 0) return false;
      for (const a of f.artifacts) q.addArtifact.run(f.uuid, a.path, a.size, a.mode, a.sha256);
      q.dropLines.run(f.uuid);
      return true;
    },
    history: (job: string | undefined, limit: number) => q.history.all(job ?? null, job ?? null, limit),
    /** one transaction per batch: a chatty build must not cost a commit per line */
    addLines: db.transaction((uuid: string, seq: number, lines: Array<[number, Buffer]>) => {
      lines.forEach(([ms, data], i) => q.addLine.run(uuid, seq + i, ms, data));
    }),
    lines: (uuid: string) => q.lines.all(uuid),
    lastSeq: (uuid: string) => q.lastSeq.get(uuid)?.s ?? -1,
    artifacts: (uuid: string) => q.artifacts.all(uuid),
    /** a finished run whose result files were written */
    storedRun: (uuid: string) => q.storedRun.get(uuid),

    /**
     * The durable outbox of uploads to builder-web. A row is added in the transaction that
     * stores the finished run, and every state change is one statement, so a restart (even
     * after kill -9) finds every pending upload and carries on from its attempt count.
     */
    uploads: {
      /** Queues a run for upload; false when it was queued before (its state is kept). */
      add: (uuid: string, job: string, dir: string, now: number): boolean => u.add.run(uuid, job, dir, now, now, now).changes > 0,
      get: (uuid: string) => u.get.get(uuid),
      /** The pending row due first (it may not be due yet: compare next_attempt with the clock). */
      nextDue: () => u.nextDue.get(),
      /** Counts the attempt before it is made, so a crash mid-attempt still backs off. */
      begin: (uuid: string, now: number) => void u.begin.run(now, uuid),
      settle: (uuid: string, state: UploadState, nextAttempt: number | null, lastError: string | null, now: number) =>
        void u.settle.run(state, nextAttempt, lastError, now, uuid),
      /** Back to pending, due now, with a fresh backoff; false when unknown or already uploaded. */
      requeue: (uuid: string, now: number): boolean => u.requeue.run(now, now, uuid).changes > 0,
      requeueAll: (now: number): number => u.requeueAll.run(now, now).changes,
      /** Every pending row waiting for a retry becomes due now (builder-web is back). */
      requeueWaiting: (now: number): number => u.requeueWaiting.run(now, now).changes,
      list: (problemsOnly: boolean) => (problemsOnly ? u.listProblems : u.list).all(UPLOAD_LIST_LIMIT),
      counts: (): Record<UploadState, number> => {
        const c: Record<UploadState, number> = { pending: 0, uploaded: 0, refused: 0, failed: 0 };
        for (const row of u.counts.all()) c[row.state] = row.n;
        return c;
      },
    },
  };
  return store;
}

function migrate(db: Database.Database, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > migrations.length) {
    throw new BuilderError(
      'STORE',
      `state database ${file} has schema version ${version}, newer than this builder-server knows (${migrations.length})`,
    );
  }
  for (let v = version; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
