// `bench attack` (issue 9, 14): the attacks that once cost the server gigabytes or minutes,
// replayed against a real server while a well-behaved client schedules, runs and observes jobs:
//   - 3 frames of 16 MiB holding an array of 16.7 million empty maps (before and after the hello)
//   - 100 unauthenticated connections each sending most of a 16 MiB frame
//   - a hello whose role holds a newline, and one whose role is 8 MiB
//   - 1,500 info requests from an authenticated client that never reads
//   - a 400 KiB bignum (CBOR tag 2) frame, before and after the hello (and an 8 KiB one before)
//   - 2,000 idle sockets
// Figures: the server's peak RSS (aim < 150 MB), the client's round trip during the attacks
// against the quiet case (aim within 2x), RSS afterwards against the start (aim: 15 s after, at
// most 15 MB or 20 % above it, whichever is more: settledMeetsAim; the server's own collections
// after the burst as memoryGivenBack), and what each tag
// frame costs the server (aim < 50 ms from the last byte to the connection's close).
// The attacks run in a child process (this file with --attacker), so that the attacker's own
// work does not slow the measuring client's event loop.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ClientSession } from '../src/client/session.js';
import { encodeValue } from '../src/protocol/codec.js';
import { encodeFrame } from '../src/protocol/framing.js';
import { Harness } from '../test/helpers/processes.js';
import { memoryGivenBack } from './server-log.js';
import { MARK_VAR } from '../test/helpers/process-marks.js';
import { bignum, cborMap, emptyMaps, rawClient, rawPeer, type RawPeer } from '../test/helpers/raw-peer.js';

const AIM_RSS_MB = 150;
const AIM_LATENCY_RATIO = 2;
const AIM_TAG_MS = 50;
/** "back near its start": the settled RSS at most this much above the start (MB), or 20 % above it, whichever is more */
const AIM_SETTLED_OVER_MB = 15;
const AIM_SETTLED_RATIO = 1.2;
const IDLE_SOCKETS = Number(process.env.BUILDER_BENCH_IDLE_SOCKETS ?? 2000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const progress = (msg: string): void => void process.stderr.write(`[bench attack] ${msg}\n`);
const memMb = (pid: number, key: 'VmRSS' | 'VmHWM'): number => {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  if (!m) throw new Error(`process ${pid} has no ${key}: it has exited`);
  return Number(m[1]) / 1024;
};
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[s.length >> 1]!;
};
const p95 = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]!;
};

/** The well-behaved client: info, execute --follow to the end; one round each. */
async function clientRounds(session: ClientSession, untilMs: number, minRounds: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; Date.now() < untilMs || i < minRounds; i++) {
    const t0 = performance.now();
    await session.request({ op: 'info' });
    await new Promise<void>((resolve, reject) => {
      session.request({ op: 'execute', name: 'nice', follow: true }, (ev) => {
        if (ev.t === 'end') resolve();
      }).catch(reject);
    });
    times.push(performance.now() - t0);
  }
  return times;
}

export async function benchAttack(): Promise<unknown> {
  const h = new Harness('builder-bench-attack-');
  try {
    const server = await h.server({ args: ['--config-dir', h.path('etc')] });
    h.worker(server, 'p', ['--capacity', '2']);
    const token = h.token(server);
    const session = await ClientSession.open('127.0.0.1', server.port, token);
    await session.request({ op: 'schedule', name: 'nice', platform: 'p', script: 'echo hello\n', period: 'never' });
    // warm up, then the quiet case
    await clientRounds(session, 0, 5);
    const startRss = memMb(server.proc.pid, 'VmRSS');
    progress(`quiet: server RSS ${round(startRss)} MB`);
    const quiet = await clientRounds(session, Date.now() + 5000, 20);

    progress('attacking');
    // without the harness's process mark: the attacker must not take the server down with it when it ends
    const env = { ...process.env };
    delete env[MARK_VAR];
    const attacker = spawn(process.execPath, [fileURLToPath(import.meta.url), '--attacker', String(server.port), token], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let out = '';
    attacker.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const attackerDone = new Promise<void>((r) => attacker.on('exit', () => r()));
    let peakSampled = startRss;
    const sampler = setInterval(() => {
      try {
        peakSampled = Math.max(peakSampled, memMb(server.proc.pid, 'VmRSS'));
      } catch {
        attacking = false; // the server is gone: said below
      }
    }, 50);
    const during: number[] = [];
    let attacking = true;
    void attackerDone.then(() => (attacking = false));
    try {
      const gone = server.proc.exited.then((how) => {
        throw new Error(`the server exited during the attacks (${JSON.stringify(how)}): ${server.proc.stderr.slice(-1500)}`);
      });
      while (attacking) during.push(...(await Promise.race([clientRounds(session, 0, 1), gone])));
    } finally {
      clearInterval(sampler);
    }
    if (!server.proc.running) {
      const how = await server.proc.exited;
      throw new Error(`the server exited during the attacks (${JSON.stringify(how)}): ${server.proc.stderr.slice(-1500)}`);
    }
    const attacks = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown> & { tagFrames?: Array<{ ms: number; closed: boolean }> };
    await sleep(3000);
    const afterRss = memMb(server.proc.pid, 'VmRSS');
    // the server gives memory back once it has been idle a while (memory-settle.ts checks every
    // 2 s, and V8 unmaps the freed pages after the collection): the later figure is the settled one
    await sleep(12_000);
    const settledRss = memMb(server.proc.pid, 'VmRSS');
    // the server's own full collections after the burst (src/server/memory-settle.ts), as it logged them
    const givenBack = memoryGivenBack(server.proc.stderr);
    const peakRss = Math.max(memMb(server.proc.pid, 'VmHWM'), peakSampled);
    session.close();
    const ratio = median(during) / median(quiet);
    const tagOk = (attacks.tagFrames ?? []).every((f) => f.closed && f.ms < AIM_TAG_MS);
    const settledAim = Math.max(startRss + AIM_SETTLED_OVER_MB, startRss * AIM_SETTLED_RATIO);
    return {
      peakRssMb: round(peakRss),
      startRssMb: round(startRss),
      afterRssMb: round(afterRss),
      settledRssMb: round(settledRss),
      memoryGivenBack: givenBack,
      clientRoundMs: {
        quiet: { median: round(median(quiet)), p95: round(p95(quiet)), rounds: quiet.length },
        underAttack: { median: round(median(during)), p95: round(p95(during)), rounds: during.length },
        ratio: round(ratio, 2),
      },
      attacks,
      aims: { peakRssMb: AIM_RSS_MB, latencyRatio: AIM_LATENCY_RATIO, tagFrameMs: AIM_TAG_MS, settledRssMb: round(settledAim) },
      meetsAim: peakRss < AIM_RSS_MB && ratio < AIM_LATENCY_RATIO && tagOk,
      // issue 9's last part, apart: memory back near its start 15 s after the attacks
      settledMeetsAim: settledRss <= settledAim,
      how: 'one server, one process-sandbox worker; the client does info + execute --follow to the end per round; ' +
        'the attacks run from a child process (idle sockets from 127.0.0.2-51); RSS from /proc (VmHWM and 50 ms samples)',
    };
  } finally {
    await h.cleanup();
  }
}

// ---- the attacker (child process) ----

async function attack(port: number, token: string): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  const closeAll = (peers: RawPeer[]): void => peers.forEach((p) => p.socket.destroy());
  const timeClose = async (peer: RawPeer, frame: Buffer): Promise<{ ms: number; closed: boolean }> => {
    const t0 = performance.now();
    await new Promise<void>((r) => peer.socket.write(frame, () => r()));
    const sent = performance.now();
    const closed = await Promise.race([peer.closed.then(() => true), sleep(10_000).then(() => false)]);
    return { ms: round(performance.now() - (closed ? sent : t0)), closed };
  };

  // 2,000 idle sockets, kept open through the rest
  const idle: RawPeer[] = [];
  for (let i = 0; i < IDLE_SOCKETS; i++) idle.push(await rawPeer(port, { localAddress: `127.0.0.${2 + (i % 50)}` }).catch(() => undefined as never));
  result.idleSockets = { opened: idle.filter(Boolean).length };

  // empty maps: three before the hello, three after
  const maps = encodeFrame(emptyMaps(16 * 1024 * 1024 - 16));
  const mapTimes: unknown[] = [];
  for (let i = 0; i < 3; i++) mapTimes.push({ before: await timeClose(await rawPeer(port, { localAddress: '127.0.0.60' }), maps) });
  for (let i = 0; i < 3; i++) mapTimes.push({ after: await timeClose(await rawClient(port, token), maps) });
  result.emptyMapFrames = mapTimes;

  // 100 unauthenticated connections, each most of a 16 MiB frame
  const most = Buffer.alloc(15 * 1024 * 1024);
  most.writeUInt32BE(16 * 1024 * 1024, 0);
  const big = await Promise.all(Array.from({ length: 100 }, (_, i) => rawPeer(port, { localAddress: `127.0.1.${1 + (i % 50)}` })));
  big.forEach((p) => p.socket.write(most));
  const bigClosed = await Promise.all(big.map((p) => Promise.race([p.closed.then(() => true), sleep(10_000).then(() => false)])));
  result.partialFrames = { connections: 100, closed: bigClosed.filter(Boolean).length };
  closeAll(big);

  // roles: a forged log line, and 8 MiB
  const forged = await rawPeer(port, { localAddress: '127.0.0.61' });
  forged.send({ t: 'hello', role: 'client\n2030-01-01T00:00:00.000Z builder-server info: run finished', version: 1, nonce: Buffer.alloc(32) });
  const huge = await rawPeer(port, { localAddress: '127.0.0.61' });
  huge.send({ t: 'hello', role: 'r'.repeat(8 * 1024 * 1024), version: 1, nonce: Buffer.alloc(32) });
  await Promise.all([forged.closed, huge.closed]);
  result.roles = { closed: 2 };

  // 1,500 info requests, never read
  const deaf = await rawClient(port, token);
  deaf.socket.pause();
  deaf.socket.write(Buffer.concat(Array.from({ length: 1500 }, (_, i) => encodeFrame(encodeValue({ t: 'req', id: i, op: 'info' })))));
  await sleep(3000);
  result.unreadRequests = { sent: 1500, open: !deaf.isClosed() };
  deaf.socket.destroy();

  // tags: a 400 KiB bignum before (refused by size) and an 8 KiB one (refused by the walk), and 400 KiB after
  const req = (x: Buffer): Buffer => encodeFrame(cborMap([['t', encodeValue('req')], ['id', encodeValue(1)], ['op', encodeValue('info')], ['x', x]]));
  const hello = (x: Buffer): Buffer => encodeFrame(cborMap([['t', encodeValue('hello')], ['role', encodeValue('client')], ['version', encodeValue(1)], ['nonce', x]]));
  result.tagFrames = [
    { when: 'before hello, 400 KiB', ...(await timeClose(await rawPeer(port, { localAddress: '127.0.0.62' }), hello(bignum(400 * 1024)))) },
    { when: 'before hello, 8 KiB', ...(await timeClose(await rawPeer(port, { localAddress: '127.0.0.62' }), hello(bignum(8 * 1024)))) },
    { when: 'after hello, 400 KiB', ...(await timeClose(await rawClient(port, token), req(bignum(400 * 1024)))) },
  ];
  closeAll(idle.filter(Boolean));
  return result;
}

if (process.argv[2] === '--attacker' && import.meta.url === `file://${process.argv[1]}`) {
  attack(Number(process.argv[3]), process.argv[4]!).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stdout.write(`${JSON.stringify({ error: String(err) })}\n`);
      process.exit(1);
    },
  );
}
