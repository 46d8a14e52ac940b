// Finished runs read from another machine over the protocol: console (stored, running, followed
// live), result (record and artifacts), artifacts (streamed, checked by sha256, nothing partial
// left behind on a mismatch or a lost connection).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { randomFillSync, randomUUID } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { ClientSession, type Stream } from '../../src/client/session.js';
import { incomingDir } from '../../src/results/index.js';
import { openStore } from '../../src/server/store/index.js';
import { Harness, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { storeRun } from '../helpers/stored-runs.js';

const t = suite('remote results');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** Every file under dir, hidden ones included (a leftover temporary file would show here). */
const tree = (dir: string, pre = ''): string[] => readdirSync(join(dir, pre), { withFileTypes: true })
  .flatMap((e) => (e.isDirectory() ? tree(dir, join(pre, e.name)) : [join(pre, e.name)])).sort();

async function finishedRun(server: ServerHandle, job: string, body: string): Promise<{ uuid: string; dir: string }> {
  await h.client(server, ['schedule', job, 'p', h.script(job, body), '--period', 'never']);
  await h.client(server, ['execute', job]);
  const [run] = await eventually(async () => (await h.history(server, job)).length === 1 && h.history(server, job), 30_000, `${job} to finish`);
  return run;
}

const BUILD = 'echo hello\nsleep 0.3\necho world\nmkdir -p out/deep\nhead -c 3000000 /dev/urandom > out/deep/big.bin\nprintf "#!/bin/sh\\n" > tool\nchmod 755 tool\n';

t('console prints the stored lines with their times, result the record and every artifact\'s size and sha256', withTimeout(40_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const run = await finishedRun(server, 'hello', BUILD);
  const c = await h.client(server, ['console', run.uuid]);
  assert.is(c.code, 0, c.stderr);
  assert.match(c.stdout, /^ +\+0\.\d{3}s hello\n +\+0\.[3-9]\d{2}s world\n$/);
  assert.match(c.stderr, /exited 0/);

  const j = await h.client(server, ['result', run.uuid, '--json']);
  assert.is(j.code, 0, j.stderr);
  const data = JSON.parse(j.stdout);
  assert.is(data.run.job, 'hello');
  assert.is(data.run.platform, 'p');
  assert.equal(data.run.result, { kind: 'exited', code: 0 });
  const big = readFileSync(join(run.dir, 'artifacts/out/deep/big.bin'));
  assert.equal(data.artifacts.map((a: { path: string; size: number; sha256: string }) => [a.path, a.size, a.sha256]),
    [['out/deep/big.bin', 3_000_000, sha(big)], ['tool', 10, sha(Buffer.from('#!/bin/sh\n'))]]);
  const text = await h.client(server, ['result', run.uuid]);
  assert.match(text.stdout, /^job +hello$/m);
  assert.match(text.stdout, /^result +exited 0$/m);
  assert.match(text.stdout, new RegExp(`^out/deep/big\\.bin +3000000 +${sha(big)}$`, 'm'));

  const missing = await h.client(server, ['result', '00000000-0000-4000-8000-000000000000']);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /no run with uuid/);
}));

t('artifacts streams every artifact, or the named ones, into DIR with their modes; an unknown path is refused', withTimeout(40_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const run = await finishedRun(server, 'hello', BUILD);
  const out = h.path('dl');
  const r = await h.client(server, ['artifacts', run.uuid, '--output', out]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(tree(out), ['out/deep/big.bin', 'tool']);
  assert.ok(readFileSync(join(out, 'out/deep/big.bin')).equals(readFileSync(join(run.dir, 'artifacts/out/deep/big.bin'))));
  assert.is(statSync(join(out, 'tool')).mode & 0o777, 0o755);
  assert.equal(r.stdout.trim().split('\n'), [join(out, 'out/deep/big.bin'), join(out, 'tool')]);

  const some = await h.client(server, ['artifacts', run.uuid, '--output', h.path('some'), 'tool']);
  assert.is(some.code, 0, some.stderr);
  assert.equal(tree(h.path('some')), ['tool']);
  const dirOnly = await h.client(server, ['artifacts', run.uuid, '--output', h.path('dironly'), 'out']);
  assert.is(dirOnly.code, 0, dirOnly.stderr);
  assert.equal(tree(h.path('dironly')), ['out/deep/big.bin']);
  const bad = await h.client(server, ['artifacts', run.uuid, '--output', h.path('bad'), 'nope']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /has no artifact "nope"/);
}));

t('an artifact whose stored bytes no longer match its sha256 is not written, and the command exits 1', withTimeout(40_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const run = await finishedRun(server, 'hello', BUILD);
  const file = join(run.dir, 'artifacts/out/deep/big.bin');
  const bytes = readFileSync(file);
  bytes[1_000_000] = bytes[1_000_000]! ^ 0xff; // same size, one bit pattern changed on the server's disk
  writeFileSync(file, bytes);
  const out = h.path('dl');
  const r = await h.client(server, ['artifacts', run.uuid, '--output', out]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /artifact out\/deep\/big\.bin of run .* does not match its record .*; not written/);
  assert.equal(tree(out), [], 'no file, not even a temporary one');
}));

t('a connection lost in the middle of an artifact leaves no partial file, and the command exits 1', withTimeout(60_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const run = await finishedRun(server, 'large', 'head -c 40000000 /dev/urandom > large.bin\n');
  // a proxy that passes the hello and 5 MB of the answer, then drops both sides
  let passed = 0;
  const sockets: Socket[] = [];
  const proxy = createServer((client) => {
    const upstream = connect(server.port, '127.0.0.1');
    sockets.push(client, upstream);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      passed += chunk.length;
      if (passed > 5_000_000) {
        client.destroy();
        upstream.destroy();
      } else client.write(chunk);
    });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as { port: number }).port;
  try {
    const out = h.path('dl');
    const r = await h.client({ ...server, remote: `127.0.0.1:${port}` }, ['artifacts', run.uuid, '--output', out]);
    assert.is(r.code, 1);
    assert.match(r.stderr, /connection lost before every artifact arrived/);
    assert.ok(passed > 5_000_000, 'the transfer had begun');
    assert.equal(existsSync(out) ? tree(out) : [], [], 'no file, not even a temporary one');
  } finally {
    sockets.forEach((s) => s.destroy());
    proxy.close();
  }
}));

t('console of a running run prints its lines so far; --follow goes on live until it ends', withTimeout(40_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const go = h.path('go');
  await h.client(server, ['schedule', 'slow', 'p', h.script('slow', `echo one\nwhile [ ! -e ${go} ]; do sleep 0.05; done\necho two\n`), '--period', 'never']);
  await h.client(server, ['execute', 'slow']);
  const uuid = await eventually(async () => (await h.info(server)).running[0]?.uuid as string | undefined, 15_000, 'the run to start');
  const sofar = await eventually(async () => {
    const r = await h.client(server, ['console', uuid]);
    return /one/.test(r.stdout) && r;
  }, 15_000, 'the first line');
  assert.is(sofar.code, 0);
  assert.not.match(sofar.stdout, /two/);
  assert.match(sofar.stderr, /still running/);

  const follow = h.clientProc(server, ['console', uuid, '--follow']);
  await follow.waitFor(/one/);
  writeFileSync(go, '');
  const { code } = await follow.exited;
  assert.is(code, 0, follow.stderr);
  assert.match(follow.stdout, /\+\d+\.\d{3}s one\n +\+\d+\.\d{3}s two\n$/);
  assert.match(follow.stderr, /exited 0/);
}));

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

t('a client that stops reading holds the server to a few chunks: 256 MiB wait on disk, not in the server', withTimeout(90_000, async () => {
  const stateDir = h.path('state');
  const uuid = randomUUID();
  const artifacts = join(incomingDir(stateDir, uuid), 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  const SIZE = 256 << 20;
  const fd = openSync(join(artifacts, 'big.bin'), 'w');
  const buf = Buffer.alloc(4 << 20);
  for (let left = SIZE; left > 0; left -= buf.length) writeSync(fd, randomFillSync(buf));
  closeSync(fd);
  const store = openStore(join(stateDir, 'state.db'));
  await storeRun(store, stateDir, { uuid, job: 'big', finished: Date.now(), artifacts: [{ path: 'big.bin', written: true }] });
  store.close();
  const server = await h.server({ dir: stateDir });
  const before = rssMiB(server.proc.pid);

  const session = await ClientSession.open('127.0.0.1', server.port, h.token(server));
  let received = 0;
  let ended!: () => void;
  const end = new Promise<void>((r) => (ended = r));
  await session.request({ op: 'fetch-artifacts', uuid }, (ev: Stream) => {
    if (ev.t === 'artifact-data') received += ev.data.length;
    if (ev.t === 'artifacts-end') ended();
  });
  session.conn.socket.pause(); // a reader that stops reading once it has the answer
  await new Promise((r) => setTimeout(r, 2000));
  const grown = rssMiB(server.proc.pid) - before;
  assert.ok(grown < 64, `the server grew by ${grown.toFixed(0)} MiB while its client did not read`);
  session.conn.socket.resume();
  await end;
  assert.is(received, SIZE, 'every byte arrives once the client reads again');
  session.close();
}));

t.run();
