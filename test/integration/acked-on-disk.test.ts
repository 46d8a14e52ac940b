// Acknowledged means on disk: the server's system calls, traced with strace, show the fsync of
// the database's WAL (and of a result's files) before the reply to a schedule change, before a
// job is sent to its worker and before the ack of a stored result go out on the socket.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { need } from '../helpers/env.js';
import { Harness, Proc, bin, withTimeout } from '../helpers/processes.js';
import { dial } from '../../src/protocol/dial.js';
import type { Message } from '../../src/protocol/messages.js';

const t = suite('acknowledged means on disk');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const hasStrace = spawnSync('strace', ['-V']).status === 0;

/** The traced calls in the order they returned; an interrupted call is joined with its end. */
function completed(trace: string): string[] {
  const pending = new Map<string, string>();
  const out: string[] = [];
  for (const line of trace.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, text] = m as unknown as [string, string, string];
    if (text.endsWith('<unfinished ...>')) pending.set(pid, text.slice(0, -'<unfinished ...>'.length));
    else if (text.startsWith('<...')) {
      out.push((pending.get(pid) ?? '') + text.replace(/^<\.\.\. \w+ resumed>/, ''));
      pending.delete(pid);
    } else out.push(text);
  }
  return out;
}

t('the WAL is fsynced before a schedule change is answered, a run\'s row before its job is sent, and a result\'s files and row before its ack', withTimeout(60_000, async () => {
  if (!need('strace', hasStrace, 'apt-get install strace (.ci/run installs it)')) return;
  const dir = h.path('state');
  const traceFile = h.path('trace');
  const child = spawn('strace', ['-f', '-yy', '-s', '64', '-e', 'trace=fsync,fdatasync,write,writev,pwrite64,sendto', '-o', traceFile,
    process.execPath, bin('server'), '--dir', dir, '--config-dir', h.path('etc'), '--port', '0'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const server = new Proc(child, 'server under strace');
  try {
    const port = Number((await server.waitFor(/listening address=127\.0\.0\.1:(\d+)/, 30_000))[1]);
    const token = readFileSync(`${dir}/token`, 'utf8').trim();
    const client = await dial({ host: '127.0.0.1', port, role: 'client', token });
    const replies: Message[] = [];
    client.conn.on('message', (m) => replies.push(m));
    client.conn.release();
    client.conn.send({ t: 'req', id: 1, op: 'schedule', name: 'durable', platform: 'p', script: 'true\n' });
    const worker = await dial({ host: '127.0.0.1', port, role: 'worker', token, worker: { name: 'w', platform: 'p', capacity: 1, running: [] } });
    const got: Message[] = [];
    worker.conn.on('message', (m) => got.push(m));
    worker.conn.release();
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(cond(), what);
    };
    await until(() => replies.some((m) => m.t === 'res' && m.id === 1), 'the schedule reply');
    await until(() => got.some((m) => m.t === 'job'), 'the job');
    const job = got.find((m) => m.t === 'job') as Extract<Message, { t: 'job' }>;
    worker.conn.send({ t: 'finished', uuid: job.uuid, result: { kind: 'exited', code: 0 }, lastSeq: -1, stats: {}, refusals: [], artifacts: 0 });
    await until(() => got.some((m) => m.t === 'ack'), 'the ack');
    const clientPort = client.conn.socket.localPort!;
    const workerPort = worker.conn.socket.localPort!;
    client.conn.close('done');
    worker.conn.close('done');
    // the server itself (strace's child) stops; strace ends with it
    const traced = Number(readFileSync(`/proc/${server.pid}/task/${server.pid}/children`, 'utf8').trim().split(' ')[0]);
    process.kill(traced, 'SIGTERM');
    await server.exited;
    const calls = completed(readFileSync(traceFile, 'utf8'));
    const toSocket = (peerPort: number) => (c: string) => /^(write|writev|sendto)\(\d+<TCP/.test(c) && c.includes(`->127.0.0.1:${peerPort}]`);
    const isWalWrite = (c: string) => /^(pwrite64|write|writev)\(\d+<[^>]*state\.db-wal>/.test(c);
    const isWalSync = (c: string) => /^f(data)?sync\(\d+<[^>]*state\.db-wal>/.test(c);
    /** the last WAL write before `end`, and whether a WAL fsync follows it before `end` */
    const syncedBefore = (end: number): boolean => {
      let lastWrite = -1;
      for (let i = 0; i < end; i++) if (isWalWrite(calls[i]!)) lastWrite = i;
      assert.ok(lastWrite >= 0, 'the change was written to the WAL');
      return calls.slice(lastWrite, end).some(isWalSync);
    };
    // the reply is the client socket's last write (after the hello's challenge and welcome)
    const clientWrites = calls.map((c, i) => [c, i] as const).filter(([c]) => toSocket(clientPort)(c));
    const reply = clientWrites.at(-1)![1];
    assert.ok(syncedBefore(reply), `no fsync of state.db-wal between the schedule's WAL write and its reply:\n${calls.slice(Math.max(0, reply - 15), reply + 1).join('\n')}`);
    const workerWrites = calls.map((c, i) => [c, i] as const).filter(([c]) => toSocket(workerPort)(c));
    const ack = workerWrites.at(-1)![1];
    assert.ok(syncedBefore(ack), 'the finished run\'s row is fsynced before the ack');
    // group commit: the run's row is committed without its own fsync, and the job waits for the shared one
    // the frame's CBOR as strace prints it: key "t" (0x61 't'), value "job" (0x63 'c' job), key "uuid" (0x64 'd')
    const jobWrite = workerWrites.find(([c]) => c.includes('atcjobduuid'));
    assert.ok(jobWrite, `the job frame is among the writes to the worker:\n${workerWrites.map(([c]) => c).join('\n')}`);
    assert.ok(syncedBefore(jobWrite[1]), 'the new run\'s row is fsynced before its job is sent');
    const runJsonSync = calls.findIndex((c) => /^f(data)?sync\(\d+<[^>]*\/run\.json>/.test(c));
    assert.ok(runJsonSync >= 0 && runJsonSync < ack, 'run.json is fsynced before the ack');
  } finally {
    server.killGroup();
  }
}));

t.run();
