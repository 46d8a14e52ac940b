// All durable server state lives in one SQLite file (WAL). Every change is one transaction;
// the files of this folder are the only place SQL is written, one statement per operation,
// split by table group: jobs.ts (schedule and platforms), queue.ts, runs.ts (runs, console,
// artifacts), comparisons.ts (reproducibility), uploads.ts (the outbox to builder-web) and views.ts (the web
// view's paged reads). openStore(':memory:') gives tests a
// fresh store without a file.
import Database from 'better-sqlite3';
import { BuilderError } from '../../common/errors.js';
import { comparisonStatements } from './comparisons.js';
import { jobStatements } from './jobs.js';
import { migrations } from './migrations.js';
import { queueStatements } from './queue.js';
import { runStatements } from './runs.js';
import { uploadStatements } from './uploads.js';
import { viewStatements } from './views.js';
import type { FinishedRun, RunRow } from './runs.js';

export { comparisonOf, type ComparisonRow, type JobStateRow, type Outcome, type SuccessfulRun } from './comparisons.js';
export type { JobRow, JobSummary, PlatformRow } from './jobs.js';
export type { QueueRow } from './queue.js';
export type { FinishedRun, RunRow, StoredRun } from './runs.js';
export { UPLOAD_LIST_LIMIT, type UploadRow, type UploadState } from './uploads.js';
export type { FinishedCount, JobStateViewRow, JobViewRow, RunViewRow } from './views.js';
export type { ArtifactRow, ConsoleRow } from '../../results/index.js';

export type Store = ReturnType<typeof openStore>;

export interface StoreOptions {
  /**
   * Hold the database alone for as long as it is open (SQLite's EXCLUSIVE locking mode): for the
   * off-line commands (import-original, restore), which must not write under a running server.
   * Every WAL connection keeps a shared lock on the file while open, so this fails at once when
   * a server has the database open, and a server started meanwhile cannot open it.
   */
  exclusive?: boolean;
}

export function openStore(file: string, options: StoreOptions = {}) {
  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (err) {
    throw new BuilderError('STORE', `cannot open state database ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (options.exclusive) lockExclusive(db, file);
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a killed process loses nothing committed; only a power cut may lose the
  // last transactions, which costs far less than an fsync per console line.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  migrate(db, file);

  const jobs = jobStatements(db);
  const queue = queueStatements(db);
  const runs = runStatements(db);
  const uploads = uploadStatements(db);
  return {
    close: () => db.close(),
    tx: <T>(fn: () => T): T => db.transaction(fn)(),
    ...jobs,
    ...queue,
    ...runs,
    ...comparisonStatements(db),
    uploads,
    /** read-only, paged queries of the web view and metrics */
    views: viewStatements(db),

    /** the job and its queue entries on every platform */
    deleteJob: (name: string) => {
      jobs.removeJob(name);
      queue.dequeueJob(name);
    },
    /** A finished run that did not come from a worker (import-original): recorded as it ended. */
    addFinishedRun: (row: Pick<RunRow, 'uuid' | 'job' | 'platform' | 'worker' | 'script' | 'attempt' | 'timeout_sec' | 'started'>,
      finished: FinishedRun): void => {
      runs.insertRun(row);
      runs.finishRun(finished);
    },
    /** Result paths point into stateDir/results/ (after a restore into another directory). */
    relocateResults: (stateDir: string): number => runs.relocateResults(stateDir) + uploads.relocate(stateDir),
    /** marks the platform dropped, empties its queue, deletes its script jobs; returns their names */
    dropPlatform: (name: string): string[] => {
      jobs.setDropped(name, true);
      queue.clearQueue(name);
      return jobs.removePlatformScriptJobs(name);
    },
  };
}

function lockExclusive(db: Database.Database, file: string): void {
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new BuilderError('STORE', `${file} is in use (is a builder-server running on this state directory? stop it first)`, { cause: err });
    }
    throw new BuilderError('STORE', `cannot lock ${file}: ${(err as Error).message}`, { cause: err });
  }
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
