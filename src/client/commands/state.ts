// history, workers, drop-platform...: readable tables, or JSON with --json (info: info.ts).
import { intFlag } from '../../common/args.js';
import { UsageError } from '../../common/errors.js';
import { describeResult } from '../../protocol/describe.js';
import type { WorkerInfo } from '../../protocol/replies.js';
import type { Command } from '../command.js';
import { bytes, duration, table } from '../format.js';
import { printRecord } from './repro.js';

const json = { booleans: ['json'] } as const;
/** the most runs one history request returns (the server's bound too) */
const HISTORY_MAX = 10_000;

export function workersTable(workers: WorkerInfo[]): string {
  const state = (w: WorkerInfo): string =>
    [w.dropped && 'platform dropped', w.draining && 'draining', w.diskShort && 'SHORT OF DISK'].filter(Boolean).join(', ') || 'ready';
  return table(
    ['WORKER', 'PLATFORM', 'SANDBOX', 'RUNNING', 'FREE DISK', 'STATE', 'ADDRESS'],
    workers.map((w) => [w.name, w.platform, w.sandbox, `${w.running.length}/${w.capacity}`,
      w.freePercent === null ? null : `${w.freePercent}%`, state(w), w.address]),
  );
}

export const history: Command = {
  name: 'history',
  summary: 'finished runs, newest first',
  usage: `builder-client history [NAME] [--limit N] [--json]
builder-client history NAME --repro [--platform P] [--json]

  NAME      one job's runs (also of a job since unscheduled); a name that never had a job is refused
  --limit N the newest N runs (1 to 10000, default 20)
  REPRO: how a successful run compared with the previous successful run of its job on its
  platform (reproduced, differs, or - for a failed or first run).
  --repro   the job's record instead: how many runs reproduced the one before, the current
            streak and since when, and which artifact broke it last`,
  flags: { values: ['limit', 'platform'], booleans: ['json', 'repro'] },
  positionals: [0, 1],
  async run(args, ctx) {
    const limit = args.values.limit === undefined ? undefined : intFlag(args, 'limit', 20, 1, HISTORY_MAX);
    const session = await ctx.connect();
    if (args.booleans.has('repro')) {
      const job = args.positionals[0];
      if (!job) throw new UsageError('history --repro needs a job NAME');
      const { data } = await session.request({ op: 'repro-record', job, ...(args.values.platform ? { platform: args.values.platform } : {}) });
      if (args.booleans.has('json')) ctx.out(JSON.stringify(data, null, 2));
      else printRecord(ctx, data.job, data.platforms);
      return 0;
    }
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

const jobList = (names: string[] | undefined): string => (names?.length ? names.join(', ') : '(none)');

export const dropPlatform: Command = {
  name: 'drop-platform',
  summary: 'pause a platform: its jobs are kept but not run, its workers get nothing, new jobs are refused',
  usage: `builder-client drop-platform PLATFORM

The platform's script jobs are paused, not deleted: they stay in 'info' (marked paused) with
their history, and undrop-platform resumes them. 'unschedule NAME' deletes a job.`,
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    const platform = args.positionals[0]!;
    const { data } = await session.request({ op: 'drop-platform', platform });
    ctx.out(`dropped platform ${platform}; paused jobs: ${jobList(data.pausedJobs)}`);
    return 0;
  },
};

export const undropPlatform: Command = {
  name: 'undrop-platform',
  summary: 'allow a dropped platform again and resume its paused jobs',
  usage: `builder-client undrop-platform PLATFORM

What was queued runs again; a job whose time came while it was paused runs once, now.`,
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    const platform = args.positionals[0]!;
    const { data } = await session.request({ op: 'undrop-platform', platform });
    ctx.out(`undropped platform ${platform}; resumed jobs: ${jobList(data.resumedJobs)}`);
    return 0;
  },
};

export const drain: Command = {
  name: 'drain',
  summary: 'let a worker finish its jobs and take no new one',
  usage: 'builder-client drain WORKER',
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    const worker = args.positionals[0]!;
    await session.request({ op: 'drain', worker });
    ctx.out(`draining worker ${worker}`);
    return 0;
  },
};
