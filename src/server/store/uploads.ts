// The durable outbox of uploads to builder-web. A row is added in the transaction that stores
// the finished run (see RunLedger), and every state change is one statement, so a restart (even
// after kill -9) finds every pending upload and carries on from its attempt count.
import type Database from 'better-sqlite3';

import type { UploadState } from '../../protocol/replies.js';

export type { UploadState };

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

/** How many rows `list` returns at most: the client shows a table, not an archive. */
export const UPLOAD_LIST_LIMIT = 1000;

export function uploadStatements(db: Database.Database) {
  const q = {
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
    relocate: db.prepare<[string]>("UPDATE uploads SET dir = ? || '/results/' || job || '/' || uuid"),
  };
  return {
    /** Queues a run for upload; false when it was queued before (its state is kept). */
    add: (uuid: string, job: string, dir: string, now: number): boolean => q.add.run(uuid, job, dir, now, now, now).changes > 0,
    get: (uuid: string) => q.get.get(uuid),
    /** The pending row due first (it may not be due yet: compare next_attempt with the clock). */
    nextDue: () => q.nextDue.get(),
    /** Counts the attempt before it is made, so a crash mid-attempt still backs off. */
    begin: (uuid: string, now: number) => void q.begin.run(now, uuid),
    settle: (uuid: string, state: UploadState, nextAttempt: number | null, lastError: string | null, now: number) =>
      void q.settle.run(state, nextAttempt, lastError, now, uuid),
    /** Back to pending, due now, with a fresh backoff; false when unknown or already uploaded. */
    requeue: (uuid: string, now: number): boolean => q.requeue.run(now, now, uuid).changes > 0,
    requeueAll: (now: number): number => q.requeueAll.run(now, now).changes,
    /** Every pending row waiting for a retry becomes due now (builder-web is back). */
    requeueWaiting: (now: number): number => q.requeueWaiting.run(now, now).changes,
    list: (problemsOnly: boolean) => (problemsOnly ? q.listProblems : q.list).all(UPLOAD_LIST_LIMIT),
    /** every row's dir, under `stateDir` (no trailing slash); returns how many */
    relocate: (stateDir: string): number => q.relocate.run(stateDir).changes,
    counts: (): Record<UploadState, number> => {
      const c: Record<UploadState, number> = { pending: 0, uploaded: 0, refused: 0, failed: 0 };
      for (const row of q.counts.all()) c[row.state] = row.n;
      return c;
    },
  };
}
