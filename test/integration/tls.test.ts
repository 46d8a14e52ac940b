// Encrypted links: a server with --tls-cert/--tls-key made by openssl here, a worker that pins
// the certificate's fingerprint and a client that checks it against the CA, running a job end to
// end; a wrong fingerprint, a wrong CA and plain TCP against TLS (and the reverse) are refused
// with one clear line; a server listening beyond loopback without TLS says so.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { Harness, bin, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { need } from '../helpers/env.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

const t = suite('tls');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-tls-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

/** A CA and a server certificate it signed, for 127.0.0.1 and localhost, made with openssl. */
function makeCertsWithSan(prefix: string) {
  const p = (f: string): string => h.path(`${prefix}-${f}`);
  const run = (args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' });
  writeFileSync(p('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'),
    '-days', '2', '-subj', `/CN=${prefix} test CA`]);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'),
    '-subj', '/CN=localhost']);
  run(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.pem'),
    '-days', '2', '-extfile', p('san.ext')]);
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key'), fingerprint: new X509Certificate(readFileSync(p('server.pem'))).fingerprint256 };
}

async function tlsServer(certs: { cert: string; key: string }): Promise<ServerHandle> {
  return h.server({ args: ['--tls-cert', certs.cert, '--tls-key', certs.key] });
}

t('a worker pinning the fingerprint and a client checking the CA schedule, run and observe a job over TLS', withTimeout(40_000, async () => {
  if (!need('openssl', hasOpenssl, 'apt-get install openssl')) return;
  const certs = makeCertsWithSan('good');
  const server = await tlsServer(certs);
  // the server prints the fingerprint to pin, in the form the flag takes
  const printed = (await server.proc.waitFor(/listening .* tls=(SHA256:[0-9A-F:]+)/))[1]!;
  assert.is(printed, `SHA256:${certs.fingerprint}`);
  const worker = h.worker(server, 'tlsp', ['--server-fingerprint', printed.toLowerCase().replace(/:/g, '').replace('sha256', 'SHA256:')]);
  await worker.waitFor(/connected/);
  const viaCa = ['--tls-ca', certs.ca];
  const s = await h.client(server, ['schedule', 'secret-job', 'tlsp', h.script('job', 'echo over-tls-$((6*7))\n'), '--period', 'never', ...viaCa]);
  assert.is(s.code, 0, s.stderr);
  const follow = await h.client(server, ['execute', 'secret-job', '--follow', ...viaCa]);
  assert.is(follow.code, 0, follow.stderr);
  assert.match(follow.stdout, /over-tls-42/);
  const hist = await h.client(server, ['history', 'secret-job', '--json', ...viaCa]);
  assert.is(JSON.parse(hist.stdout)[0].result.kind, 'exited');
  assert.not.match(server.proc.stderr, /listening without TLS/);
}));

t('a wrong fingerprint, a wrong CA and plain TCP are refused with one line; the server goes on', withTimeout(40_000, async () => {
  if (!need('openssl', hasOpenssl, 'apt-get install openssl')) return;
  const certs = makeCertsWithSan('good');
  const other = makeCertsWithSan('other');
  const server = await tlsServer(certs);
  const wrongPin = await h.client(server, ['info', '--server-fingerprint', `SHA256:${other.fingerprint}`]);
  assert.is(wrongPin.code, 1);
  assert.match(wrongPin.stderr, new RegExp(`presented certificate SHA256:${certs.fingerprint}, not the pinned SHA256:${other.fingerprint}`));
  assert.is(wrongPin.stderr.trim().split('\n').length, 1, wrongPin.stderr);
  const wrongCa = await h.client(server, ['info', '--tls-ca', other.ca]);
  assert.is(wrongCa.code, 1);
  assert.match(wrongCa.stderr, /TLS connection to 127\.0\.0\.1:\d+ failed/);
  const plain = await h.client(server, ['info']);
  assert.is(plain.code, 1);
  await server.proc.waitFor(/TLS handshake failed/);
  // a worker pinning the wrong certificate never says hello (so never takes a job)
  const worker = h.worker(server, 'tlsp', ['--server-fingerprint', `SHA256:${other.fingerprint}`]);
  await worker.waitFor(/cannot reach the server.*not the pinned/);
  const ok = await h.client(server, ['workers', '--tls-ca', certs.ca]);
  assert.is(ok.code, 0, ok.stderr);
  assert.not.match(ok.stdout, /tlsp/);
  const bad = await h.client(server, ['info', '--server-fingerprint', 'SHA256:xyz']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--server-fingerprint: expected SHA256: and 64 hex digits/);
}));

t('TLS against a plain server fails with a hint; a plain server beyond loopback warns', withTimeout(30_000, async () => {
  const server = await h.server();
  const r = await h.client(server, ['info', '--tls']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /TLS connection to 127\.0\.0\.1:\d+ failed/);
  assert.not.match(server.proc.stderr, /listening without TLS/);
  const open = h.spawn(bin('server'), ['--dir', h.path('open'), '--config-dir', h.path('etc'), '--ip', '0.0.0.0', '--port', '0'], 'open server');
  await open.waitFor(/listening address=0\.0\.0\.0/);
  await open.waitFor(/warn: listening without TLS on a non-loopback address/);
  if (!need('openssl', hasOpenssl, 'apt-get install openssl')) return;
  const certs = makeCertsWithSan('good');
  const sealed = h.spawn(bin('server'), ['--dir', h.path('sealed'), '--config-dir', h.path('etc'), '--ip', '0.0.0.0', '--port', '0',
    '--tls-cert', certs.cert, '--tls-key', certs.key], 'sealed server');
  await sealed.waitFor(/listening address=0\.0\.0\.0/);
  assert.not.match(sealed.stderr, /without TLS/);
}));

t.run();
