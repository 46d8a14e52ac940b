// schedule, orb-build, unschedule, reschedule: changes to the schedule.
// read synchronously: a one-shot command gains nothing from the thread pool, and starting it
// (and loading node:fs/promises) costs its start-up a few milliseconds
import { closeSync, openSync, readSync } from 'node:fs';
import { BuilderError, UsageError } from '../../common/errors.js';
import { intFlag, type ParsedArgs } from '../../common/args.js';
import { quote } from '../../common/quote.js';
import { MAX_SCRIPT_BYTES, MAX_TIMEOUT_SEC, MIN_TIMEOUT_SEC } from '../../protocol/limits.js';
import { PERIODS, type Period } from '../../protocol/messages.js';
import type { Command } from '../command.js';
import { buildEnvArgs, buildEnvFlags, buildEnvHelp } from './build-env-flags.js';

const timingFlags = ['period', 'cron', 'tz', 'timeout'] as const;

/**
 * A bad --cron or --tz is a usage error, found here before anything is sent; what only the
 * server can judge (an expression that never matches) comes back as BAD_TIMING and is one too,
 * so the exit status does not depend on where the check happened.
 */
const timingIsUsage = <T>(work: () => T): T => {
  try {
    return work();
  } catch (err) {
    throw err instanceof BuilderError && err.code === 'BAD_TIMING' ? new UsageError(err.message) : err;
  }
};
const sendTiming = async <T>(work: () => Promise<T>): Promise<T> => {
  try {
    return await work();
  } catch (err) {
    throw err instanceof BuilderError && err.code === 'BAD_TIMING' ? new UsageError(err.message) : err;
  }
};

async function timing(args: ParsedArgs): Promise<{ period?: Period; cron?: string; tz?: string; timeoutSec?: number }> {
  const period = args.values.period;
  if (period !== undefined && !(PERIODS as readonly string[]).includes(period)) {
    throw new UsageError(`--period must be one of ${PERIODS.join('|')}, got ${quote(period)}`);
  }
  // node-cron is loaded to check a --cron or --tz only (without both there is nothing to check):
  // a plain schedule does not pay for it
  if (args.values.cron !== undefined || args.values.tz !== undefined) {
    const { checkTiming } = await import('../../common/timing-check.js');
    timingIsUsage(() => checkTiming(args.values));
  }
  return {
    ...(period !== undefined ? { period: period as Period } : {}),
    ...(args.values.cron !== undefined ? { cron: args.values.cron } : {}),
    ...(args.values.tz !== undefined ? { tz: args.values.tz } : {}),
    ...(args.values.timeout !== undefined ? { timeoutSec: intFlag(args, 'timeout', 0, MIN_TIMEOUT_SEC, MAX_TIMEOUT_SEC) } : {}),
  };
}

const timingHelp = `  --period hourly|daily|weekly|never   how often (default daily)
  --cron "MIN HOUR DOM MON DOW"        a crontab expression instead of a period
  --tz ZONE                            time zone of --cron (default UTC)
  --timeout SECONDS                    end the job after this long (default: the server's, 3600)
${buildEnvHelp}`;

/**
 * The script's bytes as they are (a binary script runs as given), refused here when too large
 * rather than cut off by the server mid-send. Reads at most one byte past the limit.
 */
function readScript(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new UsageError(`cannot read script ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  try {
    const buf = Buffer.alloc(MAX_SCRIPT_BYTES + 1);
    let n = 0;
    for (;;) {
      const bytesRead = readSync(fd, buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_SCRIPT_BYTES) throw new UsageError(`script too large: ${file} has more than ${MAX_SCRIPT_BYTES} bytes (limit ${MAX_SCRIPT_BYTES})`);
    }
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read script ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  } finally {
    closeSync(fd);
  }
}

export const schedule: Command = {
  name: 'schedule',
  summary: 'schedule a script job for one platform',
  usage: `builder-client schedule NAME PLATFORM SCRIPTFILE [options]

The job is queued at once (unless --period never) and then runs every period.
${timingHelp}

example: builder-client schedule hello debian-12 ./hello.sh --cron "0 3 * * 1" --tz Europe/Berlin`,
  flags: { values: [...timingFlags, ...buildEnvFlags.values], lists: buildEnvFlags.lists },
  positionals: [3, 3],
  async run(args, ctx) {
    const [name, platform, file] = args.positionals as [string, string, string];
    const t = await timing(args);
    const script = readScript(file);
    const env = buildEnvArgs(args);
    const session = await ctx.connect();
    const { data } = await sendTiming(() => session.request({ op: 'schedule', name, platform, script, ...t, ...env }));
    ctx.out(`scheduled ${name} on ${platform}; next run ${data.next ?? 'only by execute'}${data.queued.length ? '; queued now' : ''}`);
    return 0;
  },
};

export const orbBuild: Command = {
  name: 'orb-build',
  summary: 'schedule a templated opam package build on every platform with a template',
  usage: `builder-client orb-build NAME OPAM_PACKAGE [options]

The script comes from orb-build.template.PLATFORM in the server's config directory, or else
from the templates shipped with builder ('builder-client templates' lists them), rendered at the
start of each run ('builder-client render NAME' shows it).
${timingHelp}`,
  flags: { values: [...timingFlags, ...buildEnvFlags.values], lists: buildEnvFlags.lists },
  positionals: [2, 2],
  async run(args, ctx) {
    const [name, pkg] = args.positionals as [string, string];
    const t = await timing(args);
    const env = buildEnvArgs(args);
    const session = await ctx.connect();
    const { data } = await sendTiming(() => session.request({ op: 'orb-build', name, package: pkg, ...t, ...env }));
    ctx.out(`scheduled ${name} (${pkg}); next run ${data.next ?? 'only by execute'}; queued on: ${data.queued.join(', ') || 'no platform yet'}`);
    return 0;
  },
};

export const unschedule: Command = {
  name: 'unschedule',
  summary: 'remove a job from the schedule and its queues',
  usage: 'builder-client unschedule NAME',
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    await session.request({ op: 'unschedule', name: args.positionals[0]! });
    ctx.out(`unscheduled ${args.positionals[0]}`);
    return 0;
  },
};

export const reschedule: Command = {
  name: 'reschedule',
  summary: 'set the next run time (and optionally the period) of a job',
  usage: `builder-client reschedule NAME NEXT [--period P | --cron EXPR]

NEXT is an RFC 3339 time in UTC, e.g. 2026-01-31T03:00:00Z.`,
  flags: { values: ['period', 'cron'] },
  positionals: [2, 2],
  async run(args, ctx) {
    const [name, next] = args.positionals as [string, string];
    const t = await timing(args);
    const session = await ctx.connect();
    const { data } = await sendTiming(() => session.request({
      op: 'reschedule', name, next, ...(t.period ? { period: t.period } : {}), ...(t.cron ? { cron: t.cron } : {}),
    }));
    ctx.out(`rescheduled ${name}; next run ${data.next ?? 'only by execute'}`);
    return 0;
  },
};
