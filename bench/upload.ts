// A 1 GiB artifact through the whole path, with real processes: worker -> server (a job writes
// it with `head -c`; from the run's start to its stored result), then server -> a builder-web
// stand-in (the uploader's own timing), against `curl --data-binary @FILE` of the same body
// (exported with builder-inspect --export) to the same stand-in in the same run. Peak RSS
// (VmHWM) of server and worker at the end.
// Before that, the like-for-like comparison (likeForLike): worker -> server against `curl -T`
// of a file of the same size over loopback to a receiver that writes it to disk and fsyncs it
// before answering (bench/fsync-receiver.ts), as the server must; rounds alternating which goes
// first, medians, and the user/sys CPU per GiB of each side's processes. bench/run.ts imports
// this; progress goes to stderr.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const GiB = 1 << 30;
const ROUNDS = Number(process.env.BUILDER_BENCH_UPLOAD_ROUNDS ?? 5);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (xs: number[], digits = 1): [number, number] => [round(Math.min(...xs), digits), round(Math.max(...xs), digits)];

/** User and system CPU seconds a live process has used so far (its own, not its children's). */
function cpuSeconds(pid: number): { user: number; sys: number; faults: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of stat(5), counted from after the command name; clock ticks of 1/100 s
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100, faults: Number(f[7]) };
}

/** `curl -T FILE` to the fsync receiver: its wall time, its own CPU (sh's `times`), the receiver's answer. */
function curlToReceiver(file: string, url: string, answer: string): Promise<{ seconds: number; user: number; sys: number; receiver: { bytes: number; userMs: number; sysMs: number } }> {
  const sh = 'curl -sS -o "$3" -w "%{http_code} %{time_total}\\n" -X POST -T "$1" -H "Expect:" -H "Content-Type: application/octet-stream" "$2"; s=$?; times; exit $s';
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', sh, 'sh', file, url, answer], (err, out, errText) => {
      if (err) return reject(new Error(`curl: ${errText || err.message}`));
      const lines = out.trim().split('\n');
      const [code, t] = lines[0]!.split(' ');
      if (code !== '201') return reject(new Error(`curl: the receiver answered ${code}: ${readFileSync(answer, 'utf8')}`));
      const sec = (x: string): number => {
        const m = /(\d+)m([\d.]+)s/.exec(x);
        return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
      };
      const [u, s] = lines[lines.length - 1]!.trim().split(/\s+/);
      resolve({ seconds: Number(t), user: sec(u!), sys: sec(s!), receiver: JSON.parse(readFileSync(answer, 'utf8')) });
    });
  });
}

/**
 * Worker -> server of a SIZE artifact (a real server, a real worker with the process sandbox, a
 * job that writes the file and fsyncs it, so no writeback of its own competes with the transfer)
 * against curl -> fsync receiver of a file of the same size, ROUNDS times, alternating which goes
 * first. Ours is timed from the run's start to its stored (fsynced, recorded) result less the
 * job's own writing; CPU is that of the server and worker processes over the whole run.
 */
export async function likeForLike(rounds = ROUNDS): Promise<Record<string, unknown>> {
  const h = new Harness('builder-bench-upload-lfl-');
  try {
    const recvDir = h.path('received');
    mkdirSync(recvDir);
    const receiverJs = join(dirname(fileURLToPath(import.meta.url)), 'fsync-receiver.js');
    const receiver = h.spawn(receiverJs, [recvDir], 'fsync-receiver');
    const url = `http://127.0.0.1:${(await receiver.waitFor(/listening (\d+)/))[1]}/upload`;
    const srv = await h.server();
    const worker = h.worker(srv, 'bench');
    await srv.proc.waitFor(/worker connected/);
    const script = `s=$(date +%s%N); head -c ${SIZE} /dev/zero > big.bin; sync big.bin; e=$(date +%s%N); echo "wrote-ns $((e - s))"\n`;
    writeFileSync(h.path('big.sh'), script);
    const sched = await h.client(srv, ['schedule', 'big', 'bench', h.path('big.sh'), '--period', 'never']);
    if (sched.code !== 0) throw new Error(`schedule: ${sched.stderr}`);
    const file = h.path('same-size.bin');
    await new Promise<void>((resolve, reject) => execFile('sh', ['-c', `head -c ${SIZE} /dev/zero > "$1" && sync "$1"`, 'sh', file],
      (err) => (err ? reject(err) : resolve())));

    const ours: Array<{ ms: number; serverUser: number; serverSys: number; workerUser: number; workerSys: number; serverFaults: number; workerFaults: number }> = [];
    const base: Array<{ ms: number; curlUser: number; curlSys: number; receiverUser: number; receiverSys: number }> = [];
    const runOurs = async (n: number): Promise<void> => {
      const s0 = cpuSeconds(srv.proc.pid);
      const w0 = cpuSeconds(worker.pid);
      const exec = await h.client(srv, ['execute', 'big']);
      if (exec.code !== 0) throw new Error(`execute: ${exec.stderr}`);
      let uuid: string | undefined;
      while (!uuid) {
        const all = [...srv.proc.stderr.matchAll(/run finished run=(\S+) job=big /g)];
        if (all.length >= n) uuid = all[n - 1]![1]!;
        else await new Promise((r) => setTimeout(r, 20));
      }
      const s1 = cpuSeconds(srv.proc.pid);
      const w1 = cpuSeconds(worker.pid);
      const started = logTime(srv.proc.stderr, new RegExp(`run started run=${uuid}`));
      const finished = logTime(srv.proc.stderr, new RegExp(`run finished run=${uuid}`));
      const dir = `${srv.dir}/results/big/${uuid}`;
      const wroteNs = Number(/wrote-ns (\d+)/.exec(readFileSync(`${dir}/console`, 'utf8'))?.[1] ?? NaN);
      if (statSync(`${dir}/artifacts/big.bin`).size !== SIZE) throw new Error('the artifact arrived short');
      ours.push({ ms: finished - started - wroteNs / 1e6, serverUser: s1.user - s0.user, serverSys: s1.sys - s0.sys, workerUser: w1.user - w0.user, workerSys: w1.sys - w0.sys,
        serverFaults: s1.faults - s0.faults, workerFaults: w1.faults - w0.faults });
      progress(`ours: ${round(ours.at(-1)!.ms)} ms`);
      // the stored artifact goes (nothing reads it again), so that the disk fills no further
      rmSync(`${dir}/artifacts/big.bin`);
      await sync();
    };
    const runBase = async (): Promise<void> => {
      const c = await curlToReceiver(file, url, h.path('answer.json'));
      if (c.receiver.bytes !== SIZE) throw new Error(`the receiver got ${c.receiver.bytes} bytes`);
      base.push({ ms: c.seconds * 1000, curlUser: c.user, curlSys: c.sys, receiverUser: c.receiver.userMs / 1000, receiverSys: c.receiver.sysMs / 1000 });
      progress(`curl -> fsync receiver: ${round(base.at(-1)!.ms)} ms`);
      // the receiver removes the file after answering: both sides start from the same state
      await receiver.waitFor(new RegExp(`removed ${base.length}\\b`), 60_000);
      await sync();
    };
    for (let i = 1; i <= rounds; i++) {
      progress(`like-for-like round ${i} of ${rounds}`);
      if (i % 2) {
        await runBase();
        await runOurs(i);
      } else {
        await runOurs(i);
        await runBase();
      }
    }
    const gib = SIZE / GiB;
    const perGiB = <T>(rows: T[], key: keyof T): number => round(median(rows.map((r) => Number(r[key]))) / gib, 2);
    const ourMs = median(ours.map((r) => r.ms));
    const baseMs = median(base.map((r) => r.ms));
    const pairRatios = ours.map((r, i) => base[i]!.ms / r.ms);
    return {
      rounds,
      artifactBytes: SIZE,
      ours: {
        medianMs: round(ourMs), spreadMs: spread(ours.map((r) => r.ms)), MiBps: round(SIZE / MiB / (ourMs / 1000)),
        cpuSecondsPerGiB: { serverUser: perGiB(ours, 'serverUser'), serverSys: perGiB(ours, 'serverSys'), workerUser: perGiB(ours, 'workerUser'), workerSys: perGiB(ours, 'workerSys') },
        // minor page faults: fresh memory for every buffer shows here, and in sys time
        minorFaultsPerGiB: { server: Math.round(perGiB(ours, 'serverFaults')), worker: Math.round(perGiB(ours, 'workerFaults')) },
      },
      baseline: {
        what: 'curl -X POST -T FILE over loopback to a node http server that streams the body to a file and fsyncs it before answering',
        medianMs: round(baseMs), spreadMs: spread(base.map((r) => r.ms)), MiBps: round(SIZE / MiB / (baseMs / 1000)),
        cpuSecondsPerGiB: { curlUser: perGiB(base, 'curlUser'), curlSys: perGiB(base, 'curlSys'), receiverUser: perGiB(base, 'receiverUser'), receiverSys: perGiB(base, 'receiverSys') },
      },
      vsBaseline: round(baseMs / ourMs, 2),
      pairRatiosSpread: spread(pairRatios, 2),
      aim: { vsBaselineAtLeast: 0.8 },
    };
  } finally {
    await h.cleanup();
  }
}

export async function benchUpload(): Promise<Record<string, unknown>> {
  const workerToServerLikeForLike = await likeForLike();
  if (process.env.BUILDER_BENCH_UPLOAD_ONLY === 'like-for-like') return { workerToServerLikeForLike };
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
      workerToServerLikeForLike,
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
