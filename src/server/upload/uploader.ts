// Works through the outbox: one upload at a time, the row due first, each attempt counted
// before it is made. Retries wait in the database (next_attempt), not in memory, so a restart
// picks up exactly where the last process stopped; builder-web's 409 makes a repeated attempt
// after a crash harmless, so every build arrives exactly once.
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { RunResult } from '../../protocol/messages.js';
import type { UploadInfo } from '../../protocol/replies.js';
import { backoffDelay } from './backoff.js';
import { bodyFromResult, isUploadable } from '../../builder-web/exec-from-result.js';
import type { Store, UploadRow } from '../store/index.js';
import { redact, sendUpload, type Outcome, type SendOptions, type UploadTarget } from './sender.js';

/** The outbox's rows, kept by the store. */
export type Outbox = Store['uploads'];

export interface UploaderOptions {
  target: UploadTarget;
  /** first retry delay; doubled per failed attempt */
  baseDelayMs: number;
  maxDelayMs: number;
  send?: Partial<SendOptions>;
  clock?: () => number;
  random?: () => number;
}

export type { UploadInfo };

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export const uploadInfo = (r: UploadRow): UploadInfo => ({
  uuid: r.uuid, job: r.job, state: r.state, attempts: r.attempts, lastError: r.last_error,
  nextAttempt: r.state === 'pending' ? iso(r.next_attempt) : null, updated: iso(r.updated)!, dir: r.dir,
});

/**
 * builder-web answers 500 both for a body it cannot decode (sending it again will not help) and
 * for a transient database error (it will): a 500 is tried again this many times, with the usual
 * backoff, before the upload is marked failed.
 */
export const RETRIES_AFTER_500 = 3;

/** setTimeout's limit; a longer wait is simply re-armed. */
const MAX_TIMER = 2 ** 31 - 1;

export class Uploader {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  private abort = new AbortController();
  /** 500s in a row per run; kept in memory, so a restart allows a few more, which is harmless */
  private fiveHundreds = new Map<string, number>();
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly outbox: Outbox, private readonly opts: UploaderOptions, log: Logger) {
    this.now = opts.clock ?? Date.now;
    this.log = log.child({ part: 'upload' });
  }

  /** The builder-web address, password hidden. */
  get url(): string {
    return this.opts.target.url;
  }

  /** Starts sending what the outbox holds (rows are added with the finished run, see Coordinator). */
  start(): void {
    const c = this.outbox.counts();
    this.log.info('uploads to builder-web', { url: this.opts.target.url, pending: c.pending, refused: c.refused, failed: c.failed });
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
  }

  /** New rows may be due (a run finished): send them unless busy already. */
  wake(): void {
    this.kick();
  }

  /**
   * Queues a stored result that has no row yet (one finished while uploads were off);
   * infrastructure failures are retried runs, not builds, and are never queued.
   */
  enqueue(uuid: string, job: string, dir: string, result: RunResult): void {
    if (!isUploadable(result)) return;
    if (this.outbox.add(uuid, job, dir, this.now())) this.log.debug('upload queued', { run: uuid, job });
    this.kick();
  }

  /** upload-retry: back to pending, due now; returns the uuids that were queued. */
  retry(which: { uuid: string } | { all: true }): number {
    const now = this.now();
    const n = 'all' in which ? this.outbox.requeueAll(now) : Number(this.outbox.requeue(which.uuid, now));
    if (n > 0) this.log.info('uploads queued again', { count: n, ...('uuid' in which ? { run: which.uuid } : {}) });
    this.kick();
    return n;
  }

  private kick(): void {
    if (this.busy || this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.busy = true;
    void this.pump().finally(() => (this.busy = false));
  }

  private async pump(): Promise<void> {
    while (!this.stopped) {
      let row: UploadRow | undefined;
      try {
        row = this.outbox.nextDue();
        if (!row) return;
        const wait = (row.next_attempt ?? 0) - this.now();
        if (wait > 0) {
          this.timer = setTimeout(() => this.kick(), Math.min(wait, MAX_TIMER));
          this.timer.unref();
          return;
        }
        await this.attempt(row);
      } catch (err) {
        // the outbox itself failed (disk full, database gone): say so and come back later
        this.log.error('upload outbox error; trying again in a minute', { run: row?.uuid, error: errorMessage(err) });
        this.timer = setTimeout(() => this.kick(), 60_000);
        this.timer.unref();
        return;
      }
    }
  }

  private async attempt(row: UploadRow): Promise<void> {
    const started = this.now();
    this.outbox.begin(row.uuid, started);
    const attempt = row.attempts + 1;
    let outcome: Outcome;
    let bytes: number | undefined;
    try {
      const body = await bodyFromResult(row.dir);
      bytes = body.length;
      outcome = await sendUpload(this.opts.target, body, { ...this.opts.send, signal: this.abort.signal });
    } catch (err) {
      outcome = { kind: 'failed', status: undefined, message: `cannot read the stored result: ${redact(this.opts.target, errorMessage(err))}` };
    }
    if (this.stopped) return; // shutting down: the row stays pending and is tried after the restart
    if (outcome.kind === 'failed' && outcome.status === 500) {
      const seen = (this.fiveHundreds.get(row.uuid) ?? 0) + 1;
      this.fiveHundreds.set(row.uuid, seen);
      if (seen <= RETRIES_AFTER_500) outcome = { ...outcome, kind: 'retry', message: `${outcome.message} (500 number ${seen}, tried again up to ${RETRIES_AFTER_500} times)` };
    }
    if (outcome.kind !== 'retry' || outcome.status !== 500) this.fiveHundreds.delete(row.uuid);
    const now = this.now();
    const facts = { run: row.uuid, job: row.job, attempt, status: outcome.status, bytes, ms: now - started };
    switch (outcome.kind) {
      case 'uploaded':
        this.outbox.settle(row.uuid, 'uploaded', null, null, now);
        this.log.info('uploaded', { ...facts, note: outcome.note });
        // builder-web answers again: whatever waits for a retry need not wait any longer
        this.outbox.requeueWaiting(now);
        return;
      case 'refused':
        this.outbox.settle(row.uuid, 'refused', null, outcome.message, now);
        this.log.error(`UPLOAD REFUSED: ${outcome.message}`, facts);
        return;
      case 'failed':
        this.outbox.settle(row.uuid, 'failed', null, outcome.message, now);
        this.log.error(`upload failed, not retried until builder-client upload-retry: ${outcome.message}`, facts);
        return;
      case 'retry': {
        const delay = backoffDelay(attempt, this.opts.baseDelayMs, this.opts.maxDelayMs, this.opts.random);
        this.outbox.settle(row.uuid, 'pending', now + delay, outcome.message, now);
        this.log.warn(`upload attempt failed, retrying: ${outcome.message}`, { ...facts, retryInMs: delay });
        return;
      }
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${JSON.stringify(never)}`);
      }
    }
  }
}
