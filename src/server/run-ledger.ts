// The runs in flight and how each ends. A run is held by its worker under a lease: while the
// worker is connected the lease is renewed by the connection's heartbeats; when it drops, the
// run waits leaseMs for the worker to re-attach, then is recorded as an infrastructure failure
// (and retried under a new uuid by the dispatcher), and the old uuid is dead for good. A run past
// its timeout is ended here too, as a backstop for a worker that cannot end it itself.
//
// A full disk stops nothing for good: console lines that cannot be stored wait in memory
// (bounded), a result that cannot be written or recorded waits with its worker unacknowledged,
// and both are tried again every few seconds until the disk takes them. Only a worker that
// shows the run's name and secret (handed out with the job) may re-attach a run.
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import { describeResult } from '../protocol/describe.js';
import type { ArtifactEnd, ArtifactStart, Chunk, Finished, HeldRun, Output, RunResult, SandboxDescription, ScriptBytes } from '../protocol/messages.js';
import { isUploadable } from '../builder-web/exec-from-result.js';
import { incomingDir, writeResult, type RunMeta } from '../results/index.js';
import { makeMasker, type Masker } from '../secrets/mask.js';
import type { Attester, BuildInputs } from './attest.js';
import type { ServerClock, TimerHandle } from './clock.js';
import type { ServerConfig } from './config.js';
import type { ServerEvents } from './events.js';
import { IncomingArtifacts } from './incoming.js';
import type { JobSecrets } from './job-secrets.js';
import type { Observing } from './observing.js';
import { isStorageFault, type RunRow, type Store } from './store/index.js';
import type { WorkerSession } from './worker-session.js';

const DEADLINE_GRACE_MS = 10_000;
/** how often what the disk refused (console lines, results) is tried again */
export const STORE_RETRY_MS = 2_000;
/** console lines of one run kept in memory while the disk refuses them; the oldest go first past it */
const MAX_UNSAVED_BYTES = 16 * 1024 * 1024;

export interface LiveRun {
  uuid: string;
  job: string;
  platform: string;
  workerName: string;
  script: ScriptBytes;
  attempt: number;
  timeoutSec: number;
  started: number;
  worker: WorkerSession | undefined;
  nextSeq: number;
  lease: TimerHandle | undefined;
  deadline: TimerHandle | undefined;
  incoming: IncomingArtifacts;
  finishing: boolean;
  /**
   * What the run's provenance names besides its script (template, SOURCE_DATE_EPOCH), when the
   * dispatcher knows it; SOURCE_DATE_EPOCH is otherwise taken from the job's row at the end.
   */
  buildInputs?: BuildInputs | undefined;
  /** hides the job's secrets in its console and messages; undefined for a job without any */
  masker: Masker | undefined;
  /** what the worker must show to re-attach the run; undefined for runs from before secrets */
  secret: string | undefined;
  /** console lines the disk did not take yet, oldest first: [seq, ms, data] */
  unsaved: Array<[number, number, Buffer]>;
  unsavedBytes: number;
}

/** A finished run whose result the disk has not taken yet: stored again until it does. */
interface Completion {
  run: LiveRun;
  meta: RunMeta;
  retry: boolean;
  retryAtOnce: boolean;
  ackTo: WorkerSession | undefined;
  /** the result directory once written; null when its files cannot be written for good */
  dir: string | null | undefined;
  /** the run's row is committed (its fsync may still have to succeed) */
  committed: boolean;
  attempts: number;
}

export type NewRun = Pick<LiveRun, 'uuid' | 'job' | 'script' | 'attempt' | 'timeoutSec' | 'started' | 'buildInputs'> & {
  secret?: string | undefined;
  /** the values of the job's secrets, to mask */
  secrets?: readonly string[] | undefined;
};

export interface LedgerParts {
  store: Store;
  config: ServerConfig;
  log: Logger;
  clock: ServerClock;
  events: ServerEvents;
  observing: Observing;
  /** whether finished builds go into the upload outbox (--upload) */
  uploads: boolean;
  /** signs each stored run's provenance; undefined with --no-provenance */
  attester?: Attester | undefined;
  secrets: JobSecrets;
}

const isInfra = (r: RunResult): boolean => r.kind === 'failed' && r.infra;

export class RunLedger {
  readonly live = new Map<string, LiveRun>();
  /** results waiting for the disk, and runs whose console lines wait */
  private readonly stalled = new Set<Completion>();
  private readonly unsavedRuns = new Set<LiveRun>();
  private retryTimer: TimerHandle | undefined;
  private readonly store: Store;
  private readonly config: ServerConfig;
  private readonly log: Logger;
  private readonly clock: ServerClock;

  constructor(private readonly parts: LedgerParts) {
    ({ store: this.store, config: this.config, log: this.log, clock: this.clock } = parts);
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
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const run of this.live.values()) {
      this.clock.clearTimeout(run.lease);
      this.clock.clearTimeout(run.deadline);
    }
  }

  /** A run the dispatcher just handed to w (its row is stored): held from now on. */
  open(w: WorkerSession, r: NewRun): LiveRun {
    const run = this.newLive(w, r);
    this.live.set(run.uuid, run);
    w.runs.add(run.uuid);
    this.armDeadline(run);
    return run;
  }

  /**
   * A run that failed before it could go to its worker (its template is missing a variable,
   * invalid or unreadable): stored at once as `failed` with the message, like any finished run,
   * so history shows it, followers see it end, and it is not retried as an infrastructure fault.
   */
  failAtStart(w: WorkerSession, r: NewRun, message: string): Promise<void> {
    const run = this.newLive(w, r);
    run.worker = undefined;
    this.live.set(run.uuid, run);
    return this.complete(run, { kind: 'failed', message, infra: false }, {}, []);
  }

  private newLive(w: WorkerSession, { secrets, secret, ...r }: NewRun): LiveRun {
    return {
      ...r, platform: w.platform, workerName: w.name, worker: w, nextSeq: 0, lease: undefined, deadline: undefined,
      incoming: new IncomingArtifacts(incomingDir(this.config.stateDir, r.uuid)), finishing: false,
      masker: secrets && secrets.length > 0 ? makeMasker(secrets) : undefined,
      secret, unsaved: [], unsavedBytes: 0,
    };
  }

  /** After a restart: the masker of a recovered run's job, from its stored secrets. */
  private maskerOf(job: string): Masker | undefined {
    try {
      const secrets = this.parts.secrets.get(job);
      return secrets ? makeMasker(Object.values(secrets)) : undefined;
    } catch (err) {
      this.log.error('cannot read the secrets of a recovered run; its output is not masked', { job, error: errorMessage(err) });
      return undefined;
    }
  }

  /** Decides which of a (re)joining worker's held runs it keeps; the rest it must abandon. */
  adopt(w: WorkerSession, held: HeldRun[]): {
    attach: Array<{ uuid: string; haveSeq: number }>; abandon: string[]; ready: Promise<void>;
  } {
    const attach: Array<{ uuid: string; haveSeq: number }> = [];
    const abandon: string[] = [];
    const resets: Array<Promise<void>> = [];
    for (const h of held) {
      const run = this.live.get(h.uuid);
      if (!run || run.finishing || (run.worker && !run.worker.port.closed) || run.platform !== w.platform) {
        abandon.push(h.uuid);
        continue;
      }
      // only the worker the run was handed to: its name, and the secret that came with the job
      if (run.workerName !== w.name || !sameSecret(run.secret, h.secret)) {
        this.log.warn('a worker claimed a run it was not given; refused', {
          run: run.uuid, job: run.job, worker: w.name, holder: run.workerName,
          why: run.workerName !== w.name ? 'another worker\'s run' : 'wrong or missing run secret',
        });
        abandon.push(h.uuid);
        continue;
      }
      this.clock.clearTimeout(run.lease);
      run.lease = undefined;
      run.worker = w;
      w.runs.add(run.uuid);
      attach.push({ uuid: run.uuid, haveSeq: run.nextSeq - 1 });
      this.log.info('run re-attached', { run: run.uuid, job: run.job, worker: w.name });
      // a finished run's artifacts are all sent again: what arrived before is thrown away first
      if (h.finished) resets.push(run.incoming.reset());
    }
    return { attach, abandon, ready: Promise.all(resets).then(() => undefined) };
  }

  /** The worker is gone: each of its runs waits for it under a lease. */
  release(w: WorkerSession, reason: string): void {
    for (const uuid of w.runs) {
      const run = this.live.get(uuid);
      if (!run || run.worker !== w) continue;
      run.worker = undefined;
      // an artifact it was sending will not be completed: its partial file goes now
      void run.incoming.abandon(`worker lost: ${reason}`);
      this.log.warn('worker lost during run; waiting for it to re-attach', {
        run: uuid, job: run.job, worker: w.name, reason, leaseMs: this.config.leaseMs,
      });
      this.startLease(run);
    }
    w.runs.clear();
    w.storing.clear();
  }

  /** The newest live run, of a platform and/or job when given. */
  latest(platform?: string, job?: string): LiveRun | undefined {
    let best: LiveRun | undefined;
    for (const run of this.live.values()) {
      if (run.finishing || (platform && run.platform !== platform) || (job && run.job !== job)) continue;
      if (!best || run.started > best.started) best = run;
    }
    return best;
  }

  // ---- messages from the worker holding a run ----

  /** The run this worker may speak for, or undefined (after telling it so). */
  private owned(w: WorkerSession, uuid: string): LiveRun | undefined {
    const run = this.live.get(uuid);
    if (run && run.worker === w && !run.finishing) return run;
    w.port.send({ t: 'refused', uuid, reason: 'this run is not held by you (finished, cancelled, or handed to another worker)' });
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
    // masked as they arrive, before they are stored or sent to observers: nothing downstream
    // (observe, the result's console, uploads) ever holds a secret
    const masker = run.masker;
    const sent = msg.lines.slice(skip);
    const fresh: Array<[number, Buffer]> = masker ? sent.map(([ms, data]) => [ms, masker.mask(data)]) : sent;
    if (fresh.length === 0) return;
    const seq = msg.seq + skip;
    this.saveLines(run, seq, fresh);
    run.nextSeq = seq + fresh.length;
    this.parts.observing.lines(run.uuid, seq, fresh);
    this.parts.events.emit('run:lines', { uuid: run.uuid, seq, lines: fresh });
  }

  /** Stores console lines, or keeps them (bounded) until the disk takes them again. */
  private saveLines(run: LiveRun, seq: number, lines: Array<[number, Buffer]>): void {
    if (run.unsaved.length === 0) {
      try {
        this.store.addLines(run.uuid, seq, lines);
        return;
      } catch (err) {
        if (!isStorageFault(err)) throw err;
        this.log.error('cannot store console lines; they are kept in memory until the disk takes them', {
          run: run.uuid, job: run.job, error: errorMessage(err),
        });
      }
    }
    lines.forEach(([ms, data], i) => run.unsaved.push([seq + i, ms, data]));
    run.unsavedBytes += lines.reduce((n, [, d]) => n + d.length + 32, 0);
    let dropped = 0;
    while (run.unsavedBytes > MAX_UNSAVED_BYTES && run.unsaved.length > 1) {
      run.unsavedBytes -= run.unsaved.shift()![2].length + 32;
      dropped++;
    }
    if (dropped > 0) this.log.warn('console lines dropped: the disk is full and too many wait', { run: run.uuid, dropped });
    this.unsavedRuns.add(run);
    this.armRetry();
  }

  /** Stores a run's waiting console lines; false when the disk still refuses them. */
  private flushLines(run: LiveRun): boolean {
    if (run.unsaved.length === 0) return true;
    try {
      this.store.tx(() => {
        for (const [seq, ms, data] of run.unsaved) this.store.addLines(run.uuid, seq, [[ms, data]]);
      });
    } catch (err) {
      if (!isStorageFault(err)) throw err;
      return false;
    }
    this.log.info('console lines stored after the disk refused them', { run: run.uuid, lines: run.unsaved.length });
    run.unsaved = [];
    run.unsavedBytes = 0;
    this.unsavedRuns.delete(run);
    return true;
  }

  artifactStart(w: WorkerSession, msg: ArtifactStart): Promise<void> | undefined {
    return this.owned(w, msg.uuid)?.incoming.begin(msg.path, msg.size, msg.mode);
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
    // an artifact announced and not sent whole is not part of the result
    await run.incoming.abandon('the run finished before it was sent whole');
    const refusals = [...msg.refusals];
    if (run.incoming.stored.length + run.incoming.refusals.length < msg.artifacts) {
      refusals.push({ path: '*', reason: `worker announced ${msg.artifacts} artifacts, ${run.incoming.stored.length} arrived` });
    }
    const result: RunResult = run.masker && msg.result.kind === 'failed'
      ? { ...msg.result, message: run.masker.maskText(msg.result.message) } : msg.result;
    // the worker is done with it: its slot takes the next job while the result is stored
    if (!run.finishing) {
      w.storing.add(run.uuid);
      this.parts.events.emit('run:ended-at-worker', { uuid: run.uuid, job: run.job, platform: run.platform, worker: run.workerName, attempt: run.attempt });
    }
    await this.complete(run, result, msg.stats, refusals, { ackTo: w, sandbox: msg.sandbox });
  }

  /** A user's cancel: the worker kills the run; a run without a worker ends here. */
  async cancel(uuid: string): Promise<boolean> {
    const run = this.live.get(uuid);
    if (!run || run.finishing) return false;
    if (run.worker) run.worker.port.send({ t: 'cancel', uuid, reason: 'cancelled by user' });
    else await this.complete(run, { kind: 'cancelled', reason: 'cancelled by user' }, {}, []);
    return true;
  }

  // ---- ending runs ----

  /**
   * Stores a run's result (files first, then one transaction holding the run's row, its retry
   * and its upload, on disk once the shared fsync of group commit returned), then tells everyone: the worker (ack), observers, and run:finished. When the
   * disk refuses, the run waits (unacknowledged, so its worker keeps it) and is stored again
   * every few seconds; this never throws.
   */
  private async complete(
    run: LiveRun, result: RunResult, stats: Finished['stats'], refusals: Finished['refusals'],
    { retryAtOnce = false, ackTo, sandbox }: { retryAtOnce?: boolean; ackTo?: WorkerSession; sandbox?: SandboxDescription | undefined } = {},
  ): Promise<void> {
    if (run.finishing) return;
    run.finishing = true;
    this.clock.clearTimeout(run.lease);
    this.clock.clearTimeout(run.deadline);
    // an artifact cut short (lease, timeout, cancel) is refused with what arrived, its file removed
    await run.incoming.abandon('the run ended before it was sent whole');
    const all = [...refusals, ...run.incoming.refusals];
    const masked = run.masker ? all.map((r) => ({ ...r, reason: run.masker!.maskText(r.reason) })) : all;
    const finished = this.clock.now();
    const meta: RunMeta = {
      uuid: run.uuid, job: run.job, platform: run.platform, worker: run.workerName, attempt: run.attempt,
      started: new Date(run.started).toISOString(), finished: new Date(finished).toISOString(),
      result, stats, refusals: masked, artifacts: run.incoming.stored, ...(sandbox ? { sandbox } : {}),
    };
    const retry = isInfra(result) && run.attempt < this.config.maxAttempts;
    const c: Completion = { run, meta, retry, retryAtOnce, ackTo, dir: undefined, committed: false, attempts: 0 };
    if (!(await this.persist(c))) {
      this.stalled.add(c);
      this.armRetry();
    }
  }

  /** Writes the result's files and records the run; false when the disk refused (tried again later). */
  private async persist(c: Completion): Promise<boolean> {
    const { run, meta } = c;
    c.attempts++;
    try {
      if (!this.flushLines(run)) throw Object.assign(new Error('console lines cannot be stored'), { code: 'SQLITE_FULL' });
      if (c.dir === undefined) {
        try {
          c.dir = await writeResult(this.config.stateDir, meta, run.script, this.store.pagedLines(run.uuid), { provenance: this.provenanceOf(run) });
        } catch (err) {
          if (isStorageFault(err)) throw err;
          // the database row still records the result; the files are what could not be written
          this.log.error('cannot write result files', { run: run.uuid, job: run.job, error: errorMessage(err) });
          c.dir = null;
        }
      }
      const { dir } = c;
      const finished = Date.parse(meta.finished);
      // committed without its own fsync: runs finishing together share one (group commit), and
      // nothing (ack, observers, run:finished) is told before it returned
      if (!c.committed) this.store.txDeferred(() => {
        this.store.finishRun({ uuid: run.uuid, finished, result: meta.result, stats: meta.stats, refusals: meta.refusals, dir, artifacts: meta.artifacts });
        if (c.retry && !this.store.isDropped(run.platform) && this.store.job(run.job)) {
          // a lost worker says nothing about the job: it goes straight back to the front
          const backoff = c.retryAtOnce ? 0 : this.config.retryBackoffMs * 2 ** (run.attempt - 1);
          this.store.enqueueFront(run.platform, run.job, run.attempt + 1, finished + backoff);
        }
        // in the same transaction, so no stored build can miss its upload
        if (this.parts.uploads && dir !== null && isUploadable(meta.result)) this.store.uploads.add(run.uuid, run.job, dir, finished);
      });
      // a failed fsync leaves the commit in place: only the fsync is tried again
      c.committed = true;
      await this.store.synced();
    } catch (err) {
      if (c.attempts === 1 || !isStorageFault(err)) {
        this.log.error('cannot store a finished run; it is tried again until the disk takes it', {
          run: run.uuid, job: run.job, error: errorMessage(err), retryInMs: STORE_RETRY_MS,
        });
      }
      return false;
    }
    if (c.attempts > 1) this.log.info('finished run stored after the disk refused it', { run: run.uuid, job: run.job, attempts: c.attempts });
    this.ended(c);
    return true;
  }

  private ended({ run, meta, retry, ackTo, dir }: Completion): void {
    const finished = Date.parse(meta.finished);
    const result = meta.result;
    this.live.delete(run.uuid);
    run.worker?.runs.delete(run.uuid);
    run.worker?.storing.delete(run.uuid);
    this.log.info('run finished', {
      run: run.uuid, job: run.job, platform: run.platform, result: describeResult(result), artifacts: run.incoming.stored.length,
      retry: retry || undefined,
    });
    // the ack goes before any new job (the dispatcher hears run:finished), so the worker has a
    // free slot when the job arrives
    if (ackTo && !ackTo.port.closed) ackTo.port.send({ t: 'ack', uuid: run.uuid });
    this.parts.observing.ended(run.uuid, result, run.nextSeq);
    this.parts.events.emit('run:finished', {
      uuid: run.uuid, job: run.job, platform: run.platform, worker: run.workerName, attempt: run.attempt,
      result, finished, dir: dir ?? null, retried: retry,
    });
  }

  /** Tries again, every few seconds, what the disk refused: waiting console lines, then results. */
  private armRetry(): void {
    if (this.retryTimer !== undefined) return;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      void this.retryStalled();
    }, STORE_RETRY_MS);
  }

  private async retryStalled(): Promise<void> {
    try {
      for (const run of [...this.unsavedRuns]) if (!run.finishing && !this.flushLines(run)) break;
      for (const c of [...this.stalled]) {
        if (!(await this.persist(c))) break;
        this.stalled.delete(c);
      }
    } catch (err) {
      this.log.error('cannot store what waits for the disk', { error: errorMessage(err) });
    }
    if (this.stalled.size > 0 || this.unsavedRuns.size > 0) this.armRetry();
  }

  /** Signs the run's provenance when the result is written; a failure costs the provenance only. */
  private provenanceOf(run: LiveRun): ((meta: RunMeta, script: ScriptBytes) => object | undefined) | undefined {
    const attester = this.parts.attester;
    if (!attester) return undefined;
    return (meta, script) => {
      try {
        const inputs: BuildInputs = { ...run.buildInputs };
        inputs.sourceDateEpoch ??= sourceDateEpochOf(this.store.job(run.job));
        return attester.envelope(meta, script, inputs);
      } catch (err) {
        this.log.error('cannot sign the run\'s provenance; its result is stored without it', { run: run.uuid, job: run.job, error: errorMessage(err) });
        return undefined;
      }
    };
  }

  private startLease(run: LiveRun): void {
    this.clock.clearTimeout(run.lease);
    run.lease = this.clock.setTimeout(() => {
      if (run.worker || run.finishing) return;
      this.log.warn('worker did not come back within the lease; the job goes back to its queue', {
        run: run.uuid, job: run.job, worker: run.workerName,
      });
      void this.complete(run, { kind: 'failed', message: `worker ${run.workerName} lost`, infra: true }, {}, [], { retryAtOnce: true });
    }, this.config.leaseMs);
  }

  private armDeadline(run: LiveRun): void {
    const at = run.started + run.timeoutSec * 1000 + DEADLINE_GRACE_MS;
    run.deadline = this.clock.setTimeout(() => {
      if (run.finishing) return;
      // the worker enforces the timeout itself; this is the backstop for a worker that cannot
      this.log.warn('run exceeded its timeout without a result', { run: run.uuid, job: run.job });
      if (run.worker) run.worker.port.send({ t: 'cancel', uuid: run.uuid, reason: 'timeout' });
      void this.complete(run, { kind: 'timeout', reason: 'timeout' }, {}, []);
    }, Math.max(0, at - this.clock.now()));
  }

  private fromRow(row: RunRow): LiveRun {
    return {
      uuid: row.uuid, job: row.job, platform: row.platform, workerName: row.worker, script: row.script,
      attempt: row.attempt, timeoutSec: row.timeout_sec, started: row.started, worker: undefined,
      nextSeq: this.store.lastSeq(row.uuid) + 1, lease: undefined, deadline: undefined,
      incoming: new IncomingArtifacts(incomingDir(this.config.stateDir, row.uuid)), finishing: false,
      masker: this.maskerOf(row.job), secret: row.secret ?? undefined, unsaved: [], unsavedBytes: 0,
    };
  }
}

/**
 * The job's SOURCE_DATE_EPOCH when its row has one: the column comes with per-job build
 * environments (jobs.source_date_epoch), so older schemas and rows without it give undefined.
 */
function sourceDateEpochOf(row: object | undefined): number | undefined {
  const value = (row as { source_date_epoch?: unknown } | undefined)?.source_date_epoch;
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}

/** Whether a worker's claim matches the run's secret (runs from before secrets go by name alone). */
function sameSecret(expected: string | undefined, shown: string | undefined): boolean {
  if (expected === undefined) return true;
  if (shown === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(shown);
  return a.length === b.length && timingSafeEqual(a, b);
}
