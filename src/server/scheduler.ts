// Puts due jobs into their queues. Wakes at the earliest next run (at most a minute away, so a
// changed clock is noticed), queues what is due and advances each job past now: after downtime
// a job runs once, not once per missed slot.
//
// Due jobs are queued BATCH at a time, one transaction (one fsync) each, with a turn of the
// event loop between batches: 10,000 jobs falling due in the same minute (every job "daily at
// 03:00") would otherwise hold the loop for a second or more in one transaction, and heartbeats,
// live consoles and requests would stall behind it. Each batch reaches the dispatcher as soon as
// it is committed, so the first workers start while the rest is still being queued.
import type { Logger } from '../common/log.js';
import type { JobRow, Store } from './store/index.js';
import { advance } from './timing.js';
import { hasTemplate } from './templates.js';

const MAX_SLEEP_MS = 60_000;
/**
 * due jobs queued per transaction: about 5 ms of work on our 2-core test machine (bench part
 * scale:due), so the longest stall stays far below a heartbeat, and a commit per 500 jobs costs
 * little next to the work itself
 */
export const DUE_BATCH = 500;
/** a batch stops early past this much work, whatever slows it (a slow disk, orb jobs on many platforms) */
export const BATCH_BUDGET_MS = 20;

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

export function timingOf(job: JobRow) {
  return { period: job.period ?? undefined, cron: job.cron ?? undefined, tz: job.tz ?? undefined };
}

/** The platforms a job is queued on: its own, or every live platform with a template. */
export function platformsFor(store: Store, configDir: string, job: JobRow): string[] {
  if (job.kind === 'script') return job.platform && !store.isDropped(job.platform) ? [job.platform] : [];
  return store
    .platforms()
    .filter((p) => p.dropped === 0 && hasTemplate(configDir, p.name))
    .map((p) => p.name);
}

/**
 * Queues at most `limit` due jobs (earliest first) in one transaction and advances their next
 * runs; stops early once the batch has taken BATCH_BUDGET_MS (what is left stays due for the next
 * batch). Returns the platforms that got work, how many jobs it took, and whether more may be due.
 */
export function queueDueBatch(store: Store, configDir: string, now: number, limit: number): { touched: Set<string>; taken: number; full: boolean } {
  const touched = new Set<string>();
  let taken = 0;
  let more = false;
  // a crontab's next time after `now` is the same for every job with that crontab and zone, and
  // finding it walks the calendar (~0.1 ms): 10,000 jobs "0 3 * * *" ask it once
  const cronNext = new Map<string, number | null>();
  const t0 = performance.now();
  store.tx(() => {
    const jobs = store.due(now, limit);
    for (const job of jobs) {
      for (const p of platformsFor(store, configDir, job)) if (store.enqueue(p, job.name)) touched.add(p);
      const timing = timingOf(job);
      let next: number | null;
      if (timing.cron !== undefined) {
        const key = `${timing.cron}\0${timing.tz ?? ''}`;
        if (!cronNext.has(key)) cronNext.set(key, advance(timing, job.next_run ?? now, now));
        next = cronNext.get(key)!;
      } else next = advance(timing, job.next_run ?? now, now);
      store.setNext(job.name, next);
      taken++;
      if (taken < jobs.length && performance.now() - t0 > BATCH_BUDGET_MS) {
        more = true;
        break;
      }
    }
    if (jobs.length === limit) more = true;
  });
  return { touched, taken, full: more };
}

/** Queues every due job and advances its next run; returns the platforms that got work. */
export function queueDue(store: Store, configDir: string, now: number): Set<string> {
  const touched = new Set<string>();
  for (;;) {
    const batch = queueDueBatch(store, configDir, now, DUE_BATCH);
    batch.touched.forEach((p) => touched.add(p));
    if (!batch.full) return touched;
  }
}

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  /** the next batch of a large due set, after a turn of the event loop */
  private more: NodeJS.Immediate | undefined;
  private stopped = false;
  /** the pass under way: when it started and how many jobs it queued so far (for its log line) */
  private pass: { started: number; jobs: number; batches: number } | undefined;

  constructor(
    private readonly store: Store,
    private readonly configDir: string,
    private readonly onQueued: (platforms: Set<string>) => void,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  start(): void {
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.more) clearImmediate(this.more);
  }

  /**
   * The one call after any schedule change: a new earliest run is honoured at once, and the
   * platforms whose queues the change filled (`queued`) reach the dispatcher with those of due jobs.
   */
  changed(queued: Iterable<string> = []): void {
    this.tick(new Set(queued));
  }

  tick(touchedBefore: ReadonlySet<string> = new Set()): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const now = this.clock.now();
    let full = false;
    try {
      const t0 = performance.now();
      const batch = queueDueBatch(this.store, this.configDir, now, DUE_BATCH);
      full = batch.full;
      if (full || this.pass) {
        this.pass ??= { started: t0, jobs: 0, batches: 0 };
        this.pass.jobs += batch.taken;
        this.pass.batches++;
      }
      const touched = new Set([...touchedBefore, ...batch.touched]);
      if (touched.size > 0) this.onQueued(touched);
    } catch (err) {
      this.log.error('cannot queue due jobs', { error: (err as Error).message });
    }
    if (full) {
      // the rest after a turn of the event loop; the timer is armed when the last batch is done
      this.more ??= setImmediate(() => {
        this.more = undefined;
        this.tick();
      });
      return;
    }
    if (this.pass) {
      // one line per wave that took more than one batch: an operator sees it and what it cost
      this.log.info('queued a wave of due jobs', {
        jobs: this.pass.jobs, batches: this.pass.batches, ms: Math.round(performance.now() - this.pass.started),
      });
      this.pass = undefined;
    }
    const next = this.store.earliestNext();
    const wait = next === null ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(0, next - this.clock.now()));
    this.timer = setTimeout(() => this.tick(), wait + 1);
    this.timer.unref();
  }
}
