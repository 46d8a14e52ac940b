// A credential per role, with real processes: the admin token (the server's token file, as
// before) makes a read-only token and a worker token; the reader may look but not change; the
// worker token runs jobs as its own worker only and cannot send requests; the database keeps no
// token; a revoked token's connections close and its worker stops with status 78, as does a
// worker whose token is wrong. Then where the client and worker look for their token.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, bin, withTimeout, type ServerHandle } from '../helpers/processes.js';

const t = suite('credentials');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-cred-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

async function newToken(server: ServerHandle, kind: 'add-worker' | 'add-reader', name: string): Promise<string> {
  const r = await h.client(server, ['token', kind, name]);
  assert.is(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  assert.match(token, new RegExp(`^builder:${name.replace(/\./g, '\\.')}:[0-9a-f]{64}$`));
  const file = h.path(`${name}.token`);
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return file;
}

t('a reader token reads but changes nothing; a worker token works as its worker only; none is stored', withTimeout(60_000, async () => {
  const server = await h.server();
  const readerFile = await newToken(server, 'add-reader', 'dashboard');
  const workerFile = await newToken(server, 'add-worker', 'build-7');
  const s = await h.client(server, ['schedule', 'hello', 'credp', h.script('job', 'echo from-build-7\n'), '--period', 'never']);
  assert.is(s.code, 0, s.stderr);

  // the worker takes its name from its token, and runs the job
  const worker = h.spawn(bin('worker'), ['credp', '--remote', server.remote, '--token-file', workerFile, '--work-dir', h.path('w')], 'worker build-7');
  await worker.waitFor(/connected/);
  const follow = await h.client(server, ['execute', 'hello', '--follow']);
  assert.is(follow.code, 0, follow.stderr);
  assert.match(follow.stdout, /from-build-7/);

  // the reader: info, history, workers, observe of a finished run; no schedule, execute, cancel, token
  const info = await h.client(server, ['info', '--json'], { tokenFile: readerFile });
  assert.is(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).workers.map((w: { name: string }) => w.name), ['build-7']);
  const hist = await h.client(server, ['history', 'hello', '--json'], { tokenFile: readerFile });
  assert.is(hist.code, 0, hist.stderr);
  const uuid = JSON.parse(hist.stdout)[0].uuid as string;
  const obs = await h.client(server, ['observe', uuid], { tokenFile: readerFile });
  assert.is(obs.code, 0, obs.stderr);
  for (const args of [['schedule', 'evil', 'credp', h.script('evil', 'true\n')], ['execute', 'hello'], ['unschedule', 'hello'],
    ['drain', 'build-7'], ['token', 'add-reader', 'more'], ['token', 'revoke', 'build-7']]) {
    const r = await h.client(server, args, { tokenFile: readerFile });
    assert.is(r.code, 1, `${args.join(' ')} by a reader: ${r.stdout}`);
    assert.match(r.stderr, new RegExp(`${args[0] === 'token' ? 'token-(add|revoke)' : args[0]} needs the admin token`));
  }
  assert.equal((await h.info(server)).schedule.map((j: { name: string }) => j.name), ['hello']);

  // the worker token cannot be a client, nor another worker
  const asClient = await h.client(server, ['info'], { tokenFile: workerFile });
  assert.is(asClient.code, 1);
  assert.match(asClient.stderr, /worker token build-7 cannot send client requests/);
  const impostor = h.spawn(bin('worker'), ['credp', '--name', 'build-8', '--remote', server.remote, '--token-file', workerFile, '--work-dir', h.path('w')], 'impostor');
  const gone = await impostor.exited;
  assert.is(gone.code, 78, impostor.stderr);
  assert.match(impostor.stderr, /authentication refused: check the token.*belongs to worker build-7, not to worker \\?"build-8/);

  // listed without secrets; the database holds neither token
  const list = await h.client(server, ['token', 'list', '--json']);
  const listed = JSON.parse(list.stdout) as Array<{ name: string; kind: string; connections: number }>;
  assert.equal(listed.map((x) => [x.name, x.kind, x.connections]), [['dashboard', 'reader', 0], ['build-7', 'worker', 1]]);
  assert.not.match(list.stdout, /builder:/);
  const db = Buffer.concat(['state.db', 'state.db-wal'].map((f) => { try { return readFileSync(join(server.dir, f)); } catch { return Buffer.alloc(0); } }));
  for (const file of [readerFile, workerFile]) {
    const secret = readFileSync(file, 'utf8').trim().split(':')[2]!;
    assert.is(db.indexOf(secret), -1, 'token hex in the database');
    assert.is(db.indexOf(Buffer.from(secret, 'hex')), -1, 'token bytes in the database');
  }

  // revoked: its live connection closes at once, and the worker stops with 78 at its next hello
  const rev = await h.client(server, ['token', 'revoke', 'build-7']);
  assert.is(rev.code, 0, rev.stderr);
  assert.match(rev.stdout, /revoked build-7; 1 connection\(s\) closed/);
  const end = await worker.exited;
  assert.is(end.code, 78, worker.stderr);
  assert.match(worker.stderr, /authentication refused: check the token.*unknown or revoked token/);
  const after = await h.client(server, ['info'], { tokenFile: readerFile });
  assert.is(after.code, 0, 'the reader is not affected');
  const again = await h.client(server, ['token', 'revoke', 'build-7']);
  assert.is(again.code, 1);
}));

t('a worker with a wrong token logs why and exits 78 instead of retrying', withTimeout(30_000, async () => {
  const server = await h.server();
  const wrong = h.path('wrong');
  writeFileSync(wrong, 'not-the-token-of-this-server\n');
  const w = h.spawn(bin('worker'), ['p', '--remote', server.remote, '--token-file', wrong, '--work-dir', h.path('w')], 'worker');
  const { code } = await w.exited;
  assert.is(code, 78);
  assert.is(w.stderr.match(/authentication refused: check the token/g)?.length, 1, w.stderr);
}));

t('the client finds its token: --token-file, BUILDER_TOKEN, BUILDER_TOKEN_FILE, --dir DIR, and names every place when none works', withTimeout(30_000, async () => {
  const server = await h.server();
  const client = async (args: string[], env: NodeJS.ProcessEnv) => {
    const p = h.spawn(bin('client'), ['--remote', server.remote, ...args], 'client', { BUILDER_DIR: h.path('nowhere'), ...env });
    const { code } = await p.exited;
    return { code, stderr: p.stderr };
  };
  const wrong = h.path('wrong');
  writeFileSync(wrong, 'not-the-token-of-this-server\n');
  const good = h.token(server);
  assert.is((await client(['info'], { BUILDER_TOKEN: good })).code, 0);
  assert.is((await client(['info'], { BUILDER_TOKEN_FILE: server.tokenFile })).code, 0);
  assert.is((await client(['info', '--dir', server.dir], {})).code, 0, 'DIR/token');
  // the order: --token-file wins over BUILDER_TOKEN, which wins over BUILDER_TOKEN_FILE
  assert.is((await client(['info', '--token-file', wrong], { BUILDER_TOKEN: good })).code, 1);
  assert.is((await client(['info'], { BUILDER_TOKEN: good, BUILDER_TOKEN_FILE: wrong })).code, 0);
  assert.is((await client(['info', '--dir', server.dir], { BUILDER_TOKEN_FILE: wrong })).code, 1);
  const none = await client(['info'], {});
  assert.is(none.code, 1);
  assert.is(none.stderr.trim().split('\n').length, 1, none.stderr);
  assert.match(none.stderr, new RegExp(`no --token-file; BUILDER_TOKEN not set; BUILDER_TOKEN_FILE not set; default file ${h.path('nowhere')}/token: ENOENT`));
  const missing = await client(['info'], { BUILDER_TOKEN_FILE: h.path('missing') });
  assert.match(missing.stderr, /BUILDER_TOKEN_FILE .*missing: ENOENT/);
}));

t.run();
