// The ceiling of one server (issue 11): one real builder-server on this machine, driven at
// several sizes. Each figure comes with its baseline from the same run (the smallest size, or
// the same server idle), so that a slower or busier machine shows in both.
//   jobs      N scheduled jobs (all queued, as new jobs are): server start-up (spawn to the first
//             answered request), `schedule` latency one at a time, database size
//   due       N jobs falling due at the same moment (period daily, and cron "0 3 * * *"): time to
//             queue them all, the longest event-loop stall meanwhile (the server's own monitor,
//             BUILDER_STALL_LOG=1) and the slowest answer to a probe client asking every 20 ms
//   workers   N simulated workers (child processes of many real worker connections that answer
//             every job at once, bench/scale-workers.ts): server RSS, queued -> received latency
//             (execute sent -> job received, paced below capacity, and under saturation), jobs/s
//   history   N finished runs in the database: the lookups of `history`, info, the web view's
//             pages (front page first and last, a job's newest, middle and oldest runs, /metrics)
//             and the last result of a job, in-process (the store's statements) and as a client
//             sees them (protocol and HTTP round trips); server start-up with the web view, against
//             the same schedule without the runs
//   console   a console at a worker's default cap (64 MiB) from a real worker: lines/s, last line to
//             stored result, the longest stall while it streams and while it is stored and swept
//   slow      consumers that do not read: an observer of a chatty run, an SSE reader of it, a
//             worker with a paused socket; server RSS over time, and another client's schedule
//             latency with them against the same chatty run without them (what the slow consumers
//             cost others) and against the quiet server (what the chatty run itself costs)
// Sizes: BUILDER_BENCH_SCALE_JOBS (default 10000,50000,100000), _DUE (2500,5000,10000),
// _WORKERS (500,1000,2000), _RUNS (100000,1000000); comma-separated.
import { runAlone } from './run-alone.js';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { errorMessage } from '../src/common/errors.js';
import { ClientSession, type RequestBody } from '../src/client/session.js';
import { dial } from '../src/protocol/dial.js';
import { openStore } from '../src/server/store/index.js';
import { Harness, type ServerHandle } from '../test/helpers/processes.js';
import { HOT_JOB, jobName, runUuid, seedJobs, seedRuns } from './scale-fixtures.js';
import { memoryGivenBack } from './server-log.js';

export const SCALE_PARTS = ['jobs', 'due', 'workers', 'history', 'slow', 'console'] as const;
export type ScalePart = (typeof SCALE_PARTS)[number];

const sizes = (name: string, dflt: number[]): number[] => {
  const v = process.env[name];
  if (!v) return dflt;
  const xs = v.split(',').map(Number).filter((x) => Number.isInteger(x) && x > 0);
  return xs.length ? xs : dflt;
};
const JOB_SIZES = sizes('BUILDER_BENCH_SCALE_JOBS', [10_000, 50_000, 100_000]);
const DUE_SIZES = sizes('BUILDER_BENCH_SCALE_DUE', [2_500, 5_000, 10_000]);
const WORKER_SIZES = sizes('BUILDER_BENCH_SCALE_WORKERS', [500, 1_000, 2_000]);
const RUN_SIZES = sizes('BUILDER_BENCH_SCALE_RUNS', [100_000, 1_000_000]);

const AIM = { scheduleMs: 2, startupMs: 1000, stallMs: 50, rssMb: 300, dispatchP99Ms: 10, lookupMs: 5, webPageMs: 50 };

const progress = (msg: string): void => void process.stderr.write(`[bench scale] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
const wall = (): number => performance.timeOrigin + performance.now();
const here = dirname(fileURLToPath(import.meta.url));

function stats(xs: number[]): { p50: number; p99: number; min: number; max: number; samples: number } {
  if (xs.length === 0) return { p50: NaN, p99: NaN, min: NaN, max: NaN, samples: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => round(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
  return { p50: at(0.5), p99: at(0.99), min: round(s[0]!), max: round(s[s.length - 1]!), samples: s.length };
}

function rssMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: round(kb('VmRSS') / 1024, 1), hwm: round(kb('VmHWM') / 1024, 1) };
}

let clk: number | undefined;
function cpuSeconds(pid: number): number {
  clk ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clk;
}

const dbBytes = (dir: string): number =>
  ['state.db', 'state.db-wal'].map((f) => join(dir, f)).filter(existsSync).reduce((n, f) => n + statSync(f).size, 0);

/** Runs fn with a harness of its own, always cleaned up. */
async function withHarness<T>(fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = new Harness('builder-bench-scale-');
  try {
    return await fn(h);
  } finally {
    await h.cleanup();
  }
}

/** Starts a server and times it: spawn -> its first answered request (a client's `workers`). */
async function timedStart(h: Harness, dir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ server: ServerHandle; session: ClientSession; startupMs: number; listenMs: number }> {
  const t0 = performance.now();
  const server = await h.server({ dir, args, env: { BUILDER_STALL_LOG: '1', ...env } });
  const listenMs = performance.now() - t0;
  const session = await ClientSession.open('127.0.0.1', server.port, h.token(server));
  await session.request({ op: 'workers' });
  return { server, session, startupMs: round(performance.now() - t0, 1), listenMs: round(listenMs, 1) };
}

/** One request at a time, `n` times: latencies in ms. */
async function timeRequests(session: ClientSession, n: number, body: (i: number) => RequestBody): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await session.request(body(i));
    out.push(performance.now() - t);
  }
  return out;
}

/** `node -e 0` on this machine now: the floor under any start-up time. */
function nodeStartMs(): number {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    execFileSync(process.execPath, ['-e', '0']);
    xs.push(performance.now() - t);
  }
  return stats(xs).p50;
}

/** The server's event-loop lines (stall-monitor.ts) from now on, with the bench's time of arrival. */
function stallLog(server: ServerHandle): { since(t: number): number[]; between(from: number, to: number): number[]; stop(): void } {
  const seen: Array<[number, number]> = [];
  let carry = '';
  const on = (chunk: Buffer): void => {
    const lines = (carry + chunk.toString('utf8')).split('\n');
    carry = lines.pop() ?? '';
    for (const l of lines) {
      const m = / info: event loop maxMs=([\d.]+)/.exec(l);
      if (m) seen.push([wall(), Number(m[1])]);
    }
  };
  server.proc.child.stderr!.on('data', on);
  return {
    since: (t) => seen.filter(([at]) => at >= t).map(([, ms]) => ms),
    between: (from, to) => seen.filter(([at]) => at >= from && at < to).map(([, ms]) => ms),
    stop: () => void server.proc.child.stderr!.off('data', on),
  };
}

/** Asks `workers` every `everyMs` until stopped; the answers' latencies. */
function probe(session: ClientSession, everyMs = 20): { stop(): Promise<number[]> } {
  const xs: number[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      const t = performance.now();
      await session.request({ op: 'workers' });
      xs.push(performance.now() - t);
      await sleep(everyMs);
    }
  })();
  return { stop: async () => { on = false; await loop; return xs; } };
}

// ---- 1. a big schedule ----

async function benchJobs(): Promise<Record<string, unknown>> {
  const nodeMs = nodeStartMs();
  const rows: Array<Record<string, unknown>> = [];
  for (const n of [0, ...JOB_SIZES]) {
    rows.push(await withHarness(async (h) => {
      const dir = h.path('state');
      progress(`jobs: seeding ${n} jobs`);
      seedJobs(dir, { count: n, platform: 'noworker', nextRun: Date.now() + 86_400_000, queued: true });
      const startups: number[] = [];
      let last: Awaited<ReturnType<typeof timedStart>> | undefined;
      // three starts, the server stopped in between: the page cache is warm after the first
      for (let i = 0; i < 3; i++) {
        last = await timedStart(h, dir);
        startups.push(last.startupMs);
        if (i < 2) {
          last.session.close();
          last.server.proc.kill('SIGTERM');
          await last.server.proc.exited;
        }
      }
      const { server, session } = last!;
      const cpu0 = cpuSeconds(server.proc.pid);
      const schedule = await timeRequests(session, 200, (i) => ({ op: 'schedule', name: `probe-${i}`, platform: 'noworker', script: 'true\n' }));
      const cpuMs = ((cpuSeconds(server.proc.pid) - cpu0) * 1000) / 200;
      const execute = await timeRequests(session, 50, (i) => ({ op: 'execute', name: `probe-${i}` }));
      const rss = rssMb(server.proc.pid);
      session.close();
      const s = stats(schedule);
      return {
        jobs: n, queued: n,
        startupMs: stats(startups), scheduleMs: s, scheduleServerCpuMs: round(cpuMs), executeMs: stats(execute),
        dbMb: round(dbBytes(dir) / 2 ** 20, 1), serverRssMb: rss.rss,
        meetsAim: { schedule: s.p50 < AIM.scheduleMs, startup: Math.min(...startups) < AIM.startupMs },
      };
    }));
    progress(`jobs: ${JSON.stringify(rows.at(-1))}`);
  }
  return {
    sizes: rows, nodeStartMs: nodeMs, baseline: 'the row with 0 jobs (same run)',
    aims: { scheduleP50Ms: AIM.scheduleMs, startupMs: AIM.startupMs },
    how: 'jobs seeded through the store (untimed), every one queued on a platform without workers; start-up = spawn of builder-server ' +
      'to the answer of its first request over a new client connection (3 starts, warm cache after the first); then 200 schedule ' +
      'requests one at a time (each a new daily job, queued at once: one transaction, fsynced) and 50 execute',
  };
}

// ---- 2. a wave of due jobs ----

async function dueWave(n: number, timing: { period?: 'daily'; cron?: string }): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const dir = h.path('state');
    // due a little after the server is up and settled
    const dueAt = Date.now() + 8_000;
    seedJobs(dir, { count: n, platform: 'noworker', nextRun: dueAt, ...timing });
    const { server, session } = await timedStart(h, dir);
    const stalls = stallLog(server);
    const quietFrom = wall();
    const p = probe(session);
    await sleep(Math.max(0, dueAt - Date.now() - 2_500));
    const idleStalls = stalls.since(quietFrom);
    const waveFrom = wall();
    const wave = await server.proc.waitFor(/queued a wave of due jobs jobs=(\d+) batches=(\d+) ms=(\d+)/, 120_000);
    const doneAt = wall();
    await sleep(1_000);
    const latencies = await p.stop();
    const waveStalls = stalls.since(waveFrom);
    stalls.stop();
    const queuedMs = Number(wave[3]);
    const info = (await session.request({ op: 'info' })).data as { queues: Record<string, string[]> };
    session.close();
    const queued = info.queues.noworker?.length ?? 0;
    if (queued !== n) throw new Error(`due wave of ${n}: ${queued} jobs queued`);
    const maxStall = Math.max(...waveStalls);
    return {
      jobs: n, timing: timing.cron ? `cron ${timing.cron}` : 'period daily',
      queueAllMs: queuedMs, fromDueToAllQueuedMs: round(doneAt - dueAt, 0), batches: Number(wave[2]),
      maxStallMs: maxStall, idleMaxStallMs: Math.max(...idleStalls),
      probeMaxMs: round(Math.max(...latencies), 1), probeP50Ms: stats(latencies).p50,
      meetsAim: maxStall <= AIM.stallMs,
    };
  });
}

async function benchDue(): Promise<Record<string, unknown>> {
  const rows: Array<Record<string, unknown>> = [];
  for (const n of DUE_SIZES) {
    rows.push(await dueWave(n, { period: 'daily' }));
    progress(`due: ${JSON.stringify(rows.at(-1))}`);
  }
  const biggest = DUE_SIZES[DUE_SIZES.length - 1]!;
  rows.push(await dueWave(biggest, { cron: '0 3 * * *' }));
  progress(`due: ${JSON.stringify(rows.at(-1))}`);
  return {
    sizes: rows, aimMaxStallMs: AIM.stallMs, baseline: 'idleMaxStallMs: the same server\'s longest stall in the 2 s before the wave',
    how: 'N jobs seeded due at one moment 8 s ahead (untimed); the server queues them (its log line "queued a wave of due jobs" gives ' +
      'jobs, batches and ms from the first batch to the last); stalls from the server\'s event-loop monitor (BUILDER_STALL_LOG=1, max per ' +
      '250 ms), and a probe client asking `workers` every 20 ms',
  };
}

// ---- 3. many workers ----

interface Fleet {
  children: ChildProcess[];
  report(): Promise<{ received: Array<[string, number]>; acks: number; errors: string[]; errorCount: number }>;
  stop(): Promise<void>;
}

/** Forks `procs` children holding `n` worker connections between them. */
async function fleet(server: ServerHandle, token: string, n: number, opts: { procs?: number; platform: string; chatty?: string; chattyMs?: number; paused?: boolean; prefix?: string }): Promise<Fleet> {
  const procs = Math.min(n, opts.procs ?? Math.max(1, Math.ceil(n / 500)));
  const children: ChildProcess[] = [];
  const connected: Array<Promise<unknown>> = [];
  for (let c = 0; c < procs; c++) {
    const names = Array.from({ length: n }, (_, i) => i).filter((i) => i % procs === c).map((i) => `${opts.prefix ?? 'sim'}-${i}`);
    const child = fork(join(here, 'scale-workers.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    connected.push(new Promise((resolve, reject) => {
      child.on('message', (m: { t: string; error?: string }) => {
        if (m.t === 'connected') resolve(m);
        if (m.t === 'failed') reject(new Error(`simulated workers: ${m.error}`));
      });
      child.once('exit', (code) => reject(new Error(`simulated workers exited (${code})`)));
    }));
    child.send({
      t: 'start', host: '127.0.0.1', port: server.port, token, platform: opts.platform, names, capacity: 1,
      chatty: opts.chatty, chattyMs: opts.chattyMs, paused: opts.paused,
    });
  }
  await Promise.all(connected);
  const ask = (child: ChildProcess): Promise<{ received: Array<[string, number]>; acks: number; errors: string[]; errorCount: number }> =>
    new Promise((resolve) => {
      const on = (m: { t: string }): void => {
        if (m.t !== 'report') return;
        child.off('message', on);
        resolve(m as never);
      };
      child.on('message', on);
      child.send({ t: 'report' });
    });
  return {
    children,
    async report() {
      const rs = await Promise.all(children.map(ask));
      return {
        received: rs.flatMap((r) => r.received), acks: rs.reduce((a, r) => a + r.acks, 0),
        errors: rs.flatMap((r) => r.errors).slice(0, 5), errorCount: rs.reduce((a, r) => a + r.errorCount, 0),
      };
    },
    async stop() {
      for (const c of children) if (c.connected) c.send({ t: 'stop' });
      await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
    },
  };
}

async function workersAt(n: number): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const dir = h.path('state');
    const paced = 400;
    const blast = Math.max(2_000, 2 * n);
    seedJobs(dir, { count: paced + blast, platform: 'sim', nextRun: null, period: 'never' });
    const { server, session } = await timedStart(h, dir, [], { BUILDER_LOG_LEVEL: 'info' });
    const token = h.token(server);
    const before = rssMb(server.proc.pid);
    const t0 = performance.now();
    const f = await fleet(server, token, n, { platform: 'sim' });
    const connectS = (performance.now() - t0) / 1000;
    let sampler: NodeJS.Timeout | undefined;
    try {
      const listed = ((await session.request({ op: 'workers' })).data as unknown[]).length;
      await sleep(5_000); // heartbeats in both directions
      const idle = rssMb(server.proc.pid);
      const stalls = stallLog(server);

      // finished runs counted from the server's log, as core:jobsPerSecond does
      let finished = 0;
      let carry = '';
      const onLog = (chunk: Buffer): void => {
        const lines = (carry + chunk.toString('utf8')).split('\n');
        carry = lines.pop() ?? '';
        for (const l of lines) if (l.includes(' info: run finished ')) finished++;
      };
      server.proc.child.stderr!.on('data', onLog);

      // paced: one execute every 20 ms (50/s), far below what the server can do, so nothing waits in a queue
      const sent = new Map<string, number>();
      const pacedFrom = wall();
      for (let i = 0; i < paced; i++) {
        const name = jobName(i);
        sent.set(name, wall());
        void session.request({ op: 'execute', name });
        await sleep(20);
      }
      while (finished < paced) await sleep(50);
      const pacedStalls = stalls.since(pacedFrom);

      // saturation: every other job at once, pipelined
      let peak = rssMb(server.proc.pid).rss;
      sampler = setInterval(() => {
        if (server.proc.running) peak = Math.max(peak, rssMb(server.proc.pid).rss);
      }, 100);
      const cpu0 = cpuSeconds(server.proc.pid);
      const blastFrom = wall();
      const tb = performance.now();
      const inFlight = new Set<Promise<unknown>>();
      for (let i = paced; i < paced + blast; i++) {
        const name = jobName(i);
        sent.set(name, wall());
        const p: Promise<unknown> = session.request({ op: 'execute', name }).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 200) await Promise.race(inFlight);
      }
      const deadline = Date.now() + 600_000;
      while (finished < paced + blast) {
        if (Date.now() > deadline) throw new Error(`only ${finished} of ${paced + blast} runs finished`);
        if (!server.proc.running) throw new Error(`the server exited: ${server.proc.stderr.slice(-500)}`);
        await sleep(20);
      }
      const seconds = (performance.now() - tb) / 1000;
      const cpu = cpuSeconds(server.proc.pid) - cpu0;
      clearInterval(sampler);
      server.proc.child.stderr!.off('data', onLog);
      const blastStalls = stalls.since(blastFrom);
      stalls.stop();
      const r = await f.report();
      const lat = (from: number, to: number): number[] =>
        r.received.filter(([job]) => { const i = Number(job.slice(4)); return i >= from && i < to; })
          .map(([job, at]) => at - sent.get(job)!);
      const pacedLat = stats(lat(0, paced));
      return {
        workers: n, listed, childProcesses: f.children.length, connectSeconds: round(connectS, 1),
        serverRssMb: { beforeWorkers: before.rss, idleWithWorkers: idle.rss, peakUnderLoad: round(peak, 1), perWorkerKb: round(((idle.rss - before.rss) * 1024) / n, 1) },
        queuedToReceivedMs: { paced: pacedLat, saturated: stats(lat(paced, paced + blast)) },
        jobsPerSecond: round(blast / seconds, 1), blastJobs: blast, serverCpuMsPerJob: round((cpu * 1000) / blast, 2),
        maxStallMs: { paced: Math.max(0, ...pacedStalls), saturated: Math.max(0, ...blastStalls) },
        // the server's compacting collections when it went quiet (after the workers connected, ...)
        memoryGivenBack: memoryGivenBack(server.proc.stderr),
        workerErrors: r.errorCount, ...(r.errorCount ? { workerErrorExamples: r.errors } : {}),
        meetsAim: { rss: idle.rss < AIM.rssMb && peak < AIM.rssMb, dispatchP99: pacedLat.p99 < AIM.dispatchP99Ms },
      };
    } finally {
      clearInterval(sampler);
      session.close();
      await f.stop();
    }
  });
}

async function benchWorkers(): Promise<Record<string, unknown>> {
  const rows: Array<Record<string, unknown>> = [];
  for (const n of WORKER_SIZES) {
    rows.push(await workersAt(n));
    progress(`workers: ${JSON.stringify(rows.at(-1))}`);
  }
  let fdLimit = 'unknown';
  try {
    fdLimit = execFileSync('sh', ['-c', 'ulimit -n; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n').join(' soft, ') + ' hard';
  } catch { /* not a shell we can ask */ }
  return {
    sizes: rows, fdLimit, aims: { rssMb: AIM.rssMb, queuedToReceivedP99Ms: AIM.dispatchP99Ms },
    baseline: 'serverRssMb.beforeWorkers (same server, no workers); queuedToReceivedMs.paced is the unloaded figure, .saturated the same path with a full queue',
    how: 'N worker connections (capacity 1, hello+auth with the token) from child processes of 500 each; each answers a job at once ' +
      'with one console line and finished. Paced: 400 executes 20 ms apart, latency = execute sent (bench) -> job received (simulated ' +
      'worker), same machine clock. Saturated: max(2000, 2N) executes pipelined (200 in flight); jobs/s to the last "run finished"',
  };
}

// ---- 4. a big history ----

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    }).on('error', reject).end();
  });
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(new Error(`${url}: status ${res.statusCode}, not JSON: ${errorMessage(err)}`));
        }
      });
    }).on('error', reject).end();
  });
}

/** `n` starts of a server with its web view on `dir`, each stopped after its first answer: ms */
async function startups(h: Harness, dir: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = await timedStart(h, dir, ['--http', '127.0.0.1:0']);
    await s.server.proc.waitFor(/web view listening/);
    out.push(s.startupMs);
    s.session.close();
    s.server.proc.kill('SIGTERM');
    await s.server.proc.exited;
  }
  return out;
}

async function historyAt(runs: number): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const dir = h.path('state');
    const jobs = 10_000;
    const t0 = performance.now();
    seedJobs(dir, { count: jobs, platform: 'hist', nextRun: Date.now() + 86_400_000 });
    // the baseline of the start-up below: the same schedule and web view, no history yet
    const noHistoryStartups = await startups(h, dir, 3);
    seedRuns(dir, { runs, jobs, hotShare: 0.1, platform: 'hist' });
    progress(`history: ${runs} runs seeded in ${round((performance.now() - t0) / 1000, 1)} s`);
    const typical = jobName(1234);
    const someUuid = runUuid(Math.floor(runs / 2) + 1);

    // in-process: the store's own statements on the same file
    const store = openStore(join(dir, 'state.db'));
    const hotRuns = store.views.jobRunCount(HOT_JOB);
    const hotMiddle = store.views.jobRunAt(HOT_JOB, Math.floor(hotRuns / 2))!;
    const timeIt = (fn: () => unknown, n = 50): ReturnType<typeof stats> => {
      for (let i = 0; i < 3; i++) fn();
      const xs: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        fn();
        xs.push(performance.now() - t);
      }
      return stats(xs);
    };
    const inProcess = {
      'history(job, 20)': timeIt(() => store.history(typical, 20)),
      'history(hot job, 20)': timeIt(() => store.history(HOT_JOB, 20)),
      'history(all, 20)': timeIt(() => store.history(undefined, 20)),
      'run(uuid)': timeIt(() => store.run(someUuid)),
      'comparison(uuid)': timeIt(() => store.comparison(someUuid)),
      'lastSuccess(job, platform)': timeIt(() => store.lastSuccess(typical, 'hist')),
      'lastSuccess(hot job, platform)': timeIt(() => store.lastSuccess(HOT_JOB, 'hist')),
      'jobState(job, platform)': timeIt(() => store.jobState(typical, 'hist')),
      'jobStates() (info: every job)': timeIt(() => store.jobStates(), 10),
      'views.jobs(50, 0) (front page: last run of each job)': timeIt(() => store.views.jobs(50, 0)),
      'views.jobs(100, 9900) (front page, last page)': timeIt(() => store.views.jobs(100, 9_900)),
      'views.jobRuns(job, 50, newest)': timeIt(() => store.views.jobRuns(typical, 50, 'newest')),
      'views.jobRuns(hot job, 50, newest)': timeIt(() => store.views.jobRuns(HOT_JOB, 50, 'newest')),
      'views.jobRuns(hot job, 50, oldest)': timeIt(() => store.views.jobRuns(HOT_JOB, 50, 'oldest')),
      'views.jobRuns(hot job, 50, before the middle)': timeIt(() => store.views.jobRuns(HOT_JOB, 50, { before: hotMiddle })),
      'views.jobRunAt(hot job, last) (?page=N: the start of the last page)': timeIt(() => store.views.jobRunAt(HOT_JOB, hotRuns - 1)),
      'views.jobRunCount(job)': timeIt(() => store.views.jobRunCount(typical)),
      'views.jobRunCount(hot job)': timeIt(() => store.views.jobRunCount(HOT_JOB)),
      'views.jobStatesOf(job)': timeIt(() => store.views.jobStatesOf(typical)),
    };
    store.close();

    const historyStartups = await startups(h, dir, 2);
    const { server, session, startupMs } = await timedStart(h, dir, ['--http', '127.0.0.1:0']);
    historyStartups.push(startupMs);
    const web = `http://127.0.0.1:${(await server.proc.waitFor(/web view listening address=127\.0\.0\.1:(\d+)/))[1]}`;
    const rt = async (body: RequestBody): Promise<ReturnType<typeof stats>> => {
      for (let i = 0; i < 3; i++) await session.request(body);
      return stats(await timeRequests(session, 50, () => body));
    };
    const http = async (path: string): Promise<ReturnType<typeof stats>> => {
      const xs: number[] = [];
      for (let i = 0; i < 53; i++) {
        const t = performance.now();
        const status = await get(`${web}${path}`);
        if (status !== 200) throw new Error(`${path}: HTTP ${status}`);
        if (i >= 3) xs.push(performance.now() - t);
      }
      return stats(xs);
    };
    const roundTrip = {
      'history NAME': await rt({ op: 'history', job: typical }),
      'history hot': await rt({ op: 'history', job: HOT_JOB }),
      history: await rt({ op: 'history' }),
      'run-result UUID': await rt({ op: 'run-result', uuid: someUuid }),
      workers: await rt({ op: 'workers' }),
      'GET /api/job/NAME': await http(`/api/job/${typical}`),
      'GET /api/job/hot': await http(`/api/job/${HOT_JOB}`),
      'GET /api/job/hot?page=last (oldest)': await http(`/api/job/${HOT_JOB}?page=last`),
      'GET /api/job/hot?before=middle': await http(`/api/job/${HOT_JOB}?before=${hotMiddle.finished},${hotMiddle.rowid}`),
      'GET /api/job/hot?page=1000 (numbered, index-only skip)': await http(`/api/job/${HOT_JOB}?page=1000`),
      'GET /job/hot?page=last (HTML)': await http(`/job/${HOT_JOB}?page=last`),
      'GET /api/ (front page)': await http('/api/'),
      'GET /api/?page=last (front page)': await http('/api/?page=last'),
      'GET / (front page, HTML)': await http('/'),
      'GET /metrics': await http('/metrics'),
    };
    session.close();
    // the 5 ms aim is the CLI's lookups; info reads every job, the web view's pages aim at 50 ms
    const slowest = Math.max(...Object.entries(inProcess).filter(([k]) => !k.startsWith('views.') && !k.startsWith('jobStates()')).map(([, s]) => s.p50));
    const slowestPage = Math.max(...Object.entries(roundTrip).filter(([k]) => k.startsWith('GET')).map(([, s]) => s.p50));
    return {
      runs, jobs, hotJobRuns: hotRuns, dbMb: round(dbBytes(dir) / 2 ** 20, 1),
      startupWithWebViewMs: { noHistory: stats(noHistoryStartups), history: stats(historyStartups) },
      inProcessMs: inProcess, roundTripMs: roundTrip, serverRssMb: rssMb(server.proc.pid).rss,
      meetsAim: slowest < AIM.lookupMs, webMeetsAim: slowestPage < AIM.webPageMs,
    };
  });
}

async function benchHistory(): Promise<Record<string, unknown>> {
  const rows: Array<Record<string, unknown>> = [];
  for (const n of RUN_SIZES) {
    rows.push(await historyAt(n));
    progress(`history: ${JSON.stringify(rows.at(-1))}`);
  }
  return {
    sizes: rows, aimMs: AIM.lookupMs, webPageAimMs: AIM.webPageMs,
    baseline: 'roundTripMs.workers: a request that reads no table, over the same connection; startupWithWebViewMs.noHistory: ' +
      'the same schedule before the runs are written (start-up spawn -> first answer, web view on)',
    how: `10,000 jobs; N finished runs (one job, "${HOT_JOB}", has a tenth of them; the rest spread evenly), a comparison per successful ` +
      'run and every job\'s state, written with SQL (untimed). In-process: the store statements named, p50/p99 of 50 calls on the same ' +
      'file, cache warm. Round trip: the requests named, one at a time over one client connection, and the web view\'s JSON pages over HTTP',
  };
}

// ---- 5. slow consumers ----

async function benchSlow(): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const dir = h.path('state');
    seedJobs(dir, { count: 1, platform: 'chat', nextRun: null, period: 'never' });
    const chatty = jobName(0);
    const { server, session } = await timedStart(h, dir, ['--http', '127.0.0.1:0']);
    const web = `http://127.0.0.1:${(await server.proc.waitFor(/web view listening address=127\.0\.0\.1:(\d+)/))[1]}`;
    const token = h.token(server);
    const chatMs = 20_000;
    const f = await fleet(server, token, 1, { platform: 'chat', chatty, chattyMs: chatMs, prefix: 'chatty' });
    // a worker that stops reading once welcomed, and is given a job with a 256 KiB script
    const paused = await fleet(server, token, 1, { platform: 'pausedw', paused: true, prefix: 'paused' });
    try {
      await session.request({ op: 'schedule', name: 'big-script', platform: 'pausedw', script: `# ${'x'.repeat(256 * 1024)}\ntrue\n`, period: 'never' });
      const other = await ClientSession.open('127.0.0.1', server.port, token);
      const baseline = stats(await timeRequests(other, 100, (i) => ({ op: 'schedule', name: `before-${i}`, platform: 'elsewhere', script: 'true\n', period: 'never' })));
      const rssBefore = rssMb(server.proc.pid).rss;
      const rss: number[] = [];
      let i = 0;
      /** the other client's schedules, one every 50 ms, for ms */
      const scheduleFor = async (ms: number): Promise<number[]> => {
        const times: number[] = [];
        for (const until = Date.now() + ms; Date.now() < until;) {
          rss.push(rssMb(server.proc.pid).rss);
          const t = performance.now();
          await other.request({ op: 'schedule', name: `during-${i++}`, platform: 'elsewhere', script: 'true\n', period: 'never' });
          times.push(performance.now() - t);
          await sleep(50);
        }
        return times;
      };

      // phase 1: the chatty run alone, everyone reading
      const t0 = performance.now();
      await session.request({ op: 'execute', name: chatty });
      const running = await (async () => {
        for (let k = 0; k < 100; k++) {
          const info = (await session.request({ op: 'info' })).data as { running: Array<{ uuid: string; job: string }> };
          const r = info.running.find((x) => x.job === chatty);
          if (r) return r.uuid;
          await sleep(50);
        }
        throw new Error('the chatty run did not start');
      })();
      const storedLines = async (): Promise<number> =>
        ((await getJson(`${web}/api/run/${running}`)) as { console: { lastSeq: number } }).console.lastSeq + 1;
      const [lines0, cpu0] = [await storedLines(), cpuSeconds(server.proc.pid)];
      const phaseMs = (chatMs - 4_000) / 2;
      const alone = await scheduleFor(phaseMs);
      const rssAlone = rss.length;

      // phase 2: the slow consumers join: an observer of that run that never reads, a slow SSE
      // reader of it, and a worker that never reads given a job with a 256 KiB script
      const { conn: observer } = await dial({ host: '127.0.0.1', port: server.port, role: 'client', token, deadAfterMs: 3_600_000 });
      observer.release();
      observer.socket.pause();
      observer.send({ t: 'req', id: 1, op: 'observe', uuid: running });
      await session.request({ op: 'execute', name: 'big-script' });
      const sse = request(`${web}/run/${running}/events?after=-1`);
      sse.on('response', (res) => res.pause());
      sse.on('error', () => undefined);
      sse.end();
      const during = await scheduleFor(phaseMs);

      const lines = (await storedLines()) - lines0;
      const cpu = cpuSeconds(server.proc.pid) - cpu0;
      const seconds = (performance.now() - t0) / 1000;
      const rep = await f.report();
      sse.destroy();
      observer.close('bench done');
      other.close();
      const slowRss = rss.slice(rssAlone);
      const third = Math.floor(slowRss.length / 3);
      const a = stats(alone);
      const d = stats(during);
      return {
        chattyRunSeconds: chatMs / 1000, linesPerBatch: 100, lineBytes: 200,
        serverRssMb: { before: rssBefore, chattyAlone: Math.max(...rss.slice(0, rssAlone)), firstThird: Math.max(...slowRss.slice(0, third)), lastThird: Math.max(...slowRss.slice(-third)), max: Math.max(...rss) },
        otherClientScheduleMs: {
          before: baseline, chattyAlone: a, withSlowConsumers: d,
          // what the slow consumers add: the same chatty run with and without them
          slowConsumersRatioP50: round(d.p50 / a.p50), slowConsumersRatioP99: round(d.p99 / a.p99),
          // and what the chatty run itself costs the other client, against the quiet server
          chattyRatioP50: round(a.p50 / baseline.p50),
        },
        // how fast the server takes the chatty run's lines meanwhile, and what they cost it
        consoleLinesStored: { perSecond: Math.round(lines / seconds), perServerCpuSecond: Math.round(lines / cpu), serverCpuShare: round(cpu / seconds) },
        chattyWorkerErrors: rep.errorCount,
        aim: 'a slow consumer never makes the server buffer without bound (RSS flat while they hang on: the last third no higher than the first) and never delays anyone (the other client\'s schedule with them within 2x of the same chatty run without them)',
        meetsAim: Math.max(...slowRss.slice(-third)) <= Math.max(...slowRss.slice(0, third)) * 1.1 + 5 && d.p50 <= 2 * a.p50,
        how: 'one simulated worker streams 100 lines x 200 bytes per message as fast as the server takes them for 20 s. For the ' +
          'first 8 s that run is alone; then a client observes it and never reads, an SSE client of /run/UUID/events never reads, ' +
          'and a worker that never reads is given a job with a 256 KiB script, for 8 s more. Throughout, another client schedules ' +
          'every 50 ms: its latency in each phase, against 100 schedules on the quiet server before, and the server\'s VmRSS ' +
          'every 50 ms (flat: the last third of the second phase no higher than its first)',
      };
    } finally {
      session.close();
      await f.stop();
      await paused.stop();
    }
  });
}

/**
 * A console at a worker's default cap (64 MiB: 330,000 lines of 200 bytes), from a real
 * process-sandbox worker: how fast the server takes it, how long from the last line to the
 * stored result, and the longest event-loop stall while it streams and while the result is
 * written and the lines leave the database, against the same server idle.
 */
async function benchConsole(): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const LINES = 330_000;
    const { server, session } = await timedStart(h, h.path('state'));
    h.worker(server, 'big', ['--sandbox', 'process']);
    for (let i = 0; ((await session.request({ op: 'workers' })).data as unknown[]).length === 0; i++) {
      if (i > 200) throw new Error('the worker did not connect');
      await sleep(50);
    }
    const stalls = stallLog(server);
    const idleFrom = wall();
    await sleep(2_000);
    const idle = stalls.since(idleFrom);
    const script = `awk 'BEGIN { s = sprintf("%0199d", 0); for (i = 0; i < ${LINES}; i++) print s }'\n`;
    await session.request({ op: 'schedule', name: 'big-console', platform: 'big', script, period: 'never' });
    const t0 = wall();
    let lines = 0;
    let skipped = 0;
    let lastLine = t0;
    let result: unknown;
    await new Promise<void>((resolve, reject) => {
      session.request({ op: 'execute', name: 'big-console', follow: true }, (ev) => {
        if (ev.t === 'line') {
          lines++;
          lastLine = wall();
        } else if (ev.t === 'skipped') {
          // the follower fell more than 1 MiB behind: those lines it is told of, not sent
          skipped += ev.count;
          lastLine = wall();
        } else if (ev.t === 'end') {
          result = ev.result;
          resolve();
        }
      }).catch(reject);
    });
    const endAt = wall();
    // the sweeper's steps, and a stall line for each quarter second of them
    await sleep(3_000);
    const streaming = stalls.between(t0, lastLine);
    const finishing = stalls.since(lastLine);
    stalls.stop();
    return {
      lines: LINES, followerGot: lines, followerSkipped: skipped, result, consoleMb: round((LINES * 200) / 1048576, 1),
      streamSeconds: round((lastLine - t0) / 1000, 2), linesPerSecond: Math.round(LINES / ((lastLine - t0) / 1000)),
      lastLineToStoredMs: round(endAt - lastLine, 1),
      maxStallMs: { idle: Math.max(0, ...idle), streaming: Math.max(0, ...streaming), finishing: Math.max(0, ...finishing) },
      aim: 'no stall over 50 ms while the result is stored and its lines leave the database',
      meetsAim: Math.max(0, ...finishing) <= 50,
      how: `one process-sandbox worker runs awk printing ${LINES} lines of 199 characters; a client follows the run (execute --follow); ` +
        'stalls from the server\'s event-loop monitor (BUILDER_STALL_LOG=1, max per 250 ms); "finishing" is from the last line the client ' +
        'got to 3 s after the end (the result written, the lines swept from the database)',
    };
  });
}

/** Runs the chosen parts (default all); a failing part is reported as {error} and the rest go on. */
export async function benchScale(parts: readonly ScalePart[] = SCALE_PARTS): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, loadAverageAtStart: readFileSync('/proc/loadavg', 'utf8').trim() },
  };
  const run = async (name: ScalePart, fn: () => Promise<Record<string, unknown>>): Promise<void> => {
    if (!parts.includes(name)) return;
    progress(`${name}...`);
    const t = performance.now();
    try {
      out[name] = await fn();
    } catch (err) {
      out[name] = { error: errorMessage(err) };
    }
    progress(`${name} done in ${round((performance.now() - t) / 1000, 1)} s`);
  };
  await run('jobs', benchJobs);
  await run('due', benchDue);
  await run('workers', benchWorkers);
  await run('history', benchHistory);
  await run('slow', benchSlow);
  await run('console', benchConsole);
  return out;
}

// run alone: node dist/bench/scale.js [part...]
runAlone(import.meta.url, () => {
  const chosen = process.argv.slice(2) as ScalePart[];
  return benchScale(chosen.length ? chosen : SCALE_PARTS);
});
