// Runs, and while a run goes on its console lines; once it has finished, its artifacts.
import type Database from 'better-sqlite3';
import type { Refusal, RunResult, RunStats, ScriptBytes } from '../../protocol/messages.js';
import type { ArtifactRow } from '../../results/index.js';

export interface RunRow {
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  /** bytes (a BLOB); a row written before scripts were bytes reads back as its text */
  script: ScriptBytes;
  attempt: number;
  timeout_sec: number;
  state: 'running' | 'finished';
  started: number;
  finished: number | null;
  result: string | null;
  stats: string | null;
  refusals: string | null;
  dir: string | null;
  /** what the worker running it must show to re-attach it (null: runs from before migration 7) */
  secret: string | null;
}

export interface FinishedRun {
  uuid: string;
  finished: number;
  result: RunResult;
  stats: RunStats;
  refusals: Refusal[];
  dir: string | null;
  artifacts: ArtifactRow[];
}

/** A finished run with a stored result, as upload-retry needs it. */
export interface StoredRun { uuid: string; job: string; result: string | null; dir: string }

export function runStatements(db: Database.Database) {
  const q = {
    insertRun: db.prepare(
      `INSERT INTO runs (uuid, job, platform, worker, script, attempt, timeout_sec, state, started, secret)
       VALUES (@uuid, @job, @platform, @worker, @script, @attempt, @timeout_sec, 'running', @started, @secret)`,
    ),
    run: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE uuid = ?'),
    running: db.prepare<[], RunRow>("SELECT * FROM runs WHERE state = 'running' ORDER BY started"),
    // info-summary: through runs_state, without the scripts
    runningCounts: db.prepare<[], { platform: string; n: number }>(
      "SELECT platform, COUNT(*) AS n FROM runs WHERE state = 'running' GROUP BY platform",
    ),
    runningFirst: db.prepare<[number], Pick<RunRow, 'uuid' | 'job' | 'platform' | 'worker' | 'started'>>(
      "SELECT uuid, job, platform, worker, started FROM runs WHERE state = 'running' ORDER BY started LIMIT ?",
    ),
    finishRun: db.prepare(
      `UPDATE runs SET state = 'finished', finished = @finished, result = @result, stats = @stats,
       refusals = @refusals, dir = @dir WHERE uuid = @uuid AND state = 'running'`,
    ),
    // two statements, not one with "(? IS NULL OR job = ?)": SQLite plans a statement once, and
    // that OR keeps it from using either index, so at a million runs each call read them all.
    // runs_job (job, finished) and runs_finished (finished) give both orders as index ranges
    // (the rowid is the last column of each index, so the tie-break costs nothing)
    // "+state": not runs_state's state, whose rows are ordered by start; runs_finished walks back
    history: db.prepare<[number], RunRow>(
      `SELECT * FROM runs WHERE +state = 'finished' AND finished IS NOT NULL ORDER BY finished DESC, rowid DESC LIMIT ?`,
    ),
    historyOf: db.prepare<[string, number], RunRow>(
      `SELECT * FROM runs WHERE job = ? AND state = 'finished' ORDER BY finished DESC, rowid DESC LIMIT ?`,
    ),
    storedRun: db.prepare<[string], StoredRun>(
      "SELECT uuid, job, result, dir FROM runs WHERE uuid = ? AND state = 'finished' AND dir IS NOT NULL",
    ),
    addLine: db.prepare<[string, number, number, Buffer]>('INSERT OR IGNORE INTO console (uuid, seq, ms, data) VALUES (?, ?, ?, ?)'),
    lastSeq: db.prepare<[string], { s: number | null }>('SELECT MAX(seq) AS s FROM console WHERE uuid = ?'),
    // the first `limit` lines left of a run (console-sweeper.ts deletes a finished run's lines in steps)
    dropFirstLines: db.prepare<{ uuid: string; limit: number }>(
      'DELETE FROM console WHERE uuid = @uuid AND seq IN (SELECT seq FROM console WHERE uuid = @uuid ORDER BY seq LIMIT @limit)',
    ),
    // the next run, by uuid, that has lines in the database: one index seek per run, not a scan of the lines
    nextRunWithLines: db.prepare<[string], { uuid: string }>('SELECT uuid FROM console WHERE uuid > ? ORDER BY uuid LIMIT 1'),
    addArtifact: db.prepare<[string, string, number, number, string]>(
      'INSERT OR REPLACE INTO artifacts (uuid, path, size, mode, sha256) VALUES (?, ?, ?, ?, ?)',
    ),
    artifacts: db.prepare<[string], ArtifactRow>('SELECT path, size, mode, sha256 FROM artifacts WHERE uuid = ? ORDER BY path'),
    // results/<job>/<uuid> under the given state directory, as src/results/ names it
    relocate: db.prepare<[string]>("UPDATE runs SET dir = ? || '/results/' || job || '/' || uuid WHERE dir IS NOT NULL"),
  };
  return {
    insertRun: (row: Pick<RunRow, 'uuid' | 'job' | 'platform' | 'worker' | 'script' | 'attempt' | 'timeout_sec' | 'started'> & { secret?: string | null }) =>
      void q.insertRun.run({ secret: null, ...row }),
    run: (uuid: string) => q.run.get(uuid),
    running: () => q.running.all(),
    /** running runs per platform */
    runningCounts: () => q.runningCounts.all(),
    /** the `limit` oldest running runs, without their scripts */
    runningFirst: (limit: number) => q.runningFirst.all(limit),
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
      return true;
    },
    history: (job: string | undefined, limit: number) => (job === undefined ? q.history.all(limit) : q.historyOf.all(job, limit)),
    /** a finished run whose result files were written */
    storedRun: (uuid: string) => q.storedRun.get(uuid),
    /** one transaction per batch: a chatty build must not cost a commit per line */
    addLines: db.transaction((uuid: string, seq: number, lines: Array<[number, Buffer]>) => {
      lines.forEach(([ms, data], i) => q.addLine.run(uuid, seq + i, ms, data));
    }),
    lastSeq: (uuid: string) => q.lastSeq.get(uuid)?.s ?? -1,
    /** deletes the first `limit` lines left of a run; how many went */
    dropFirstLines: (uuid: string, limit: number): number => q.dropFirstLines.run({ uuid, limit }).changes,
    /** every run that has lines in the database, in uuid order */
    runsWithLines: function* (): Generator<string> {
      for (let row = q.nextRunWithLines.get(''); row; row = q.nextRunWithLines.get(row.uuid)) yield row.uuid;
    },
    artifacts: (uuid: string) => q.artifacts.all(uuid),
    /** every stored result's dir, under `stateDir` (no trailing slash); returns how many */
    relocateResults: (stateDir: string): number => q.relocate.run(stateDir).changes,
  };
}
