// Hands queued jobs to free workers: keeps the set of connected workers, starts runs (a new
// uuid, the row stored, the job sent) and wakes when an entry held back by a retry back-off
// becomes due. It dispatches again whenever a slot may have opened: a worker joins or reports
// its status, a queue changes, or a run finishes (run:finished). When the disk refuses to store
// a new run, dispatch waits: the entry stays queued, and it tries again every few seconds.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import type { HeldRun, ScriptBytes } from '../protocol/messages.js';
import type { ServerClock, TimerHandle } from './clock.js';
import type { ServerConfig } from './config.js';
import type { ServerEvents } from './events.js';
import type { Observing } from './observing.js';
import type { RunLedger } from './run-ledger.js';
import { isStorageFault, type Store } from './store/index.js';
import type { JobSecrets } from './job-secrets.js';
import type { BuildInputs } from './attest.js';
import { hasTemplate, renderOrbScript, sourceDateEpochOf } from './templates.js';
import { freeSlots, type WorkerSession } from './worker-session.js';

export interface DispatchParts {
  store: Store;
  config: ServerConfig;
  log: Logger;
  clock: ServerClock;
  events: ServerEvents;
  ledger: RunLedger;
  observing: Observing;
  secrets: JobSecrets;
}

/** how long dispatch waits before trying again after the disk refused a new run */
export const DISPATCH_RETRY_MS = 2_000;
/**
 * Runs started in one turn of the event loop; the rest follow in the next turns. With thousands
 * of idle workers and a full queue, one pass started thousands of runs in a row and held the
 * event loop for seconds, long enough for peers' heartbeats to call the server dead.
 */
export const DISPATCH_BATCH = 100;

export class Dispatcher {
  readonly workers = new Set<WorkerSession>();
  private retryTimer: TimerHandle | undefined;
  private storeTimer: TimerHandle | undefined;
  /** the disk refused the last run started; logged once until a run starts again */
  private storeFailing = false;
  /** a pass was cut at DISPATCH_BATCH runs and goes on in the next turn (the platform, or all) */
  private continuation: { platform: string | undefined } | undefined;
  private stopped = false;
  private readonly store: Store;
  private readonly config: ServerConfig;
  private readonly log: Logger;
  private readonly clock: ServerClock;

  constructor(private readonly parts: DispatchParts) {
    ({ store: this.store, config: this.config, log: this.log, clock: this.clock } = parts);
    parts.events.on('run:finished', (run) => this.dispatch(run.platform));
    // only that worker's slot was freed: a pass over it alone, not over every worker (the full
    // pass still follows on run:finished, for what else the stored result changed: a retry)
    parts.events.on('run:ended-at-worker', (run) => this.dispatch(run.platform, run.worker));
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.storeTimer);
  }

  /** A worker connected: it keeps the runs it may re-attach, and its platform becomes known. */
  workerJoined(w: WorkerSession, held: HeldRun[]): ReturnType<RunLedger['adopt']> {
    const adopted = this.parts.ledger.adopt(w, held);
    this.workers.add(w);
    try {
      const isNew = this.store.addPlatform(w.platform);
      if (!hasTemplate(this.config.configDir, w.platform)) {
        if (this.store.orbJobs().length > 0) {
          this.log.warn('no orb-build template for this platform; templated jobs will not run here', { platform: w.platform, worker: w.name });
        }
      } else if (isNew) this.collectOrbJobs(w.platform);
    } catch (err) {
      if (!isStorageFault(err)) throw err;
      // the worker is served all the same; its platform is recorded when it next joins
      this.log.error('cannot record the worker\'s platform', { platform: w.platform, worker: w.name, error: errorMessage(err) });
    }
    this.parts.events.emit('worker:joined', { name: w.name, platform: w.platform, capacity: w.capacity });
    return adopted;
  }

  workerLeft(w: WorkerSession, reason: string): void {
    this.workers.delete(w);
    this.parts.ledger.release(w, reason);
    this.parts.events.emit('worker:left', { name: w.name, platform: w.platform, reason });
    // an entry that avoided one of the remaining workers for this one may go to it now
    this.dispatch(w.platform);
  }

  /** A new platform's queue collects the templated jobs that apply to it. */
  private collectOrbJobs(platform: string): void {
    this.store.tx(() => {
      for (const job of this.store.orbJobs()) if (job.next_run !== null) this.store.enqueue(platform, job.name);
    });
  }

  /** Gives queued jobs to free workers of the platform (or of every platform; or to one worker, by name). */
  dispatch(platform?: string, onlyWorker?: string): void {
    if (this.stopped) return;
    const now = this.clock.now();
    // per pass: a platform's dropped state is read once, and a platform whose queue has nothing
    // due for anyone is not asked again for each of its other workers
    const dropped = new Map<string, boolean>();
    const exhausted = new Set<string>();
    let started = 0;
    try {
      for (const w of this.workers) {
        if (platform !== undefined && w.platform !== platform) continue;
        if (onlyWorker !== undefined && w.name !== onlyWorker) continue;
        if (freeSlots(w) === 0 || exhausted.has(w.platform)) continue;
        let isDropped = dropped.get(w.platform);
        if (isDropped === undefined) dropped.set(w.platform, (isDropped = this.store.isDropped(w.platform)));
        if (isDropped) continue;
        while (freeSlots(w) > 0) {
          // an entry that avoids this worker (verify's rebuild) waits for another one while one is there
          const entry = this.hasPeer(w) ? this.store.nextQueuedFor(w.platform, now, w.name) : this.store.nextQueued(w.platform, now);
          if (!entry) {
            if (!this.store.nextQueued(w.platform, now)) exhausted.add(w.platform);
            break;
          }
          this.startRun(w, entry.job, entry.attempt);
          if (++started >= DISPATCH_BATCH) {
            this.continueLater(platform);
            return;
          }
        }
      }
    } catch (err) {
      if (!isStorageFault(err)) throw err;
      if (!this.storeFailing) {
        this.log.error('cannot store a new run; dispatch waits until the disk takes it', { error: errorMessage(err), retryInMs: DISPATCH_RETRY_MS });
      }
      this.storeFailing = true;
      if (this.storeTimer === undefined) {
        this.storeTimer = this.clock.setTimeout(() => {
          this.storeTimer = undefined;
          this.dispatch();
        }, DISPATCH_RETRY_MS);
      }
    }
    this.armRetryTimer(now);
  }

  /** Goes on with a cut pass in the next turn; passes asked for meanwhile merge into it. */
  private continueLater(platform: string | undefined): void {
    if (this.continuation) {
      if (this.continuation.platform !== platform) this.continuation.platform = undefined;
      return;
    }
    this.continuation = { platform };
    setImmediate(() => {
      const next = this.continuation;
      this.continuation = undefined;
      if (next) this.dispatch(next.platform);
    });
  }

  /**
   * Whether another worker of w's platform could take work: connected, not draining, not short
   * of disk, whether or not it is busy now (an avoided entry waits for it rather than racing).
   */
  private hasPeer(w: WorkerSession): boolean {
    for (const o of this.workers) {
      if (o !== w && o.name !== w.name && o.platform === w.platform && !o.draining && !o.diskShort && !o.port.closed) return true;
    }
    return false;
  }

  /** Entries held back by a retry back-off need a wake-up when they become due. */
  private armRetryTimer(now: number): void {
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const at = this.store.nextRetryAt(now);
    if (at === null) return;
    this.retryTimer = this.clock.setTimeout(() => this.dispatch(), at - now + 5);
  }

  private startRun(w: WorkerSession, jobName: string, attempt: number): void {
    const job = this.store.job(jobName);
    if (!job) {
      this.store.tx(() => this.store.dequeue(w.platform, jobName));
      return;
    }
    const uuid = randomUUID();
    const started = this.clock.now();
    const timeoutSec = job.timeout_sec;
    const sourceDateEpoch = sourceDateEpochOf(job);
    // what keeps the run from starting: it is stored as a failed run, never sent half-made
    let failure: string | undefined;
    let script: ScriptBytes = '';
    let env: Record<string, string> | undefined;
    const buildInputs: BuildInputs = { sourceDateEpoch };
    try {
      // rendered now, not when scheduled: an edited template applies to the next run, and the
      // run's own uuid is known
      if (job.kind === 'script') script = job.script ?? '';
      else {
        const rendered = renderOrbScript(this.config.configDir, job, w.platform, uuid);
        script = rendered.script;
        // the provenance names the template the script came from
        buildInputs.template = { path: rendered.template.path, sha256: rendered.template.sha256, opamPackage: job.package ?? undefined };
      }
      const secrets = this.parts.secrets.get(jobName);
      if (secrets) env = { ...secrets };
    } catch (err) {
      failure = errorMessage(err);
    }
    // the worker shows it back to re-attach the run after a reconnect; no other worker knows it
    const secret = randomBytes(24).toString('base64url');
    // group commit: the worker's port sends the job only once this row is on disk (afterCommits)
    this.store.txDeferred(() => {
      this.store.dequeue(w.platform, jobName);
      this.store.insertRun({ uuid, job: jobName, platform: w.platform, worker: w.name, script, attempt, timeout_sec: timeoutSec, started, secret });
    });
    if (this.storeFailing) {
      this.storeFailing = false;
      this.log.info('the disk takes new runs again; dispatch goes on');
    }
    const run = { uuid, job: jobName, script, attempt, timeoutSec, started, buildInputs, secrets: env && Object.values(env), secret };
    if (failure === undefined) {
      this.parts.ledger.open(w, run);
      w.port.send({
        t: 'job', uuid, name: jobName, platform: w.platform, script, timeoutMs: timeoutSec * 1000, sourceDateEpoch, ...(env ? { env } : {}), secret,
      });
      this.log.info('run started', { run: uuid, job: jobName, platform: w.platform, worker: w.name, attempt });
    } else {
      this.log.warn('run failed before it started', { run: uuid, job: jobName, platform: w.platform, error: failure });
    }
    this.parts.events.emit('run:started', { uuid, job: jobName, platform: w.platform, worker: w.name, attempt, started });
    this.parts.observing.started({ uuid, job: jobName, platform: w.platform });
    if (failure !== undefined) {
      this.parts.ledger.failAtStart(w, run, failure).catch((err: unknown) => {
        this.log.error('cannot store a run that failed before it started', { run: uuid, job: jobName, error: errorMessage(err) });
      });
    }
  }
}
