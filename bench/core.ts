// The core loop's figures, measured with the real programs (issue 2, "Tests and figures"):
//   firstLineLatencyMs      execute --follow -> the job's first console line, idle process-sandbox worker
//   jobsPerSecond           1,000 no-op jobs through 8 worker processes of one platform
//   scheduleLatencyMs,      schedule / info round trips with 10,000 jobs in the schedule
//   infoLatencyMs
//   serverRssMbWith500IdleWorkers  VmRSS / VmHWM of the server with 500 connected idle workers
// Every part starts its own server (test/helpers/processes.ts), so one part's state or memory
// peak does not leak into the next. The bench process speaks the protocol itself (dial), so what
// is timed is the server and the worker, not the start-up of builder-client.
// Sizes can be changed for quick runs: BUILDER_BENCH_FIRST_LINE_RUNS, BUILDER_BENCH_JOBS,
// BUILDER_BENCH_WORKERS, BUILDER_BENCH_SCHEDULE_JOBS, BUILDER_BENCH_IDLE_WORKERS, and
// BUILDER_BENCH_TPUT_ROUNDS (throughput rounds, each with a fresh server and workers; the figure
// is their median, with the spread beside it).
import { runAlone } from './run-alone.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../src/common/errors.js';
import { ClientSession, type RequestBody, type Stream } from '../src/client/session.js';
import type { Connection } from '../src/protocol/connection.js';
import { dial } from '../src/protocol/dial.js';
import type { End } from '../src/protocol/messages.js';
import { Harness, type ServerHandle } from '../test/helpers/processes.js';

const envInt = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : dflt;
};
const FIRST_LINE_RUNS = envInt('BUILDER_BENCH_FIRST_LINE_RUNS', 50);
const FIRST_LINE_WARMUP = 3;
const JOBS = envInt('BUILDER_BENCH_JOBS', 1000);
const TPUT_ROUNDS = envInt('BUILDER_BENCH_TPUT_ROUNDS', 5);
const WORKERS = envInt('BUILDER_BENCH_WORKERS', 8);
const SCHEDULE_JOBS = envInt('BUILDER_BENCH_SCHEDULE_JOBS', 10_000);
const SCHEDULE_SAMPLES = 100;
const INFO_SAMPLES = 20;
const IDLE_WORKERS = envInt('BUILDER_BENCH_IDLE_WORKERS', 500);

const AIM_FIRST_LINE_MS = 20;
const AIM_SCHEDULE_MS = 5;
const AIM_INFO_MS = 35;
const AIM_RSS_MB = 150;
const AIM_JOBS_PER_SECOND = 300;

export const CORE_PARTS = ['firstLine', 'jobsPerSecond', 'schedule', 'rss'] as const;
export type CorePart = (typeof CORE_PARTS)[number];

// ---- small helpers ----

const progress = (msg: string): void => void process.stderr.write(`[bench core] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

function stats(xs: number[]): { median: number; p99: number; min: number; max: number; mean: number; samples: number } {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  // nearest rank: with 50 samples the p99 is the largest one, as it should be
  const p99 = s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!;
  return {
    median: round(median), p99: round(p99), min: round(s[0]!), max: round(s[s.length - 1]!),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length), samples: s.length,
  };
}

async function until<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** VmRSS, VmHWM... of a process, in MB. */
function procMemoryMb(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rssMb: round(kb('VmRSS') / 1024, 1), hwmMb: round(kb('VmHWM') / 1024, 1) };
}

let clockTicks: number | undefined;
/**
 * CPU seconds (user + system) a process has used so far; with `children`, those of its children
 * it has waited for (a worker's jobs) instead.
 */
function procCpuSeconds(pid: number, children = false): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  // the command name may hold spaces: the fields start after its closing parenthesis
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [user, sys] = children ? [fields[13], fields[14]] : [fields[11], fields[12]];
  return (Number(user) + Number(sys)) / clockTicks;
}

// ---- the client, with pipelining for bulk requests ----

type Body = RequestBody;

/** builder-client's own session, answering with the data alone, plus pipelined bulk requests. */
class Rpc {
  private constructor(private readonly session: ClientSession) {}

  static async open(server: ServerHandle, token: string): Promise<Rpc> {
    return new Rpc(await ClientSession.open('127.0.0.1', server.port, token));
  }

  async request(body: Body, onStream?: (ev: Stream) => void): Promise<unknown> {
    return (await this.session.request(body, onStream)).data;
  }

  /** Many requests with at most `window` unanswered at a time (pipelined, not one round trip each). */
  async pipelined(bodies: Iterable<Body>, window: number): Promise<void> {
    const conn = this.session.conn;
    const inFlight = new Set<Promise<unknown>>();
    for (const body of bodies) {
      const p: Promise<unknown> = this.request(body).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= window) await Promise.race(inFlight);
      if (conn.backlog > 1 << 20) await conn.drained();
    }
    await Promise.all(inFlight);
  }

  close(): void {
    this.session.close();
  }
}

const workerCount = async (rpc: Rpc, withStatus = false): Promise<number> => {
  const ws = (await rpc.request({ op: 'workers' })) as Array<{ sandbox: string | null }>;
  return withStatus ? ws.filter((w) => w.sandbox !== null).length : ws.length;
};

/** Runs one part with its own harness, always cleaned up. */
async function withHarness<T>(fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = new Harness('builder-bench-');
  active.add(h);
  try {
    return await fn(h);
  } finally {
    active.delete(h);
    await h.cleanup();
  }
}

const active = new Set<Harness>();
let signalsHooked = false;
function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      progress(`${sig}: stopping the processes the bench started`);
      void Promise.all([...active].map((h) => h.cleanup())).finally(() => process.exit(130));
    });
  }
}

// ---- 1. execute -> first line ----

async function firstLine(): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const server = await h.server();
    h.worker(server, 'bench-first', ['--sandbox', 'process']);
    const rpc = await Rpc.open(server, h.token(server));
    await rpc.request({ op: 'schedule', name: 'first', platform: 'bench-first', script: 'echo first\n', period: 'never' });
    await until(async () => (await workerCount(rpc, true)) === 1, 15_000, 'the worker to connect');

    const toFirstLine: number[] = [];
    const toStarted: number[] = [];
    const toEnd: number[] = [];
    for (let i = 0; i < FIRST_LINE_WARMUP + FIRST_LINE_RUNS; i++) {
      let started = NaN;
      let line = NaN;
      let text = '';
      const t0 = performance.now();
      const ended = new Promise<End>((resolve) => {
        void rpc.request({ op: 'execute', name: 'first', follow: true }, (ev) => {
          const now = performance.now();
          if (ev.t === 'started' && Number.isNaN(started)) started = now - t0;
          if (ev.t === 'line' && Number.isNaN(line)) {
            line = now - t0;
            text = ev.data.toString('utf8');
          }
          if (ev.t === 'end') resolve(ev);
        });
      });
      const end = await Promise.race([ended, sleep(15_000).then(() => undefined)]);
      if (!end) throw new Error(`run ${i}: no end within 15 s`);
      if (end.result.kind !== 'exited' || end.result.code !== 0) throw new Error(`run ${i}: ${JSON.stringify(end.result)}`);
      if (text !== 'first') throw new Error(`run ${i}: first line was ${JSON.stringify(text)}, not "first"`);
      if (i >= FIRST_LINE_WARMUP) {
        toFirstLine.push(line);
        toStarted.push(started);
        toEnd.push(performance.now() - t0);
      }
      // the worker gets the server's ack and destroys the sandbox: let it be idle again
      await sleep(25);
      if ((i + 1) % 10 === 0) progress(`first line: ${i + 1}/${FIRST_LINE_WARMUP + FIRST_LINE_RUNS}`);
    }
    rpc.close();
    const s = stats(toFirstLine);
    return {
      ...s,
      warmup: FIRST_LINE_WARMUP,
      aim: `median < ${AIM_FIRST_LINE_MS} ms`,
      meetsAim: s.median < AIM_FIRST_LINE_MS,
      p99MeetsAim: s.p99 < AIM_FIRST_LINE_MS,
      toStartedMs: stats(toStarted),
      toEndMs: stats(toEnd),
      how: 'execute {follow:true} over one held client connection -> first {t:line}; one process-sandbox worker, idle between runs; job `echo first`',
    };
  });
}

// ---- 2. throughput ----

/** Several rounds of throughputRound(); the figure is their median. */
async function jobsPerSecond(): Promise<Record<string, unknown>> {
  const rounds: Array<Record<string, unknown> & { value: number }> = [];
  for (let i = 0; i < TPUT_ROUNDS; i++) {
    rounds.push(await throughputRound());
    progress(`throughput: round ${i + 1}/${TPUT_ROUNDS}: ${rounds.at(-1)!.value} jobs/s`);
  }
  const pick = (key: string): number[] => rounds.map((r) => r[key] as number);
  const s = stats(pick('value'));
  const last = rounds.at(-1)!;
  return {
    value: s.median,
    spread: { min: s.min, max: s.max, rounds: pick('value') },
    jobs: JOBS,
    workers: WORKERS,
    seconds: stats(pick('seconds')).median,
    serverCpuMsPerJob: stats(pick('serverCpuMsPerJob')).median,
    workerCpuMsPerJob: stats(pick('workerCpuMsPerJob')).median,
    jobProcessCpuMsPerJob: stats(pick('jobProcessCpuMsPerJob')).median,
    rounds: rounds.map(({ how: _how, ...r }) => r),
    aim: `>= ${AIM_JOBS_PER_SECOND} jobs/s (issue 11; 169 before the durability work of issue 9)`,
    meetsAim: s.median >= AIM_JOBS_PER_SECOND,
    how: `${TPUT_ROUNDS} rounds, each with a fresh server and workers: ${String(last.how)}; ` +
      'CPU from /proc/PID/stat: the server, the worker processes themselves, and the job processes the workers reaped',
  };
}

async function throughputRound(): Promise<Record<string, unknown> & { value: number }> {
  // the server and workers as installed: the bundles (which size the server's thread pool)
  const before = process.env.BUILDER_TEST_BUNDLE;
  process.env.BUILDER_TEST_BUNDLE = '1';
  try {
    return await throughputRoundOf();
  } finally {
    if (before === undefined) delete process.env.BUILDER_TEST_BUNDLE;
    else process.env.BUILDER_TEST_BUNDLE = before;
  }
}

async function throughputRoundOf(): Promise<Record<string, unknown> & { value: number }> {
  return withHarness(async (h) => {
    const server = await h.server({ env: { BUILDER_LOG_LEVEL: 'info' } });
    const rpc = await Rpc.open(server, h.token(server));
    const platform = 'bench-tput';
    const names = Array.from({ length: JOBS }, (_, i) => `noop-${String(i).padStart(5, '0')}`);
    await rpc.pipelined(names.map((name) => ({ op: 'schedule', name, platform, script: 'true\n', period: 'never' }) as Body), 200);
    progress(`throughput: ${JOBS} jobs scheduled; starting ${WORKERS} workers`);
    const workers = Array.from({ length: WORKERS }, (_, i) => h.worker(server, platform, ['--sandbox', 'process', '--name', `tput-${i}`]));
    await until(async () => (await workerCount(rpc, true)) === WORKERS, 30_000, `${WORKERS} workers to connect`);

    // finished runs are counted from the server's log, which costs the server nothing extra
    let finished = 0;
    let carry = '';
    let resolveAll: () => void = () => undefined;
    const all = new Promise<void>((r) => (resolveAll = r));
    const onLog = (chunk: Buffer): void => {
      const text = carry + chunk.toString('utf8');
      const lines = text.split('\n');
      carry = lines.pop() ?? '';
      for (const l of lines) if (l.includes(' info: run finished ')) finished++;
      if (finished >= JOBS) resolveAll();
    };
    server.proc.child.stderr!.on('data', onLog);

    const workerCpu = (children: boolean): number => workers.reduce((n, w) => n + procCpuSeconds(w.pid, children), 0);
    const cpu0 = procCpuSeconds(server.proc.pid);
    const workerCpu0 = workerCpu(false);
    const jobCpu0 = workerCpu(true);
    const t0 = performance.now();
    const sent = rpc.pipelined(names.map((name) => ({ op: 'execute', name }) as Body), 200);
    let lastReport = 0;
    const ticker = setInterval(() => {
      if (finished - lastReport >= 100) {
        lastReport = finished - (finished % 100);
        progress(`throughput: ${finished}/${JOBS} finished`);
      }
    }, 500);
    try {
      await Promise.race([
        Promise.all([sent, all]),
        sleep(600_000).then(() => Promise.reject(new Error(`only ${finished} of ${JOBS} runs finished within 600 s`))),
      ]);
    } finally {
      clearInterval(ticker);
      server.proc.child.stderr!.off('data', onLog);
    }
    const seconds = (performance.now() - t0) / 1000;
    const serverCpu = procCpuSeconds(server.proc.pid) - cpu0;
    const workersCpu = workerCpu(false) - workerCpu0;
    const jobsCpu = workerCpu(true) - jobCpu0;

    // check what the log said against the stored runs
    const runs = (await rpc.request({ op: 'history', limit: 10_000 })) as Array<{ job: string; result: { kind: string; code?: number } | null }>;
    const kinds: Record<string, number> = {};
    for (const r of runs) {
      const k = r.result ? (r.result.kind === 'exited' ? `exited ${r.result.code}` : r.result.kind) : 'none';
      kinds[k] = (kinds[k] ?? 0) + 1;
    }
    const distinctJobs = new Set(runs.map((r) => r.job)).size;
    const perWorker = (await rpc.request({ op: 'workers' })) as Array<{ name: string }>;
    rpc.close();
    const value = round(JOBS / seconds, 1);
    return {
      value,
      jobs: JOBS,
      workers: WORKERS,
      seconds: round(seconds, 2),
      serverCpuSeconds: round(serverCpu, 2),
      serverCpuMsPerJob: round((serverCpu * 1000) / JOBS, 2),
      workerCpuMsPerJob: round((workersCpu * 1000) / JOBS, 2),
      jobProcessCpuMsPerJob: round((jobsCpu * 1000) / JOBS, 2),
      storedRuns: runs.length,
      distinctJobs,
      results: kinds,
      workersConnectedAtEnd: perWorker.length,
      how: `${JOBS} jobs \`true\` scheduled with period never, then one execute each, pipelined over one connection; ` +
        `${WORKERS} builder-worker processes (process sandbox, capacity 1) on one platform, server and workers run from the bundles; from the first execute to the ${JOBS}th "run finished" in the server log`,
    };
  });
}

// ---- 3. schedule and info with a big schedule ----

async function scheduleLatency(): Promise<{ scheduleLatencyMs: Record<string, unknown>; infoLatencyMs: Record<string, unknown> }> {
  return withHarness(async (h) => {
    const server = await h.server();
    const rpc = await Rpc.open(server, h.token(server));
    const platform = 'bench-noworker';
    const t0 = performance.now();
    let done = 0;
    const bodies = function* (): Generator<Body> {
      for (let i = 0; i < SCHEDULE_JOBS; i++) {
        yield { op: 'schedule', name: `big-${String(i).padStart(6, '0')}`, platform, script: `echo job ${i}\n` };
        if (++done % 2000 === 0) progress(`schedule: ${done}/${SCHEDULE_JOBS} jobs inserted`);
      }
    };
    await rpc.pipelined(bodies(), 100);
    const insertSeconds = (performance.now() - t0) / 1000;

    // one request at a time, each waiting for its answer
    const cpu0 = procCpuSeconds(server.proc.pid);
    const schedule: number[] = [];
    for (let i = 0; i < SCHEDULE_SAMPLES; i++) {
      const t = performance.now();
      await rpc.request({ op: 'schedule', name: `probe-${i}`, platform, script: 'true\n' });
      schedule.push(performance.now() - t);
    }
    const scheduleCpuMs = ((procCpuSeconds(server.proc.pid) - cpu0) * 1000) / SCHEDULE_SAMPLES;
    const scheduleNever: number[] = [];
    for (let i = 0; i < SCHEDULE_SAMPLES; i++) {
      const t = performance.now();
      await rpc.request({ op: 'schedule', name: `probe-never-${i}`, platform, script: 'true\n', period: 'never' });
      scheduleNever.push(performance.now() - t);
    }
    // what `info` asks (the summary), and the whole listing (`info --json`, `info --all`)
    const info: number[] = [];
    const listing: number[] = [];
    let infoJobs = 0;
    let infoQueued = 0;
    for (let i = 0; i < INFO_SAMPLES; i++) {
      let t = performance.now();
      const summary = (await rpc.request({ op: 'info-summary' })) as { jobs: number; platforms: Array<{ queued: number }> };
      info.push(performance.now() - t);
      infoJobs = summary.jobs;
      infoQueued = summary.platforms.reduce((a, p) => a + p.queued, 0);
      t = performance.now();
      await rpc.request({ op: 'info' });
      listing.push(performance.now() - t);
    }
    rpc.close();
    const s = stats(schedule);
    const sn = stats(scheduleNever);
    return {
      scheduleLatencyMs: {
        ...s,
        jobsInSchedule: SCHEDULE_JOBS,
        aim: `median < ${AIM_SCHEDULE_MS} ms at ${SCHEDULE_JOBS} jobs`,
        meetsAim: s.median < AIM_SCHEDULE_MS,
        p99MeetsAim: s.p99 < AIM_SCHEDULE_MS,
        periodNever: { ...sn, meetsAim: sn.median < AIM_SCHEDULE_MS },
        serverCpuMsPerRequest: round(scheduleCpuMs, 2),
        insertedPerSecond: round(SCHEDULE_JOBS / insertSeconds, 0),
        how: `${SCHEDULE_JOBS} jobs (default period, so all queued) on a platform without workers, inserted pipelined; then ` +
          `${SCHEDULE_SAMPLES} schedule requests one at a time over the same connection (and ${SCHEDULE_SAMPLES} more with period never)`,
      },
      infoLatencyMs: {
        ...stats(info),
        jobsInSchedule: infoJobs,
        queuedEntries: infoQueued,
        aim: `median <= ${AIM_INFO_MS} ms at 10,000 jobs (issue 11)`,
        meetsAim: stats(info).median <= AIM_INFO_MS,
        fullListing: stats(listing),
        how: `${INFO_SAMPLES} info-summary requests (what \`builder-client info\` asks) one at a time, each followed by an info ` +
          'request (the whole listing: every job and queue entry, what `info --json` and `info --all` ask), timed as fullListing',
      },
    };
  });
}

// ---- 4. memory with many idle workers ----

async function rss(): Promise<Record<string, unknown>> {
  return withHarness(async (h) => {
    const server = await h.server();
    const token = h.token(server);
    const rpc = await Rpc.open(server, token);
    await sleep(500);
    const before = procMemoryMb(server.proc.pid);

    const conns: Connection[] = [];
    const closedEarly: string[] = [];
    let next = 0;
    const connectOne = async (): Promise<void> => {
      for (let i = next++; i < IDLE_WORKERS; i = next++) {
        const { conn } = await dial({
          host: '127.0.0.1', port: server.port, role: 'worker', token,
          worker: { name: `idle-${i}`, platform: 'idle', capacity: 1, running: [] },
        });
        conn.on('message', () => undefined);
        conn.on('close', (reason) => closedEarly.push(`idle-${i}: ${reason}`));
        conn.release();
        conns.push(conn);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 25 }, connectOne));
    const connectSeconds = (performance.now() - t0) / 1000;
    progress(`rss: ${conns.length} idle worker connections open`);
    await until(async () => (await workerCount(rpc)) === IDLE_WORKERS, 30_000, `the server to list ${IDLE_WORKERS} workers`);
    // a few heartbeat rounds in both directions before reading
    const settleMs = 6000;
    await sleep(settleMs);
    const listed = await workerCount(rpc);
    const after = procMemoryMb(server.proc.pid);
    const dropped = [...closedEarly];
    rpc.close();
    for (const c of conns) c.close('bench done');
    return {
      value: after.rssMb,
      vmRssMb: after.rssMb,
      vmHwmMb: after.hwmMb,
      beforeWorkers: { vmRssMb: before.rssMb, vmHwmMb: before.hwmMb },
      perWorkerKb: round(((after.rssMb - before.rssMb) * 1024) / IDLE_WORKERS, 1),
      idleWorkers: IDLE_WORKERS,
      listedAfterSettle: listed,
      droppedDuringSettle: dropped.length,
      ...(dropped.length ? { droppedExamples: dropped.slice(0, 3) } : {}),
      connectSeconds: round(connectSeconds, 2),
      aim: `VmRSS < ${AIM_RSS_MB} MB`,
      meetsAim: after.rssMb < AIM_RSS_MB && listed === IDLE_WORKERS,
      how: `${IDLE_WORKERS} worker-role protocol connections from the bench process (hello + auth, capacity 1, no jobs), ` +
        `read /proc/PID/status of builder-server ${settleMs / 1000} s after the server listed them all`,
    };
  });
}

// ---- all of it ----

/** Runs the chosen parts (default all); a failing part is reported as {error} and the rest go on. */
export async function benchCore(parts: readonly CorePart[] = CORE_PARTS): Promise<Record<string, unknown>> {
  hookSignals();
  const out: Record<string, unknown> = {};
  const guard = async (label: string, fn: () => Promise<void>, keys: string[]): Promise<void> => {
    progress(`${label}...`);
    const t = performance.now();
    try {
      await fn();
      progress(`${label} done in ${round((performance.now() - t) / 1000, 1)} s`);
    } catch (err) {
      progress(`${label} failed: ${errorMessage(err)}`);
      for (const k of keys) out[k] = { error: errorMessage(err) };
    }
  };
  if (parts.includes('firstLine')) await guard('first-line latency', async () => void (out.firstLineLatencyMs = await firstLine()), ['firstLineLatencyMs']);
  if (parts.includes('jobsPerSecond')) await guard('throughput', async () => void (out.jobsPerSecond = await jobsPerSecond()), ['jobsPerSecond']);
  if (parts.includes('schedule')) {
    await guard('schedule/info latency', async () => void Object.assign(out, await scheduleLatency()), ['scheduleLatencyMs', 'infoLatencyMs']);
  }
  if (parts.includes('rss')) await guard('server RSS with idle workers', async () => void (out.serverRssMbWith500IdleWorkers = await rss()),
    ['serverRssMbWith500IdleWorkers']);
  return out;
}

// run alone: node dist/bench/core.js [part...]
runAlone(import.meta.url, () => {
  const chosen = process.argv.slice(2) as CorePart[];
  return benchCore(chosen.length ? chosen : CORE_PARTS);
});
