// All durable server state lives in one SQLite file (WAL). Every change is one transaction;
// the files of this folder are the only place SQL is written, one statement per operation,
// split by table group: jobs.ts (schedule and platforms), queue.ts, runs.ts (runs, console,
// artifacts), comparisons.ts (reproducibility), tokens.ts (named credentials), retention.ts (deleting old
// runs), uploads.ts (the outbox to builder-web) and views.ts (the web view's paged reads). openStore(':memory:') gives tests a
// fresh store without a file.
//
// Durability. In WAL mode a commit appends the transaction's pages to state.db-wal; with
// `synchronous = FULL` the WAL is fsynced before the commit returns, with NORMAL it is not (only
// checkpoints sync), so a NORMAL commit survives a killed process but not a power cut. What the
// server acknowledges (a schedule change's reply, a stored result's ack to its worker) must
// survive both, so the connection runs FULL: every transaction and every statement outside one
// is on disk when it returns, before any reply is sent. Console lines are the exception
// (addLines): a busy build writes hundreds of batches a second, and a lost line is not an
// acknowledged thing (the worker keeps its lines until the run's result is acked and sends them
// again after a re-attach), so their batches commit with NORMAL. NORMAL frames are not lost
// behind later FULL ones: a FULL commit fsyncs the whole WAL file, earlier frames included, and
// the result that acks a run is a FULL commit. The level can only change between transactions.
//
// Group commit (txDeferred, synced). A transaction the server tells no one about until it has
// awaited synced() commits with NORMAL too, and synced() then makes it durable with one fsync of
// the WAL, in the thread pool, shared by every such commit made meanwhile (wal-sync.ts): a finished
// run's row is acked, and a new run's job leaves for its worker, only once that fsync returned.
// Acknowledged still means on disk; what changes is that runs ending together share the fsync
// and the event loop does not wait for it.
//
// Privacy. The database holds every script and console; it is created 0600 before
// SQLite opens it (SQLite gives the -wal and -shm files the database's own mode), and an existing
// one is set to 0600, whatever the umask.
import { chmodSync, closeSync, existsSync, openSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { BuilderError } from '../../common/errors.js';
import { comparisonStatements } from './comparisons.js';
import { jobStatements } from './jobs.js';
import { migrations } from './migrations.js';
import { queueStatements } from './queue.js';
import { retentionStatements } from './retention.js';
import { runStatements } from './runs.js';
import { uploadStatements } from './uploads.js';
import { tokenStatements } from './tokens.js';
import { viewStatements } from './views.js';
import { WalSync } from './wal-sync.js';
import type { FinishedRun, RunRow } from './runs.js';
import type { ConsoleRow } from '../../results/index.js';

export { comparisonOf, type ComparisonRow, type JobStateRow, type Outcome, type SuccessfulRun } from './comparisons.js';
export type { JobRow, JobSummary, PlatformRow } from './jobs.js';
export type { QueueRow } from './queue.js';
export type { RetentionRow } from './retention.js';
export type { FinishedRun, RunRow, StoredRun } from './runs.js';
export type { TokenKind, TokenRow } from './tokens.js';
export { UPLOAD_LIST_LIMIT, type UploadRow, type UploadState } from './uploads.js';
export type { FinishedCount, JobStateViewRow, JobViewRow, RunCursor, RunViewRow } from './views.js';
export type { ArtifactRow, ConsoleRow } from '../../results/index.js';

export type Store = ReturnType<typeof openStore>;

/** console lines read from the database at once by pagedLines (about 200 KiB of typical lines) */
export const LINE_PAGE = 1000;

export interface StoreOptions {
  /**
   * Hold the database alone for as long as it is open (SQLite's EXCLUSIVE locking mode): for the
   * off-line commands (import-original, restore), which must not write under a running server.
   * Every WAL connection keeps a shared lock on the file while open, so this fails at once when
   * a server has the database open, and a server started meanwhile cannot open it.
   */
  exclusive?: boolean;
}

/**
 * Whether an error is the storage failing (disk full, quota, I/O) rather than a bug: what a
 * caller retries when space returns, and what a refused request names as such.
 */
export function isStorageFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return false;
  return code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') || code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO';
}

/** Creates the file 0600 (or sets an existing one's mode), so no other user reads the state. */
function makePrivate(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (!existsSync(f) || (statSync(f).mode & 0o077) === 0) continue;
    try {
      chmodSync(f, 0o600);
    } catch (err) {
      // not ours to change (another user's copy opened read-write): leave it as it is
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    }
  }
}

export function openStore(file: string, options: StoreOptions = {}) {
  let db: Database.Database;
  try {
    if (file !== ':memory:') makePrivate(file);
    db = new Database(file);
  } catch (err) {
    throw new BuilderError('STORE', `cannot open state database ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (options.exclusive) lockExclusive(db, file);
  db.pragma('journal_mode = WAL');
  // FULL: what is committed is on disk (see the header); console batches switch to NORMAL
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  migrate(db, file);

  const jobs = jobStatements(db);
  const queue = queueStatements(db);
  const runs = runStatements(db);
  const uploads = uploadStatements(db);
  const views = viewStatements(db);
  const walSync = new WalSync(file === ':memory:' ? undefined : `${file}-wal`);
  // prepared once: a deferred commit switches twice, several times per run
  const syncNormal = db.prepare('PRAGMA synchronous = NORMAL');
  const syncFull = db.prepare('PRAGMA synchronous = FULL');
  /** fn's statements committed at NORMAL: in the WAL, on disk at the next fsync of anyone's */
  const withoutFsync = <T>(fn: () => T): T => {
    if (db.inTransaction) return fn();
    syncNormal.run();
    try {
      return fn();
    } finally {
      syncFull.run();
    }
  };
  const txDeferredImpl = <T>(fn: () => T): T => {
    if (db.inTransaction) return db.transaction(fn)();
    try {
      return withoutFsync(() => db.transaction(fn)());
    } finally {
      walSync.noteCommit();
    }
  };
  return {
    close: () => {
      walSync.close();
      db.close();
    },
    tx: <T>(fn: () => T): T => db.transaction(fn)(),
    /**
     * A transaction committed without an fsync of its own: nothing about it may be told to
     * anyone before synced() has resolved (see the header). Inside another transaction it is
     * simply part of that one.
     */
    txDeferred: txDeferredImpl,
    /**
     * A transaction whose caller may answer once it is on disk: committed like txDeferred, and
     * resolved after the shared fsync. Requests answered this way wait for the disk without
     * blocking the event loop, and requests arriving together share one fsync (group commit),
     * where tx() would make the whole server wait for each fsync in turn.
     */
    txDurable: async <T>(fn: () => T): Promise<T> => {
      const result = txDeferredImpl(fn);
      await walSync.synced();
      return result;
    },
    /**
     * Resolves once every txDeferred commit made so far (or up to `mark`, from commitMark()) is
     * on disk; undefined when it already is. Callers waiting together share one fsync.
     */
    synced: (mark?: number): Promise<void> | undefined => walSync.synced(mark),
    /** where deferred commits stand now, for synced(mark) */
    commitMark: (): number => walSync.mark(),
    /** whether the deferred commits up to mark are on disk */
    isDurable: (mark: number): boolean => walSync.isDurable(mark),
    ...jobs,
    ...queue,
    ...runs,
    /**
     * A run's stored lines in order, read from the database a page at a time as they are taken:
     * a console of 64 MiB (a worker's default cap) is never in memory whole, and a consumer that
     * awaits between pages (the result's writer) lets the event loop run. No statement stays open
     * between pages, so the connection can serve others meanwhile.
     */
    pagedLines: function* (uuid: string): Generator<ConsoleRow> {
      for (let after = -1; ;) {
        const page = views.consoleAfter(uuid, after, LINE_PAGE);
        yield* page;
        if (page.length < LINE_PAGE) return;
        after = page[page.length - 1]!.seq;
      }
    },
    /** a batch of console lines: committed without an fsync of its own (see the header) */
    addLines: (uuid: string, seq: number, lines: Array<[number, Buffer]>): void => withoutFsync(() => runs.addLines(uuid, seq, lines)),
    /**
     * Deletes the first `limit` lines left of a finished run (whose result's file has them), and
     * says how many went: committed without an fsync, since a crash that brings them back loses
     * nothing (console-sweeper.ts finds them again at start).
     */
    dropFirstLines: (uuid: string, limit: number): number => withoutFsync(() => runs.dropFirstLines(uuid, limit)),
    ...comparisonStatements(db),
    ...tokenStatements(db),
    ...retentionStatements(db),
    uploads,
    /** read-only, paged queries of the web view and metrics */
    views,

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
    /**
     * Marks the platform dropped; returns its script jobs, which are now paused: kept with their
     * runs, never due, and their queue entries kept but not dispatched, until undrop-platform.
     * unschedule is the one way to delete a job.
     */
    dropPlatform: (name: string): string[] => {
      jobs.setDropped(name, true);
      return jobs.platformScriptJobs(name);
    },
  };
}

/**
 * Takes SQLite's exclusive lock on db and keeps it until db is closed (EXCLUSIVE locking mode).
 * It writes nothing, so it works on a full disk. False when another process holds the file;
 * db is left open either way.
 */
export function holdExclusively(db: Database.Database): boolean {
  db.pragma('locking_mode = EXCLUSIVE');
  try {
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
    throw err;
  }
}

function lockExclusive(db: Database.Database, file: string): void {
  let held: boolean;
  try {
    held = holdExclusively(db);
  } catch (err) {
    db.close();
    throw new BuilderError('STORE', `cannot lock ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (!held) {
    db.close();
    throw new BuilderError('STORE', `${file} is in use (is a builder-server running on this state directory? stop it first)`);
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
