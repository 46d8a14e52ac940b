// What each client request does. Every change is checked first and then made in one
// transaction, so a refused request changes nothing.
import { BuilderError, type ErrorCode } from '../common/errors.js';
import { checkName, isUuid } from '../common/names.js';
import type { Connection } from '../protocol/connection.js';
import type { Request, SecretArg } from '../protocol/messages.js';
import type { JobInfo, Replies, Reply, RunInfo, Scheduled, WorkerInfo } from '../protocol/replies.js';
import type { ServerConfig } from './config.js';
import type { Coordinator } from './coordinator.js';
import { connectionPort } from './port.js';
import type { Scheduler } from './scheduler.js';
import { platformsFor, timingOf } from './scheduler.js';
import type { JobRow, JobSummary, RunRow, Store } from './store/index.js';
import { checkTiming, nextAfter, type Timing } from './timing.js';
import { listUploads, retryUpload } from './upload/requests.js';
import { checkSecrets, type Secrets } from './job-secrets.js';
import { renderJob, templatesReply } from './template-requests.js';
import { sourceDateEpochOf } from './templates.js';
import { compareRuns, defaultReproOptions, jobVerdicts, reproOf, reproRecord, verifyJob, type ReproOptions } from './repro/requests.js';
import type { Uploader } from './upload/uploader.js';
import { fetchArtifacts, runConsole, runResult } from './fetch-requests.js';
import { requestPolicy, type Retention } from './retention.js';

export interface RequestContext {
  store: Store;
  coordinator: Coordinator;
  scheduler: Scheduler;
  config: ServerConfig;
  /** present when the server uploads to builder-web (--upload) */
  uploader: Uploader | undefined;
  /** how compare and verify make diff reports (default: diffoscope from PATH, 2 at once) */
  repro?: ReproOptions;
  /** deletes old runs (--keep-runs, --keep-days); prune and prune-plan need it */
  retention?: Retention;
}

let sharedRepro: ReproOptions | undefined;
const reproOptions = (ctx: RequestContext): ReproOptions => ctx.repro ?? (sharedRepro ??= defaultReproOptions());

export const PACKAGE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const MAX_TIMEOUT_SEC = 7 * 86_400;
/** 9999-12-31T23:59:59Z: what tools that format dates still print with four digits */
const MAX_SOURCE_DATE_EPOCH = 253_402_300_799;

const refuse = (code: ErrorCode, message: string): never => {
  throw new BuilderError(code, message);
};

const noUploads = (): never => refuse('NO_UPLOADS', 'uploads are not configured on this server (--upload URL)');

function timingFrom(req: { period?: Timing['period'] | undefined; cron?: string | undefined; tz?: string | undefined }): Timing {
  const t: Timing = { period: req.period, cron: req.cron, tz: req.tz };
  checkTiming(t);
  return t;
}

/** What schedule and orb-build add to a job's environment: its SOURCE_DATE_EPOCH and secrets. */
interface BuildEnvReq { sourceDateEpoch?: number | undefined; secrets?: SecretArg[] | undefined }

function newJob(ctx: RequestContext, base: Omit<JobRow, 'next_run' | 'created' | 'period' | 'cron' | 'tz' | 'timeout_sec' | 'source_date_epoch'>,
  t: Timing, timeoutSec: number | undefined, env: BuildEnvReq): Scheduled {
  const { store } = ctx;
  checkName('job', base.name);
  if (timeoutSec !== undefined && (timeoutSec < 1 || timeoutSec > MAX_TIMEOUT_SEC)) {
    refuse('BAD_TIMEOUT', `timeout must be between 1 and ${MAX_TIMEOUT_SEC} seconds, got ${timeoutSec}`);
  }
  const sde = env.sourceDateEpoch;
  if (sde !== undefined && (sde < 0 || sde > MAX_SOURCE_DATE_EPOCH)) {
    refuse('BAD_EPOCH', `SOURCE_DATE_EPOCH must be between 0 and ${MAX_SOURCE_DATE_EPOCH} seconds, got ${sde}`);
  }
  const secrets: Secrets = checkSecrets(env.secrets ?? []);
  if (store.job(base.name)) refuse('NAME_USED', `job name already used: ${base.name}`);
  const now = Date.now();
  const period = t.cron === undefined ? (t.period ?? 'daily') : null;
  const row: JobRow = {
    ...base, period, cron: t.cron ?? null, tz: t.tz ?? null,
    timeout_sec: timeoutSec ?? ctx.config.timeoutSec, next_run: nextAfter(t, now), created: now,
    // the creation time, not each run's start: stable across runs, so two runs can be identical
    source_date_epoch: sde ?? Math.floor(now / 1000),
  };
  const queued: string[] = [];
  // the secrets go to their file before the job exists, so no run starts without them
  ctx.coordinator.secrets.put(row.name, secrets);
  try {
    store.tx(() => {
      store.insertJob(row);
      if (row.kind === 'script' && row.platform) store.addPlatform(row.platform);
      // a new job runs at once, except jobs that only ever run by execute
      if (period !== 'never') for (const p of platformsFor(store, ctx.config.configDir, row)) if (store.enqueue(p, row.name)) queued.push(p);
    });
  } catch (err) {
    ctx.coordinator.secrets.remove(row.name);
    throw err;
  }
  ctx.scheduler.changed(queued);
  return { name: row.name, next: row.next_run === null ? null : new Date(row.next_run).toISOString(), queued };
}

const jobInfo = (ctx: RequestContext) => (j: JobSummary): JobInfo => ({
  name: j.name, kind: j.kind, platform: j.platform, package: j.package, period: j.period, cron: j.cron, tz: j.tz,
  timeoutSec: j.timeout_sec, next: j.next_run === null ? null : new Date(j.next_run).toISOString(),
  sourceDateEpoch: sourceDateEpochOf(j), secrets: ctx.coordinator.secrets.names(j.name),
});

export const runInfo = (r: RunRow): RunInfo => ({
  uuid: r.uuid, job: r.job, platform: r.platform, worker: r.worker, attempt: r.attempt,
  started: new Date(r.started).toISOString(), finished: r.finished === null ? null : new Date(r.finished).toISOString(),
  result: r.result ? JSON.parse(r.result) : null, stats: r.stats ? JSON.parse(r.stats) : {},
  refusals: r.refusals ? JSON.parse(r.refusals) : [], dir: r.dir,
});

export function workersInfo(ctx: RequestContext): WorkerInfo[] {
  return [...ctx.coordinator.workers].map((w) => ({
    name: w.name, platform: w.platform, address: w.peer, capacity: w.capacity, running: [...w.runs],
    draining: w.draining, diskShort: w.diskShort, freePercent: w.freePercent ?? null, sandbox: w.sandbox ?? null,
    since: new Date(w.since).toISOString(), dropped: ctx.store.isDropped(w.platform),
  }));
}

/**
 * Handles one request; returns the response data (Replies[req.op], checked per case with
 * `satisfies`), or throws a BuilderError that becomes the refusal.
 */
export async function handleRequest(ctx: RequestContext, conn: Connection, req: Request): Promise<Reply> {
  const { store, coordinator } = ctx;
  switch (req.op) {
    case 'schedule': {
      checkName('platform', req.platform);
      if (store.isDropped(req.platform)) refuse('DROPPED', `platform ${req.platform} is dropped; undrop-platform it first`);
      return newJob(ctx, { name: req.name, kind: 'script', platform: req.platform, script: req.script, package: null },
        timingFrom(req), req.timeoutSec, req);
    }
    case 'orb-build': {
      if (!PACKAGE.test(req.package)) refuse('BAD_NAME', `invalid opam package name "${req.package}"`);
      return newJob(ctx, { name: req.name, kind: 'orb', platform: null, script: null, package: req.package },
        timingFrom(req), req.timeoutSec, req);
    }
    case 'unschedule': {
      if (!store.job(req.name)) refuse('NO_JOB', `no job named ${req.name}`);
      store.tx(() => store.deleteJob(req.name));
      coordinator.secrets.remove(req.name);
      ctx.scheduler.changed();
      return { name: req.name } satisfies Replies['unschedule'];
    }
    case 'reschedule': {
      const job = store.job(req.name) ?? refuse('NO_JOB', `no job named ${req.name}`);
      // RFC 3339 in UTC only, as the original: no local-time ambiguity
      if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(req.next) || Number.isNaN(Date.parse(req.next))) {
        refuse('BAD_TIME', `invalid time "${req.next}": expected RFC 3339 in UTC, e.g. 2026-01-31T03:00:00Z`);
      }
      // a new period or cron replaces the old timing; a new cron keeps the job's time zone
      const t = req.period !== undefined || req.cron !== undefined
        ? timingFrom({ period: req.period, cron: req.cron, tz: req.cron ? (job.tz ?? undefined) : undefined })
        : timingOf(job);
      const next = Date.parse(req.next);
      store.tx(() => store.setTiming(job.name, next, t.cron ? null : (t.period ?? 'daily'), t.cron ?? null, t.tz ?? null));
      ctx.scheduler.changed();
      return jobInfo(ctx)(store.job(job.name)!);
    }
    case 'execute': {
      const job = store.job(req.name) ?? refuse('NO_JOB', `no job named ${req.name}`);
      let platforms = platformsFor(store, ctx.config.configDir, job);
      if (req.platform !== undefined) {
        if (!platforms.includes(req.platform)) refuse('NO_PLATFORM', `job ${job.name} does not run on platform ${req.platform}`);
        platforms = [req.platform];
      }
      if (platforms.length === 0) refuse('NO_PLATFORM', `job ${job.name} has no platform to run on (dropped, or no template)`);
      store.tx(() => platforms.forEach((p) => store.enqueueFront(p, job.name)));
      if (req.follow) coordinator.follow(connectionPort(conn), req.id, job.name, platforms);
      // after the answer has gone, so the client hears "queued" before "started"
      setImmediate(() => platforms.forEach((p) => coordinator.dispatch(p)));
      return { name: job.name, queued: platforms } satisfies Replies['execute'];
    }
    case 'info': {
      const verdicts = jobVerdicts(store);
      return {
        schedule: store.jobs().map((j) => ({ ...jobInfo(ctx)(j), repro: verdicts.get(j.name) ?? [] })),
        queues: Object.fromEntries(
          store.platforms().filter((p) => !p.dropped).map((p) => [p.name, store.queue(p.name).map((e) => e.job)]),
        ),
        running: store.running().map(runInfo).map(({ uuid, job, platform, worker, started }) => ({ uuid, job, platform, worker, started })),
        dropped: store.platforms().filter((p) => p.dropped).map((p) => p.name),
        workers: workersInfo(ctx),
      } satisfies Replies['info'];
    }
    case 'observe': {
      if (!isUuid(req.uuid)) refuse('BAD_UUID', `invalid uuid "${req.uuid}"`);
      if (coordinator.observe(connectionPort(conn), req.id, req.uuid)) return { uuid: req.uuid, live: true } satisfies Replies['observe'];
      const row = store.run(req.uuid) ?? refuse('NO_RUN', `no run with uuid ${req.uuid}`);
      return { uuid: req.uuid, live: false, run: runInfo(row) } satisfies Replies['observe'];
    }
    case 'observe-latest': {
      const run = coordinator.latest(req.platform, req.job)
        ?? refuse('NO_RUN', `no running job${req.job ? ` named ${req.job}` : ''}${req.platform ? ` on ${req.platform}` : ''}`);
      coordinator.observe(connectionPort(conn), req.id, run.uuid);
      return { uuid: run.uuid, live: true } satisfies Replies['observe-latest'];
    }
    case 'drop-platform': {
      checkName('platform', req.platform);
      const jobs = store.tx(() => store.dropPlatform(req.platform));
      for (const name of jobs) coordinator.secrets.remove(name);
      return { platform: req.platform, removedJobs: jobs } satisfies Replies['drop-platform'];
    }
    case 'undrop-platform': {
      if (!store.isDropped(req.platform)) refuse('NOT_DROPPED', `platform ${req.platform} is not dropped`);
      store.tx(() => store.setDropped(req.platform, false));
      coordinator.dispatch(req.platform);
      return { platform: req.platform } satisfies Replies['undrop-platform'];
    }
    case 'history':
      return store.history(req.job, Math.min(Math.max(req.limit ?? 20, 1), 10_000))
        .map((r) => ({ ...runInfo(r), repro: reproOf(store, r.uuid) }));
    case 'cancel': {
      if (!isUuid(req.uuid)) refuse('BAD_UUID', `invalid uuid "${req.uuid}"`);
      if (!(await coordinator.cancel(req.uuid))) refuse('NO_RUN', `no running job with uuid ${req.uuid}`);
      return { uuid: req.uuid } satisfies Replies['cancel'];
    }
    case 'workers':
      return workersInfo(ctx);
    case 'drain': {
      const matching = [...coordinator.workers].filter((w) => w.name === req.worker);
      if (matching.length === 0) refuse('NO_WORKER', `no connected worker named ${req.worker}`);
      for (const w of matching) {
        w.draining = true;
        w.port.send({ t: 'drain' });
      }
      return { worker: req.worker, running: matching.flatMap((w) => [...w.runs]) } satisfies Replies['drain'];
    }
    case 'uploads':
      return listUploads(store, ctx.uploader ?? noUploads(), req);
    case 'upload-retry':
      return retryUpload(store, ctx.uploader ?? noUploads(), req);
    case 'templates':
      return templatesReply(ctx);
    case 'render':
      return renderJob(ctx, req);
    case 'compare':
      return compareRuns(store, reproOptions(ctx), req.a, req.b);
    case 'verify':
      return verifyJob({ store, coordinator, configDir: ctx.config.configDir, repro: reproOptions(ctx) }, connectionPort(conn), req.name, req.platform);
    case 'repro-record':
      return reproRecord(store, req.job, req.platform);
    case 'run-console':
      return runConsole(store, coordinator, conn, req);
    case 'run-result':
      return runResult(store, req.uuid, runInfo);
    case 'fetch-artifacts':
      return fetchArtifacts(store, conn, req);
    case 'prune-plan': {
      const retention = ctx.retention ?? refuse('NO_RETENTION', 'this server has no retention');
      const policy = requestPolicy(retention.policy, req);
      return { ...policy, runs: await retention.plan(policy), deleted: 0 } satisfies Replies['prune-plan'];
    }
    case 'prune': {
      const retention = ctx.retention ?? refuse('NO_RETENTION', 'this server has no retention');
      const policy = requestPolicy(retention.policy, req);
      return { ...policy, ...(await retention.prune(policy)) } satisfies Replies['prune'];
    }
    default: {
      const never: never = req;
      return refuse('BAD_REQUEST', `unknown request ${JSON.stringify(never)}`);
    }
  }
}
