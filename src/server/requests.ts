// What each client request does. Every change is checked first and then made in one
// transaction, so a refused request changes nothing.
import { BuilderError, type ErrorCode } from '../common/errors.js';
import { checkName, isUuid } from '../common/names.js';
import { quote, shown } from '../common/quote.js';
import { parseUtcTime } from '../common/utc-time.js';
import {
  INFO_QUEUE_HEAD, INFO_RUNNING_SHOWN, MAX_INFO_DUE, MAX_INFO_PAGE, MAX_SCRIPT_BYTES, MAX_TIMEOUT_SEC, MIN_TIMEOUT_SEC,
} from '../protocol/limits.js';
import type { Connection } from '../protocol/connection.js';
import type { Request, SecretArg } from '../protocol/messages.js';
import type { InfoPage, InfoSummary, JobInfo, PlatformSummary, Replies, Reply, RunInfo, Scheduled, WorkerInfo } from '../protocol/replies.js';
import type { ServerConfig } from './config.js';
import type { Coordinator } from './coordinator.js';
import { connectionPort, heldPort } from './port.js';
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
import type { Credentials } from './credentials.js';
import { fetchArtifacts, runConsole, runResult } from './fetch-requests.js';
import { requestPolicy, type Retention } from './retention.js';

export interface RequestContext {
  store: Store;
  coordinator: Coordinator;
  scheduler: Scheduler;
  config: ServerConfig;
  /** present when the server uploads to builder-web (--upload) */
  uploader: Uploader | undefined;
  /** named tokens (token-add, token-list, token-revoke); absent in rigs without a listener */
  credentials?: Credentials;
  /** how compare and verify make diff reports (default: diffoscope from PATH, 2 at once) */
  repro?: ReproOptions;
  /** deletes old runs (--keep-runs, --keep-days); prune and prune-plan need it */
  retention?: Retention;
}

let sharedRepro: ReproOptions | undefined;
const reproOptions = (ctx: RequestContext): ReproOptions => ctx.repro ?? (sharedRepro ??= defaultReproOptions());

export const PACKAGE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
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

async function newJob(ctx: RequestContext, base: Omit<JobRow, 'next_run' | 'created' | 'period' | 'cron' | 'tz' | 'timeout_sec' | 'source_date_epoch'>,
  t: Timing, timeoutSec: number | undefined, env: BuildEnvReq): Promise<Scheduled> {
  const { store } = ctx;
  checkName('job', base.name);
  if (timeoutSec !== undefined && (timeoutSec < MIN_TIMEOUT_SEC || timeoutSec > MAX_TIMEOUT_SEC)) {
    refuse('BAD_TIMEOUT', `timeout must be between ${MIN_TIMEOUT_SEC} and ${MAX_TIMEOUT_SEC} seconds, got ${timeoutSec}`);
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
    // group commit: the reply waits for the shared fsync below, the event loop does not
    store.txDeferred(() => {
      store.insertJob(row);
      if (row.kind === 'script' && row.platform) store.addPlatform(row.platform);
      // a new job runs at once, except jobs that only ever run by execute
      if (period !== 'never') for (const p of platformsFor(store, ctx.config.configDir, row)) if (store.enqueue(p, row.name)) queued.push(p);
    });
  } catch (err) {
    ctx.coordinator.secrets.remove(row.name);
    throw err;
  }
  await store.synced();
  ctx.scheduler.changed(queued);
  return { name: row.name, next: row.next_run === null ? null : new Date(row.next_run).toISOString(), queued };
}

/** `dropped`: the dropped platforms, when the caller has them at hand (info, for every job) */
const jobInfo = (ctx: RequestContext, dropped?: ReadonlySet<string>) => (j: JobSummary): JobInfo => ({
  name: j.name, kind: j.kind, platform: j.platform, package: j.package, period: j.period, cron: j.cron, tz: j.tz,
  timeoutSec: j.timeout_sec, next: j.next_run === null ? null : new Date(j.next_run).toISOString(),
  sourceDateEpoch: sourceDateEpochOf(j), secrets: ctx.coordinator.secrets.names(j.name),
  ...(isPaused(ctx.store, j, dropped) ? { paused: true } : {}),
});

/** a script job of a dropped platform: kept, not queued, until undrop-platform */
const isPaused = (store: Store, j: Pick<JobSummary, 'kind' | 'platform'>, dropped?: ReadonlySet<string>): boolean =>
  j.kind === 'script' && j.platform !== null && (dropped ? dropped.has(j.platform) : store.isDropped(j.platform));

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

/** info: everything, as scripts that read `info --json` have always had it (its size grows with the schedule). */
function infoListing(ctx: RequestContext): Replies['info'] {
  const { store } = ctx;
  const verdicts = jobVerdicts(store);
  const platforms = store.platforms();
  const dropped = new Set(platforms.filter((p) => p.dropped).map((p) => p.name));
  const job = jobInfo(ctx, dropped);
  return {
    schedule: store.jobs().map((j) => ({ ...job(j), repro: verdicts.get(j.name) ?? [] })),
    queues: Object.fromEntries(platforms.filter((p) => !p.dropped).map((p) => [p.name, store.queuedNames(p.name)])),
    running: store.runningFirst(Number.MAX_SAFE_INTEGER).map((r) => ({ ...r, started: new Date(r.started).toISOString() })),
    dropped: [...dropped],
    workers: workersInfo(ctx),
  };
}

/**
 * info-summary: counts and the heads of indexes only (jobs grouped by platform, the next_run
 * index, runs_state, the queue's key), so its cost does not grow with the schedule's size
 * beyond SQLite counting rows; the per-worker work is over the connected workers.
 */
function infoSummary(ctx: RequestContext, due: number | undefined): InfoSummary {
  const { store, coordinator } = ctx;
  const rows = new Map<string, PlatformSummary>();
  const row = (platform: string): PlatformSummary => {
    let r = rows.get(platform);
    if (!r) rows.set(platform, (r = { platform, jobs: 0, queued: 0, head: [], running: 0, workers: 0, capacity: 0, dropped: false }));
    return r;
  };
  for (const p of store.platforms()) row(p.name).dropped = p.dropped === 1;
  let jobs = 0;
  let orbJobs = 0;
  let paused = 0;
  for (const c of store.jobCounts()) {
    jobs += c.n;
    if (c.kind === 'orb' || c.platform === null) orbJobs += c.n;
    else {
      const r = row(c.platform);
      r.jobs += c.n;
      if (r.dropped) paused += c.n;
    }
  }
  for (const q of store.views.queueLengths()) {
    const r = row(q.platform);
    r.queued = q.n;
    r.head = store.views.queueHead(q.platform, INFO_QUEUE_HEAD).map((e) => e.job);
  }
  for (const c of store.runningCounts()) row(c.platform).running = c.n;
  for (const w of coordinator.workers) {
    const r = row(w.platform);
    r.workers++;
    r.capacity += w.capacity;
  }
  const platforms = [...rows.values()].sort((a, b) => (a.platform < b.platform ? -1 : a.platform > b.platform ? 1 : 0));
  const limit = Math.min(Math.max(due ?? 10, 0), MAX_INFO_DUE);
  return {
    jobs, orbJobs, paused, failing: store.failingJobs(), platforms,
    runningCount: platforms.reduce((n, p) => n + p.running, 0),
    running: store.runningFirst(INFO_RUNNING_SHOWN).map((r) => ({ ...r, started: new Date(r.started).toISOString() })),
    nextDue: store.nextDue(limit).map((j) => ({ name: j.name, platform: j.platform, next: new Date(j.next_run).toISOString() })),
    dropped: platforms.filter((p) => p.dropped).map((p) => p.platform),
    workers: coordinator.workers.size,
  };
}

/** info-page: `limit` jobs after `after` by name, through the name key, with what info shows of each. */
function infoPage(ctx: RequestContext, limit: number, after: string | undefined): InfoPage {
  const { store } = ctx;
  if (limit < 1 || limit > MAX_INFO_PAGE) refuse('BAD_REQUEST', `info-page: limit must be from 1 to ${MAX_INFO_PAGE}, got ${limit}`);
  // one more than asked: whether there is a next page, without counting the rest
  const rows = store.jobsAfter(after ?? '', limit + 1);
  const page = rows.slice(0, limit);
  const dropped = new Set(store.platforms().filter((p) => p.dropped).map((p) => p.name));
  const job = jobInfo(ctx, dropped);
  return {
    schedule: page.map((j) => ({
      ...job(j),
      repro: store.jobStatesOf(j.name).map((s) => ({ platform: s.platform, verdict: s.verdict, outcome: s.outcome, uuid: s.uuid })),
    })),
    next: rows.length > limit ? page[page.length - 1]!.name : null,
  };
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
      if (req.script.length > MAX_SCRIPT_BYTES) refuse('BAD_REQUEST', `script too large: ${req.script.length} bytes (limit ${MAX_SCRIPT_BYTES})`);
      return newJob(ctx, { name: req.name, kind: 'script', platform: req.platform, script: req.script, package: null },
        timingFrom(req), req.timeoutSec, req);
    }
    case 'orb-build': {
      if (!PACKAGE.test(req.package)) refuse('BAD_NAME', `invalid opam package name ${quote(req.package)}`);
      return newJob(ctx, { name: req.name, kind: 'orb', platform: null, script: null, package: req.package },
        timingFrom(req), req.timeoutSec, req);
    }
    case 'unschedule': {
      if (!store.job(req.name)) refuse('NO_JOB', `no job named ${shown(req.name)}`);
      await store.txDurable(() => store.deleteJob(req.name));
      coordinator.secrets.remove(req.name);
      ctx.scheduler.changed();
      return { name: req.name } satisfies Replies['unschedule'];
    }
    case 'reschedule': {
      const job = store.job(req.name) ?? refuse('NO_JOB', `no job named ${shown(req.name)}`);
      // RFC 3339 in UTC only, as the original: no local-time ambiguity; no 30th of February
      const next = parseUtcTime(req.next)
        ?? refuse('BAD_TIME', `invalid time ${quote(req.next)}: expected RFC 3339 in UTC, a time that exists, e.g. 2026-01-31T03:00:00Z`);
      // a new period or cron replaces the old timing; a new cron keeps the job's time zone
      const t = req.period !== undefined || req.cron !== undefined
        ? timingFrom({ period: req.period, cron: req.cron, tz: req.cron ? (job.tz ?? undefined) : undefined })
        : timingOf(job);
      if (next < Date.now()) {
        refuse('BAD_TIME', `${req.next} is in the past; to run ${shown(job.name)} now, use builder-client execute ${shown(job.name)}`);
      }
      await store.txDurable(() => store.setTiming(job.name, next, t.cron ? null : (t.period ?? 'daily'), t.cron ?? null, t.tz ?? null));
      ctx.scheduler.changed();
      return jobInfo(ctx)(store.job(job.name)!);
    }
    case 'execute': {
      const job = store.job(req.name) ?? refuse('NO_JOB', `no job named ${shown(req.name)}`);
      let platforms = platformsFor(store, ctx.config.configDir, job);
      if (req.platform !== undefined) {
        if (!platforms.includes(req.platform)) refuse('NO_PLATFORM', `job ${job.name} does not run on platform ${shown(req.platform)}`);
        platforms = [req.platform];
      }
      if (isPaused(store, job)) refuse('DROPPED', `job ${job.name} is paused: its platform ${job.platform} is dropped (undrop-platform ${job.platform})`);
      if (platforms.length === 0) refuse('NO_PLATFORM', `job ${job.name} has no platform to run on (dropped, or no template)`);
      store.txDeferred(() => platforms.forEach((p) => store.enqueueFront(p, job.name)));
      // the follower hears of the run after the answer ("queued" before "started"), below
      const follower = req.follow ? heldPort(connectionPort(conn)) : undefined;
      if (follower) coordinator.follow(follower, req.id, job.name, platforms);
      // dispatched before the wait for the disk: a free worker's new run is then recorded with the
      // same fsync as the queue entry, and its job leaves one fsync after the execute, not two
      for (const p of platforms) coordinator.dispatch(p);
      try {
        // group commit: answered once on disk, without holding the event loop for the fsync
        await store.synced();
      } finally {
        // after the answer (or the refusal) has gone
        if (follower) setImmediate(() => follower.release());
      }
      // said at once, so nobody waits on a follow that cannot start (the job stays queued)
      const served = new Set([...coordinator.workers].map((w) => w.platform));
      return { name: job.name, queued: platforms, noWorker: platforms.filter((p) => !served.has(p)) } satisfies Replies['execute'];
    }
    case 'info':
      return infoListing(ctx);
    case 'info-summary':
      return infoSummary(ctx, req.due);
    case 'info-page':
      return infoPage(ctx, req.limit, req.after);
    case 'observe': {
      if (!isUuid(req.uuid)) refuse('BAD_UUID', `invalid uuid ${quote(req.uuid)}`);
      if (coordinator.observe(connectionPort(conn), req.id, req.uuid)) return { uuid: req.uuid, live: true } satisfies Replies['observe'];
      const row = store.run(req.uuid) ?? refuse('NO_RUN', `no run with uuid ${req.uuid}`);
      return { uuid: req.uuid, live: false, run: runInfo(row) } satisfies Replies['observe'];
    }
    case 'observe-latest': {
      const run = coordinator.latest(req.platform, req.job)
        ?? refuse('NO_RUN', `no running job${req.job ? ` named ${shown(req.job)}` : ''}${req.platform ? ` on ${shown(req.platform)}` : ''}`);
      coordinator.observe(connectionPort(conn), req.id, run.uuid);
      return { uuid: run.uuid, live: true } satisfies Replies['observe-latest'];
    }
    case 'drop-platform': {
      checkName('platform', req.platform);
      // the jobs stay (with their secrets and runs), paused; unschedule is what deletes a job
      const paused = await store.txDurable(() => store.dropPlatform(req.platform));
      ctx.scheduler.changed();
      return { platform: req.platform, removedJobs: [], pausedJobs: paused } satisfies Replies['drop-platform'];
    }
    case 'undrop-platform': {
      if (!store.isDropped(req.platform)) refuse('NOT_DROPPED', `platform ${shown(req.platform)} is not dropped`);
      await store.txDurable(() => store.setDropped(req.platform, false));
      // what was queued is dispatched again; what came due while paused is queued once, now
      ctx.scheduler.changed([req.platform]);
      return { platform: req.platform, resumedJobs: store.platformScriptJobs(req.platform) } satisfies Replies['undrop-platform'];
    }
    case 'history': {
      const runs = store.history(req.job, Math.min(Math.max(req.limit ?? 20, 1), 10_000));
      // an unscheduled job's runs remain and are shown; a name that never ran nor exists is a typo
      if (req.job !== undefined && runs.length === 0 && !store.job(req.job)) refuse('NO_JOB', `no such job: ${req.job}`);
      return runs.map((r) => ({ ...runInfo(r), repro: reproOf(store, r.uuid) }));
    }
    case 'cancel': {
      if (!isUuid(req.uuid)) refuse('BAD_UUID', `invalid uuid ${quote(req.uuid)}`);
      if (!(await coordinator.cancel(req.uuid))) refuse('NO_RUN', `no running job with uuid ${req.uuid}`);
      return { uuid: req.uuid } satisfies Replies['cancel'];
    }
    case 'workers':
      return workersInfo(ctx);
    case 'drain': {
      const matching = [...coordinator.workers].filter((w) => w.name === req.worker);
      if (matching.length === 0) refuse('NO_WORKER', `no connected worker named ${shown(req.worker)}`);
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
    case 'token-add': {
      const credentials = ctx.credentials ?? refuse('INTERNAL', 'this server keeps no named tokens');
      return { name: req.name, kind: req.kind, token: credentials.add(req.kind, req.name) } satisfies Replies['token-add'];
    }
    case 'token-list':
      return (ctx.credentials?.list() ?? []) satisfies Replies['token-list'];
    case 'token-revoke': {
      const credentials = ctx.credentials ?? refuse('INTERNAL', 'this server keeps no named tokens');
      return { name: req.name, closed: credentials.revoke(req.name) } satisfies Replies['token-revoke'];
    }
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
