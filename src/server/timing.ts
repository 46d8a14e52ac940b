// When a job runs next: the original's fixed periods, or a crontab expression in a time zone.
// Pure functions of (timing, time), so the scheduler can be tested with any clock.
import { createTask, validateDetailed, type ScheduledTask } from 'node-cron';
import { BuilderError } from '../common/errors.js';
import type { Period } from '../protocol/messages.js';

export interface Timing {
  period?: Period | undefined;
  cron?: string | undefined;
  tz?: string | undefined;
}

const PERIOD_MS: Record<Exclude<Period, 'never'>, number> = {
  hourly: 3_600_000,
  daily: 86_400_000,
  weekly: 7 * 86_400_000,
};

const tasks = new Map<string, ScheduledTask>();
const taskFor = (cron: string, tz: string | undefined): ScheduledTask => {
  const key = `${tz ?? ''}\0${cron}`;
  let task = tasks.get(key);
  if (!task) {
    // a task that is never started: only used for its time matching
    task = createTask(cron, () => undefined, tz ? { timezone: tz } : {});
    tasks.set(key, task);
  }
  return task;
};

export function checkTiming(t: Timing): void {
  if (t.cron !== undefined && t.period !== undefined) {
    throw new BuilderError('BAD_TIMING', 'give either --period or --cron, not both');
  }
  if (t.tz !== undefined && t.cron === undefined) throw new BuilderError('BAD_TIMING', '--tz only applies to --cron');
  if (t.tz !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: t.tz });
    } catch {
      throw new BuilderError('BAD_TIMING', `unknown time zone "${t.tz}"`);
    }
  }
  if (t.cron !== undefined) {
    const fields = t.cron.trim().split(/\s+/).length;
    const check = validateDetailed(t.cron);
    if (!check.valid || fields < 5) {
      const why = check.errors.map((e) => e.message).join('; ') || `expected 5 fields, got ${fields}`;
      throw new BuilderError('BAD_TIMING', `invalid cron expression "${t.cron}": ${why}`);
    }
  }
}

/** The first run time strictly after `after` (ms), or null for jobs that only run by execute. */
export function nextAfter(t: Timing, after: number): number | null {
  if (t.cron !== undefined) return nextCron(t.cron, t.tz, after);
  const period = t.period ?? 'daily';
  if (period === 'never') return null;
  return after + PERIOD_MS[period];
}

/**
 * The next run of a job that was due at `due`, seen at `now`: missed slots are skipped, so a job
 * runs once after downtime, not once per slot. Periods keep their phase.
 */
export function advance(t: Timing, due: number, now: number): number | null {
  if (t.cron !== undefined) return nextCron(t.cron, t.tz, now);
  const period = t.period ?? 'daily';
  if (period === 'never') return null;
  const step = PERIOD_MS[period];
  const missed = Math.floor((now - due) / step) + 1;
  return due + Math.max(1, missed) * step;
}

function nextCron(cron: string, tz: string | undefined, after: number): number {
  const task = taskFor(cron, tz);
  // node-cron's matcher finds the next match quickly, but it is not public API: fall back to
  // stepping minute by minute through the public match() when it is not there.
  const matcher = (task as unknown as { timeMatcher?: { getNextMatch?: (d: Date) => Date } }).timeMatcher;
  if (matcher?.getNextMatch) {
    const next = matcher.getNextMatch(new Date(after));
    if (next.getTime() > after) return next.getTime();
  }
  let t = Math.floor(after / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < 4 * 366 * 1440; i++, t += 60_000) if (task.match(new Date(t))) return t;
  throw new BuilderError('BAD_TIMING', `cron expression "${cron}" never matches`);
}
