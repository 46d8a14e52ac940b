// The per-platform queues: each job at most once per platform, ordered by pos (smaller first;
// the front is below the smallest, the back above the largest), held back until not_before.
import type Database from 'better-sqlite3';

export interface QueueRow {
  platform: string; job: string; pos: number; attempt: number; not_before: number;
  /** verify's rebuild: a worker of this name takes the entry only when no other can */
  avoid_worker: string | null;
}

export function queueStatements(db: Database.Database) {
  const q = {
    queued: db.prepare<[string, string], QueueRow>('SELECT * FROM queue WHERE platform = ? AND job = ?'),
    queue: db.prepare<[string], QueueRow>('SELECT * FROM queue WHERE platform = ? ORDER BY pos'),
    // info's listing: the names alone, one string per row (no row objects)
    queuedNames: db.prepare<[string], string>('SELECT job FROM queue WHERE platform = ? ORDER BY pos').pluck(),
    maxPos: db.prepare<[string], { p: number | null }>('SELECT MAX(pos) AS p FROM queue WHERE platform = ?'),
    minPos: db.prepare<[string], { p: number | null }>('SELECT MIN(pos) AS p FROM queue WHERE platform = ?'),
    enqueue: db.prepare<[string, string, number, number, number]>(
      'INSERT OR IGNORE INTO queue (platform, job, pos, attempt, not_before) VALUES (?, ?, ?, ?, ?)',
    ),
    setPos: db.prepare<[number, string, string]>('UPDATE queue SET pos = ? WHERE platform = ? AND job = ?'),
    dequeue: db.prepare<[string, string]>('DELETE FROM queue WHERE platform = ? AND job = ?'),
    dequeueJob: db.prepare<[string]>('DELETE FROM queue WHERE job = ?'),
    nextQueued: db.prepare<[string, number], QueueRow>(
      'SELECT * FROM queue WHERE platform = ? AND not_before <= ? ORDER BY pos LIMIT 1',
    ),
    nextQueuedFor: db.prepare<[string, number, string], QueueRow>(
      `SELECT * FROM queue WHERE platform = ? AND not_before <= ? AND (avoid_worker IS NULL OR avoid_worker != ?)
       ORDER BY pos LIMIT 1`,
    ),
    setAvoid: db.prepare<[string | null, string, string]>('UPDATE queue SET avoid_worker = ? WHERE platform = ? AND job = ?'),
    nextRetry: db.prepare<[number], { t: number | null }>('SELECT MIN(not_before) AS t FROM queue WHERE not_before > ?'),
  };
  const backPos = (platform: string): number => (q.maxPos.get(platform)?.p ?? 0) + 1;
  const frontPos = (platform: string): number => (q.minPos.get(platform)?.p ?? 0) - 1;
  return {
    queue: (platform: string) => q.queue.all(platform),
    /** the job names of a platform's queue, first due first */
    queuedNames: (platform: string): string[] => q.queuedNames.all(platform),
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
    /** the next entry a worker of this name may take when another worker could take the ones it should avoid */
    nextQueuedFor: (platform: string, now: number, worker: string) => q.nextQueuedFor.get(platform, now, worker),
    /** marks a queued entry to go to another worker than `worker` when one is there (null: any) */
    setAvoidWorker: (platform: string, job: string, worker: string | null) => void q.setAvoid.run(worker, platform, job),
    dequeue: (platform: string, job: string) => void q.dequeue.run(platform, job),
    /** takes a job out of every platform's queue */
    dequeueJob: (job: string) => void q.dequeueJob.run(job),
    /** the earliest time a queue entry held back by a retry back-off becomes due */
    nextRetryAt: (now: number) => q.nextRetry.get(now)?.t ?? null,
  };
}
