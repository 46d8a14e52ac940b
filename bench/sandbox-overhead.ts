// Per-job overhead of the docker and btrfs-ns sandboxes (prepare + describe + start `true` +
// collect + destroy, as the runner does) against the raw operations timed in the same run:
// `docker run --rm IMAGE true`, and a bare `btrfs subvolume snapshot` + `unshare ... chroot ...
// true` + `btrfs subvolume delete`. Medians over RUNS jobs after one warm-up each. Docker jobs
// alternate with the baseline one for one (at least 20 of each, the engine's timings vary a
// lot on a shared machine), and the ratio comes with the spread of the per-pair ratios; besides
// the `true` job, a job that leaves one file (so /work is copied out) and one run as --user (so
// /work is copied in) are timed the same way. A backend whose environment is missing is reported
// as {skipped: reason}. bench/run.ts imports this.
import { runAlone } from './run-alone.js';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { buildEnv } from '../src/worker/build-env.js';
import { btrfsNsBackend } from '../src/worker/sandbox/btrfs-ns.js';
import { dockerBackend } from '../src/worker/sandbox/docker.js';
import type { SandboxBackend } from '../src/worker/sandbox/types.js';

const RUNS = Number(process.env.BUILDER_BENCH_RUNS ?? 10);
const DOCKER_RUNS = Math.max(20, Number(process.env.BUILDER_BENCH_DOCKER_RUNS ?? 30));
const IMAGE = process.env.BUILDER_BENCH_IMAGE ?? 'builder-test-busybox';
const BTRFS = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';

const sh = (file: string, args: string[]): Promise<string> =>
  new Promise((res, rej) => execFile(file, args, (err, out, errText) => (err ? rej(new Error(errText || err.message)) : res(out))));

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number): number => Math.round(x * 10) / 10;

async function timeMs(f: () => Promise<unknown>): Promise<number[]> {
  await f(); // warm-up: caches, the first connection, the /dev template
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return out;
}

/** the quantile q (0..1) of xs, by linear interpolation */
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
};

/** Times a and b one after the other, n times each after one warm-up of each. */
async function alternate(n: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number[], number[]]> {
  await a();
  await b();
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const [f, out] of (i % 2 ? [[b, bs], [a, as]] : [[a, as], [b, bs]]) as [() => Promise<unknown>, number[]][]) {
      const t = performance.now();
      await f();
      out.push(performance.now() - t);
    }
  }
  return [as, bs];
}

async function oneJob(backend: SandboxBackend, script = 'true\n'): Promise<void> {
  const uuid = randomUUID();
  const sb = await backend.prepare({ uuid, name: 'bench', platform: 'bench', script, env: buildEnv({ uuid, name: 'bench', platform: 'bench' }) });
  try {
    await sb.describe?.();
    const h = await sb.start(() => undefined);
    await h.done;
    await sb.collect();
  } finally {
    await sb.destroy();
  }
}

function summary(ours: number[], raw: number[]) {
  return {
    runs: RUNS,
    backendMedianMs: round(median(ours)),
    rawMedianMs: round(median(raw)),
    ratio: Math.round((median(ours) / median(raw)) * 100) / 100,
  };
}

async function benchDocker(workDir: string): Promise<Record<string, unknown>> {
  try {
    await sh('docker', ['image', 'inspect', IMAGE]);
  } catch (err) {
    return { skipped: `no Docker engine or no image ${IMAGE}: ${(err as Error).message.trim().split('\n')[0]}` };
  }
  const ctx = { workerId: 'bench', workDir, log: () => undefined };
  const backend = dockerBackend.create({ image: IMAGE }, ctx);
  const asUser = dockerBackend.create({ image: IMAGE, user: '65534:65534' }, ctx);
  const raw = (): Promise<string> => sh('docker', ['run', '--rm', IMAGE, 'true']);
  const variant = async (job: () => Promise<void>) => {
    const [ours, base] = await alternate(DOCKER_RUNS, job, raw);
    const pairs = ours.map((o, i) => o / base[i]!);
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    return {
      runs: DOCKER_RUNS,
      backendMedianMs: round(median(ours)),
      rawMedianMs: round(median(base)),
      ratio: r2(median(ours) / median(base)),
      // the spread of ours/raw over the pairs timed one after the other
      pairRatio: { p10: r2(quantile(pairs, 0.1)), p25: r2(quantile(pairs, 0.25)), median: r2(median(pairs)), p75: r2(quantile(pairs, 0.75)), p90: r2(quantile(pairs, 0.9)) },
      backendIqrMs: [round(quantile(ours, 0.25)), round(quantile(ours, 0.75))],
      rawIqrMs: [round(quantile(base, 0.25)), round(quantile(base, 0.75))],
    };
  };
  return {
    ...(await variant(() => oneJob(backend))),
    aim: 'ratio <= 1.2',
    raw: `docker run --rm ${IMAGE} true`,
    oneArtifact: await variant(() => oneJob(backend, 'echo x > a\n')),
    user: await variant(() => oneJob(asUser)),
  };
}

async function benchBtrfs(workDir: string): Promise<Record<string, unknown>> {
  const base = join(BTRFS, 'base@clean');
  try {
    if (process.getuid?.() !== 0) throw new Error('needs root');
    await sh('btrfs', ['property', 'get', '-ts', base, 'ro']);
  } catch (err) {
    return { skipped: `no btrfs base at ${base}: ${(err as Error).message.trim().split('\n')[0]}` };
  }
  const backend = btrfsNsBackend.create({ 'btrfs-base': base }, { workerId: 'bench', workDir, log: () => undefined });
  const ours = await timeMs(() => oneJob(backend));
  const raw = await timeMs(async () => {
    const snap = join(BTRFS, `bench-raw-${randomUUID()}`);
    await sh('btrfs', ['-q', 'subvolume', 'snapshot', base, snap]);
    try {
      await sh('unshare', [
        '--mount', '--pid', '--ipc', '--uts', '--net', '--fork', `--mount-proc=${snap}/proc`,
        'chroot', '--userspec=65534:65534', snap, '/bin/true',
      ]);
    } finally {
      await sh('btrfs', ['-q', 'subvolume', 'delete', snap]);
    }
  });
  return {
    ...summary(ours, raw),
    aim: 'ratio <= 2 and backendMedianMs < 50',
    raw: 'btrfs subvolume snapshot + unshare --mount --pid --ipc --uts --net --fork chroot true + btrfs subvolume delete',
  };
}

export async function benchSandboxes(): Promise<Record<string, unknown>> {
  const workDir = await mkdtemp(join(tmpdir(), 'builder-bench-'));
  try {
    return { docker: await benchDocker(workDir), 'btrfs-ns': await benchBtrfs(workDir) };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

// run alone: node dist/bench/sandbox-overhead.js
runAlone(import.meta.url, benchSandboxes);
