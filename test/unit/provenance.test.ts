// Signed provenance: the key is made once with mode 0600, the statement says what the issue
// promises, a signature verifies with our code AND with openssl over the DSSE pre-authentication
// encoding, and tampering with the statement or an artifact is caught.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BuilderError } from '../../src/common/errors.js';
import { IN_TOTO_PAYLOAD_TYPE, pae, signEnvelope, signStatement, verifyArtifacts, verifyEnvelope, type DsseEnvelope } from '../../src/provenance/dsse.js';
import { loadOrCreateSigningKey, loadSigningKey, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, publicKeyPemOf } from '../../src/provenance/key.js';
import { buildStatement, BUILD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_TYPE, type ProvenanceInput } from '../../src/provenance/statement.js';

let T = '';
test.before.each(() => {
  T = mkdtempSync(join(tmpdir(), 'builder-provenance-'));
});
test.after.each(() => rmSync(T, { recursive: true, force: true }));

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** a run's artifacts on disk under T/results and the provenance input describing them */
function run(): ProvenanceInput {
  const dir = join(T, 'results');
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin', 'hello'), 'ELF pretend\n');
  writeFileSync(join(dir, 'hello.tar.gz'), Buffer.from([0x1f, 0x8b, 0, 1, 2, 3]));
  return {
    builderId: 'urn:builder:server:test',
    builderVersion: '0.1.0',
    job: 'hello',
    platform: 'debian-12',
    uuid: '0b7a3c4e-1111-4222-8333-444455556666',
    worker: 'worker-1',
    scriptSha256: sha('echo hi\n'),
    template: { path: '/etc/builder/orb-build.template.debian-12', sha256: sha('template'), opamPackage: 'hello' },
    sourceDateEpoch: 1700000000,
    sandbox: { kind: 'docker', image: 'builder-base:debian-12', imageDigest: `sha256:${'a'.repeat(64)}` },
    startedOn: new Date('2024-05-01T10:00:00Z'),
    finishedOn: new Date('2024-05-01T10:01:30.5Z'),
    result: { kind: 'exited', code: 0 },
    artifacts: [
      { path: 'hello.tar.gz', size: 6, sha256: sha(Buffer.from([0x1f, 0x8b, 0, 1, 2, 3])) },
      { path: 'bin/hello', size: 12, sha256: sha('ELF pretend\n') },
    ],
  };
}

test('the key pair is created once, private mode 0600, and loaded again unchanged', () => {
  const first = loadOrCreateSigningKey(T);
  assert.ok(first.created);
  assert.is(statSync(join(T, PRIVATE_KEY_FILE)).mode & 0o777, 0o600);
  assert.match(readFileSync(join(T, PUBLIC_KEY_FILE), 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
  assert.is(first.publicKeyPem, readFileSync(join(T, PUBLIC_KEY_FILE), 'utf8'));
  assert.match(first.keyid, /^[0-9a-f]{64}$/);
  const again = loadOrCreateSigningKey(T);
  assert.not.ok(again.created);
  assert.is(again.keyid, first.keyid);
  assert.is(publicKeyPemOf(T), first.publicKeyPem);
  assert.equal(readdirSync(T).sort(), [PRIVATE_KEY_FILE, PUBLIC_KEY_FILE].sort(), 'no temporary files left behind');
  // the public half is derived: a deleted one comes back
  rmSync(join(T, PUBLIC_KEY_FILE));
  assert.is(loadSigningKey(T).publicKeyPem, first.publicKeyPem);
  assert.ok(existsSync(join(T, PUBLIC_KEY_FILE)));
});

test('a private key readable by others, or not Ed25519, is refused with the file name', () => {
  loadOrCreateSigningKey(T);
  chmodSync(join(T, PRIVATE_KEY_FILE), 0o644);
  assert.throws(() => loadSigningKey(T), (e: unknown) => e instanceof BuilderError && /readable by others \(mode 644\): chmod 600/.test(e.message));
  const rsa = spawnSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'], { encoding: 'utf8' }).stdout;
  writeFileSync(join(T, PRIVATE_KEY_FILE), rsa, { mode: 0o600 });
  chmodSync(join(T, PRIVATE_KEY_FILE), 0o600);
  assert.throws(() => loadSigningKey(T), (e: unknown) => e instanceof BuilderError && e.message.includes(PRIVATE_KEY_FILE) && /rsa, expected ed25519/.test(e.message));
});

test('the statement is an in-toto Statement v1 with a SLSA Provenance v1 predicate describing the run', () => {
  const s = buildStatement(run());
  assert.is(s._type, STATEMENT_TYPE);
  assert.is(s.predicateType, SLSA_PROVENANCE_V1);
  assert.equal(s.subject, [
    { name: 'bin/hello', digest: { sha256: sha('ELF pretend\n') } },
    { name: 'hello.tar.gz', digest: { sha256: sha(Buffer.from([0x1f, 0x8b, 0, 1, 2, 3])) } },
  ]);
  const bd = s.predicate.buildDefinition;
  assert.is(bd.buildType, BUILD_TYPE);
  assert.equal(bd.externalParameters, {
    job: 'hello',
    platform: 'debian-12',
    script: { sha256: sha('echo hi\n') },
    sourceDateEpoch: 1700000000,
    template: { path: '/etc/builder/orb-build.template.debian-12', sha256: sha('template') },
    opamPackage: 'hello',
  });
  assert.equal(bd.internalParameters, {
    sandbox: { kind: 'docker', image: 'builder-base:debian-12', imageDigest: `sha256:${'a'.repeat(64)}` },
    worker: 'worker-1',
  });
  assert.equal(bd.resolvedDependencies, [{ name: 'sandbox-image', uri: 'docker-image:builder-base:debian-12', digest: { sha256: 'a'.repeat(64) } }]);
  assert.equal(s.predicate.runDetails, {
    builder: { id: 'urn:builder:server:test', version: { builder: '0.1.0' } },
    metadata: { invocationId: '0b7a3c4e-1111-4222-8333-444455556666', startedOn: '2024-05-01T10:00:00.000Z', finishedOn: '2024-05-01T10:01:30.500Z' },
    byproducts: [{ name: 'result', annotations: { kind: 'exited', code: 0 } }],
  });
  // a script job: no template; a btrfs run names its snapshot
  const plain = buildStatement({ ...run(), template: undefined, sandbox: { kind: 'btrfs-ns', snapshot: 'debian-12@clean' } });
  assert.not.ok('template' in plain.predicate.buildDefinition.externalParameters);
  assert.equal(plain.predicate.buildDefinition.internalParameters.sandbox, { kind: 'btrfs-ns', snapshot: 'debian-12@clean' });
  assert.equal(plain.predicate.buildDefinition.resolvedDependencies, []);
  // refuses what cannot be true
  assert.throws(() => buildStatement({ ...run(), artifacts: [{ path: '../etc/passwd', size: 1, sha256: 'a'.repeat(64) }] }), /path contains "\.\."/);
  assert.throws(() => buildStatement({ ...run(), scriptSha256: 'xyz' }), /script sha256/);
});

test('the DSSE pre-authentication encoding matches the specification\'s test vector', () => {
  assert.is(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString(), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  // lengths are bytes, not characters
  assert.is(pae('t', Buffer.from('é')).toString(), 'DSSEv1 1 t 2 é');
});

test('sign then verify; the verified statement is the one signed', async () => {
  const key = loadOrCreateSigningKey(T);
  const statement = buildStatement(run());
  const env = signStatement(statement, key);
  assert.is(env.payloadType, IN_TOTO_PAYLOAD_TYPE);
  assert.is(env.signatures[0]?.keyid, key.keyid);
  // stored as JSON and read back, as inspect will
  const v = verifyEnvelope(JSON.parse(JSON.stringify(env)), key.publicKeyPem);
  assert.ok(v.ok, v.ok ? '' : v.reason);
  if (v.ok) {
    assert.equal(v.statement, statement);
    assert.is(v.keyid, key.keyid);
    assert.equal(await verifyArtifacts(v.statement, join(T, 'results')), { ok: true, problems: [] });
  }
});

test('a tampered payload, payload type or signature fails; so does another key', () => {
  const key = loadOrCreateSigningKey(T);
  const env = signStatement(buildStatement(run()), key);
  const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
  statement.subject[0].digest.sha256 = 'b'.repeat(64);
  const tampered: DsseEnvelope = { ...env, payload: Buffer.from(JSON.stringify(statement)).toString('base64') };
  const r1 = verifyEnvelope(tampered, key.publicKeyPem);
  assert.not.ok(r1.ok);
  assert.match(r1.ok ? '' : r1.reason, 'no signature in the envelope verifies');
  assert.not.ok(verifyEnvelope({ ...env, payloadType: 'application/json' }, key.publicKeyPem).ok);
  const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
  sig[5] = (sig[5] ?? 0) ^ 1;
  assert.not.ok(verifyEnvelope({ ...env, signatures: [{ keyid: key.keyid, sig: sig.toString('base64') }] }, key.publicKeyPem).ok);
  assert.not.ok(verifyEnvelope({ ...env, payload: `${env.payload} ` }, key.publicKeyPem).ok);
  assert.not.ok(verifyEnvelope({ ...env, signatures: [] }, key.publicKeyPem).ok);
  const other = join(T, 'other');
  mkdirSync(other);
  assert.not.ok(verifyEnvelope(env, loadOrCreateSigningKey(other).publicKeyPem).ok);
  assert.not.ok(verifyEnvelope(env, 'not a key').ok);
  // a validly signed payload that is not a statement is refused too
  const notStatement = signEnvelope(Buffer.from('{"hello":1}'), key);
  const r2 = verifyEnvelope(notStatement, key.publicKeyPem);
  assert.match(r2.ok ? '' : r2.reason, 'not a provenance statement');
});

test('a tampered, missing or swapped artifact fails verifyArtifacts, naming it', async () => {
  const statement = buildStatement(run());
  const dir = join(T, 'results');
  writeFileSync(join(dir, 'bin', 'hello'), 'ELF pretenD\n');
  rmSync(join(dir, 'hello.tar.gz'));
  const r = await verifyArtifacts(statement, dir);
  assert.not.ok(r.ok);
  assert.is(r.problems.length, 2);
  assert.match(r.problems[0] ?? '', `bin/hello: sha256 ${sha('ELF pretenD\n')} on disk, statement says ${sha('ELF pretend\n')}`);
  assert.is(r.problems[1], 'hello.tar.gz: missing');
});

test('openssl verifies our signature over the PAE bytes independently, and rejects a flipped byte', () => {
  const key = loadOrCreateSigningKey(T);
  const env = signStatement(buildStatement(run()), key);
  const paeBytes = pae(env.payloadType, Buffer.from(env.payload, 'base64'));
  writeFileSync(join(T, 'pae.bin'), paeBytes);
  writeFileSync(join(T, 'sig.bin'), Buffer.from(env.signatures[0]!.sig, 'base64'));
  const verify = (): ReturnType<typeof spawnSync> =>
    spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(T, PUBLIC_KEY_FILE), '-rawin', '-in', join(T, 'pae.bin'), '-sigfile', join(T, 'sig.bin')], { encoding: 'utf8' });
  const good = verify();
  assert.is(good.status, 0, `openssl: ${good.stdout}${good.stderr}`);
  assert.match(String(good.stdout), 'Signature Verified Successfully');
  const flipped = Buffer.from(paeBytes);
  const at = flipped.indexOf('sha256') + 12;
  flipped[at] = (flipped[at] ?? 0) ^ 0x01;
  writeFileSync(join(T, 'pae.bin'), flipped);
  assert.is.not(verify().status, 0, 'openssl must reject a changed statement');
  writeFileSync(join(T, 'pae.bin'), paeBytes);
  const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
  sig[0] = (sig[0] ?? 0) ^ 0x80;
  writeFileSync(join(T, 'sig.bin'), sig);
  assert.is.not(verify().status, 0, 'openssl must reject a changed signature');
});

test.run();
