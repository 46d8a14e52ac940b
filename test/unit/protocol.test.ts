import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameError, FrameReader, encodeFrame } from '../../src/protocol/framing.js';
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';
import { parseMessage, ProtocolError } from '../../src/protocol/parse.js';

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

test('decoded values are checked into typed messages, with where and what in the error', () => {
  const msg = parseMessage({ t: 'output', uuid: 'u', seq: 0, lines: [[5, Buffer.from('hi')]] });
  assert.is(msg.t, 'output');
  assert.throws(() => parseMessage({ t: 'output', uuid: 'u', seq: 'zero', lines: [] }), (e: unknown) =>
    e instanceof ProtocolError && e.message === 'output.seq: expected an integer, got string');
  assert.throws(() => parseMessage({ t: 'req', id: 1, op: 'format-disk' }), /request.op: expected one of schedule/);
  assert.throws(() => parseMessage({ t: 'finished', uuid: 'u', result: { kind: 'exploded' }, lastSeq: 0, artifacts: 0, stats: {}, refusals: [] }),
    /finished.result.kind: expected exited\|signalled/);
});

test.run();
