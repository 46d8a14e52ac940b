// `builder-client artifacts` of a 1 GiB artifact from a stored run, with real processes: the
// client's and the server's resident memory while it streams (sampled every 50 ms: the server's
// VmRSS before and at most during, the client's largest VmRSS, and its VmHWM seen last), and the
// throughput against `cp` of the same stored file on the same disk. The run is stored without a
// worker (test/helpers/stored-runs.ts), so only the fetch is measured. bench/run.ts imports this.
import { execFile } from 'node:child_process';
import { randomFillSync, randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { incomingDir } from '../src/results/index.js';
import { openStore } from '../src/server/store/index.js';
import { Harness } from '../test/helpers/processes.js';
import { storeRun } from '../test/helpers/stored-runs.js';

const SIZE = Number(process.env.BUILDER_BENCH_FETCH_BYTES ?? 1 << 30);
const MiB = 1 << 20;

const progress = (msg: string): void => void process.stderr.write(`[bench fetch] ${msg}\n`);
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

function memMiB(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
    return { rss: round(kb('VmRSS') / 1024), hwm: round(kb('VmHWM') / 1024) };
  } catch {
    return null;
  }
}

const run = (cmd: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) => execFile(cmd, args, (err) => (err ? reject(err) : resolve())));

/** Writes `size` random bytes, 4 MiB at a time. */
function writeRandom(file: string, size: number): void {
  const buf = Buffer.alloc(4 * MiB);
  const fd = openSync(file, 'w');
  try {
    for (let left = size; left > 0; left -= buf.length) writeSync(fd, randomFillSync(buf), 0, Math.min(left, buf.length));
  } finally {
    closeSync(fd);
  }
}

export async function benchFetch(): Promise<Record<string, unknown>> {
  const h = new Harness('builder-bench-fetch-');
  try {
    const stateDir = h.path('state');
    mkdirSync(h.path('etc'), { recursive: true });
    const uuid = randomUUID();
    const file = join(incomingDir(stateDir, uuid), 'artifacts', 'big.bin');
    mkdirSync(join(incomingDir(stateDir, uuid), 'artifacts'), { recursive: true });
    progress(`writing a ${round(SIZE / MiB, 0)} MiB artifact`);
    writeRandom(file, SIZE);
    const store = openStore(join(stateDir, 'state.db'));
    const { dir } = await storeRun(store, stateDir, { uuid, job: 'big', finished: Date.now(), artifacts: [{ path: 'big.bin', written: true }] });
    store.close();
    const server = await h.server({ dir: stateDir });
    const serverBefore = memMiB(server.proc.pid);

    progress('fetching with builder-client artifacts');
    await run('sync', []);
    const t0 = process.hrtime.bigint();
    const client = h.clientProc(server, ['artifacts', uuid, '--output', h.path('fetched')]);
    let serverPeak = 0;
    let clientPeak = 0;
    let clientHwm = 0;
    const sampler = setInterval(() => {
      const s = memMiB(server.proc.pid);
      const c = memMiB(client.pid);
      if (s) serverPeak = Math.max(serverPeak, s.rss);
      if (c) {
        clientPeak = Math.max(clientPeak, c.rss);
        clientHwm = Math.max(clientHwm, c.hwm);
      }
    }, 50);
    const { code } = await client.exited;
    const fetchSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    clearInterval(sampler);
    if (code !== 0) throw new Error(`builder-client artifacts exited ${code}: ${client.stderr}`);
    if (statSync(h.path('fetched', 'big.bin')).size !== SIZE) throw new Error('the fetched file has the wrong size');
    const serverAfter = memMiB(server.proc.pid);
    rmSync(h.path('fetched'), { recursive: true });

    progress('copying the same file with cp');
    await run('sync', []);
    const t1 = process.hrtime.bigint();
    await run('cp', [join(dir, 'artifacts', 'big.bin'), h.path('copied.bin')]);
    await run('sync', []);
    const copySeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    rmSync(h.path('copied.bin'));

    return {
      artifactMiB: round(SIZE / MiB, 0),
      fetch: { seconds: round(fetchSeconds, 2), MiBps: round(SIZE / MiB / fetchSeconds, 0), note: 'whole command: start, hello, stream, sha256, rename' },
      copy: { seconds: round(copySeconds, 2), MiBps: round(SIZE / MiB / copySeconds, 0), note: 'cp then sync' },
      fetchVsCopy: round(fetchSeconds / copySeconds, 2),
      server: { rssBeforeMiB: serverBefore?.rss ?? null, rssPeakDuringMiB: serverPeak, vmHwmAfterMiB: serverAfter?.hwm ?? null },
      client: { rssPeakMiB: clientPeak, vmHwmMiB: clientHwm },
    };
  } finally {
    await h.cleanup();
  }
}
