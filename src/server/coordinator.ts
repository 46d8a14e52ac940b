// Hands queued jobs to workers and sees every run through to a stored result, in three parts
// that change for different reasons:
//   dispatch.ts    workers, retries, starting runs (a schedule or queue change pokes only this)
//   run-ledger.ts  runs in flight: leases, deadlines, output, artifacts, completion
//   observing.ts   observers of live runs and followers of a job's next run
// The parts talk to workers and observers through ports (port.ts) and tell the rest of the
// server what happened through typed events (events.ts); time comes from an injectable clock,
// so the whole coordinator runs in-process in tests with an in-memory store and a fake clock.
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import type { ArtifactEnd, ArtifactStart, Chunk, Finished, HeldRun, Output } from '../protocol/messages.js';
import type { Attester } from './attest.js';
import { systemClock, type ServerClock } from './clock.js';
import type { ServerConfig } from './config.js';
import { Dispatcher } from './dispatch.js';
import { JobSecrets } from './job-secrets.js';
import { ServerEvents } from './events.js';
import { Observing } from './observing.js';
import type { ObserverPort } from './port.js';
import { RunLedger, type LiveRun } from './run-ledger.js';
import type { Store } from './store/index.js';
import type { WorkerSession } from './worker-session.js';

export type { LiveRun } from './run-ledger.js';

export interface CoordinatorOptions {
  events?: ServerEvents;
  /** whether finished builds go into the upload outbox (--upload) */
  uploads?: boolean;
  clock?: ServerClock;
  /** signs each stored run's provenance (none without it: --no-provenance, in-process tests) */
  attester?: Attester | undefined;
}

export class Coordinator {
  readonly events: ServerEvents;
  readonly ledger: RunLedger;
  readonly dispatcher: Dispatcher;
  readonly observing: Observing;
  /** the jobs' secrets (STATEDIR/secrets/): given to their runs, masked in their output */
  readonly secrets: JobSecrets;

  constructor(store: Store, config: ServerConfig, log: Logger, opts: CoordinatorOptions = {}) {
    this.events = opts.events ?? new ServerEvents(log);
    const clock = opts.clock ?? systemClock;
    this.observing = new Observing(store, log);
    this.secrets = new JobSecrets(join(config.stateDir, 'secrets'));
    const secrets = this.secrets;
    this.ledger = new RunLedger({ store, config, log, clock, events: this.events, observing: this.observing, uploads: opts.uploads ?? false, attester: opts.attester, secrets });
    this.dispatcher = new Dispatcher({ store, config, log, clock, events: this.events, ledger: this.ledger, observing: this.observing, secrets });
  }

  get live(): ReadonlyMap<string, LiveRun> {
    return this.ledger.live;
  }

  get workers(): ReadonlySet<WorkerSession> {
    return this.dispatcher.workers;
  }

  /** After a restart: every run the database says is running waits for its worker. */
  recover(): void {
    this.ledger.recover();
  }

  stop(): void {
    this.ledger.stop();
    this.dispatcher.stop();
  }

  // ---- workers ----
  workerJoined(w: WorkerSession, held: HeldRun[]) {
    return this.dispatcher.workerJoined(w, held);
  }
  workerLeft(w: WorkerSession, reason: string): void {
    this.dispatcher.workerLeft(w, reason);
  }
  dispatch(platform?: string): void {
    this.dispatcher.dispatch(platform);
  }

  // ---- messages from the worker holding a run ----
  output(w: WorkerSession, msg: Output): void {
    this.ledger.output(w, msg);
  }
  artifactStart(w: WorkerSession, msg: ArtifactStart): Promise<void> | undefined {
    return this.ledger.artifactStart(w, msg);
  }
  artifactChunk(w: WorkerSession, msg: Chunk): Promise<void> | undefined {
    return this.ledger.artifactChunk(w, msg);
  }
  artifactEnd(w: WorkerSession, msg: ArtifactEnd): Promise<void> | undefined {
    return this.ledger.artifactEnd(w, msg);
  }
  finished(w: WorkerSession, msg: Finished): Promise<void> {
    return this.ledger.finished(w, msg);
  }
  /** A user's cancel: the worker kills the run; a run without a worker ends here. */
  cancel(uuid: string): Promise<boolean> {
    return this.ledger.cancel(uuid);
  }

  // ---- observing ----
  /** Watches a live run; false when no run with this uuid is live. */
  observe(port: ObserverPort, id: number, uuid: string): boolean {
    const run = this.ledger.live.get(uuid);
    if (!run) return false;
    this.observing.watch(port, id, run);
    return true;
  }
  latest(platform?: string, job?: string): LiveRun | undefined {
    return this.ledger.latest(platform, job);
  }
  follow(port: ObserverPort, id: number, job: string, platforms: string[]): void {
    this.observing.follow(port, id, job, platforms);
  }
}
