// info, history, workers: readable tables, or JSON with --json.
import { intFlag } from '../../common/args.js';
import { UsageError } from '../../common/errors.js';
import { describeResult } from '../../protocol/describe.js';
import type { WorkerInfo } from '../../protocol/replies.js';
import type { Command } from '../command.js';
import { bytes, duration, table } from '../format.js';
import { printRecord, reproCell } from './repro.js';

const json = { booleans: ['json'] } as const;

function workersTable(workers: WorkerInfo[]): string {
  const state = (w: WorkerInfo): string =>
    [w.dropped && 'platform dropped', w.draining && 'draining', w.diskShort && 'SHORT OF DISK'].filter(Boolean).join(', ') || 'ready';
  return table(
    ['WORKER', 'PLATFORM', 'SANDBOX', 'RUNNING', 'FREE DISK', 'STATE', 'ADDRESS'],
    workers.map((w) => [w.name, w.platform, w.sandbox, `${w.running.length}/${w.capacity}`,
      w.freePercent === null ? null : `${w.freePercent}%`, state(w), w.address]),
  );
}

export const info: Command = {
  name: 'info',
  summary: 'schedule, queues, running jobs, workers and dropped platforms',
  usage: 'builder-client info [--json]',
  flags: json,
  positionals: [0, 0],
  async run(args, ctx) {
    const session = await ctx.connect();
    const { data: d } = await session.request({ op: 'info' });
    if (args.booleans.has('json')) {
      ctx.out(JSON.stringify(d, null, 2));
      return 0;
    }
    ctx.out('schedule:');
    ctx.out(table(['JOB', 'PLATFORM', 'WHEN', 'NEXT RUN', 'TIMEOUT', 'REPRO'],
      d.schedule.map((j) => [j.name, j.platform ?? `all (orb ${j.package})`, j.cron ? `cron ${j.cron}${j.tz ? ` ${j.tz}` : ''}` : j.period,
        j.next ?? 'only by execute', duration(j.timeoutSec * 1000), reproCell(j)])));
    ctx.out('\nqueues:');
    const queues = Object.entries(d.queues);
    if (queues.length === 0) ctx.out('(none)');
    for (const [platform, jobs] of queues) ctx.out(`${platform}: ${jobs.length ? jobs.join(', ') : '(empty)'}`);
    ctx.out('\nrunning:');
    ctx.out(table(['STARTED', 'UUID', 'JOB', 'PLATFORM', 'WORKER'], d.running.map((r) => [r.started, r.uuid, r.job, r.platform, r.worker])));
    ctx.out('\nworkers:');
    ctx.out(workersTable(d.workers));
    ctx.out(`\ndropped platforms: ${d.dropped.length ? d.dropped.join(', ') : '(none)'}`);
    return 0;
  },
};

export const history: Command = {
  name: 'history',
  summary: 'finished runs, newest first',
  usage: `builder-client history [NAME] [--limit N] [--json]
builder-client history NAME --repro [--platform P] [--json]

  REPRO: how a successful run compared with the previous successful run of its job on its
  platform (reproduced, differs, or - for a failed or first run).
  --repro   the job's record instead: how many runs reproduced the one before, the current
            streak and since when, and which artifact broke it last`,
  flags: { values: ['limit', 'platform'], booleans: ['json', 'repro'] },
  positionals: [0, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    if (args.booleans.has('repro')) {
      const job = args.positionals[0];
      if (!job) throw new UsageError('history --repro needs a job NAME');
      const { data } = await session.request({ op: 'repro-record', job, ...(args.values.platform ? { platform: args.values.platform } : {}) });
      if (args.booleans.has('json')) ctx.out(JSON.stringify(data, null, 2));
      else printRecord(ctx, data.job, data.platforms);
      return 0;
    }
    const limit = args.values.limit === undefined ? undefined : intFlag(args, 'limit', 20, 1, 10_000);
    const { data: runs } = await session.request({
      op: 'history', ...(args.positionals[0] ? { job: args.positionals[0] } : {}), ...(limit ? { limit } : {}),
    });
    if (args.booleans.has('json')) {
      ctx.out(JSON.stringify(runs, null, 2));
      return 0;
    }
    ctx.out(table(['FINISHED', 'JOB', 'PLATFORM', 'RESULT', 'TOOK', 'PEAK MEM', 'CPU', 'REPRO', 'UUID'],
      runs.map((r) => [r.finished, r.job, r.platform, r.result ? describeResult(r.result) : null,
        r.finished ? duration(Date.parse(r.finished) - Date.parse(r.started)) : null,
        bytes(r.stats.peakMemoryBytes), r.stats.cpuMs === undefined ? null : duration(r.stats.cpuMs), r.repro?.verdict ?? null, r.uuid])));
    return 0;
  },
};

export const workers: Command = {
  name: 'workers',
  summary: 'connected workers, their capacity, state and free disk',
  usage: 'builder-client workers [--json]',
  flags: json,
  positionals: [0, 0],
  async run(args, ctx) {
    const session = await ctx.connect();
    const { data } = await session.request({ op: 'workers' });
    ctx.out(args.booleans.has('json') ? JSON.stringify(data, null, 2) : workersTable(data));
    return 0;
  },
};

const simple = (name: 'drop-platform' | 'undrop-platform' | 'drain', arg: string, summary: string, done: string): Command => ({
  name,
  summary,
  usage: `builder-client ${name} ${arg.toUpperCase()}`,
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    const value = args.positionals[0]!;
    await session.request(name === 'drain' ? { op: name, worker: value } : { op: name, platform: value });
    ctx.out(`${done} ${value}`);
    return 0;
  },
});

export const dropPlatform = simple('drop-platform', 'platform', 'remove a platform\'s queue and script jobs; refuse new ones', 'dropped platform');
export const undropPlatform = simple('undrop-platform', 'platform', 'allow a dropped platform again', 'undropped platform');
export const drain = simple('drain', 'worker', 'let a worker finish its jobs and take no new one', 'draining worker');
