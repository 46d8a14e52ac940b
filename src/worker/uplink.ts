// The worker's side of its connection, after the hello:
//   1. hello lists the runs this worker still holds; welcome says which to go on with (attach,
//      with the last console line the server has) and which to drop (abandon)
//   2. server -> job | cancel | drain | ack | refused;  worker -> output, artifacts, finished, status
//   3. a run is forgotten, and its sandbox destroyed, only after the server's ack
// When the server goes away, runs go on; their output is buffered (bounded) and the worker
// reconnects with backoff and re-attaches them. The server is reached through a ServerPort and
// time through a Clock, so all of this is unit-tested in-process (test/unit/uplink.test.ts).
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Job, Message, Welcome } from '../protocol/messages.js';
import { describeResult } from '../protocol/describe.js';
import { KeptRun } from './kept-run.js';
import { runJob, type RunLimits, type RunOutcome } from './runner.js';
import { sendArtifacts } from './send-artifacts.js';
import type { SandboxBackend } from './sandbox/types.js';
import { tcpDialer, type Dialer, type ServerPort } from './server-port.js';
import type { PeerTls } from '../protocol/tls.js';

/** EX_CONFIG (sysexits.h): the worker's configuration is wrong; service managers stop restarting it. */
export const EXIT_CONFIG = 78;

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** the server by address (the real thing) or by a dialer (tests) */
type ServerOptions = { host: string; port: number; token: string; tls?: PeerTls | undefined } | { dial: Dialer };

export type UplinkOptions = ServerOptions & {
  name: string;
  platform: string;
  capacity: number;
  once: boolean;
  limits: RunLimits;
  backend: SandboxBackend;
  log: Logger;
  /** free-space check; true when the worker must take no job */
  diskShort?: () => Promise<{ short: boolean; freePercent: number }>;
  clock?: Clock;
  /** in [0, 1): spreads reconnects of many workers after a server restart */
  random?: () => number;
};

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

/**
 * Lines per output frame, and bytes: the server refuses a frame that decodes into more objects
 * than a fixed multiple of its size (a frame of many tiny lines) or is longer than its frame
 * limit (16 MiB of output kept while disconnected, sent again at once), so big batches go in
 * several frames.
 */
const MAX_LINES_PER_FRAME = 2048;
const MAX_BYTES_PER_FRAME = 4 << 20;

function sendOutput(conn: ServerPort, uuid: string, seq: number, lines: Array<[number, Buffer]>): void {
  let start = 0;
  while (start < lines.length) {
    let end = start;
    let bytes = 0;
    while (end < lines.length && end - start < MAX_LINES_PER_FRAME && (end === start || bytes + lines[end]![1].length <= MAX_BYTES_PER_FRAME)) {
      bytes += lines[end]![1].length;
      end++;
    }
    conn.send({ t: 'output', uuid, seq: seq + start, lines: lines.slice(start, end) });
    start = end;
  }
}

export class Uplink {
  private readonly held = new Map<string, KeptRun>();
  private conn: ServerPort | undefined;
  private readonly dial: Dialer;
  private readonly clock: Clock;
  private readonly random: () => number;
  private pending = new Map<string, Array<[number, Buffer]> & { first?: number }>();
  private flushScheduled = false;
  private draining = false;
  private diskShort = false;
  private freePercent: number | undefined;
  private stopped = false;
  /** the last status sent, and on which connection */
  private statusSent: { conn: ServerPort; key: string } | undefined;
  private resolveDone: (() => void) | undefined;
  /** the status the worker exits with once done: EXIT_CONFIG after a refused token */
  exitCode = 0;
  readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(private readonly o: UplinkOptions) {
    this.dial = 'dial' in o ? o.dial : tcpDialer(o);
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
  }

  get runs(): number {
    return this.held.size;
  }

  /** Connects, and reconnects with backoff, until drained or stopped. */
  async start(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!this.stopped) {
      try {
        const closed = await this.connectOnce();
        backoff = MIN_BACKOFF_MS;
        await closed;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'AUTH' || code === 'FORBIDDEN') {
          // a wrong, revoked or misplaced token does not fix itself: stop, and say so once,
          // with an exit status that tells the service manager not to restart (EX_CONFIG)
          this.o.log.error('authentication refused: check the token', { error: errorMessage(err) });
          this.exitCode = EXIT_CONFIG;
          await this.abort();
          return;
        }
        this.o.log.warn('cannot reach the server', { error: errorMessage(err), retryInMs: backoff });
        if (code === 'VERSION') {
          // another version does not go away by retrying fast
          backoff = MAX_BACKOFF_MS;
        }
      }
      if (this.stopped) break;
      await this.clock.sleep(backoff * (0.75 + this.random() / 2));
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    }
  }

  /** SIGTERM: finish what is held, take nothing new, then stop. */
  drain(): void {
    this.draining = true;
    this.sendStatus();
    this.checkDone();
  }

  /** Second SIGINT: kill everything now and clean up. */
  async abort(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.held.values()].map((h) => this.forget(h, 'worker stopping')));
    this.conn?.close('worker stopping');
    this.resolveDone?.();
  }

  /** Says hello and re-attaches; resolves, once connected, to a promise of the close. */
  private async connectOnce(): Promise<Promise<void>> {
    const running = [...this.held.values()].map((h) => ({
      uuid: h.uuid, lastSeq: h.nextSeq - 1, finished: h.ending !== undefined, ...(h.secret !== undefined ? { secret: h.secret } : {}),
    }));
    const { port: conn, welcome } = await this.dial({ name: this.o.name, platform: this.o.platform, capacity: this.o.capacity, running });
    this.conn = conn;
    this.pending.clear();
    this.o.log.info('connected', { server: welcome.server, platform: this.o.platform, dropped: welcome.dropped || undefined });
    if (welcome.dropped) this.o.log.warn('this platform is dropped on the server; no jobs will come until it is undropped');
    this.onWelcome(conn, welcome);
    this.sendStatus();
    return new Promise<void>((resolve) => {
      conn.listen((msg) => this.onMessage(msg), (reason) => {
        if (this.conn === conn) this.conn = undefined;
        if (!this.stopped) this.o.log.warn('connection to the server lost; runs go on', { reason, held: this.held.size });
        resolve();
      });
    });
  }

  private onWelcome(conn: ServerPort, welcome: Welcome): void {
    const attached = new Set<string>();
    for (const { uuid, haveSeq } of welcome.attach ?? []) {
      const h = this.held.get(uuid);
      if (!h) continue;
      attached.add(uuid);
      const lines = h.linesAfter(haveSeq);
      if (lines.length > 0) sendOutput(conn, uuid, lines[0]![0], lines.map(([, ms, d]) => [ms, d]));
      if (h.ending) void this.sendEnding(h);
    }
    for (const h of [...this.held.values()]) {
      if (!attached.has(h.uuid)) void this.forget(h, 'the server no longer holds this run for us');
    }
  }

  private onMessage(msg: Message): void {
    switch (msg.t) {
      case 'job':
        return this.take(msg);
      case 'cancel': {
        const h = this.held.get(msg.uuid);
        this.o.log.info('cancel', { run: msg.uuid, reason: msg.reason });
        h?.stop.abort(msg.reason);
        return;
      }
      case 'ack': {
        const h = this.held.get(msg.uuid);
        if (h) void this.forget(h, undefined);
        return;
      }
      case 'refused': {
        const h = this.held.get(msg.uuid);
        this.o.log.warn('server refused a run', { run: msg.uuid, reason: msg.reason });
        if (h) void this.forget(h, msg.reason);
        return;
      }
      case 'drain':
        this.o.log.info('asked to drain: finishing held runs, taking no new job');
        return this.drain();
      case 'error':
        this.o.log.error('server error', { code: msg.code, message: msg.message });
        return;
      default:
        this.o.log.warn(`unexpected message from server: ${msg.t}`);
    }
  }

  private take(job: Job): void {
    const conn = this.conn;
    if (this.draining || this.diskShort || this.stopped || !this.hasSlot()) {
      // the server's view was stale: hand the job back as an infrastructure failure, which it retries
      conn?.send({
        t: 'finished', uuid: job.uuid, lastSeq: -1, stats: {}, refusals: [], artifacts: 0,
        result: { kind: 'failed', message: `worker ${this.o.name} cannot take jobs now`, infra: true },
      });
      return;
    }
    if (this.o.once) {
      // one job is all this worker takes: the server must not hand it another after the ack
      this.draining = true;
      this.sendStatus();
    }
    const h = new KeptRun(job.uuid, job.name, this.clock.now());
    h.secret = job.secret;
    this.held.set(job.uuid, h);
    const log = this.o.log.child({ run: job.uuid, job: job.name });
    log.info('job started');
    const run = async (): Promise<RunOutcome> => {
      // free space is checked before every job, not only every 30 s: builds fill disks fast
      await this.checkDisk().catch((err) => log.warn('disk check failed', { error: errorMessage(err) }));
      if (this.diskShort) {
        const message = `worker ${this.o.name} is short of disk space (${Math.round(this.freePercent ?? 0)}% free)`;
        return { result: { kind: 'failed', message, infra: true }, stats: {}, artifacts: [], refusals: [], teardown: undefined };
      }
      return runJob({
        backend: this.o.backend, job, limits: this.o.limits, signal: h.stop.signal,
        onLine: (data) => {
          const [seq, ms] = h.addLine(this.clock.now() - h.started, data);
          this.queueLine(h.uuid, seq, ms, data);
        },
      });
    };
    h.settled = run()
      .then(async ({ teardown, ...ending }) => {
        h.teardown = teardown;
        h.ending = ending;
        if (!this.held.has(h.uuid)) return this.tearDown(h); // dropped while it ran
        this.flush();
        log.info('job ended', { result: describeResult(ending.result), artifacts: ending.artifacts.length });
        await this.sendEnding(h);
      })
      .catch((err) => log.error('run failed unexpectedly', { error: errorMessage(err) }));
  }

  /**
   * A run whose result has gone to the server no longer takes a slot: the server hands the next
   * job while it stores that result (up to capacity such runs kept, as the server counts them).
   */
  private hasSlot(): boolean {
    let running = 0;
    for (const h of this.held.values()) if (h.ending === undefined) running++;
    return running < this.o.capacity && this.held.size < 2 * this.o.capacity;
  }

  private queueLine(uuid: string, seq: number, ms: number, data: Buffer): void {
    if (!this.conn) return; // kept in the run's buffer, sent again after re-attach
    let batch = this.pending.get(uuid);
    if (!batch) {
      batch = Object.assign([] as Array<[number, Buffer]>, { first: seq });
      this.pending.set(uuid, batch);
    }
    batch.push([ms, data]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // lines that arrive together go in one frame, without delaying the first one
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const conn = this.conn;
    for (const [uuid, batch] of this.pending) {
      if (conn && batch.length > 0) sendOutput(conn, uuid, batch.first!, batch);
    }
    this.pending.clear();
  }

  private async sendEnding(h: KeptRun): Promise<void> {
    const conn = this.conn;
    const ending = h.ending;
    if (!conn || !ending) return;
    const sent = await sendArtifacts(conn, h.uuid, ending.artifacts);
    if (sent === false || conn.closed) return;
    conn.send({
      t: 'finished', uuid: h.uuid, result: ending.result, lastSeq: h.nextSeq - 1, stats: ending.stats,
      refusals: [...ending.refusals, ...sent.refusals], artifacts: sent.sent,
      ...(ending.sandbox ? { sandbox: ending.sandbox } : {}),
    });
  }

  private async forget(h: KeptRun, reason: string | undefined): Promise<void> {
    if (!this.held.has(h.uuid)) return;
    this.held.delete(h.uuid);
    if (reason) this.o.log.warn('dropping run', { run: h.uuid, reason });
    // a run still going is cancelled; its sandbox goes when the runner has returned
    if (!h.ending) {
      h.stop.abort(reason ?? 'forgotten');
      await h.settled;
    } else {
      await this.tearDown(h);
    }
    // the server freed the slot when it acked or refused the run: a status only says what changed
    this.sendStatus(true);
    this.checkDone();
  }

  private async tearDown(h: KeptRun): Promise<void> {
    try {
      await h.teardown?.();
    } catch (err) {
      this.o.log.error('cannot destroy sandbox', { run: h.uuid, error: errorMessage(err) });
    }
  }

  private checkDone(): void {
    if (this.held.size === 0 && this.draining) {
      this.stopped = true;
      this.conn?.close(this.o.once ? 'one job done' : 'drained');
      this.resolveDone?.();
    }
  }

  async checkDisk(): Promise<void> {
    if (!this.o.diskShort) return;
    const { short, freePercent } = await this.o.diskShort();
    const changed = short !== this.diskShort;
    this.diskShort = short;
    this.freePercent = freePercent;
    if (changed) this.sendStatus();
  }

  /** Tells the server how this worker stands; with onlyIfChanged, only when that differs from the last status sent. */
  private sendStatus(onlyIfChanged = false): void {
    const conn = this.conn;
    if (!conn) return;
    const freePercent = this.freePercent !== undefined ? Math.round(this.freePercent) : undefined;
    const key = `${this.draining} ${this.diskShort} ${freePercent}`;
    if (onlyIfChanged && conn === this.statusSent?.conn && key === this.statusSent.key) return;
    this.statusSent = { conn, key };
    conn.send({ t: 'status', draining: this.draining, diskShort: this.diskShort, sandbox: this.o.backend.name, ...(freePercent !== undefined ? { freePercent } : {}) });
  }
}
