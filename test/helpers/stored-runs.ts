// Finished runs made without a worker, for tests and benchmarks that need many (retention) or
// large (a 1 GiB artifact) stored results: the artifacts are written where the server streams
// them (incoming/UUID/artifacts/), then the result is written and recorded as the server does.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RunResult } from '../../src/protocol/messages.js';
import { incomingDir, writeResult, type ArtifactRow } from '../../src/results/index.js';
import type { Store } from '../../src/server/store/index.js';

export interface FakeRun {
  uuid?: string;
  job: string;
  platform?: string;
  finished: number;
  result?: RunResult;
  /** artifacts with their bytes, or files already written under incoming/UUID/artifacts (path only) */
  artifacts?: Array<{ path: string; data: Buffer } | { path: string; written: true }>;
  lines?: string[];
}

async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Stores one finished run in stateDir (results/JOB/UUID and its rows); returns its uuid and dir. */
export async function storeRun(store: Store, stateDir: string, run: FakeRun): Promise<{ uuid: string; dir: string }> {
  const uuid = run.uuid ?? randomUUID();
  const platform = run.platform ?? 'p';
  const result = run.result ?? { kind: 'exited', code: 0 };
  const started = run.finished - 1000;
  const artifacts: ArtifactRow[] = [];
  for (const a of run.artifacts ?? []) {
    const file = join(incomingDir(stateDir, uuid), 'artifacts', a.path);
    if ('data' in a) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, a.data);
    }
    artifacts.push({ path: a.path, mode: 0o644, ...(await sha256File(file)) });
  }
  const meta = {
    uuid, job: run.job, platform, worker: 'w', attempt: 1, started: new Date(started).toISOString(),
    finished: new Date(run.finished).toISOString(), result, stats: {}, refusals: [], artifacts,
  };
  const lines = (run.lines ?? ['built']).map((l, i) => ({ seq: i, ms: i * 10, data: Buffer.from(l) }));
  const dir = await writeResult(stateDir, meta, 'true\n', lines);
  store.tx(() => store.addFinishedRun(
    { uuid, job: run.job, platform, worker: 'w', script: 'true\n', attempt: 1, timeout_sec: 60, started },
    { uuid, finished: run.finished, result, stats: {}, refusals: [], dir, artifacts },
  ));
  return { uuid, dir };
}
