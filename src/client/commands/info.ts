// info: what the server holds. A person at a terminal gets a summary that stays one screen at any
// size of the schedule (info-summary); --all prints the whole listing as info always did; scripts
// keep `info --json` (the whole listing, the same JSON as ever) or page through the jobs with
// --limit N --after NAME (info-page).
import { intFlag } from '../../common/args.js';
import { UsageError } from '../../common/errors.js';
import { MAX_INFO_DUE, MAX_INFO_PAGE } from '../../protocol/limits.js';
import type { Info, InfoPage, InfoSummary, JobInfo, PlatformSummary } from '../../protocol/replies.js';
import type { ClientContext, Command } from '../command.js';
import { duration, table } from '../format.js';
import { reproCell } from './repro.js';
import { workersTable } from './state.js';

const PAGE_DEFAULT = 100;

export const info: Command = {
  name: 'info',
  summary: 'a summary of the schedule, queues, running jobs and workers (--all: everything)',
  usage: `builder-client info [--due N] [--json --summary]
builder-client info --all [--json]
builder-client info --limit N [--after NAME] [--json]

  (no option)  a summary the same size at any size of the schedule: per platform its jobs,
               queue (and its first jobs), running runs and workers; the oldest running runs;
               the next runs due; dropped platforms and paused jobs
  --due N      how many of the next runs due the summary shows (0 to ${MAX_INFO_DUE}, default 10)
  --all        every job, every queue entry, every running run and worker (as info printed
               before the summary); its size grows with the schedule
  --json       the same as JSON. Without --summary or --limit: the whole listing, as --all
               (the shape scripts have always read: schedule, queues, running, dropped, workers)
  --summary    with --json: the summary as JSON
  --limit N    one page of the schedule, by job name: at most N jobs (1 to ${MAX_INFO_PAGE}) ...
  --after NAME ... those named after NAME (default: from the first; with --after, N defaults to
               ${PAGE_DEFAULT}). A page's JSON has "next": the NAME of the next page, or null at the end`,
  flags: { values: ['due', 'limit', 'after'], booleans: ['json', 'all', 'summary'] },
  positionals: [0, 0],
  async run(args, ctx) {
    const json = args.booleans.has('json');
    const all = args.booleans.has('all');
    const paged = args.values.limit !== undefined || args.values.after !== undefined;
    const summary = args.booleans.has('summary') || (!json && !all && !paged);
    if ([all, paged, args.booleans.has('summary')].filter(Boolean).length > 1) {
      throw new UsageError('info: give one of --all, --summary, --limit/--after');
    }
    if (args.values.due !== undefined && !summary) throw new UsageError('info: --due goes with the summary only');
    const due = intFlag(args, 'due', 10, 0, MAX_INFO_DUE);
    const limit = intFlag(args, 'limit', PAGE_DEFAULT, 1, MAX_INFO_PAGE);
    const session = await ctx.connect();
    if (paged) {
      const { data } = await session.request({ op: 'info-page', limit, ...(args.values.after !== undefined ? { after: args.values.after } : {}) });
      if (json) ctx.out(JSON.stringify(data, null, 2));
      else printPage(ctx, data, limit);
      return 0;
    }
    if (summary) {
      const { data } = await session.request({ op: 'info-summary', due });
      if (json) ctx.out(JSON.stringify(data, null, 2));
      else printSummary(ctx, data);
      return 0;
    }
    const { data } = await session.request({ op: 'info' });
    if (json) ctx.out(JSON.stringify(data, null, 2));
    else printAll(ctx, data);
    return 0;
  },
};

const scheduleTable = (jobs: JobInfo[]): string =>
  table(['JOB', 'PLATFORM', 'WHEN', 'NEXT RUN', 'TIMEOUT', 'REPRO'],
    jobs.map((j) => [j.name, j.platform ?? `all (orb ${j.package})`, j.cron ? `cron ${j.cron}${j.tz ? ` ${j.tz}` : ''}` : j.period,
      j.paused ? 'paused (platform dropped)' : (j.next ?? 'only by execute'), duration(j.timeoutSec * 1000), reproCell(j)]));

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

function platformState(p: PlatformSummary): string {
  if (p.dropped) return p.jobs > 0 ? `dropped (${plural(p.jobs, 'job')} paused)` : 'dropped';
  if (p.workers === 0) return p.queued > 0 ? 'no worker' : '-';
  return 'served';
}

function printSummary(ctx: ClientContext, s: InfoSummary): void {
  ctx.out(`${plural(s.jobs, 'job')} (${s.orbJobs} orb-build), ${s.paused} paused, ${s.failing} failing at their last run; ` +
    `${plural(s.workers, 'worker')} connected`);
  ctx.out('');
  ctx.out(table(['PLATFORM', 'JOBS', 'QUEUED', 'RUNNING', 'WORKERS', 'STATE', 'NEXT IN QUEUE'],
    s.platforms.map((p) => [p.platform, p.jobs, p.queued, p.running, p.workers ? `${p.workers} (${p.capacity} slots)` : 0, platformState(p),
      p.head.length ? `${p.head.join(', ')}${p.queued > p.head.length ? ', ...' : ''}` : '-'])));
  ctx.out(`\nrunning: ${s.runningCount}${s.runningCount > s.running.length ? ` (the ${s.running.length} oldest shown)` : ''}`);
  if (s.running.length > 0) {
    ctx.out(table(['STARTED', 'UUID', 'JOB', 'PLATFORM', 'WORKER'], s.running.map((r) => [r.started, r.uuid, r.job, r.platform, r.worker])));
  }
  if (s.nextDue.length > 0) {
    ctx.out('\nnext runs due:');
    ctx.out(table(['NEXT RUN', 'JOB', 'PLATFORM'], s.nextDue.map((j) => [j.next, j.name, j.platform ?? 'all (orb)'])));
  }
  ctx.out(`\ndropped platforms: ${s.dropped.length ? s.dropped.join(', ') : '(none)'}`);
  ctx.out("\n'builder-client info --all' lists every job, queue entry and worker; 'info --limit N' pages through the jobs.");
}

function printPage(ctx: ClientContext, page: InfoPage, limit: number): void {
  ctx.out(page.schedule.length ? scheduleTable(page.schedule) : '(no jobs)');
  if (page.next !== null) ctx.out(`\nnext page: builder-client info --limit ${limit} --after ${page.next}`);
}

function printAll(ctx: ClientContext, d: Info): void {
  ctx.out('schedule:');
  ctx.out(scheduleTable(d.schedule));
  ctx.out('\nqueues:');
  const queues = Object.entries(d.queues);
  if (queues.length === 0) ctx.out('(none)');
  for (const [platform, jobs] of queues) ctx.out(`${platform}: ${jobs.length ? jobs.join(', ') : '(empty)'}`);
  ctx.out('\nrunning:');
  ctx.out(table(['STARTED', 'UUID', 'JOB', 'PLATFORM', 'WORKER'], d.running.map((r) => [r.started, r.uuid, r.job, r.platform, r.worker])));
  ctx.out('\nworkers:');
  ctx.out(workersTable(d.workers));
  ctx.out(`\ndropped platforms: ${d.dropped.length ? d.dropped.join(', ') : '(none)'}`);
}
