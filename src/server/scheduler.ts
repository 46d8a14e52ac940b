// Puts due jobs into their queues. Wakes at the earliest next run (at most a minute away, so a
// changed clock is noticed), queues what is due and advances each job past now: after downtime
// a job runs once, not once per missed slot.
import type { Logger } from '../common/log.js';
import type { JobRow, Store } from './store/index.js';
import { advance } from './timing.js';
import { hasTemplate } from './templates.js';

const MAX_SLEEP_MS = 60_000;

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

/** Queues every due job and advances its next run; returns the platforms that got work. */
export function queueDue(store: Store, configDir: string, now: number): Set<string> {
  const touched = new Set<string>();
  store.tx(() => {
    for (const job of store.due(now)) {
      for (const p of platformsFor(store, configDir, job)) if (store.enqueue(p, job.name)) touched.add(p);
      store.setNext(job.name, advance(timingOf(job), job.next_run ?? now, now));
    }
  });
  return touched;
}

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

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
    try {
      const touched = new Set([...touchedBefore, ...queueDue(this.store, this.configDir, now)]);
      if (touched.size > 0) this.onQueued(touched);
    } catch (err) {
      this.log.error('cannot queue due jobs', { error: (err as Error).message });
    }
    const next = this.store.earliestNext();
    const wait = next === null ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(0, next - this.clock.now()));
    this.timer = setTimeout(() => this.tick(), wait + 1);
    this.timer.unref();
  }
}
