// The handshake's SHA-256 and HMAC-SHA256 (src/protocol/light-crypto.ts) against node:crypto on
// random inputs of every length around the padding boundaries, and against RFC 4231's vectors.
import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { constantTimeEqual, hmacSha256, randomBytesLight, sha256 } from '../../src/protocol/light-crypto.js';

const hex = (b: Buffer): string => b.toString('hex');

test('sha256 equals node:crypto for every length from 0 to 300 bytes and for random inputs', () => {
  for (let n = 0; n <= 300; n++) {
    const data = Buffer.alloc(n, n % 251);
    assert.is(hex(sha256(data)), createHash('sha256').update(data).digest('hex'), `length ${n}`);
  }
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 4 }), (parts) => {
    const whole = Buffer.concat(parts);
    assert.is(hex(sha256(...parts)), createHash('sha256').update(whole).digest('hex'));
  }), { seed: 11, numRuns: 500 });
});

test('hmacSha256 equals node:crypto for keys shorter and longer than a block, and RFC 4231 case 2', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 150 }), fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 4 }), (key, parts) => {
    const whole = Buffer.concat(parts);
    assert.is(hex(hmacSha256(key, ...parts)), createHmac('sha256', key).update(whole).digest('hex'));
  }), { seed: 12, numRuns: 500 });
  assert.is(hex(hmacSha256('Jefe', 'what do ya want ', 'for nothing?')),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  // a string key is its UTF-8 bytes, as node:crypto takes it
  assert.is(hex(hmacSha256('tökén', 'x')), createHmac('sha256', 'tökén').update('x').digest('hex'));
});

test('constantTimeEqual and randomBytesLight', () => {
  assert.ok(constantTimeEqual(Buffer.from('abc'), Buffer.from('abc')));
  assert.not.ok(constantTimeEqual(Buffer.from('abc'), Buffer.from('abd')));
  assert.not.ok(constantTimeEqual(Buffer.from('abc'), Buffer.from('ab')));
  const a = randomBytesLight(32);
  const b = randomBytesLight(32);
  assert.is(a.length, 32);
  assert.is.not(hex(a), hex(b));
});

test.run();
