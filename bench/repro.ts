// What tracking a run costs the server (issue 8, "Figures"): completing a run with 50 artifacts of
// 1 MiB, with signed provenance and the reproducibility comparison on and off; the aim is under
// 5 ms more per run. Every sample is a run of the same job, so each "on" run is compared with the
// one before (a `reproduced` verdict: the same 50 artifacts).
//   node dist/bench/repro.js    prints {completeOffMs, completeOnMs, overheadMs, ratio, signMs, ...}
// In-process, against the real run ledger: a coordinator with a SQLite file store in a temporary
// state directory and a worker that is a plain port. Each sample streams the artifacts in
// (untimed: the same with and without provenance, and hashed on arrival either way), then times
// the worker's `finished` until it is stored: console, script, run.json, provenance.json, the
// rename into results/, the database transaction and the run:finished listeners, i.e. all a
// reproducibility comparison hooked on completion or on run:finished would add too. On and off
// samples alternate, so drift of the machine (two cores shared) hits both alike.
// BUILDER_BENCH_REPRO_RUNS sets the samples per variant (default 25, at least 20 for the figure).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../src/common/log.js';
import { PROVENANCE_FILE, resultDir, type ArtifactRow, type RunMeta } from '../src/results/index.js';
import { attesterFor, type Attester } from '../src/server/attest.js';
import type { ServerConfig } from '../src/server/config.js';
import { Coordinator } from '../src/server/coordinator.js';
import { ServerEvents } from '../src/server/events.js';
import { ReproTracker } from '../src/server/repro/tracker.js';
import { openStore, type Store } from '../src/server/store/index.js';
import type { WorkerSession } from '../src/server/worker-session.js';
import { fakePort, type FakePort } from '../test/helpers/coordinator-rig.js';

const ARTIFACTS = 50;
const ARTIFACT_BYTES = 1024 * 1024;
const CHUNK = 1024 * 1024; // what a worker sends per chunk frame (src/worker/send-artifacts.ts)
const WARMUP = 3;
const RUNS = Math.max(1, Number(process.env.BUILDER_BENCH_REPRO_RUNS) || 25);
const AIM_OVERHEAD_MS = 5;

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const progress = (msg: string): void => void process.stderr.write(`[bench repro] ${msg}\n`);
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One server's run ledger with tracking on or off, and a worker of platform p connected to it. */
class Variant {
  readonly dir = mkdtempSync(join(tmpdir(), 'builder-bench-repro-'));
  readonly store: Store;
  readonly coordinator: Coordinator;
  readonly worker: WorkerSession & { port: FakePort };
  readonly tracker: ReproTracker | undefined;
  private readonly job = 'bench';
  private compared = 0;

  constructor(readonly attester: Attester | undefined) {
    const config: ServerConfig = Object.freeze({
      stateDir: this.dir, configDir: join(this.dir, 'config'), host: '127.0.0.1', port: 0, tokenFile: undefined,
      upload: undefined, uploadBackoffMs: 1000, maxFrame: 16 << 20, leaseMs: 30_000, timeoutSec: 3600,
      maxAttempts: 3, retryBackoffMs: 10_000, provenance: attester !== undefined,
    });
    this.store = openStore(join(this.dir, 'state.db'));
    const events = new ServerEvents(quiet);
    // tracking subscribes before the coordinator, as in the server's start-up
    this.tracker = attester ? new ReproTracker({ store: this.store, events, log: quiet, diffoscope: false }) : undefined;
    this.coordinator = new Coordinator(this.store, config, quiet, { attester, events });
    this.store.tx(() => {
      this.store.insertJob({
        name: this.job, kind: 'script', platform: 'p', script: 'make all\n', package: null, period: 'never', cron: null, tz: null,
        timeout_sec: 3600, next_run: null, created: Date.now(),
      });
      this.store.addPlatform('p');
    });
    this.worker = {
      port: fakePort(), peer: 'bench', name: 'bench-worker', platform: 'p', capacity: 1, runs: new Set(), storing: new Set(), draining: false,
      diskShort: false, freePercent: undefined, sandbox: 'process', since: Date.now(),
    };
    this.coordinator.workerJoined(this.worker, []);
  }

  /** Starts a run of a fresh job and streams its artifacts in; returns its uuid. */
  async runWithArtifacts(data: Buffer, sha256: string): Promise<string> {
    const name = this.job;
    this.store.tx(() => this.store.enqueue('p', name));
    this.coordinator.dispatch('p');
    const job = this.worker.port.sent.filter((m) => m.t === 'job').pop();
    if (job?.t !== 'job' || job.name !== name) throw new Error(`the worker was not sent ${name}`);
    const w = this.worker;
    const uuid = job.uuid;
    this.coordinator.output(w, { t: 'output', uuid, seq: 0, lines: [[1, Buffer.from('building')], [2, Buffer.from('done')]] });
    for (let i = 0; i < ARTIFACTS; i++) {
      this.coordinator.artifactStart(w, { t: 'artifact', uuid, path: `out/artifact-${String(i).padStart(2, '0')}.bin`, size: data.length, mode: 0o644 });
      for (let at = 0; at < data.length; at += CHUNK) await this.coordinator.artifactChunk(w, { t: 'chunk', uuid, data: data.subarray(at, at + CHUNK) });
      await this.coordinator.artifactEnd(w, { t: 'artifact-end', uuid, sha256 });
    }
    return uuid;
  }

  /** The timed part: the worker's `finished` until the result is stored and announced. */
  async finish(uuid: string): Promise<number> {
    const t0 = process.hrtime.bigint();
    await this.coordinator.finished(this.worker, {
      t: 'finished', uuid, result: { kind: 'exited', code: 0 }, lastSeq: 1, stats: { peakMemoryBytes: 1 << 20, cpuMs: 5 },
      refusals: [], artifacts: ARTIFACTS, sandbox: { kind: 'process' },
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!this.store.storedRun(uuid)) throw new Error(`run ${uuid} was not stored with its files`);
    if ((this.attester !== undefined) !== existsSync(join(resultDir(this.dir, this.job, uuid), PROVENANCE_FILE))) {
      throw new Error(`run ${uuid}: provenance.json ${this.attester ? 'missing' : 'written with provenance off'}`);
    }
    if (this.tracker && this.compared++ > 0 && this.store.comparison(uuid)?.verdict !== 'reproduced') {
      throw new Error(`run ${uuid} was not compared as reproduced with the one before`);
    }
    // results are removed between samples, untimed, so 50 MiB per sample does not fill the disk
    await rm(join(this.dir, 'results'), { recursive: true, force: true });
    return ms;
  }

  close(): void {
    this.tracker?.stop();
    this.coordinator.stop();
    this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The signing step alone, as the ledger runs it for such a run: statement, DSSE, Ed25519. */
function signOnly(attester: Attester, sha256: string): number {
  const artifacts: ArtifactRow[] = Array.from({ length: ARTIFACTS }, (_, i) => ({
    path: `out/artifact-${String(i).padStart(2, '0')}.bin`, size: ARTIFACT_BYTES, mode: 0o644, sha256,
  }));
  const meta: RunMeta = {
    uuid: '0b6c2a4e-8f3d-4c1a-9e7b-5d2f1a3c4b6d', job: 'bench', platform: 'p', worker: 'bench-worker', attempt: 1,
    started: new Date().toISOString(), finished: new Date().toISOString(), result: { kind: 'exited', code: 0 },
    stats: {}, refusals: [], artifacts, sandbox: { kind: 'process' },
  };
  const samples: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = process.hrtime.bigint();
    JSON.stringify(attester.envelope(meta, 'make all\n', { sourceDateEpoch: 1_700_000_000 }), null, 2);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(samples.slice(20));
}

export async function benchRepro(): Promise<Record<string, unknown>> {
  const keyDir = mkdtempSync(join(tmpdir(), 'builder-bench-key-'));
  const on = new Variant(attesterFor(keyDir, 'urn:builder:server:bench'));
  const off = new Variant(undefined);
  try {
    const data = Buffer.alloc(ARTIFACT_BYTES);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const times = { on: [] as number[], off: [] as number[] };
    for (let i = 0; i < WARMUP + RUNS; i++) {
      // alternate which goes first, so neither always follows the other's disk writes
      const order: Array<['on' | 'off', Variant]> = i % 2 ? [['off', off], ['on', on]] : [['on', on], ['off', off]];
      for (const [label, v] of order) {
        const uuid = await v.runWithArtifacts(data, sha256);
        const ms = await v.finish(uuid);
        if (i >= WARMUP) times[label].push(ms);
      }
      if ((i + 1) % 5 === 0) progress(`${i + 1}/${WARMUP + RUNS} runs per variant`);
    }
    const completeOnMs = median(times.on);
    const completeOffMs = median(times.off);
    const overheadMs = completeOnMs - completeOffMs;
    const signMs = signOnly(on.attester!, sha256);
    return {
      artifacts: ARTIFACTS,
      artifactBytes: ARTIFACT_BYTES,
      runsPerVariant: RUNS,
      /** median time from the worker's finished to the stored, announced result */
      completeOffMs: round(completeOffMs),
      completeOnMs: round(completeOnMs),
      /** what provenance (and tracking hooked on completion) adds per run: on minus off, medians */
      overheadMs: round(overheadMs),
      ratio: round(completeOnMs / completeOffMs),
      /** the statement built, signed and serialized, without any disk write */
      signMs: round(signMs),
      aimOverheadMs: AIM_OVERHEAD_MS,
      meetsAim: overheadMs < AIM_OVERHEAD_MS,
    };
  } finally {
    on.close();
    off.close();
    rmSync(keyDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  void benchRepro().then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
}
