// Peers that do not play by the rules, against a real server process over TCP (issue 9,
// "Nothing before authentication costs more than a few kilobytes", items 2, 6, 8, 9; issue 14's
// CBOR tags and a request in the auth's packet): each costs little, is refused with a reason, and
// everyone else goes on.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync } from 'node:fs';
import { Harness, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { encodeFrame } from '../../src/protocol/framing.js';
import { bignum, cborMap, emptyMaps, rawClient, rawFrame, rawPeer } from '../helpers/raw-peer.js';

const t = suite('hostile peers');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const memMb = (pid: number, key: 'VmRSS' | 'VmHWM'): number =>
  Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))![1]) / 1024;

async function infoOk(server: ServerHandle): Promise<void> {
  const r = await h.client(server, ['info', '--json']);
  assert.is(r.code, 0, r.stderr);
}

t('before the hello only small frames are read: a frame announcing 1 MiB is refused at its header', withTimeout(20_000, async () => {
  const server = await h.server();
  const peer = await rawPeer(server.port);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1 << 20);
  peer.socket.write(Buffer.concat([header, Buffer.alloc(60_000)]));
  await peer.closed;
  await server.proc.waitFor(/connection closed .*frame of 1048576 bytes announced, maximum is 16384/);
  await infoOk(server);
}));

t('a connection that has not said hello within 5 s is closed', withTimeout(20_000, async () => {
  const server = await h.server();
  const peer = await rawPeer(server.port);
  const t0 = Date.now();
  await peer.closed;
  const took = Date.now() - t0;
  assert.ok(took < 7000, `closed after ${took} ms`);
  await server.proc.waitFor(/hello refused: no hello within 5 s/);
}));

t('unauthenticated connections are capped per address, one log line per refusal; others still get in', withTimeout(30_000, async () => {
  const server = await h.server();
  const idle = await Promise.all(Array.from({ length: 64 }, () => rawPeer(server.port, { localAddress: '127.0.0.2' })));
  const refused = await Promise.all(Array.from({ length: 3 }, () => rawPeer(server.port, { localAddress: '127.0.0.2' })));
  await Promise.all(refused.map((p) => p.closed));
  await sleep(200);
  assert.is(idle.filter((p) => p.isClosed()).length, 0, 'the first 64 stay');
  const lines = server.proc.stderr.split('\n').filter((l) => /connection refused: 64 unauthenticated connections open from this address/.test(l));
  assert.is(lines.length, 3, 'one line per refusal');
  assert.match(lines[0]!, /peer=127\.0\.0\.2:\d+/);
  // past the total cap, the oldest of the busiest address makes room: a newcomer is not starved
  const more: Array<Awaited<ReturnType<typeof rawPeer>>> = [];
  for (const a of [3, 4, 5, 6]) for (let i = 0; i < 60; i++) more.push(await rawPeer(server.port, { localAddress: `127.0.0.${a}` }));
  await infoOk(server);
  await server.proc.waitFor(/connection dropped: 256 unauthenticated connections open \(the most is 256\)/);
  [...idle, ...more].forEach((p) => p.socket.destroy());
}));

t('an authenticated frame of 16.7 million empty maps is refused before decoding: no gigabyte, no stall, the worker stays', withTimeout(60_000, async () => {
  const server = await h.server();
  const worker = h.worker(server, 'p');
  await eventually(async () => (await h.info(server)).workers?.length === 1, 15_000, 'the worker');
  // the bare array: refused at its first byte, before the rest of the frame is buffered
  const bare = await rawClient(server.port, h.token(server));
  bare.socket.write(rawFrame(emptyMaps(16 * 1024 * 1024 - 16)));
  await bare.closed;
  await server.proc.waitFor(/is not a message: a message is a CBOR map, this starts with major type 4/);
  // the same array as a field of a message: refused by the object budget, before decoding
  const peer = await rawClient(server.port, h.token(server));
  const payload = cborMap([['t', encodeValue('req')], ['x', emptyMaps(16 * 1024 * 1024 - 64)]]);
  const t0 = Date.now();
  peer.socket.write(rawFrame(payload));
  await peer.closed;
  const took = Date.now() - t0;
  await server.proc.waitFor(/undecodable frame: malformed CBOR at byte \d+ of \d+: more than \d+ objects/);
  assert.ok(took < 3000, `refused after ${took} ms`);
  const hwm = memMb(server.proc.pid, 'VmHWM');
  assert.ok(hwm < 250, `server peak RSS ${hwm} MB`);
  await sleep(1000);
  assert.not.match(worker.stderr, /disconnected|lost/);
  assert.not.match(server.proc.stderr, /worker disconnected/);
}));

t('CBOR tags are refused at decode time, before and after the hello: a 400 KiB bignum costs milliseconds', withTimeout(30_000, async () => {
  const server = await h.server();
  // before: a hello whose nonce is a tagged value
  const pre = await rawPeer(server.port);
  pre.socket.write(rawFrame(cborMap([['t', encodeValue('hello')], ['role', encodeValue('client')], ['version', encodeValue(1)], ['nonce', bignum(8000)]])));
  await pre.closed;
  await server.proc.waitFor(/undecodable frame: malformed CBOR at byte \d+ of \d+: tagged value \(tag 2\)/);
  // after: a request holding a 400 KiB bignum
  const peer = await rawClient(server.port, h.token(server));
  const t0 = Date.now();
  peer.socket.write(rawFrame(cborMap([['t', encodeValue('req')], ['id', encodeValue(1)], ['op', encodeValue('info')], ['x', bignum(400 * 1024)]])));
  await peer.closed;
  const took = Date.now() - t0;
  assert.ok(took < 1000, `closed after ${took} ms`);
  // and a date (tag 1) too: no tag at all is taken
  const dated = await rawClient(server.port, h.token(server));
  dated.socket.write(rawFrame(cborMap([['t', encodeValue('req')], ['id', encodeValue(1)], ['op', encodeValue('info')], ['x', Buffer.from([0xc1, 0x1a, 0, 0, 0, 1])]])));
  await dated.closed;
  await server.proc.waitFor(/tagged value \(tag 1\)/);
  await infoOk(server);
}));

t('text from the network is escaped and cut in log lines: no forged line, no 15 KiB line', withTimeout(20_000, async () => {
  const server = await h.server();
  const forged = '2030-01-01T00:00:00.000Z builder-server info: run finished run=forged';
  const peer = await rawPeer(server.port);
  peer.send({ t: `x\n${forged}\n${'y'.repeat(15_000)}`, role: 'client' });
  await peer.closed;
  await server.proc.waitFor(/unknown message type/);
  const line = server.proc.stderr.split('\n').find((l) => l.includes('unknown message type'))!;
  assert.ok(line.length < 1000, `a log line of ${line.length} chars`);
  assert.not.ok(server.proc.stderr.split('\n').some((l) => l.startsWith('2030-01-01')), 'a forged log line');
}));

t('a request sent in the same packet as the auth frame is answered', withTimeout(20_000, async () => {
  const server = await h.server();
  const peer = await rawClient(server.port, h.token(server), encodeFrame(encodeValue({ t: 'req', id: 41, op: 'info' })));
  const res = await peer.next((m) => m.t === 'res' && m.id === 41, 5000);
  assert.is(res.ok, true);
}));

t('a request with a field of the wrong type gets an error naming the field; the connection stays open', withTimeout(20_000, async () => {
  const server = await h.server();
  const peer = await rawClient(server.port, h.token(server));
  peer.send({ t: 'req', id: 7, op: 'schedule', name: 5, platform: 'p', script: 'true' });
  const res = await peer.next((m) => m.t === 'res' && m.id === 7);
  assert.is(res.ok, false);
  assert.is(res.code, 'PROTOCOL');
  assert.is(res.message, 'request schedule.name: expected a string, got number');
  peer.send({ t: 'req', id: 'seven', op: 'info' });
  const err = await peer.next((m) => m.t === 'error');
  assert.match(String(err.message), /request info.id: expected an integer/);
  peer.send({ t: 'req', id: 8, op: 'info' });
  assert.is((await peer.next((m) => m.t === 'res' && m.id === 8)).ok, true);
}));

t('a client that sends 1,500 info requests and never reads does not make the server buffer them', withTimeout(60_000, async () => {
  const server = await h.server();
  const setup = await rawClient(server.port, h.token(server));
  const jobs = 400;
  for (let i = 0; i < jobs; i++) setup.send({ t: 'req', id: i, op: 'schedule', name: `job-${i}-${'n'.repeat(40)}`, platform: 'p', script: 'true\n', period: 'never' });
  await setup.next((m) => m.t === 'res' && m.id === jobs - 1, 30_000);
  setup.socket.destroy();
  await sleep(500);
  const before = memMb(server.proc.pid, 'VmRSS');
  const peer = await rawClient(server.port, h.token(server));
  peer.socket.pause();
  const reqs: Buffer[] = [];
  for (let i = 0; i < 1500; i++) reqs.push(encodeFrame(encodeValue({ t: 'req', id: i, op: 'info' })));
  peer.socket.write(Buffer.concat(reqs));
  await sleep(4000);
  const after = memMb(server.proc.pid, 'VmRSS');
  assert.ok(after - before < 60, `server RSS grew by ${Math.round(after - before)} MB (from ${Math.round(before)} MB)`);
  await infoOk(server);
}));

t('an observer paused for 6 s keeps its connection and gets every line and the end', withTimeout(60_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const script = h.script('slow', 'i=0\nwhile [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); sleep 0.2; done\nexit 3\n');
  assert.is((await h.client(server, ['schedule', 'slow', 'p', script, '--period', 'never'])).code, 0);
  const follow = h.clientProc(server, ['execute', 'slow', '--follow']);
  await follow.waitFor(/line 2/);
  process.kill(follow.pid, 'SIGSTOP');
  await sleep(6000);
  process.kill(follow.pid, 'SIGCONT');
  const { code } = await follow.exited;
  assert.is(code, 3, follow.stderr);
  assert.match(follow.stdout + follow.stderr, /line 49/);
  assert.not.match(server.proc.stderr, /no frame from peer/);
}));

t.run();
