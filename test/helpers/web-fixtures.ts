// A big history for the web view's tests and bench, written straight into a store: many jobs,
// many finished runs of one job (with artifacts and verdicts), and a result directory with a
// console of any length, in the stored format (src/results/).
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { consoleFileLine, resultDir } from '../../src/results/index.js';
import type { Store } from '../../src/server/store/index.js';

export const HISTORY_T0 = Date.parse('2026-01-01T00:00:00Z');

/** `jobs` script jobs named job-00000...; `runs` finished runs of the first one, 1 s apart. */
export function fillHistory(store: Store, opts: { jobs: number; runs: number; platform?: string }): { busyJob: string; uuids: string[] } {
  const platform = opts.platform ?? 'p';
  const name = (i: number): string => `job-${String(i).padStart(5, '0')}`;
  const uuids: string[] = [];
  store.tx(() => {
    store.addPlatform(platform);
    for (let i = 0; i < opts.jobs; i++) {
      store.insertJob({
        name: name(i), kind: 'script', platform, script: 'echo hi', package: null, period: 'daily', cron: null, tz: null,
        timeout_sec: 3600, next_run: HISTORY_T0 + 86_400_000, created: HISTORY_T0,
      });
      if (i % 10 === 0) store.enqueue(platform, name(i));
    }
    for (let r = 0; r < opts.runs; r++) {
      const uuid = randomUUID();
      uuids.push(uuid);
      const started = HISTORY_T0 + r * 1000;
      store.addFinishedRun(
        { uuid, job: name(0), platform, worker: 'w1', script: 'echo hi', attempt: 1, timeout_sec: 3600, started },
        {
          uuid, finished: started + 500, result: r % 7 === 3 ? { kind: 'exited', code: 1 } : { kind: 'exited', code: 0 },
          stats: { peakMemoryBytes: 1 << 20, cpuMs: 100 }, refusals: [], dir: null,
          artifacts: [{ path: 'out/a.tar.gz', size: 1000 + r, mode: 0o644, sha256: 'ab'.repeat(32) }],
        },
      );
      if (r > 0 && r % 7 !== 3) {
        store.addComparison({ uuid, job: name(0), platform }, uuids[r - 1]!, r % 5 === 0 ? { verdict: 'differs', changed: ['out/a.tar.gz'], added: [], removed: [] } : { verdict: 'reproduced' }, started + 500);
      }
    }
  });
  return { busyJob: name(0), uuids };
}

/**
 * A finished run of `job` whose result directory holds a console of `lines` lines (each `width`
 * bytes: "line N" padded with dots), a run.json and the given artifacts.
 */
export async function storedRun(store: Store, stateDir: string, job: string, opts: { lines: number; width?: number; artifacts?: Record<string, Buffer>; extraLines?: string[] }): Promise<{ uuid: string; dir: string }> {
  const uuid = randomUUID();
  const dir = resultDir(stateDir, job, uuid);
  mkdirSync(join(dir, 'artifacts'), { recursive: true });
  const out = createWriteStream(join(dir, 'console'));
  const width = opts.width ?? 20;
  for (let i = 0; i < opts.lines; i++) {
    const text = `line ${i + 1} `.padEnd(width, '.');
    if (!out.write(consoleFileLine(i, Buffer.from(text)))) await once(out, 'drain');
  }
  for (const [i, text] of (opts.extraLines ?? []).entries()) out.write(consoleFileLine(opts.lines + i, Buffer.from(text)));
  out.end();
  await once(out, 'close');
  const artifacts = Object.entries(opts.artifacts ?? {}).map(([path, body]) => {
    mkdirSync(join(dir, 'artifacts', path, '..'), { recursive: true });
    writeFileSync(join(dir, 'artifacts', path), body);
    return { path, size: body.length, mode: 0o644, sha256: sha256(body) };
  });
  const started = HISTORY_T0;
  const meta = {
    uuid, job, platform: 'p', worker: 'w1', attempt: 1, started: new Date(started).toISOString(), finished: new Date(started + 1000).toISOString(),
    result: { kind: 'exited', code: 0 }, stats: {}, refusals: [], artifacts,
  };
  writeFileSync(join(dir, 'run.json'), JSON.stringify(meta));
  store.tx(() => store.addFinishedRun(
    { uuid, job, platform: 'p', worker: 'w1', script: 'echo hi', attempt: 1, timeout_sec: 3600, started },
    { uuid, finished: started + 1000, result: { kind: 'exited', code: 0 }, stats: {}, refusals: [], dir, artifacts },
  ));
  return { uuid, dir };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
