// A worker that knows the token but not the rules: it speaks for runs that are not its own,
// sends artifacts twice, with bad or unstorable paths, announces more than it sends, goes on
// after the result, and tries to take over another worker's run. The server refuses each with
// its reason, stores what is sound, keeps no partial file and no open handle, and serves the
// well-behaved run on the same connection all along.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Harness, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { dial } from '../../src/protocol/dial.js';
import type { Connection } from '../../src/protocol/connection.js';
import type { HeldRun, Job, Message, Welcome } from '../../src/protocol/messages.js';

const t = suite('malicious worker');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

interface Raw { conn: Connection; welcome: Welcome; got: Message[]; next<T extends Message>(pred: (m: Message) => m is T, what: string): Promise<T> }

async function rawWorker(server: ServerHandle, name: string, platform: string, running: HeldRun[] = [], capacity = 1): Promise<Raw> {
  const { conn, welcome } = await dial({ host: '127.0.0.1', port: server.port, role: 'worker', token: h.token(server), worker: { name, platform, capacity, running } });
  const got: Message[] = [];
  let seen = 0;
  conn.on('message', (m) => got.push(m));
  conn.release();
  const next = <T extends Message>(pred: (m: Message) => m is T, what: string): Promise<T> => eventually(() => {
    const i = got.findIndex((m, k) => k >= seen && pred(m));
    if (i < 0) return undefined;
    seen = i + 1;
    return got[i] as T;
  }, 15_000, what);
  return { conn, welcome, got, next };
}

const isJob = (m: Message): m is Job => m.t === 'job';
const isAck = (uuid: string) => (m: Message): m is Extract<Message, { t: 'ack' }> => m.t === 'ack' && m.uuid === uuid;
const isRefused = (uuid: string) => (m: Message): m is Extract<Message, { t: 'refused' }> => m.t === 'refused' && m.uuid === uuid;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function sendArtifact(conn: Connection, uuid: string, path: string, data: Buffer, opts: { announce?: number; send?: number; end?: boolean } = {}): void {
  conn.send({ t: 'artifact', uuid, path, size: opts.announce ?? data.length, mode: 0o644 });
  const part = data.subarray(0, opts.send ?? data.length);
  if (part.length > 0) conn.send({ t: 'chunk', uuid, data: part });
  if (opts.end !== false) conn.send({ t: 'artifact-end', uuid, sha256: sha(data) });
}

const finished = (uuid: string, artifacts: number): Message => ({
  t: 'finished', uuid, result: { kind: 'exited', code: 0 }, lastSeq: -1, stats: {}, refusals: [], artifacts,
});

/** Every file under dir, relative to it. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)))
    .sort();
}

/** The files the server process has open under dir. */
function openFilesUnder(pid: number, dir: string): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      return target.startsWith(dir) && !/state\.db|server\.lock/.test(target) ? [target] : [];
    } catch {
      return [];
    }
  });
}

interface RunJson { uuid: string; dir: string; refusals: Array<{ path: string; reason: string }>; result: { kind: string } }

t('bad, unstorable, duplicate and incomplete artifacts are refused with their reason; the rest is stored and the connection goes on', withTimeout(60_000, async () => {
  const server = await h.server();
  await h.client(server, ['schedule', 'a', 'evil', h.script('a', 'true\n')]);
  await h.client(server, ['schedule', 'b', 'evil', h.script('b', 'true\n')]);
  const w = await rawWorker(server, 'evil-1', 'evil', [], 2);
  const first = await w.next(isJob, 'the first job');
  const second = await w.next(isJob, 'the second job');
  const [ja, jb] = first.name === 'a' ? [first, second] : [second, first];
  const u = ja.uuid;
  const ok = Buffer.from('fine\n');
  const long = 'n'.repeat(300);
  const deep = `${'d/'.repeat(2100)}f`;
  // first a name too long to create, paused before its end: the other run must go on meanwhile
  sendArtifact(w.conn, u, long, ok, { end: false });
  w.conn.send({ t: 'output', uuid: jb.uuid, seq: 0, lines: [[1, Buffer.from('b runs on')]] });
  w.conn.send(finished(jb.uuid, 0));
  await w.next(isAck(jb.uuid), 'the other run on the same worker to be stored');
  w.conn.send({ t: 'artifact-end', uuid: u, sha256: sha(ok) });
  sendArtifact(w.conn, u, './ok.txt', ok);
  sendArtifact(w.conn, u, 'd//x', Buffer.from('x'));
  sendArtifact(w.conn, u, 'ok.txt', ok); // the same path again
  sendArtifact(w.conn, u, '../escape', ok);
  sendArtifact(w.conn, u, 'sub/../../../../outside', ok); // a path out through parents
  sendArtifact(w.conn, u, '/etc/builder-evil', ok);
  sendArtifact(w.conn, u, '.', ok);
  sendArtifact(w.conn, u, '', ok);
  sendArtifact(w.conn, u, 'x/', ok);
  sendArtifact(w.conn, u, 'd', ok); // a file where a directory is
  sendArtifact(w.conn, u, 'ok.txt/inner', ok); // under a file
  sendArtifact(w.conn, u, deep, ok);
  sendArtifact(w.conn, u, 'corrupt', ok, { announce: 3 });
  sendArtifact(w.conn, u, 'half', Buffer.alloc(100_000, 1), { send: 10_000, end: false }); // abandoned: the next one begins
  sendArtifact(w.conn, u, 'last', Buffer.from('last'));
  sendArtifact(w.conn, u, 'never-sent', Buffer.alloc(1), { announce: 2 ** 31, end: false }); // announced, then finished
  w.conn.send({ t: 'chunk', uuid: u, data: Buffer.alloc(1000, 2) });
  w.conn.send(finished(u, 17));
  await w.next(isAck(u), 'the run stored');
  // after the result: its uuid is no longer this worker's to speak for
  w.conn.send({ t: 'chunk', uuid: u, data: Buffer.from('late') });
  const late = await w.next(isRefused(u), 'a late chunk refused');
  assert.match(late.reason, /not held by you/);

  const [run] = await h.history<RunJson>(server, 'a');
  const meta = JSON.parse(readFileSync(join(run!.dir, 'run.json'), 'utf8'));
  assert.equal(meta.artifacts.map((a: { path: string; size: number }) => [a.path, a.size]), [['ok.txt', 5], ['d/x', 1], ['last', 4]]);
  assert.equal(filesUnder(join(run!.dir, 'artifacts')), ['d/x', 'last', 'ok.txt'], 'the files on disk are the record');
  const reasons = Object.fromEntries(meta.refusals.map((r: { path: string; reason: string }) => [r.path.length > 60 ? `${r.path.slice(0, 4)}…${r.path.length}` : r.path, r.reason]));
  assert.match(reasons[`nnnn…${long.length}`], /longer than 255 bytes/);
  assert.match(reasons[`d/d/…${deep.length}`], /longer than 4096 bytes/);
  assert.match(reasons['ok.txt'], /sent twice/);
  assert.match(reasons['../escape'], /"\.\."/);
  assert.match(reasons['sub/../../../../outside'], /"\.\."/);
  assert.match(reasons['/etc/builder-evil'], /absolute/);
  assert.match(reasons['.'], /names no file/);
  assert.match(reasons[''], /empty/);
  assert.match(reasons['x/'], /ends with "\/"/);
  assert.match(reasons.d, /a file where a directory is/);
  assert.match(reasons['ok.txt/inner'], /a directory where a file is/);
  assert.match(reasons.corrupt, /corrupted in transfer/);
  assert.match(reasons.half, /incomplete: 10000 of 100000 bytes arrived/);
  assert.match(reasons['never-sent'], /incomplete: 1001 of 2147483648 bytes arrived/);
  assert.not.ok(existsSync('/etc/builder-evil'));
  assert.not.ok(existsSync(join(server.dir, 'outside')) || existsSync(h.path('outside')) || existsSync(join(server.dir, '..', 'escape')));
  assert.equal(filesUnder(join(server.dir, 'incoming')), [], 'nothing half-received is left');
  assert.equal(openFilesUnder(server.proc.pid, server.dir), [], 'no file handle kept open');
  assert.ok(server.proc.running);
}));

t('artifacts of many megabytes are checked whole: stored with their sha256, refused when a byte differs or some are missing', withTimeout(60_000, async () => {
  const server = await h.server();
  await h.client(server, ['schedule', 'big', 'evil', h.script('big', 'true\n')]);
  const w = await rawWorker(server, 'evil-big', 'evil');
  const job = await w.next(isJob, 'the job');
  const u = job.uuid;
  // 11 MiB and a bit in frames of 1 MiB: several of the server's 4 MiB writes and a part-filled last one
  const data = Buffer.alloc(11 * 1024 * 1024 + 12345);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i);
  const inFrames = (path: string, body: Buffer, sha256: string, send = body.length): void => {
    w.conn.send({ t: 'artifact', uuid: u, path, size: body.length, mode: 0o644 });
    for (let off = 0; off < send; off += 1 << 20) w.conn.send({ t: 'chunk', uuid: u, data: body.subarray(off, Math.min(send, off + (1 << 20))) });
    w.conn.send({ t: 'artifact-end', uuid: u, sha256 });
  };
  inFrames('whole.bin', data, sha(data));
  const flipped = Buffer.from(data);
  flipped.writeUInt8(flipped.readUInt8(9 * 1024 * 1024 + 7) ^ 1, 9 * 1024 * 1024 + 7); // in the third batch: the hash, not the size, tells
  inFrames('flipped.bin', flipped, sha(data));
  inFrames('short.bin', data, sha(data), 8 * 1024 * 1024);
  w.conn.send(finished(u, 3));
  await w.next(isAck(u), 'the run stored');

  const [run] = await h.history<RunJson>(server, 'big');
  const meta = JSON.parse(readFileSync(join(run!.dir, 'run.json'), 'utf8'));
  assert.equal(meta.artifacts.map((a: { path: string; size: number; sha256: string }) => [a.path, a.size, a.sha256]), [['whole.bin', data.length, sha(data)]]);
  assert.ok(readFileSync(join(run!.dir, 'artifacts', 'whole.bin')).equals(data), 'the stored file is what was sent');
  const reasons = Object.fromEntries(meta.refusals.map((r: { path: string; reason: string }) => [r.path, r.reason]));
  assert.match(reasons['flipped.bin'], new RegExp(`corrupted in transfer: .* got ${data.length} bytes sha256 ${sha(flipped)}`));
  assert.match(reasons['short.bin'], /corrupted in transfer: .* got 8388608 bytes/);
  assert.equal(filesUnder(join(run!.dir, 'artifacts')), ['whole.bin']);
}));

t('foreign runs, duplicate results and takeovers are refused; only the run\'s own worker, with its secret, re-attaches', withTimeout(60_000, async () => {
  const env = { BUILDER_DEAD_AFTER_MS: '1500', BUILDER_HEARTBEAT_MS: '300' };
  const server = await h.server({ args: ['--lease', '30'], env });
  await h.client(server, ['schedule', 'owned', 'p', h.script('o', 'true\n')]);
  const owner = await rawWorker(server, 'owner', 'p');
  const job = await owner.next(isJob, 'the job');
  assert.ok(job.secret && job.secret.length >= 16, 'a per-run secret comes with the job');
  const info = await h.info(server);
  assert.not.ok(JSON.stringify(info).includes(job.secret!), 'the secret is not shown to clients');

  // another worker speaks for the run: refused, and the run is untouched
  const thief = await rawWorker(server, 'thief', 'p');
  thief.conn.send({ t: 'output', uuid: job.uuid, seq: 0, lines: [[1, Buffer.from('forged line')]] });
  thief.conn.send({ t: 'artifact', uuid: job.uuid, path: 'forged', size: 1, mode: 0o644 });
  thief.conn.send(finished(job.uuid, 1));
  await thief.next(isRefused(job.uuid), 'a foreign finished refused');

  // the owner goes away; others claim its run by uuid (shown by info): by another name, by its
  // name without the secret, by its name with a wrong one
  owner.conn.close('gone');
  await eventually(async () => (await h.info(server)).workers.every((x: { name: string }) => x.name !== 'owner'), 10_000, 'the owner to be gone');
  for (const [name, secret] of [['thief-2', job.secret], ['owner', undefined], ['owner', 'x'.repeat(32)]] as const) {
    const claim = await rawWorker(server, name, 'p', [{ uuid: job.uuid, lastSeq: -1, finished: false, ...(secret ? { secret } : {}) }]);
    assert.equal(claim.welcome.attach, [], `${name} with ${secret ? 'a secret' : 'no secret'} does not re-attach`);
    assert.equal(claim.welcome.abandon, [job.uuid]);
    claim.conn.close('done');
  }
  await server.proc.waitFor(/claimed a run it was not given/);

  const back = await rawWorker(server, 'owner', 'p', [{ uuid: job.uuid, lastSeq: -1, finished: false, secret: job.secret! }]);
  assert.equal(back.welcome.attach, [{ uuid: job.uuid, haveSeq: -1 }]);
  back.conn.send({ t: 'output', uuid: job.uuid, seq: 0, lines: [[1, Buffer.from('real line')]] });
  back.conn.send(finished(job.uuid, 0));
  await back.next(isAck(job.uuid), 'the ack');
  back.conn.send(finished(job.uuid, 0)); // a duplicate result
  await back.next(isRefused(job.uuid), 'the duplicate result refused');
  const runs = await h.history<RunJson>(server, 'owned');
  assert.is(runs.length, 1, 'stored once');
  assert.equal(readFileSync(join(runs[0]!.dir, 'console'), 'utf8').replace(/^\d+ /gm, ''), 'real line\n');
  assert.equal(filesUnder(join(runs[0]!.dir, 'artifacts')), []);
  assert.ok(statSync(runs[0]!.dir).isDirectory());
}));

t('a worker that vanishes mid-artifact leaves no partial file; its run ends with the artifact refused as incomplete', withTimeout(60_000, async () => {
  const server = await h.server({ args: ['--lease', '1'] });
  await h.client(server, ['schedule', 'cut', 'p', h.script('c', 'true\n'), '--period', 'never']);
  await h.client(server, ['execute', 'cut']);
  const w = await rawWorker(server, 'cut-1', 'p');
  const job = await w.next(isJob, 'the job');
  sendArtifact(w.conn, job.uuid, 'whole', Buffer.from('whole'));
  sendArtifact(w.conn, job.uuid, 'cut-short', Buffer.alloc(50_000, 3), { send: 20_000, end: false });
  await eventually(() => filesUnder(join(server.dir, 'incoming')).includes(join(job.uuid, 'artifacts', 'cut-short')), 10_000, 'the partial file to be on disk');
  w.conn.close('vanish');
  await eventually(() => !filesUnder(join(server.dir, 'incoming')).includes(join(job.uuid, 'artifacts', 'cut-short')), 10_000, 'the partial file removed');
  const [run] = await eventually(async () => {
    const r = await h.history<RunJson>(server, 'cut');
    return r.length > 0 && r;
  }, 15_000, 'the lease to end the run');
  assert.equal(filesUnder(join(run!.dir, 'artifacts')), ['whole']);
  assert.ok(run!.refusals.some((r) => r.path === 'cut-short' && /incomplete: 20000 of 50000 bytes arrived/.test(r.reason)), JSON.stringify(run!.refusals));
  assert.equal(openFilesUnder(server.proc.pid, server.dir), []);
}));

t.run();
