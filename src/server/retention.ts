// Retention: old results are deleted so the state directory does not grow forever.
//
// A run may go when it is beyond --keep-runs newer finished runs of its job, or finished more
// than --keep-days ago. Whatever the limits, these stay:
//   - the newest successful run of each job on each platform (the next run is compared with it);
//   - a run whose upload to builder-web is still pending;
//   - a run that a kept run was compared against (its reference), so every kept verdict still
//     names a run that exists. Only one step: a reference kept this way does not keep its own.
// A pass goes job by job and deletes in batches of BATCH runs, yielding to the event loop between
// batches, so the server keeps serving while a large backlog goes. For each batch the directories
// go first, then the rows in one transaction: a crash in between leaves rows whose directories
// are gone, which the next pass deletes again, never a directory no row knows.
import { rm, rmdir } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { BuilderError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { PrunedRun } from '../protocol/replies.js';
import type { RetentionRow, Store } from './store/index.js';

export interface RetentionPolicy {
  /** finished runs kept per job, newest first; null: no limit */
  keepRuns: number | null;
  /** days a finished run is kept; null: no limit */
  keepDays: number | null;
}

export const DAY_MS = 86_400_000;
/** runs deleted per batch: a few milliseconds of work between two turns of the event loop */
const BATCH = 25;
/** how often the server applies its policy (and once at start) */
export const RETENTION_INTERVAL_MS = 60_000;

export const hasLimits = (p: RetentionPolicy): boolean => p.keepRuns !== null || p.keepDays !== null;

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The runs of one job that the policy deletes, oldest first (rows: newest first). */
export function planJob(job: string, rows: RetentionRow[], references: Array<{ uuid: string; against_uuid: string }>,
  policy: RetentionPolicy, now: number): PrunedRun[] {
  const before = policy.keepDays === null ? null : now - policy.keepDays * DAY_MS;
  // platforms whose newest successful run has been passed (rows come newest first)
  const succeeded = new Set<string>();
  const candidates = new Map<string, PrunedRun>();
  rows.forEach((r, i) => {
    if (r.ok && !succeeded.has(r.platform)) {
      succeeded.add(r.platform);
      return;
    }
    const reason = policy.keepRuns !== null && i >= policy.keepRuns ? 'count' : before !== null && r.finished < before ? 'age' : null;
    if (reason === null || r.upload === 'pending') return;
    candidates.set(r.uuid, {
      uuid: r.uuid, job, platform: r.platform, finished: new Date(r.finished).toISOString(), reason, artifactBytes: r.bytes,
    });
  });
  // kept runs are judged before any reference is spared, so sparing one never spares the next
  const expiring = new Set(candidates.keys());
  for (const ref of references) if (!expiring.has(ref.uuid)) candidates.delete(ref.against_uuid);
  return [...candidates.values()].reverse();
}

export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(private readonly parts: {
    store: Store;
    stateDir: string;
    log: Logger;
    policy: RetentionPolicy;
    now?: () => number;
  }) {}

  get policy(): RetentionPolicy {
    return this.parts.policy;
  }

  /** Applies the policy now and then every RETENTION_INTERVAL_MS; nothing without limits. */
  start(intervalMs = RETENTION_INTERVAL_MS): void {
    if (!hasLimits(this.policy)) return;
    const tick = (): void => void this.prune().then(
      (r) => { if (r.deleted > 0) this.parts.log.info('retention: deleted old runs', { runs: r.deleted, ...this.limits() }); },
      (err) => this.parts.log.error('retention pass failed', { error: errorMessage(err) }),
    );
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; resolves once a pass under way has finished its batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.pass.catch(() => undefined);
  }

  /** What a pass would delete now. */
  async plan(policy: RetentionPolicy = this.policy): Promise<PrunedRun[]> {
    const { store } = this.parts;
    const now = (this.parts.now ?? Date.now)();
    const out: PrunedRun[] = [];
    for (const job of store.retentionJobs()) {
      out.push(...planJob(job, store.retentionRuns(job), store.retentionReferences(job), policy, now));
      await turn();
    }
    return out;
  }

  /** One pass: deletes what the policy says, batch by batch. Passes never overlap. */
  prune(policy: RetentionPolicy = this.policy): Promise<{ runs: PrunedRun[]; deleted: number }> {
    const run = this.pass.catch(() => undefined).then(() => this.prunePass(policy));
    this.pass = run;
    return run;
  }

  private async prunePass(policy: RetentionPolicy): Promise<{ runs: PrunedRun[]; deleted: number }> {
    const { store } = this.parts;
    const now = (this.parts.now ?? Date.now)();
    const done: PrunedRun[] = [];
    for (const job of store.retentionJobs()) {
      if (this.stopped) break;
      const rows = store.retentionRuns(job);
      const dirs = new Map(rows.map((r) => [r.uuid, r.dir]));
      const plan = planJob(job, rows, store.retentionReferences(job), policy, now);
      for (let i = 0; i < plan.length && !this.stopped; i += BATCH) {
        const batch = plan.slice(i, i + BATCH);
        const removed: PrunedRun[] = [];
        for (const run of batch) {
          if (await this.removeDir(dirs.get(run.uuid) ?? null, run)) removed.push(run);
        }
        store.tx(() => removed.forEach((r) => store.deleteStoredRun(r.uuid)));
        done.push(...removed);
        await turn();
      }
      if (plan.length > 0) await this.removeEmptyJobDir(job);
    }
    return { runs: done, deleted: done.length };
  }

  /** Deletes a run's directory; false (and logged) when it cannot, so its rows stay. */
  private async removeDir(dir: string | null, run: PrunedRun): Promise<boolean> {
    if (dir === null) return true;
    const results = resolve(this.parts.stateDir, 'results') + sep;
    if (!resolve(dir).startsWith(results)) {
      // a row pointing elsewhere (a hand-edited database): its rows go, files outside are not ours to delete
      this.parts.log.warn('retention: run directory outside the state directory left alone', { run: run.uuid, dir });
      return true;
    }
    try {
      await rm(dir, { recursive: true, force: true });
      return true;
    } catch (err) {
      this.parts.log.error('retention: cannot delete run directory', { run: run.uuid, dir, error: errorMessage(err) });
      return false;
    }
  }

  private async removeEmptyJobDir(job: string): Promise<void> {
    const dir = join(this.parts.stateDir, 'results', job);
    if (dirname(dir) !== join(this.parts.stateDir, 'results')) return;
    await rmdir(dir).catch(() => undefined); // ENOTEMPTY or ENOENT: kept
  }

  private limits(): Record<string, number> {
    const l: Record<string, number> = {};
    if (this.policy.keepRuns !== null) l.keepRuns = this.policy.keepRuns;
    if (this.policy.keepDays !== null) l.keepDays = this.policy.keepDays;
    return l;
  }
}

/**
 * The policy a prune or prune-plan request applies: its own limits where given, else the
 * server's (--keep-runs, --keep-days). Refused when that leaves none.
 */
export function requestPolicy(server: RetentionPolicy, req: { keepRuns?: number; keepDays?: number }): RetentionPolicy {
  for (const [name, v] of [['keep-runs', req.keepRuns], ['keep-days', req.keepDays]] as const) {
    if (v !== undefined && v < 1) throw new BuilderError('BAD_REQUEST', `--${name} must be at least 1, got ${v}`);
  }
  const policy = { keepRuns: req.keepRuns ?? server.keepRuns, keepDays: req.keepDays ?? server.keepDays };
  if (!hasLimits(policy)) {
    throw new BuilderError('NO_RETENTION', 'this server keeps every run (no --keep-runs or --keep-days); give --keep-runs N or --keep-days D');
  }
  return policy;
}
