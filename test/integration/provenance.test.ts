// Signed provenance with the real programs: every stored run gets results/JOB/UUID/provenance.json,
// a DSSE envelope that openssl verifies with the key builder-server --print-public-key prints
// (the PAE is built here, not by our code), and builder-inspect --verify-provenance catches a
// changed artifact or statement. With Docker, the statement names the image by its engine id.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, bin, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { need } from '../helpers/env.js';

const t = suite('provenance');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-provenance-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

interface RunJson { uuid: string; job: string; result: { kind: string; code?: number }; dir: string }
const finished = (s: ServerHandle, job: string) =>
  eventually(async () => {
    const r = await h.history<RunJson>(s, job);
    return r.length > 0 && r[0];
  }, 60_000, `a result of ${job}`);

interface Envelope { payloadType: string; payload: string; signatures: Array<{ keyid: string; sig: string }> }
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Statement = any;

/** The DSSE v1 pre-authentication encoding, written from the spec, independently of src/provenance. */
const paeOf = (type: string, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `), body]);

function opensslVerify(envelope: Envelope, pubFile: string): { status: number | null; out: string } {
  const body = Buffer.from(envelope.payload, 'base64');
  writeFileSync(h.path('pae.bin'), paeOf(envelope.payloadType, body));
  writeFileSync(h.path('sig.bin'), Buffer.from(envelope.signatures[0]!.sig, 'base64'));
  const r = spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pubFile, '-rawin', '-in', h.path('pae.bin'), '-sigfile', h.path('sig.bin')], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function publicKey(server: ServerHandle): Promise<string> {
  const p = h.spawn(bin('server'), ['--print-public-key', '--dir', server.dir], 'print-public-key');
  const { code } = await p.exited;
  assert.is(code, 0, p.stderr);
  assert.match(p.stdout, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
  const file = h.path('server.pub');
  writeFileSync(file, p.stdout);
  return file;
}

const readEnvelope = (dir: string): Envelope => JSON.parse(readFileSync(join(dir, 'provenance.json'), 'utf8')) as Envelope;
const statementOf = (env: Envelope): Statement => JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));

t('a run with artifacts is stored with provenance that lists each artifact by sha256 and that openssl verifies', withTimeout(60_000, async () => {
  const server = await h.server();
  // the key is made on first start, beside the token, readable by the server's user only
  assert.is(statSync(join(server.dir, 'provenance-key.pem')).mode & 0o777, 0o600);
  assert.ok(existsSync(join(server.dir, 'token')));
  h.worker(server, 'linux', ['--name', 'prov-w1']);
  const script = 'mkdir -p out/deep\necho one > a.txt\nprintf "\\001\\002\\377" > out/deep/b.bin\nhead -c 70000 /dev/zero > out/zeros\necho built\n';
  const file = h.script('prov', script);
  assert.is((await h.client(server, ['schedule', 'prov', 'linux', file])).code, 0);
  const run = await finished(server, 'prov');
  assert.equal(run.result, { kind: 'exited', code: 0 });

  const env = readEnvelope(run.dir);
  assert.is(env.payloadType, 'application/vnd.in-toto+json');
  const s = statementOf(env);
  const meta = JSON.parse(readFileSync(join(run.dir, 'run.json'), 'utf8'));
  assert.is(s._type, 'https://in-toto.io/Statement/v1');
  assert.is(s.predicateType, 'https://slsa.dev/provenance/v1');
  const onDisk = ['a.txt', 'out/deep/b.bin', 'out/zeros'].map((p) => ({ name: p, digest: { sha256: sha(readFileSync(join(run.dir, 'artifacts', p))) } }));
  assert.equal(s.subject, onDisk, 'every artifact, by path and the sha256 of the stored bytes');
  const bd = s.predicate.buildDefinition;
  assert.is(bd.externalParameters.job, 'prov');
  assert.is(bd.externalParameters.platform, 'linux');
  assert.is(bd.externalParameters.script.sha256, sha(script), 'the script the run executed');
  assert.equal(bd.internalParameters.sandbox, { kind: 'process' });
  assert.equal(meta.sandbox, { kind: 'process' }, 'run.json names the sandbox too');
  assert.is(bd.internalParameters.worker, 'prov-w1');
  const rd = s.predicate.runDetails;
  assert.is(rd.metadata.invocationId, run.uuid);
  assert.is(rd.metadata.startedOn, meta.started);
  assert.is(rd.metadata.finishedOn, meta.finished);
  assert.equal(rd.byproducts[0].annotations, { kind: 'exited', code: 0 });

  const pub = await publicKey(server);
  const verified = opensslVerify(env, pub);
  assert.is(verified.status, 0, `openssl: ${verified.out}`);
  assert.match(verified.out, 'Signature Verified Successfully');

  const show = await h.inspect([run.dir, '--provenance']);
  assert.is(show.code, 0, show.stderr);
  assert.equal(JSON.parse(show.stdout), s);
  const ok = await h.inspect([run.dir, '--verify-provenance', pub]);
  assert.is(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, new RegExp(`provenance of ${run.uuid} verified: .*3 artifacts match`));
  const byUuid = await h.inspect(['--dir', server.dir, run.uuid, '--verify-provenance', pub]);
  assert.is(byUuid.code, 0, byUuid.stdout + byUuid.stderr);
}));

t('a changed artifact or a changed statement fails --verify-provenance, naming what is wrong', withTimeout(60_000, async () => {
  const server = await h.server();
  h.worker(server, 'linux');
  assert.is((await h.client(server, ['schedule', 'tamper', 'linux', h.script('t', 'echo good > a.txt\necho also > b.txt\n')])).code, 0);
  const run = await finished(server, 'tamper');
  const pub = await publicKey(server);
  assert.is((await h.inspect([run.dir, '--verify-provenance', pub])).code, 0);

  const artifact = join(run.dir, 'artifacts', 'b.txt');
  const original = readFileSync(artifact);
  writeFileSync(artifact, 'evil\n');
  const bad = await h.inspect([run.dir, '--verify-provenance', pub]);
  assert.is(bad.code, 1);
  assert.match(bad.stdout, /^b\.txt: sha256 [0-9a-f]{64} on disk, statement says [0-9a-f]{64}$/m);
  assert.not.match(bad.stdout, /a\.txt/, 'only the changed artifact is named');
  assert.match(bad.stderr, /provenance does not verify \(1 problem\)/);
  writeFileSync(artifact, original);
  writeFileSync(join(run.dir, 'artifacts', 'extra.txt'), 'slipped in\n');
  const extra = await h.inspect([run.dir, '--verify-provenance', pub]);
  assert.is(extra.code, 1);
  assert.match(extra.stdout, /^extra\.txt: on disk but not in the signed statement$/m);
  execFileSync('rm', [join(run.dir, 'artifacts', 'extra.txt')]);
  assert.is((await h.inspect([run.dir, '--verify-provenance', pub])).code, 0, 'back to the original');

  // the statement made to vouch for the evil bytes, signature left as it was
  const env = readEnvelope(run.dir);
  const s = statementOf(env);
  s.subject[1].digest.sha256 = sha('evil\n');
  const forged = { ...env, payload: Buffer.from(JSON.stringify(s)).toString('base64') };
  writeFileSync(join(run.dir, 'provenance.json'), JSON.stringify(forged));
  const forgedCheck = await h.inspect([run.dir, '--verify-provenance', pub]);
  assert.is(forgedCheck.code, 1);
  assert.match(forgedCheck.stdout, /provenance\.json: no signature in the envelope verifies/);
  assert.is.not(opensslVerify(forged, pub).status, 0, 'openssl agrees');

  // a key of another server does not verify it either
  const otherDir = h.path('other');
  const other = h.spawn(bin('server'), ['--print-public-key', '--dir', otherDir], 'other key');
  assert.is((await other.exited).code, 0);
  writeFileSync(h.path('other.pub'), other.stdout);
  writeFileSync(join(run.dir, 'provenance.json'), JSON.stringify(env));
  assert.is((await h.inspect([run.dir, '--verify-provenance', h.path('other.pub')])).code, 1);
  assert.is((await h.inspect([run.dir, '--verify-provenance', pub])).code, 0);
  // usage: the key file is required
  assert.is((await h.inspect([run.dir, '--verify-provenance'])).code, 2);
}));

t('--no-provenance: no key is made and results carry no provenance.json', withTimeout(60_000, async () => {
  const server = await h.server({ args: ['--no-provenance'] });
  assert.not.ok(existsSync(join(server.dir, 'provenance-key.pem')));
  h.worker(server, 'linux');
  assert.is((await h.client(server, ['schedule', 'plain', 'linux', h.script('p', 'echo x > a.txt\n')])).code, 0);
  const run = await finished(server, 'plain');
  assert.ok(existsSync(join(run.dir, 'run.json')));
  assert.not.ok(existsSync(join(run.dir, 'provenance.json')));
  const show = await h.inspect([run.dir, '--provenance']);
  assert.is(show.code, 1);
  assert.match(show.stderr, /provenance\.json: not found/);
}));

const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
};

t('docker: the statement names the image and its engine id as a resolved dependency', withTimeout(90_000, async () => {
  const image = 'builder-test-busybox';
  const id = sh('docker', ['image', 'inspect', '--format', '{{.Id}}', image]).trim();
  if (!need(`docker engine with ${image}`, id.startsWith('sha256:'), 'start dockerd and run test/env/setup-docker.sh')) return;
  const server = await h.server();
  h.worker(server, 'busybox', ['--sandbox', 'docker', '--image', image, '--name', 'prov-dock', '--network', 'none']);
  assert.is((await h.client(server, ['schedule', 'dock', 'busybox', h.script('d', 'echo in-docker > a.txt\n')])).code, 0);
  const run = await finished(server, 'dock');
  assert.equal(run.result, { kind: 'exited', code: 0 });
  const s = statementOf(readEnvelope(run.dir));
  assert.equal(s.predicate.buildDefinition.internalParameters.sandbox, { kind: 'docker', image, imageDigest: id });
  assert.equal(s.predicate.buildDefinition.resolvedDependencies, [
    { name: 'sandbox-image', uri: `docker-image:${image}`, digest: { sha256: id.slice('sha256:'.length) } },
  ]);
  assert.equal(s.subject, [{ name: 'a.txt', digest: { sha256: sha('in-docker\n') } }]);
  const verified = opensslVerify(readEnvelope(run.dir), await publicKey(server));
  assert.is(verified.status, 0, verified.out);
}));

const btrfsMount = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';

t('btrfs-ns: the statement names the base snapshot the run was cloned from', withTimeout(60_000, async () => {
  const base = join(btrfsMount, 'base@clean');
  if (!need(`btrfs at ${btrfsMount}`, process.getuid?.() === 0 && /ro=true/.test(sh('btrfs', ['property', 'get', '-ts', base, 'ro'])),
    'run test/env/setup-btrfs.sh as root')) return;
  const server = await h.server();
  h.worker(server, 'bb', ['--sandbox', 'btrfs-ns', '--btrfs-base', base, '--name', 'prov-snap']);
  assert.is((await h.client(server, ['schedule', 'snap', 'bb', h.script('b', 'echo snapped > a.txt\n')])).code, 0);
  const run = await finished(server, 'snap');
  assert.equal(run.result, { kind: 'exited', code: 0 });
  const s = statementOf(readEnvelope(run.dir));
  assert.equal(s.predicate.buildDefinition.internalParameters.sandbox, { kind: 'btrfs-ns', snapshot: base });
  assert.equal(s.subject, [{ name: 'a.txt', digest: { sha256: sha('snapped\n') } }]);
  assert.is((await h.inspect([run.dir, '--verify-provenance', await publicKey(server)])).code, 0);
}));

t.run();
