// The run ledger signs each stored run's provenance, in-process: what the worker reported (its
// sandbox), what the dispatcher knew (build inputs) and what arrived (artifacts) end up in a
// statement that verifies with the server's key; a run ended by the server itself gets one too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyEnvelope } from '../../src/provenance/dsse.js';
import { attesterFor, type Attester } from '../../src/server/attest.js';
import { Rig, type FakeWorker } from '../helpers/coordinator-rig.js';

let rig: Rig;
let keyDir: string;
let attester: Attester;
test.before.each(() => {
  keyDir = mkdtempSync(join(tmpdir(), 'builder-key-'));
  attester = attesterFor(keyDir, 'urn:builder:server:test');
  rig = new Rig({ leaseMs: 30_000 }, { attester });
});
test.after.each(() => {
  rig.close();
  rmSync(keyDir, { recursive: true, force: true });
});

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

async function sendArtifact(w: FakeWorker, uuid: string, path: string, data: string): Promise<void> {
  rig.coordinator.artifactStart(w, { t: 'artifact', uuid, path, size: Buffer.byteLength(data), mode: 0o644 });
  await rig.coordinator.artifactChunk(w, { t: 'chunk', uuid, data: Buffer.from(data) });
  await rig.coordinator.artifactEnd(w, { t: 'artifact-end', uuid, sha256: sha(data) });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function signedStatement(dir: string): any {
  const verified = verifyEnvelope(JSON.parse(readFileSync(join(dir, 'provenance.json'), 'utf8')), attester.key.publicKeyPem);
  if (!verified.ok) throw new Error(verified.reason);
  return verified.statement;
}

test('a finished run is stored with signed provenance naming its artifacts, script, sandbox and build inputs', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  // what the dispatcher adds for templated jobs and SOURCE_DATE_EPOCH (wired by their features)
  rig.coordinator.live.get(uuid!)!.buildInputs = {
    sourceDateEpoch: 1_700_000_000, template: { path: '/etc/builder/orb-build.template.p', sha256: sha('template'), opamPackage: 'hello' },
  };
  await sendArtifact(w, uuid!, 'out/b.bin', 'bbb');
  await sendArtifact(w, uuid!, 'a.txt', 'aaa');
  const finished = rig.next('run:finished');
  await rig.coordinator.finished(w, {
    t: 'finished', uuid: uuid!, result: { kind: 'exited', code: 0 }, lastSeq: -1, stats: {}, refusals: [], artifacts: 2,
    sandbox: { kind: 'docker', image: 'img:1', imageDigest: `sha256:${'c'.repeat(64)}` },
  });
  const { dir } = await finished;
  const s = signedStatement(dir!);
  assert.equal(s.subject, [{ name: 'a.txt', digest: { sha256: sha('aaa') } }, { name: 'out/b.bin', digest: { sha256: sha('bbb') } }]);
  assert.equal(s.predicate.buildDefinition.externalParameters, {
    job: 'a', platform: 'p', script: { sha256: sha('echo a') }, sourceDateEpoch: 1_700_000_000,
    template: { path: '/etc/builder/orb-build.template.p', sha256: sha('template') }, opamPackage: 'hello',
  });
  assert.equal(s.predicate.buildDefinition.internalParameters, {
    sandbox: { kind: 'docker', image: 'img:1', imageDigest: `sha256:${'c'.repeat(64)}` }, worker: 'w1',
  });
  assert.is(s.predicate.runDetails.metadata.invocationId, uuid);
  const meta = JSON.parse(readFileSync(join(dir!, 'run.json'), 'utf8'));
  assert.equal(meta.sandbox, { kind: 'docker', image: 'img:1', imageDigest: `sha256:${'c'.repeat(64)}` });
  assert.is(s.predicate.runDetails.metadata.finishedOn, meta.finished);
});

test('a run the server ends itself (worker lost) still gets provenance, without a sandbox it never heard of', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  rig.drop(w);
  const finished = rig.next('run:finished');
  rig.clock.advance(30_000);
  const { dir, result } = await finished;
  assert.equal(result, { kind: 'failed', message: 'worker w1 lost', infra: true });
  const s = signedStatement(dir!);
  assert.equal(s.subject, []);
  assert.equal(s.predicate.buildDefinition.internalParameters, { worker: 'w1' });
  assert.equal(s.predicate.runDetails.byproducts[0].annotations, result);
  assert.is(s.predicate.runDetails.metadata.invocationId, uuid);
});

test('without an attester (--no-provenance) the result has no provenance.json', async () => {
  const plain = new Rig();
  try {
    plain.schedule('a');
    const { w } = plain.join('w1');
    const [uuid] = plain.jobsSent(w);
    const finished = plain.next('run:finished');
    await plain.finish(w, uuid!, { kind: 'exited', code: 0 });
    const { dir } = await finished;
    assert.ok(existsSync(join(dir!, 'run.json')));
    assert.not.ok(existsSync(join(dir!, 'provenance.json')));
  } finally {
    plain.close();
  }
});

test.run();
