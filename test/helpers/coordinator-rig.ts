// A coordinator in-process: an in-memory store, a fake clock, and workers and observers that
// are plain ports recording what they are sent. Result files go to a fresh temporary directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../src/common/log.js';
import type { HeldRun, Message, RunResult } from '../../src/protocol/messages.js';
import type { ServerConfig } from '../../src/server/config.js';
import { Coordinator, type CoordinatorOptions } from '../../src/server/coordinator.js';
import { ServerEvents, type EventMap } from '../../src/server/events.js';
import type { ObserverPort } from '../../src/server/port.js';
import { openStore, type Store } from '../../src/server/store/index.js';
import type { WorkerSession } from '../../src/server/worker-session.js';
import { FakeClock } from './fake-clock.js';

export const T0 = Date.parse('2026-01-01T00:00:00Z');

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

export interface FakePort extends ObserverPort {
  sent: Message[];
  /** the peer goes away */
  close(): void;
  closed: boolean;
}

export function fakePort(): FakePort {
  const closers: Array<() => void> = [];
  const port: FakePort = {
    sent: [],
    closed: false,
    backlog: 0,
    drained: () => Promise.resolve(),
    batch: (fn) => fn(),
    send: (msg) => void port.sent.push(msg),
    onClose: (fn) => {
      closers.push(fn);
      return () => {
        const i = closers.indexOf(fn);
        if (i >= 0) closers.splice(i, 1);
      };
    },
    close: () => {
      port.closed = true;
      closers.splice(0).forEach((fn) => fn());
    },
  };
  return port;
}

export type FakeWorker = WorkerSession & { port: FakePort };

export class Rig {
  readonly dir = mkdtempSync(join(tmpdir(), 'builder-coord-'));
  readonly store: Store = openStore(':memory:');
  readonly clock = new FakeClock(T0);
  readonly events = new ServerEvents(quiet);
  readonly config: ServerConfig;
  readonly coordinator: Coordinator;

  /** `opts`: what the coordinator gets besides its store, clock and events (e.g. an attester) */
  constructor(over: Partial<ServerConfig> = {}, opts: Pick<CoordinatorOptions, 'attester'> = {}) {
    this.config = Object.freeze({
      stateDir: this.dir, configDir: join(this.dir, 'config'), host: '127.0.0.1', port: 0, tokenFile: undefined,
      upload: undefined, uploadBackoffMs: 1000, maxFrame: 1 << 20, leaseMs: 30_000, timeoutSec: 3600,
      maxAttempts: 3, retryBackoffMs: 10_000, ...over,
    });
    this.coordinator = new Coordinator(this.store, this.config, quiet, { ...opts, events: this.events, clock: this.clock });
  }

  /** A script job on platform p, queued. */
  schedule(name: string, platform = 'p', timeoutSec = 60): void {
    this.store.tx(() => {
      this.store.insertJob({
        name, kind: 'script', platform, script: `echo ${name}`, package: null, period: 'never', cron: null, tz: null,
        timeout_sec: timeoutSec, next_run: null, created: this.clock.now(),
      });
      this.store.addPlatform(platform);
      this.store.enqueue(platform, name);
    });
  }

  /** A worker connects (holding runs from before, when given); returns it and its welcome. */
  join(name: string, platform = 'p', held: HeldRun[] = [], capacity = 1) {
    const w: FakeWorker = {
      port: fakePort(), peer: `fake:${name}`, name, platform, capacity, runs: new Set(), storing: new Set(), draining: false,
      diskShort: false, freePercent: undefined, sandbox: undefined, since: this.clock.now(),
    };
    const welcome = this.coordinator.workerJoined(w, held);
    this.coordinator.dispatch(platform);
    return { w, welcome };
  }

  /** The worker's connection drops. */
  drop(w: FakeWorker, reason = 'connection closed by peer'): void {
    w.port.close();
    this.coordinator.workerLeft(w, reason);
  }

  /** The uuids of the jobs the worker was sent, in order. */
  jobsSent(w: FakeWorker): string[] {
    return w.port.sent.flatMap((m) => (m.t === 'job' ? [m.uuid] : []));
  }

  next<K extends keyof EventMap>(name: K): Promise<EventMap[K]> {
    return new Promise((resolve) => {
      const off = this.events.on(name, (payload) => {
        off();
        resolve(payload);
      });
    });
  }

  /** The per-run secret the worker was sent with the job (what it shows to re-attach the run). */
  secretOf(w: FakeWorker, uuid: string): string {
    const job = w.port.sent.find((m) => m.t === 'job' && m.uuid === uuid);
    if (job?.t !== 'job' || job.secret === undefined) throw new Error(`no job with a secret sent for ${uuid}`);
    return job.secret;
  }

  /** The worker reports a result and the coordinator stores it. */
  async finish(w: FakeWorker, uuid: string, result: RunResult, lastSeq = -1): Promise<void> {
    await this.coordinator.finished(w, { t: 'finished', uuid, result, lastSeq, stats: {}, refusals: [], artifacts: 0 });
  }

  close(): void {
    this.coordinator.stop();
    this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
