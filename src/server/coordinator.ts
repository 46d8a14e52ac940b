// Hands queued jobs to workers and sees every run through to a stored result. A run is held by
// its worker under a lease: while the worker is connected the lease is renewed by the
// connection's heartbeats; when it drops, the run waits leaseMs for the worker to re-attach,
// then goes back to the front of its queue under a new uuid, and the old uuid is dead for good.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import { describeResult } from '../protocol/describe.js';
import type { Connection } from '../protocol/connection.js';
import type { ArtifactEnd, ArtifactStart, Chunk, Finished, HeldRun, Output, RunResult } from '../protocol/messages.js';
import type { ServerConfig } from './config.js';
import { IncomingArtifacts } from './incoming.js';
import { Observer } from './observers.js';
import { incomingDir, writeResult, type RunMeta } from '../results/index.js';
import type { RunRow, Store } from './store/index.js';
import { hasTemplate, renderOrbScript } from './templates.js';
import { isUploadable } from '../builder-web/exec-from-result.js';
import { ServerEvents } from './events.js';
import { freeSlots, type WorkerSession } from './worker-session.js';

const DEADLINE_GRACE_MS = 10_000;

export interface LiveRun {
  uuid: string;
  job: string;
  platform: string;
  workerName: string;
  script: string;
  attempt: number;
  timeoutSec: number;
  started: number;
  worker: WorkerSession | undefined;
  nextSeq: number;
  observers: Set<Observer>;
  lease: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout | undefined;
  incoming: IncomingArtifacts;
  finishing: boolean;
}

interface Follower { conn: Connection; id: number; job: string; platforms: Set<string> }

export interface CoordinatorOptions {
  events: ServerEvents;
  /** whether finished builds go into the upload outbox (--upload) */
  uploads: boolean;
}

const isInfra = (r: RunResult): boolean => r.kind === 'failed' && r.infra;

export class Coordinator {
  readonly live = new Map<string, LiveRun>();
  readonly workers = new Set<WorkerSession>();
  private followers = new Set<Follower>();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly events: ServerEvents;

  constructor(
    private readonly store: Store, private readonly config: ServerConfig, private readonly log: Logger,
    private readonly opts: CoordinatorOptions = { events: new ServerEvents(log), uploads: false },
  ) {
    this.events = opts.events;
  }

  /** After a restart: every run the database says is running waits for its worker. */
  recover(): void {
    for (const row of this.store.running()) {
      const run = this.fromRow(row);
      this.live.set(run.uuid, run);
      this.startLease(run);
      this.armDeadline(run);
      this.log.info('run waits for its worker to re-attach', { run: run.uuid, job: run.job, worker: run.workerName });
    }
  }

  stop(): void {
    for (const run of this.live.values()) {
      clearTimeout(run.lease);
      clearTimeout(run.deadline);
    }
    clearTimeout(this.retryTimer);
  }

  // ---- workers coming and going ----

  /** Decides which of the worker's held runs it keeps; the rest it must abandon. */
  workerJoined(w: WorkerSession, held: HeldRun[]): {
    attach: Array<{ uuid: string; haveSeq: number }>; abandon: string[]; ready: Promise<void>;
  } {
    const attach: Array<{ uuid: string; haveSeq: number }> = [];
    const abandon: string[] = [];
    const resets: Array<Promise<void>> = [];
    for (const h of held) {
      const run = this.live.get(h.uuid);
      if (!run || run.finishing || (run.worker && !run.worker.conn.closed) || run.platform !== w.platform) {
        abandon.push(h.uuid);
        continue;
      }
      clearTimeout(run.lease);
      run.lease = undefined;
      run.worker = w;
      run.workerName = w.name;
      w.runs.add(run.uuid);
      attach.push({ uuid: run.uuid, haveSeq: run.nextSeq - 1 });
      this.log.info('run re-attached', { run: run.uuid, job: run.job, worker: w.name });
      // a finished run's artifacts are all sent again: what arrived before is thrown away first
      if (h.finished) resets.push(run.incoming.reset());
    }
    this.workers.add(w);
    const isNew = this.store.addPlatform(w.platform);
    if (!hasTemplate(this.config.configDir, w.platform)) {
      if (this.store.orbJobs().length > 0) {
        this.log.warn('no orb-build template for this platform; templated jobs will not run here', { platform: w.platform, worker: w.name });
      }
    } else if (isNew) this.collectOrbJobs(w.platform);
    this.events.emit('worker:joined', { name: w.name, platform: w.platform, capacity: w.capacity });
    return { attach, abandon, ready: Promise.all(resets).then(() => undefined) };
  }

  workerLeft(w: WorkerSession, reason: string): void {
    this.workers.delete(w);
    for (const uuid of w.runs) {
      const run = this.live.get(uuid);
      if (!run || run.worker !== w) continue;
      run.worker = undefined;
      this.log.warn('worker lost during run; waiting for it to re-attach', {
        run: uuid, job: run.job, worker: w.name, reason, leaseMs: this.config.leaseMs,
      });
      this.startLease(run);
    }
    w.runs.clear();
    this.events.emit('worker:left', { name: w.name, platform: w.platform, reason });
  }

  /** A new platform's queue collects the templated jobs that apply to it. */
  private collectOrbJobs(platform: string): void {
    this.store.tx(() => {
      for (const job of this.store.orbJobs()) if (job.next_run !== null) this.store.enqueue(platform, job.name);
    });
  }

  // ---- dispatch ----

  /** Gives queued jobs to free workers of the platform (or of every platform). */
  dispatch(platform?: string): void {
    const now = Date.now();
    for (const w of this.workers) {
      if (platform !== undefined && w.platform !== platform) continue;
      while (freeSlots(w) > 0 && !this.store.isDropped(w.platform)) {
        const entry = this.store.nextQueued(w.platform, now);
        if (!entry) break;
        this.startRun(w, entry.job, entry.attempt);
      }
    }
    this.armRetryTimer(now);
  }

  /** Entries held back by a retry back-off need a wake-up when they become due. */
  private armRetryTimer(now: number): void {
    clearTimeout(this.retryTimer);
    const at = this.store.nextRetryAt(now);
    if (at === null) return;
    this.retryTimer = setTimeout(() => this.dispatch(), at - now + 5);
    this.retryTimer.unref();
  }

  private startRun(w: WorkerSession, jobName: string, attempt: number): void {
    const job = this.store.job(jobName);
    let script: string | undefined;
    if (job?.kind === 'script') script = job.script ?? '';
    else if (job?.kind === 'orb') {
      try {
        script = renderOrbScript(this.config.configDir, w.platform, job.package ?? '');
      } catch (err) {
        this.log.warn('cannot make the script of a templated job; dropped from the queue', {
          job: jobName, platform: w.platform, error: errorMessage(err),
        });
      }
    }
    const uuid = randomUUID();
    const started = Date.now();
    const timeoutSec = job?.timeout_sec ?? this.config.timeoutSec;
    this.store.tx(() => {
      this.store.dequeue(w.platform, jobName);
      if (script !== undefined) {
        this.store.insertRun({ uuid, job: jobName, platform: w.platform, worker: w.name, script, attempt, timeout_sec: timeoutSec, started });
      }
    });
    if (script === undefined) return;
    const run: LiveRun = {
      uuid, job: jobName, platform: w.platform, workerName: w.name, script, attempt, timeoutSec, started,
      worker: w, nextSeq: 0, observers: new Set(), lease: undefined, deadline: undefined,
      incoming: new IncomingArtifacts(incomingDir(this.config.stateDir, uuid)), finishing: false,
    };
    this.live.set(uuid, run);
    w.runs.add(uuid);
    this.armDeadline(run);
    w.conn.send({ t: 'job', uuid, name: jobName, platform: w.platform, script, timeoutMs: timeoutSec * 1000 });
    this.log.info('run started', { run: uuid, job: jobName, platform: w.platform, worker: w.name, attempt });
    this.events.emit('run:started', { uuid, job: jobName, platform: w.platform, worker: w.name, attempt, started });
    for (const f of this.followers) {
      if (f.job !== jobName || !f.platforms.has(w.platform)) continue;
      this.followers.delete(f);
      if (f.conn.closed) continue;
      const obs = new Observer(f.conn, f.id, uuid);
      obs.started(jobName, w.platform);
      run.observers.add(obs);
    }
  }

  // ---- messages from the worker holding a run ----

  /** The run this worker may speak for, or undefined (after telling it so). */
  private owned(w: WorkerSession, uuid: string): LiveRun | undefined {
    const run = this.live.get(uuid);
    if (run && run.worker === w && !run.finishing) return run;
    w.conn.send({ t: 'refused', uuid, reason: 'this run is not held by you (finished, cancelled, or handed to another worker)' });
    return undefined;
  }

  output(w: WorkerSession, msg: Output): void {
    const run = this.owned(w, msg.uuid);
    if (!run) return;
    // lines the server already has (sent again after a re-attach) are skipped by sequence number
    const skip = Math.max(0, run.nextSeq - msg.seq);
    if (msg.seq > run.nextSeq) {
      this.log.warn('console lines lost between worker and server', { run: run.uuid, from: run.nextSeq, to: msg.seq - 1 });
    }
    const fresh = msg.lines.slice(skip);
    if (fresh.length === 0) return;
    const seq = msg.seq + skip;
    this.store.addLines(run.uuid, seq, fresh);
    run.nextSeq = seq + fresh.length;
    for (const obs of run.observers) for (const [ms, data] of fresh) obs.line(ms, data);
  }

  artifactStart(w: WorkerSession, msg: ArtifactStart): void {
    this.owned(w, msg.uuid)?.incoming.begin(msg.path, msg.size, msg.mode);
  }

  artifactChunk(w: WorkerSession, msg: Chunk): Promise<void> | undefined {
    return this.owned(w, msg.uuid)?.incoming.chunk(msg.data);
  }

  artifactEnd(w: WorkerSession, msg: ArtifactEnd): Promise<void> | undefined {
    return this.owned(w, msg.uuid)?.incoming.end(msg.sha256);
  }

  async finished(w: WorkerSession, msg: Finished): Promise<void> {
    const run = this.owned(w, msg.uuid);
    if (!run) return;
    if (msg.lastSeq >= run.nextSeq) {
      this.log.warn('result arrived with console lines missing', { run: run.uuid, have: run.nextSeq - 1, sent: msg.lastSeq });
    }
    const refusals = [...msg.refusals, ...run.incoming.refusals];
    if (run.incoming.stored.length + run.incoming.refusals.length < msg.artifacts) {
      refusals.push({ path: '*', reason: `worker announced ${msg.artifacts} artifacts, ${run.incoming.stored.length} arrived` });
    }
    await this.complete(run, msg.result, msg.stats, refusals, { ackTo: w });
  }

  // ---- ending runs ----

  /** Stores a run's result (files first, then one transaction), then tells everyone. */
  private async complete(
    run: LiveRun, result: RunResult, stats: Finished['stats'], refusals: Finished['refusals'],
    { retryAtOnce = false, ackTo }: { retryAtOnce?: boolean; ackTo?: WorkerSession } = {},
  ): Promise<void> {
    if (run.finishing) return;
    run.finishing = true;
    clearTimeout(run.lease);
    clearTimeout(run.deadline);
    const finished = Date.now();
    const meta: RunMeta = {
      uuid: run.uuid, job: run.job, platform: run.platform, worker: run.workerName, attempt: run.attempt,
      started: new Date(run.started).toISOString(), finished: new Date(finished).toISOString(),
      result, stats, refusals, artifacts: run.incoming.stored,
    };
    let dir: string | null = null;
    try {
      dir = await writeResult(this.config.stateDir, meta, run.script, this.store.lines(run.uuid));
    } catch (err) {
      // the database row still records the result; the files are what could not be written
      this.log.error('cannot write result files', { run: run.uuid, job: run.job, error: errorMessage(err) });
    }
    const retry = isInfra(result) && run.attempt < this.config.maxAttempts;
    this.store.tx(() => {
      this.store.finishRun({ uuid: run.uuid, finished, result, stats, refusals, dir, artifacts: run.incoming.stored });
      if (retry && !this.store.isDropped(run.platform) && this.store.job(run.job)) {
        // a lost worker says nothing about the job: it goes straight back to the front
        const backoff = retryAtOnce ? 0 : this.config.retryBackoffMs * 2 ** (run.attempt - 1);
        this.store.enqueueFront(run.platform, run.job, run.attempt + 1, finished + backoff);
      }
      // in the same transaction, so no stored build can miss its upload
      if (this.opts.uploads && dir !== null && isUploadable(result)) this.store.uploads.add(run.uuid, run.job, dir, finished);
    });
    this.live.delete(run.uuid);
    run.worker?.runs.delete(run.uuid);
    this.log.info('run finished', {
      run: run.uuid, job: run.job, platform: run.platform, result: describeResult(result), artifacts: run.incoming.stored.length,
      retry: retry || undefined,
    });
    // the ack goes before any new job, so the worker has a free slot when the job arrives
    ackTo?.conn.send({ t: 'ack', uuid: run.uuid });
    for (const obs of run.observers) obs.end(result);
    this.events.emit('run:finished', {
      uuid: run.uuid, job: run.job, platform: run.platform, worker: run.workerName, attempt: run.attempt,
      result, finished, dir, retried: retry,
    });
    this.dispatch(run.platform);
  }

  private startLease(run: LiveRun): void {
    clearTimeout(run.lease);
    run.lease = setTimeout(() => {
      if (run.worker || run.finishing) return;
      this.log.warn('worker did not come back within the lease; the job goes back to its queue', {
        run: run.uuid, job: run.job, worker: run.workerName,
      });
      void this.complete(run, { kind: 'failed', message: `worker ${run.workerName} lost`, infra: true }, {}, [], { retryAtOnce: true });
    }, this.config.leaseMs);
    run.lease.unref();
  }

  private armDeadline(run: LiveRun): void {
    const at = run.started + run.timeoutSec * 1000 + DEADLINE_GRACE_MS;
    run.deadline = setTimeout(() => {
      if (run.finishing) return;
      // the worker enforces the timeout itself; this is the backstop for a worker that cannot
      this.log.warn('run exceeded its timeout without a result', { run: run.uuid, job: run.job });
      if (run.worker) run.worker.conn.send({ t: 'cancel', uuid: run.uuid, reason: 'timeout' });
      void this.complete(run, { kind: 'timeout', reason: 'timeout' }, {}, []);
    }, Math.max(0, at - Date.now()));
    run.deadline.unref();
  }

  /** A user's cancel: the worker kills the run; a run without a worker ends here. */
  async cancel(uuid: string): Promise<boolean> {
    const run = this.live.get(uuid);
    if (!run || run.finishing) return false;
    if (run.worker) run.worker.conn.send({ t: 'cancel', uuid, reason: 'cancelled by user' });
    else await this.complete(run, { kind: 'cancelled', reason: 'cancelled by user' }, {}, []);
    return true;
  }

  // ---- observing ----

  observe(conn: Connection, id: number, uuid: string): boolean {
    const run = this.live.get(uuid);
    if (!run) return false;
    const obs = new Observer(conn, id, uuid);
    obs.started(run.job, run.platform);
    for (const line of this.store.lines(uuid)) obs.line(line.ms, line.data);
    run.observers.add(obs);
    conn.once('close', () => run.observers.delete(obs));
    return true;
  }

  latest(platform?: string, job?: string): LiveRun | undefined {
    let best: LiveRun | undefined;
    for (const run of this.live.values()) {
      if (run.finishing || (platform && run.platform !== platform) || (job && run.job !== job)) continue;
      if (!best || run.started > best.started) best = run;
    }
    return best;
  }

  follow(conn: Connection, id: number, job: string, platforms: string[]): void {
    const f: Follower = { conn, id, job, platforms: new Set(platforms) };
    this.followers.add(f);
    conn.once('close', () => this.followers.delete(f));
  }

  private fromRow(row: RunRow): LiveRun {
    return {
      uuid: row.uuid, job: row.job, platform: row.platform, workerName: row.worker, script: row.script,
      attempt: row.attempt, timeoutSec: row.timeout_sec, started: row.started, worker: undefined,
      nextSeq: this.store.lastSeq(row.uuid) + 1, observers: new Set(), lease: undefined, deadline: undefined,
      incoming: new IncomingArtifacts(incomingDir(this.config.stateDir, row.uuid)), finishing: false,
    };
  }
}
