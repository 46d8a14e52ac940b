// Named tokens in-process: what the server stores is enough to check a hello but not to make
// one (a stolen database or backup does not log anyone in), proofs are bound to the role, name
// and nonces, and the access table lets readers read only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac } from 'node:crypto';
import { makeNonce, namedProof, namedTokenName, peerMac } from '../../src/protocol/auth.js';
import { Credentials } from '../../src/server/credentials.js';
import { checkAccess, READ_ONLY_OPS } from '../../src/server/access.js';
import { openStore } from '../../src/server/store/index.js';
import type { Hello } from '../../src/protocol/messages.js';

const workerHello = (name: string, credential?: string): Hello => ({
  t: 'hello', role: 'worker', version: 1, nonce: makeNonce(), worker: { name, platform: 'p', capacity: 1, running: [] },
  ...(credential !== undefined ? { credential } : {}),
});

test('a worker token proves itself against the stored verifier; the stored values cannot make a proof', () => {
  const store = openStore(':memory:');
  const creds = new Credentials(store, 'the-admin-token-0123456789');
  const token = creds.add('worker', 'w1');
  assert.is(namedTokenName(token), 'w1');
  const row = store.token('w1')!;
  assert.not.ok(row.stored_key.equals(Buffer.from(token.split(':')[2]!, 'hex')), 'the token is not what is stored');
  const hello = workerHello('w1', 'w1');
  const cred = creds.lookup(hello);
  if (typeof cred === 'string') throw new Error(cred);
  const sn = makeNonce();
  assert.ok(cred.verify(namedProof(token, 'w1', 'worker', sn, hello.nonce), 'worker', sn, hello.nonce));
  assert.not.ok(cred.verify(namedProof(token, 'w1', 'client', sn, hello.nonce), 'worker', sn, hello.nonce), 'bound to the role');
  assert.not.ok(cred.verify(namedProof(token, 'w1', 'worker', makeNonce(), hello.nonce), 'worker', sn, hello.nonce), 'bound to the nonce');
  // what a thief of the database could compute: HMACs keyed by the stored values
  for (const key of [row.stored_key, row.server_key]) {
    const forged = createHmac('sha256', key).update('builder-worker\0w1\0').update(sn).update(hello.nonce).digest();
    assert.not.ok(cred.verify(forged, 'worker', sn, hello.nonce));
    assert.not.ok(cred.verify(peerMac(key.toString('hex'), 'worker', sn, hello.nonce), 'worker', sn, hello.nonce));
  }
  assert.is(cred.refusal(hello), undefined);
  assert.match(cred.refusal(workerHello('w2', 'w1')) ?? '', /belongs to worker w1/);
  assert.match(cred.refusal({ t: 'hello', role: 'client', version: 1, nonce: sn, credential: 'w1' }) ?? '', /cannot send client requests/);
  creds.revoke('w1');
  assert.match(String(creds.lookup(hello)), /unknown or revoked token "w1"/);
  store.close();
});

test('a reader may send the read-only ops and nothing else; the admin anything', () => {
  for (const op of READ_ONLY_OPS) checkAccess('reader', op);
  for (const op of ['schedule', 'execute', 'cancel', 'drain', 'drop-platform', 'verify', 'upload-retry', 'token-add', 'token-revoke', 'token-list'] as const) {
    assert.throws(() => checkAccess('reader', op), /needs the admin token/, op);
    checkAccess('admin', op);
  }
  assert.throws(() => checkAccess('worker', 'info'), /needs the admin token/);
});

test.run();
