import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameError, FrameReader, encodeFrame } from '../../src/protocol/framing.js';
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';
import { parseMessage, ProtocolError } from '../../src/protocol/parse.js';
import { messages, requests, type Message } from '../../src/protocol/messages.js';
import { BuilderError, InfraError } from '../../src/common/errors.js';

test('frames split across chunks and joined in one come out whole', () => {
  const a = encodeFrame(encodeValue({ t: 'ping' }));
  const b = encodeFrame(encodeValue({ t: 'ack', uuid: 'x'.repeat(100) }));
  const all = Buffer.concat([a, b]);
  const reader = new FrameReader(1024);
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += 3) out.push(...reader.push(all.subarray(i, i + 3)));
  assert.is(out.length, 2);
  assert.equal(decodeValue(out[1]!), { t: 'ack', uuid: 'x'.repeat(100) });
});

test('an announced length over the maximum is refused before any allocation', () => {
  const reader = new FrameReader(1000);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(0xffffffff);
  assert.throws(() => reader.push(header), (e: unknown) => e instanceof FrameError && /4294967295 bytes announced, maximum is 1000/.test(e.message));
});

test('a frame that cannot be a message is refused at its first bytes, not after 16 MiB are buffered', () => {
  const head = (length: number, ...first: number[]): Buffer => {
    const b = Buffer.alloc(4 + first.length);
    b.writeUInt32BE(length, 0);
    Buffer.from(first).copy(b, 4);
    return b;
  };
  const refused = (chunk: Buffer): FrameError => {
    try {
      new FrameReader().push(chunk);
    } catch (err) {
      if (err instanceof FrameError) return err;
      throw err;
    }
    throw new Error('not refused');
  };
  // an array of 16.7 million items (0x9a: array, 4-byte count) in a 16 MiB frame: 5 bytes suffice
  const arr = refused(head(16 * 1024 * 1024, 0x9a, 0x00, 0xff, 0xff, 0xf0));
  assert.is(arr.code, 'FRAME_NOT_MESSAGE');
  assert.match(arr.message, /a message is a CBOR map, this starts with major type 4/);
  // a map of 100,000 fields (0xba: map, 4-byte count)
  assert.match(refused(head(1 << 20, 0xba, 0x00, 0x01, 0x86, 0xa0)).message, /a map of 100000 fields/);
  // a real message, fed one byte at a time, still comes out whole
  const reader = new FrameReader();
  const frame = encodeFrame(encodeValue({ t: 'ping' }));
  const out: Buffer[] = [];
  for (const byte of frame) out.push(...reader.push(Buffer.from([byte])));
  assert.equal(out.map((f) => decodeValue(Buffer.from(f))), [{ t: 'ping' }]);
});

test('decoded values are checked into typed messages, with where and what in the error', () => {
  const msg = parseMessage({ t: 'output', uuid: 'u', seq: 0, lines: [[5, Buffer.from('hi')]] });
  assert.is(msg.t, 'output');
  assert.throws(() => parseMessage({ t: 'output', uuid: 'u', seq: 'zero', lines: [] }), (e: unknown) =>
    e instanceof ProtocolError && e.message === 'output.seq: expected an integer, got string');
  assert.throws(() => parseMessage({ t: 'req', id: 1, op: 'format-disk' }), /request.op: expected one of schedule/);
  assert.throws(() => parseMessage({ t: 'finished', uuid: 'u', result: { kind: 'exploded' }, lastSeq: 0, artifacts: 0, stats: {}, refusals: [] }),
    /finished.result.kind: expected exited\|signalled/);
});

// ---- every message kind, written once as a typed value: the compiler checks the samples
// against the inferred types, the tests check them against the runtime specs ----
const nonce = Buffer.alloc(32, 7);
const uuid = '0b6c2a4e-8f3d-4c1a-9e7b-5d2f1a3c4b6d';
const samples: Message[] = [
  { t: 'hello', role: 'worker', version: 1, nonce, worker: { name: 'w1', platform: 'debian-12', capacity: 2, running: [{ uuid, lastSeq: 4, finished: true }] } },
  { t: 'hello', role: 'client', version: 1, nonce },
  { t: 'challenge', version: 1, nonce, proof: Buffer.from('proof') },
  { t: 'auth', mac: Buffer.from('mac') },
  { t: 'welcome', server: 'builder', dropped: false, attach: [{ uuid, haveSeq: 3 }], abandon: [uuid] },
  { t: 'error', code: 'AUTH', message: 'bad token', id: 3 },
  { t: 'ping' },
  { t: 'res', id: 1, ok: true, data: { queued: ['debian-12'], next: null } },
  { t: 'res', id: 2, ok: false, code: 'NO_JOB', message: 'no job named x' },
  { t: 'started', id: 1, uuid, job: 'hello', platform: 'debian-12' },
  { t: 'line', id: 1, uuid, ms: 12, data: Buffer.from('compiling\x00\xff') },
  { t: 'skipped', id: 1, uuid, count: 40 },
  { t: 'end', id: 1, uuid, result: { kind: 'signalled', signal: 9 } },
  { t: 'job', uuid, name: 'hello', platform: 'debian-12', script: Buffer.from('echo hi\n'), timeoutMs: 3_600_000, sourceDateEpoch: 1_700_000_000 },
  { t: 'job', uuid, name: 'hello', platform: 'debian-12', script: Buffer.from([0xff, 0x00, 0x0a]), timeoutMs: 1, sourceDateEpoch: 0, env: { TOKEN: 's3cr3t-value' } },
  { t: 'console-end', id: 1, uuid },
  { t: 'console-end', id: 1, uuid, error: 'cannot read the console' },
  { t: 'artifact-file', id: 2, path: 'out/hello.tar.gz', size: 5, mode: 0o644, sha256: 'cd'.repeat(32) },
  { t: 'artifact-data', id: 2, data: Buffer.from('hello') },
  { t: 'artifacts-end', id: 2 },
  { t: 'artifacts-end', id: 2, error: 'cannot read artifact x: ENOENT' },
  { t: 'output', uuid, seq: 10, lines: [[0, Buffer.from('a')], [5, Buffer.from('b')]] },
  { t: 'artifact', uuid, path: 'bin/hello', size: 5, mode: 0o755 },
  { t: 'chunk', uuid, data: Buffer.from('hello') },
  { t: 'artifact-end', uuid, sha256: 'ab'.repeat(32) },
  { t: 'finished', uuid, result: { kind: 'failed', message: 'no space', infra: true }, lastSeq: 11, stats: { cpuMs: 5 }, refusals: [{ path: '../x', reason: 'outside' }], artifacts: 1 },
  { t: 'ack', uuid },
  { t: 'refused', uuid, reason: 'not yours' },
  { t: 'cancel', uuid, reason: 'cancelled by a user' },
  { t: 'status', draining: true, diskShort: false, freePercent: 40, sandbox: 'docker' },
  { t: 'drain' },
  { t: 'req', id: 1, op: 'schedule', name: 'hello', platform: 'debian-12', script: Buffer.from('echo\n'), cron: '0 3 * * 1', tz: 'Europe/Berlin', timeoutSec: 60 },
  { t: 'req', id: 2, op: 'orb-build', name: 'solo5', package: 'solo5', period: 'weekly' },
  { t: 'req', id: 3, op: 'unschedule', name: 'hello' },
  { t: 'req', id: 4, op: 'reschedule', name: 'hello', next: '2026-01-31T03:00:00Z', period: 'hourly' },
  { t: 'req', id: 5, op: 'execute', name: 'hello', platform: 'debian-12', follow: true },
  { t: 'req', id: 6, op: 'info' },
  { t: 'req', id: 7, op: 'observe', uuid },
  { t: 'req', id: 8, op: 'observe-latest', job: 'hello' },
  { t: 'req', id: 9, op: 'drop-platform', platform: 'debian-12' },
  { t: 'req', id: 10, op: 'undrop-platform', platform: 'debian-12' },
  { t: 'req', id: 11, op: 'history', job: 'hello', limit: 5 },
  { t: 'req', id: 12, op: 'cancel', uuid },
  { t: 'req', id: 13, op: 'workers' },
  { t: 'req', id: 14, op: 'drain', worker: 'w1' },
  { t: 'req', id: 15, op: 'uploads', failed: true },
  { t: 'req', id: 16, op: 'upload-retry', all: true },
  { t: 'req', id: 17, op: 'templates' },
  { t: 'req', id: 18, op: 'render', name: 'solo5', platform: 'debian-12' },
  { t: 'req', id: 19, op: 'schedule', name: 'signed', platform: 'debian-12', script: Buffer.from('true\n'), sourceDateEpoch: 1_700_000_000,
    secrets: [{ name: 'TOKEN', value: 'hunter22' }] },
  { t: 'req', id: 20, op: 'compare', a: 'u1', b: 'u2' },
  { t: 'req', id: 21, op: 'verify', name: 'j', platform: 'p' },
  { t: 'req', id: 22, op: 'repro-record', job: 'j' },
  // credentials per role (issue 9)
  { t: 'hello', role: 'worker', version: 1, nonce, credential: 'w1', worker: { name: 'w1', platform: 'p', capacity: 1, running: [] } },
  { t: 'req', id: 23, op: 'token-add', kind: 'reader', name: 'dash' },
  { t: 'req', id: 24, op: 'token-list' },
  { t: 'req', id: 25, op: 'token-revoke', name: 'dash' },
  { t: 'req', id: 33, op: 'run-console', uuid, follow: true },
  { t: 'req', id: 34, op: 'run-result', uuid },
  { t: 'req', id: 35, op: 'fetch-artifacts', uuid, paths: ['out/hello.tar.gz', 'doc'] },
  { t: 'req', id: 36, op: 'prune-plan', keepRuns: 20 },
  { t: 'req', id: 37, op: 'prune', keepDays: 30 },
  // info's summary and pages (issue 11)
  { t: 'req', id: 38, op: 'info-summary', due: 5 },
  { t: 'req', id: 39, op: 'info-page', limit: 100, after: 'hello' },
];
const where = (m: Message): string => (m.t === 'req' ? `request ${m.op}` : m.t);
const roundTrip = (m: unknown): Message => parseMessage(decodeValue(encodeFrame(encodeValue(m)).subarray(4)));

test('every message kind and request op has a sample here', () => {
  assert.equal(new Set(samples.map((m) => m.t)), new Set([...Object.keys(messages), 'req']));
  assert.equal(new Set(samples.flatMap((m) => (m.t === 'req' ? [m.op] : []))), new Set(Object.keys(requests)));
});

test('a valid message of each kind comes back equal through encode, frame, decode and parse', () => {
  for (const m of samples) assert.equal(roundTrip(m), m, where(m));
});

test('a script sent as text (older peers) arrives as its UTF-8 bytes', () => {
  const m = roundTrip({ t: 'req', id: 1, op: 'schedule', name: 'n', platform: 'p', script: 'écho\n' });
  assert.ok(m.t === 'req' && m.op === 'schedule' && Buffer.isBuffer(m.script) && m.script.equals(Buffer.from('écho\n', 'utf8')));
});

test('fields the spec does not know are dropped, absent and null optional fields are left out', () => {
  assert.equal(roundTrip({ t: 'ack', uuid, extra: { a: 1 } }), { t: 'ack', uuid });
  assert.equal(roundTrip({ t: 'error', code: 'X', message: 'm', id: null }), { t: 'error', code: 'X', message: 'm' });
});

test('a field of the wrong type is refused with a message naming the message and the field', () => {
  // a value of the wrong type for every field: a map where a scalar or array is expected, else a string
  const wrong = (v: unknown): unknown => (typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) ? 'x' : { x: 1 });
  let checked = 0;
  for (const m of samples) {
    for (const [key, value] of Object.entries(m)) {
      if (key === 't' || key === 'op' || key === 'data') continue;
      const bad = { ...m, [key]: wrong(value) };
      assert.throws(() => roundTrip(bad), (e: unknown) => e instanceof ProtocolError && e.message.startsWith(`${where(m)}.${key}: expected `),
        `${where(m)}.${key}`);
      checked++;
    }
  }
  assert.ok(checked > 100, `${checked} fields checked`);
});

test('nested mistakes name their whole path', () => {
  const says = (m: unknown, message: string): void =>
    assert.throws(() => roundTrip(m), (e: unknown) => e instanceof ProtocolError && e.code === 'PROTOCOL' && e.message === message, message);
  says({ t: 'hello', role: 'worker', version: 1, nonce, worker: { name: 'w', platform: 'p', capacity: 1, running: [{ uuid, lastSeq: 'four', finished: false }] } },
    'hello.worker.running[0].lastSeq: expected an integer, got string');
  says({ t: 'hello', role: 'worker', version: 1, nonce, worker: { platform: 'p', capacity: 1, running: [] } }, 'hello.worker: field "name" is missing');
  says({ t: 'hello', role: 'admin', version: 1, nonce }, 'hello.role: expected one of client|worker, got string');
  says({ t: 'output', uuid, seq: 1, lines: [[0, Buffer.from('a')], [1, 'b']] }, 'output.lines[1][1]: expected bytes, got string');
  says({ t: 'output', uuid, seq: 1, lines: [[0]] }, 'output.lines[0]: expected an array of 2, got array');
  says({ t: 'finished', uuid, result: { kind: 'exited' }, lastSeq: 0, stats: {}, refusals: [], artifacts: 0 }, 'finished.result: field "code" is missing');
  says({ t: 'req', id: 1, op: 'schedule', name: 'n', platform: 'p', script: 's', period: 'monthly' },
    'request schedule.period: expected one of hourly|daily|weekly|never, got string');
  says({ t: 'res', id: 1, ok: false, message: 'no code' }, 'res: field "code" is missing');
  says({ t: 'res', id: 1, ok: 'yes' }, 'res.ok: expected true|false, got string');
  says(['not', 'a', 'map'], 'message: expected a map, got array');
  says({ t: 7 }, 'message.t: expected a string, got number');
  says({ t: 'teleport' }, 'message.t: unknown message type "teleport"');
});

test('protocol, frame and sandbox errors are BuilderErrors with a code', () => {
  assert.throws(() => parseMessage({ t: 'nope' }), (e: unknown) => e instanceof BuilderError && e.code === 'PROTOCOL');
  const header = Buffer.alloc(4);
  assert.throws(() => new FrameReader(10).push(header), (e: unknown) => e instanceof BuilderError && e.code === 'FRAME_EMPTY');
  const infra = new InfraError('no space left');
  assert.ok(infra instanceof BuilderError && infra.code === 'SANDBOX_INFRA');
});

test.run();
