// A 1 GiB artifact through the whole path, with real processes: worker -> server (a job writes
// it with `head -c`; from the run's start to its stored result), then server -> a builder-web
// stand-in (the uploader's own timing), against `curl --data-binary @FILE` of the same body
// (exported with builder-inspect --export) to the same stand-in in the same run. Peak RSS
// (VmHWM) of server and worker at the end. bench/run.ts imports this; progress goes to stderr.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync, writeFileSync } from 'node:fs';
import { BuilderWebStandin } from '../test/helpers/builder-web-standin.js';
import { Harness } from '../test/helpers/processes.js';

const SIZE = Number(process.env.BUILDER_BENCH_UPLOAD_BYTES ?? 1 << 30);
const MiB = 1 << 20;

const progress = (msg: string): void => void process.stderr.write(`[bench upload] ${msg}\n`);
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Peak resident set of a live process, in MiB. */
function peakRssMiB(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

const logTime = (log: string, re: RegExp): number => {
  const line = log.split('\n').find((l) => re.test(l));
  if (!line) throw new Error(`no log line matching ${re}`);
  return Date.parse(line.slice(0, line.indexOf(' ')));
};

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * `curl --data-binary @FILE`, as builder-web's README has it. curl 7.x loads that file into
 * memory and refuses files of 1 GiB and more ("out of memory"); then the same bytes go with
 * `-X POST -T FILE`, which streams from disk (the Expect: 100-continue pause switched off).
 */
const sync = (): Promise<void> => new Promise((resolve) => execFile('sync', () => resolve()));

async function curl(file: string, url: string): Promise<{ status: number; seconds: number; mode: string }> {
  try {
    return { ...(await curlOnce(['--data-binary', `@${file}`], url)), mode: 'curl --data-binary @FILE' };
  } catch (err) {
    if (!/out of memory/.test((err as Error).message)) throw err;
    progress('curl --data-binary cannot take a file this big; using curl -X POST -T FILE');
    return { ...(await curlOnce(['-X', 'POST', '-T', file, '-H', 'Expect:'], url)), mode: 'curl -X POST -T FILE (--data-binary refuses >= 1 GiB)' };
  }
}

function curlOnce(args: string[], url: string): Promise<{ status: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', ...args,
      '-H', 'Content-Type: application/octet-stream', url], { maxBuffer: MiB }, (err, out, errText) => {
      if (err) return reject(new Error(`curl: ${errText || err.message}`));
      const [code, t] = out.trim().split(' ');
      resolve({ status: Number(code), seconds: Number(t) });
    });
  });
}

export async function benchUpload(): Promise<Record<string, unknown>> {
  const h = new Harness('builder-bench-upload-');
  // bodies this big are hashed by the stand-in, never held
  const standin = await BuilderWebStandin.start({ keepUpTo: 64 * MiB });
  try {
    // Builder-web is away when the result is stored, so the first attempt fails at once and the
    // retry comes 15-30 s later: meanwhile the disk settles (sync) and curl sends the same body,
    // and then both transfers start from the same state instead of ours racing the writeback.
    await standin.stop();
    const srv = await h.server({ args: ['--upload', standin.url(), '--upload-backoff', '30'] });
    const worker = h.worker(srv, 'bench');
    await srv.proc.waitFor(/worker connected/);
    // the job's own writing time is printed by the job, so the transfer can be told apart
    const script = `s=$(date +%s%N); head -c ${SIZE} /dev/zero > big.bin; e=$(date +%s%N); echo "wrote-ns $((e - s))"\n`;
    writeFileSync(h.path('big.sh'), script);
    const sched = await h.client(srv, ['schedule', 'big', 'bench', h.path('big.sh'), '--period', 'never']);
    if (sched.code !== 0) throw new Error(`schedule: ${sched.stderr}`);
    progress(`running a job that writes ${SIZE} bytes`);
    const exec = await h.client(srv, ['execute', 'big']);
    if (exec.code !== 0) throw new Error(`execute: ${exec.stderr}`);
    const fin = await srv.proc.waitFor(/run finished run=(\S+) job=big /, 600_000);
    const uuid = fin[1]!;
    const started = logTime(srv.proc.stderr, new RegExp(`run started run=${uuid}`));
    const finished = logTime(srv.proc.stderr, new RegExp(`run finished run=${uuid}`));
    const dir = `${srv.dir}/results/big/${uuid}`;
    const wroteNs = Number(/wrote-ns (\d+)/.exec(readFileSync(`${dir}/console`, 'utf8'))?.[1] ?? NaN);
    await srv.proc.waitFor(new RegExp(`upload attempt failed.*run=${uuid}`), 60_000);

    progress('exporting the same body and sending it with curl');
    const file = h.path('big.full');
    const x = await h.inspect([dir, '--export', file]);
    if (x.code !== 0) throw new Error(`builder-inspect --export: ${x.stderr}`);
    await sync();
    await standin.listen();
    const c = await curl(file, standin.url());
    if (c.status !== 201) throw new Error(`curl: stand-in answered ${c.status}`);
    const curlSha = [...standin.received.values()][0]!.sha256;
    const overlapped = standin.seen.length > 1;
    standin.received.clear(); // so that our copy is a 201 like curl's, not a 409

    progress('waiting for the server to retry the upload (15-30 s)');
    await standin.waitForUploads(1, 600_000);
    const up = await srv.proc.waitFor(new RegExp(`uploaded part=upload run=${uuid} .*bytes=(\\d+) ms=(\\d+)`), 60_000);
    const bodyBytes = Number(up[1]);
    const uploadMs = Number(up[2]);
    const serverRss = peakRssMiB(srv.proc.pid);
    const workerRss = peakRssMiB(worker.pid);
    const received = [...standin.received.values()][0]!;
    const exportedSha = await sha256File(file);

    const transferMs = finished - started - wroteNs / 1e6;
    const mibps = (ms: number): number => round(bodyBytes / MiB / (ms / 1000));
    const curlMs = c.seconds * 1000;
    return {
      artifactBytes: SIZE,
      uploadBodyBytes: bodyBytes,
      sameBodyAsExport: exportedSha === received.sha256 && curlSha === received.sha256 && statSync(file).size === received.length,
      curlOverlappedOurUpload: overlapped,
      workerToServer: {
        jobStartToStoredMs: finished - started,
        jobWritingMs: round(wroteNs / 1e6),
        transferMs: round(transferMs),
        MiBps: mibps(transferMs),
        vsCurl: round(curlMs / transferMs, 2),
      },
      serverToBuilderWeb: { ms: uploadMs, MiBps: mibps(uploadMs), vsCurl: round(curlMs / uploadMs, 2) },
      curl: { ms: round(curlMs), MiBps: mibps(curlMs), mode: c.mode },
      peakRssMiB: { server: serverRss, worker: workerRss },
      aims: { vsCurlAtLeast: 0.8, peakRssMiBUnder: 200 },
    };
  } finally {
    await standin.stop();
    await h.cleanup();
  }
}

// `node dist/bench/upload.js` runs just this part
if (import.meta.url === `file://${process.argv[1]}`) {
  benchUpload().then((r) => console.log(JSON.stringify(r, null, 2)), (err) => {
    console.error(err);
    process.exit(1);
  });
}
