// The web view's figures (issue 10), against a real builder-server --http whose state database
// was filled beforehand (10,000 jobs, 10,000 runs of one job, a stored console of 300,000 lines):
//   pages             latency of the front page and of a job page with 10,000 runs (first and
//                     200th page), p50/p95/max over SAMPLES requests; aim: under 50 ms
//   sseLatencyMs      a line printed by a running job (it prints the time it was printed) to the
//                     event reaching an SSE client of /run/UUID/events; aim: under 100 ms
//   consoleMemory     the server's VmRSS while a client reads the 300,000-line console whole,
//                     as console.txt and as the live stream of a finished run
// Sizes: BUILDER_BENCH_WEB_JOBS, BUILDER_BENCH_WEB_RUNS, BUILDER_BENCH_WEB_LINES.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { openStore } from '../src/server/store/index.js';
import { Harness, eventually } from '../test/helpers/processes.js';
import { readSse } from '../test/helpers/sse-client.js';
import { fillHistory, storedRun } from '../test/helpers/web-fixtures.js';

const envInt = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : dflt;
};
const JOBS = envInt('BUILDER_BENCH_WEB_JOBS', 10_000);
const RUNS = envInt('BUILDER_BENCH_WEB_RUNS', 10_000);
const LINES = envInt('BUILDER_BENCH_WEB_LINES', 300_000);
const SAMPLES = 50;
const LIVE_LINES = 100;
const AIM_PAGE_MS = 50;
const AIM_SSE_MS = 100;

const progress = (msg: string): void => void process.stderr.write(`[bench web] ${msg}\n`);
const round = (n: number, d = 1): number => Math.round(n * 10 ** d) / 10 ** d;

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { p50: at(0.5), p95: at(0.95), max: round(s.at(-1)!), samples: s.length };
}

/** GETs a URL and counts the body's bytes without keeping them. */
function drain(url: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode!, bytes }));
    }).on('error', reject).end();
  });
}

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024) : NaN;
};

async function pageLatency(web: string, path: string): Promise<ReturnType<typeof stats>> {
  for (let i = 0; i < 3; i++) await drain(`${web}${path}`);
  const ms: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    const r = await drain(`${web}${path}`);
    ms.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`${path}: status ${r.status}`);
  }
  return stats(ms);
}

export async function benchWeb(): Promise<Record<string, unknown>> {
  const h = new Harness('builder-bench-web-');
  try {
    const stateDir = h.path('state');
    mkdirSync(stateDir, { recursive: true });
    mkdirSync(h.path('etc'));
    progress(`filling a state database: ${JOBS} jobs, ${RUNS} runs of one job, a console of ${LINES} lines`);
    const store = openStore(join(stateDir, 'state.db'));
    const { busyJob } = fillHistory(store, { jobs: JOBS, runs: RUNS, platform: 'filled' });
    const big = await storedRun(store, stateDir, 'big-console', { lines: LINES, width: 100 });
    store.close();
    const consoleMb = round(statSync(join(big.dir, 'console')).size / 2 ** 20);

    const server = await h.server({ dir: stateDir, args: ['--http', '127.0.0.1:0'] });
    const web = `http://127.0.0.1:${(await server.proc.waitFor(/web view listening address=127\.0\.0\.1:(\d+)/))[1]}`;

    progress('page latency');
    const pages = {
      front: await pageLatency(web, '/'),
      job: await pageLatency(web, `/job/${busyJob}`),
      jobPage200: await pageLatency(web, `/job/${busyJob}?page=200`),
      aimMs: AIM_PAGE_MS,
      jobs: JOBS,
      runs: RUNS,
    };

    progress('SSE latency');
    h.worker(server, 'live');
    const go = h.path('go');
    const script = h.script('ticker', `while [ ! -e ${go} ]; do sleep 0.01; done\nfor i in $(seq ${LIVE_LINES}); do echo "tick $(date +%s%3N)"; sleep 0.03; done\n`);
    if ((await h.client(server, ['schedule', 'ticker', 'live', script])).code !== 0) throw new Error('cannot schedule the ticker job');
    const uuid = await eventually(async () => (await h.info(server)).running.find((r: { job: string }) => r.job === 'ticker')?.uuid as string | undefined,
      20_000, 'the ticker run');
    const delays: number[] = [];
    let ended = false;
    const reader = readSse(`${web}/run/${uuid}/events?after=-1`, (ev) => {
      if (ev.event === 'line') {
        const m = /^tick (\d+)$/.exec((JSON.parse(ev.data) as { text: string }).text);
        if (m) delays.push(Date.now() - Number(m[1]));
      } else if (ev.event === 'end') ended = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    writeFileSync(go, '');
    await reader.done;
    if (!ended || delays.length !== LIVE_LINES) throw new Error(`SSE: ${delays.length} of ${LIVE_LINES} lines, ended: ${ended}`);
    const sseLatencyMs = { ...stats(delays), aimMs: AIM_SSE_MS, note: 'printed (date +%s%3N in the job) to the event parsed by an SSE client, same machine clock' };

    progress('memory while streaming the big console');
    const pid = server.proc.pid;
    const before = rssMb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 10);
    const t0 = performance.now();
    const raw = await drain(`${web}/run/${big.uuid}/console.txt`);
    const rawMs = performance.now() - t0;
    const peakRaw = peak;
    let events = 0;
    const t1 = performance.now();
    await readSse(`${web}/run/${big.uuid}/events?after=-1`, (ev) => {
      if (ev.event === 'line') events++;
    }).done;
    const sseMs = performance.now() - t1;
    const t2 = performance.now();
    await drain(`${web}/run/${big.uuid}`);
    const pageMs = performance.now() - t2;
    clearInterval(sampler);
    if (events !== LINES) throw new Error(`the live stream of the big console gave ${events} of ${LINES} lines`);
    const consoleMemory = {
      lines: LINES, consoleFileMb: consoleMb, rawBytes: raw.bytes,
      serverRssBeforeMb: before, serverRssPeakMb: peak, grewMb: round(peak - before), grewMbRawOnly: round(peakRaw - before),
      rawConsoleMs: Math.round(rawMs), sseWholeConsoleMs: Math.round(sseMs), lastPageMs: round(pageMs),
    };
    return { pages, sseLatencyMs, consoleMemory };
  } finally {
    await h.cleanup();
  }
}
