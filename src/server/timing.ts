// When a job runs next: the original's fixed periods, or a crontab expression in a time zone.
// Pure functions of (timing, time), so the scheduler can be tested with any clock.
import { createTask, parse, type ScheduledTask } from 'node-cron';
import { BuilderError } from '../common/errors.js';
import { quote } from '../common/quote.js';
import type { Period } from '../protocol/messages.js';

// the checks live in common/, so the client refuses a bad --cron or --tz before sending it
export { checkTiming } from '../common/timing-check.js';

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

/**
 * node-cron's public API cannot answer "the first match after t" for a t of ours: a task's
 * getNextRun() is null until the task is started and then counts from the wall clock, and
 * getNextRuns(n) also starts from `new Date()`; the walker that takes a start date is its
 * private `timeMatcher`. The scheduler asks about times of its own clock (tests, downtime), so
 * we walk the calendar here with two public pieces: parse() for the allowed minutes, hours and
 * months (to skip what cannot match without asking), and task.match() as the judge of a
 * candidate minute, which keeps node-cron's own rules for days of month and week (L, names,
 * both fields given) and for the time zone.
 */
function nextCron(cron: string, tz: string | undefined, after: number): number {
  const { task, minutes, hours, months, parts } = cronFor(cron, tz);
  // when clocks go back, a local time happens twice (30 or 60 minutes apart): the job runs at
  // the first, once, as node-cron runs it once (it picks one of the two, not always the first)
  const wall = (ms: number): string => { const p = parts(ms); return `${p.day} ${p.hour}:${p.minute}`; };
  const repeatedWallTime = (ms: number): boolean => wall(ms - 1_800_000) === wall(ms) || wall(ms - 3_600_000) === wall(ms);
  let t = Math.floor(after / 60_000) * 60_000 + 60_000;
  // four years, even minute by minute: an expression that matches at all matches by then
  for (let steps = 0; steps < 4 * 366 * 24 * 60; steps++) {
    // Offset changes happen on whole local hours (by at most an hour), so within a local hour
    // local and real minutes step together, and a jump to 23:00 lands no later than midnight.
    const p = parts(t);
    if (!months.has(p.month) && p.hour < 22) {
      t += ((22 - p.hour) * 60 + 60 - p.minute) * 60_000;
      continue;
    }
    const minute = months.has(p.month) && hours.has(p.hour) ? minutes.find((m) => m >= p.minute) : undefined;
    if (minute === undefined) {
      // nothing more in this local hour can match: go to the start of the next one
      t += (60 - p.minute) * 60_000;
      continue;
    }
    t += (minute - p.minute) * 60_000;
    if (task.match(new Date(t)) && !repeatedWallTime(t)) return t;
    t += 60_000;
  }
  throw new BuilderError('BAD_TIMING', `cron expression ${quote(cron)} never matches`);
}

interface CronWalk {
  task: ScheduledTask;
  /** ascending */
  minutes: readonly number[];
  hours: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** local month (1-12), day, hour and minute of an instant in the expression's time zone */
  parts: (ms: number) => { month: number; day: number; hour: number; minute: number };
}

const walks = new Map<string, CronWalk>();
function cronFor(cron: string, tz: string | undefined): CronWalk {
  const key = `${tz ?? ''}\0${cron}`;
  let walk = walks.get(key);
  if (!walk) {
    const fields = parse(cron);
    const format = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric',
    });
    walk = {
      // a task that is never started: only used for its time matching
      task: createTask(cron, () => undefined, tz ? { timezone: tz } : {}),
      minutes: [...fields.minute].sort((a, b) => a - b),
      hours: new Set(fields.hour),
      months: new Set(fields.month),
      parts: (ms) => {
        const p = { month: 0, day: 0, hour: 0, minute: 0 };
        for (const { type, value } of format.formatToParts(ms)) {
          if (type === 'month' || type === 'day' || type === 'hour' || type === 'minute') p[type] = Number(value);
        }
        return p;
      },
    };
    walks.set(key, walk);
  }
  return walk;
}
