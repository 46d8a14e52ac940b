// The reproducibility requests: compare (any two stored runs), verify (rebuild a job now on
// another worker and judge it against its last successful run), repro-record (a job's record),
// and the verdicts that history and info show.
import { quote, shown } from '../../common/quote.js';
import { BuilderError, type ErrorCode } from '../../common/errors.js';
import { isUuid } from '../../common/names.js';
import type { RunResult } from '../../protocol/messages.js';
import type { CompareReply, JobInfo, ReproInfo, ReproRecord, RunRef, VerifyReply } from '../../protocol/replies.js';
import { compareArtifacts } from '../../repro/compare.js';
import type { Coordinator } from '../coordinator.js';
import type { Port } from '../port.js';
import { platformsFor } from '../scheduler.js';
import { comparisonOf, type RunRow, type Store } from '../store/index.js';
import { artifactDiffs, makeLimit } from './reports.js';

const refuse = (code: ErrorCode, message: string): never => {
  throw new BuilderError(code, message);
};

export interface ReproOptions {
  /** diffoscope executable; undefined: look on PATH; false: never */
  diffoscope?: string | false | undefined;
  /** shared by every compare request: diff reports made at once */
  limit: <T>(task: () => Promise<T>) => Promise<T>;
}

export const defaultReproOptions = (): ReproOptions => ({ limit: makeLimit(2) });

const runRef = (r: RunRow): RunRef => ({
  uuid: r.uuid, job: r.job, platform: r.platform, worker: r.worker,
  finished: r.finished === null ? null : new Date(r.finished).toISOString(),
});

/** A run's stored comparison, for history and --json. */
export function reproOf(store: Store, uuid: string): ReproInfo | null {
  const row = store.comparison(uuid);
  if (!row) return null;
  const c = comparisonOf(row);
  return {
    verdict: c.verdict, against: row.against_uuid, report: row.report,
    changed: c.verdict === 'differs' ? c.changed : [], added: c.verdict === 'differs' ? c.added : [],
    removed: c.verdict === 'differs' ? c.removed : [],
  };
}

/** Every job's state per platform (info), in one statement. */
export function jobVerdicts(store: Store): Map<string, NonNullable<JobInfo['repro']>> {
  const byJob = new Map<string, NonNullable<JobInfo['repro']>>();
  for (const s of store.jobStates()) {
    const list = byJob.get(s.job) ?? [];
    list.push({ platform: s.platform, verdict: s.verdict, outcome: s.outcome, uuid: s.uuid });
    byJob.set(s.job, list);
  }
  return byJob;
}

const finishedRun = (store: Store, uuid: string): RunRow => {
  if (!isUuid(uuid)) refuse('BAD_UUID', `invalid uuid ${quote(uuid)}`);
  const row = store.run(uuid) ?? refuse('NO_RUN', `no run with uuid ${uuid}`);
  if (row.state !== 'finished') refuse('NO_RUN', `run ${uuid} has not finished yet`);
  return row;
}

/** b judged against a (the reference), with a diff report per changed artifact. */
export async function compareRuns(store: Store, opts: ReproOptions, a: string, b: string): Promise<CompareReply> {
  const ra = finishedRun(store, a);
  const rb = finishedRun(store, b);
  const c = compareArtifacts(store.artifacts(a), store.artifacts(b));
  const diffs = c.verdict === 'differs' && ra.dir && rb.dir
    ? await artifactDiffs({ uuid: a, dir: ra.dir }, { uuid: b, dir: rb.dir }, c.changed, opts)
    : [];
  return {
    a: runRef(ra), b: runRef(rb), verdict: c.verdict, diffs,
    changed: c.verdict === 'differs' ? c.changed : [], added: c.verdict === 'differs' ? c.added : [],
    removed: c.verdict === 'differs' ? c.removed : [],
  };
}

/**
 * Rebuilds the job now on the platform, on another worker than the one that built the last
 * successful run when one is connected (the dispatcher honours the queue entry's avoid_worker),
 * waits for the run and answers with its comparison against that run.
 */
export async function verifyJob(
  ctx: { store: Store; coordinator: Coordinator; configDir: string; repro: ReproOptions },
  client: Port, name: string, platformArg: string | undefined,
): Promise<VerifyReply> {
  const { store, coordinator } = ctx;
  const job = store.job(name) ?? refuse('NO_JOB', `no job named ${shown(name)}`);
  const platforms = platformsFor(store, ctx.configDir, job);
  let platform: string;
  if (platformArg !== undefined) {
    if (!platforms.includes(platformArg)) refuse('NO_PLATFORM', `job ${name} does not run on platform ${shown(platformArg)}`);
    platform = platformArg;
  } else if (platforms.length === 1) platform = platforms[0]!;
  else if (platforms.length === 0) return refuse('NO_PLATFORM', `job ${name} has no platform to run on (dropped, or no template)`);
  else return refuse('NO_PLATFORM', `job ${name} runs on ${platforms.join(', ')}: name one with --platform`);
  const reference = store.lastSuccess(name, platform)
    ?? refuse('NO_REFERENCE', `job ${name} has no successful run on ${platform} to compare a rebuild with`);
  const rebuilt = waitForRebuild(coordinator, client, name, platform);
  store.tx(() => {
    store.enqueueFront(platform, name);
    store.setAvoidWorker(platform, name, reference.worker);
  });
  setImmediate(() => coordinator.dispatch(platform));
  const run = await rebuilt;
  const against = runRef(store.run(reference.uuid)!);
  const ok = run.result.kind === 'exited' && run.result.code === 0;
  return {
    job: name, platform, uuid: run.uuid, worker: run.worker, against, otherWorker: run.worker !== reference.worker,
    result: run.result, comparison: ok ? await compareRuns(store, ctx.repro, reference.uuid, run.uuid) : null,
  };
}

/**
 * The next run of the job on the platform that starts from now, followed through infrastructure
 * retries to its result. Gives up when the client goes.
 */
function waitForRebuild(coordinator: Coordinator, client: Port, job: string, platform: string): Promise<{ uuid: string; worker: string; result: RunResult }> {
  return new Promise((resolve, reject) => {
    let uuid: string | undefined;
    const offs = [
      coordinator.events.on('run:started', (r) => {
        if (uuid === undefined && r.job === job && r.platform === platform) uuid = r.uuid;
      }),
      coordinator.events.on('run:finished', (r) => {
        if (r.uuid !== uuid) return;
        if (r.retried) {
          uuid = undefined; // its retry is the next run:started
          return;
        }
        done();
        // after every listener of this run:finished (the tracker's comparison among them)
        setImmediate(() => resolve({ uuid: r.uuid, worker: r.worker, result: r.result }));
      }),
    ];
    offs.push(client.onClose(() => {
      done();
      reject(new BuilderError('CONNECT', 'client went away'));
    }));
    function done(): void {
      offs.forEach((off) => off());
    }
  });
}

/** Per platform: how many successful runs reproduced the one before, the streak, the last break. */
export function reproRecord(store: Store, job: string, platformArg: string | undefined): { job: string; platforms: ReproRecord[] } {
  const platforms = platformArg !== undefined ? [platformArg] : store.comparedPlatforms(job);
  if (platforms.length === 0 && !store.job(job)) refuse('NO_JOB', `no job named ${shown(job)}`);
  return {
    job,
    platforms: platforms.map((platform): ReproRecord => {
      const rows = store.comparisonsOf(job, platform);
      let streakStart = rows.length;
      while (streakStart > 0 && rows[streakStart - 1]!.verdict === 'reproduced') streakStart--;
      const first = rows[streakStart];
      const lastBreak = [...rows].reverse().find((r) => r.verdict === 'differs');
      const reproduced = rows.filter((r) => r.verdict === 'reproduced').length;
      return {
        platform, compared: rows.length, reproduced, differs: rows.length - reproduced,
        streak: first ? { count: rows.length - streakStart, since: new Date(first.created).toISOString(), sinceUuid: first.uuid } : null,
        lastBreak: lastBreak ? {
          uuid: lastBreak.uuid, against: lastBreak.against_uuid, at: new Date(lastBreak.created).toISOString(),
          changed: JSON.parse(lastBreak.changed) as string[], added: JSON.parse(lastBreak.added) as string[],
          removed: JSON.parse(lastBreak.removed) as string[],
        } : null,
        outcome: store.jobState(job, platform)?.outcome ?? null,
      };
    }),
  };
}
