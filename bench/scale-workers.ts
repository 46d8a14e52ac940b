// A child process of the scale bench holding many simulated workers: each is one real worker
// connection (hello + auth with the token, src/protocol/dial.ts) that answers every job at once
// with one console line and `finished`, as a worker whose build takes no time. The parent
// (bench/scale.ts) forks it and talks over IPC:
//   parent -> child  {t:'start', host, port, token, platform, names, capacity, chatty?, paused?}
//   child -> parent  {t:'connected', n}  once every connection is welcomed
//   parent -> child  {t:'report'}  ->  {t:'report', received: [job, wall ms][], acks, errors}
//   parent -> child  {t:'stop'}    closes everything and exits
// A job's arrival is stamped with performance.timeOrigin + performance.now(): the same clock as
// the parent's, to a fraction of a millisecond, on one machine.
// `chatty`: a job named like that streams console batches for `chattyMs` as fast as the socket
// drains (the slow-observer figures). `paused`: the connections stop reading once welcomed (a
// worker that reads slowly).
import { dial } from '../src/protocol/dial.js';
import type { Connection } from '../src/protocol/connection.js';
import type { Job } from '../src/protocol/messages.js';

interface Start {
  t: 'start';
  host: string;
  port: number;
  token: string;
  platform: string;
  names: string[];
  capacity: number;
  chatty?: string;
  chattyMs?: number;
  paused?: boolean;
}

const wall = (): number => performance.timeOrigin + performance.now();
const received: Array<[string, number]> = [];
let acks = 0;
const errors: string[] = [];
const conns: Connection[] = [];
const send = (m: unknown): void => void process.send!(m);

async function chatter(conn: Connection, job: Job, ms: number): Promise<void> {
  const end = Date.now() + ms;
  const line = Buffer.alloc(200, 'x');
  let seq = 0;
  const t0 = Date.now();
  while (Date.now() < end && !conn.closed) {
    const lines: Array<[number, Buffer]> = Array.from({ length: 100 }, () => [Date.now() - t0, line]);
    if (!conn.send({ t: 'output', uuid: job.uuid, seq, lines })) await conn.drained();
    seq += lines.length;
    // the server handles a worker's messages in order; leave it room to breathe between batches
    await new Promise((r) => setImmediate(r));
  }
  conn.send({
    t: 'finished', uuid: job.uuid, result: { kind: 'exited', code: 0 }, lastSeq: seq - 1, stats: {}, refusals: [], artifacts: 0,
  });
}

function answer(conn: Connection, job: Job, s: Start): void {
  received.push([job.name, wall()]);
  if (s.chatty !== undefined && job.name === s.chatty) {
    void chatter(conn, job, s.chattyMs ?? 5000).catch((err: unknown) => errors.push(String(err)));
    return;
  }
  conn.send({ t: 'output', uuid: job.uuid, seq: 0, lines: [[0, Buffer.from('ok')]] });
  conn.send({ t: 'finished', uuid: job.uuid, result: { kind: 'exited', code: 0 }, lastSeq: 0, stats: {}, refusals: [], artifacts: 0 });
}

async function start(s: Start): Promise<void> {
  let next = 0;
  const one = async (): Promise<void> => {
    for (let i = next++; i < s.names.length; i = next++) {
      const { conn } = await dial({
        host: s.host, port: s.port, role: 'worker', token: s.token, timeoutMs: 60_000,
        // a paused connection hears nothing; it must not give up on the server for that
        ...(s.paused ? { deadAfterMs: 3_600_000 } : {}),
        worker: { name: s.names[i]!, platform: s.platform, capacity: s.capacity, running: [] },
      });
      conn.on('message', (msg) => {
        if (msg.t === 'job') answer(conn, msg, s);
        else if (msg.t === 'ack') acks++;
      });
      conn.on('close', (reason) => {
        if (!stopping) errors.push(`${s.names[i]}: ${reason}`);
      });
      conn.release();
      if (s.paused) conn.socket.pause();
      conns.push(conn);
    }
  };
  // a few hellos at a time: the server answers each with an HMAC, a burst of thousands of
  // connects would only measure the listen backlog, and the server admits at most 64 connections
  // per address before their hello (src/server/admission.ts): 10 per process, up to 4 processes
  await Promise.all(Array.from({ length: 10 }, one));
  send({ t: 'connected', n: conns.length });
}

let stopping = false;
process.on('message', (m: { t: string }) => {
  if (m.t === 'start') {
    start(m as Start).catch((err: unknown) => {
      send({ t: 'failed', error: err instanceof Error ? err.message : String(err) });
    });
  } else if (m.t === 'report') {
    send({ t: 'report', received, acks, errors: errors.slice(0, 5), errorCount: errors.length });
  } else if (m.t === 'stop') {
    stopping = true;
    for (const c of conns) c.close('bench done');
    setTimeout(() => process.exit(0), 200).unref();
  }
});
// the parent going away ends us too
process.on('disconnect', () => process.exit(0));
