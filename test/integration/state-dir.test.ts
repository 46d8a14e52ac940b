// The state directory: private whatever the umask, a warning for one others can read, a refused
// token file that others can read, one server per directory, and an unusable --dir refused
// with one line (never a busy loop).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { need } from '../helpers/env.js';
import { Harness, bin, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('state directory');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);

/** Every file and directory under dir, with its mode. */
function modes(dir: string): Array<[string, string]> {
  return readdirSync(dir, { recursive: true }).map((p) => [String(p), mode(join(dir, String(p)))]);
}

t('with umask 000 the state directory is 0700 and its database, WAL and results are 0600 (directories 0700)', withTimeout(60_000, async () => {
  const old = process.umask(0);
  let server;
  try {
    server = await h.server();
  } finally {
    process.umask(old);
  }
  h.worker(server, 'p');
  await h.client(server, ['schedule', 'j', 'p', h.script('j', 'echo hi\nmkdir -p d && echo x > d/a && chmod 755 d/a\n')]);
  const [run] = await eventually(async () => {
    const r = await h.history<{ dir: string }>(server, 'j');
    return r.length > 0 && r;
  }, 20_000, 'a stored result');
  assert.is(mode(server.dir), '700');
  const all = modes(server.dir);
  for (const name of ['state.db', 'state.db-wal', 'state.db-shm', 'token']) {
    assert.equal(all.find(([p]) => p === name), [name, '600'], name);
  }
  const result = all.filter(([p]) => p.startsWith('results'));
  assert.ok(result.some(([p]) => p.endsWith('artifacts/d/a')));
  for (const [p, m] of result) {
    const isDir = statSync(join(server.dir, p)).isDirectory();
    if (p.endsWith('artifacts/d/a')) assert.is(m, '700', 'an executable artifact keeps its owner bits only');
    else assert.is(m, isDir ? '700' : '600', p);
  }
  void run;
}));

t('an existing state directory others can read is warned about; a token file others can read is refused', withTimeout(30_000, async () => {
  const dir = h.path('open');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  const server = await h.server({ dir });
  await server.proc.waitFor(/the state directory is open to other users.*mode=0755/);
  server.proc.kill();
  await server.proc.exited;

  const token = h.path('token');
  writeFileSync(token, 'a-token-long-enough-to-be-used\n');
  chmodSync(token, 0o644);
  const p = h.spawn(bin('server'), ['--dir', h.path('other'), '--port', '0', '--token-file', token], 'server');
  const { code } = await p.exited;
  assert.is(code, 1);
  assert.match(p.stderr, /^builder-server: token file .*token is readable or writable by other users \(mode 0644\): chmod o-rw .*\n$/);
}));

t('a second server on the same state directory exits 1 naming the first one\'s pid', withTimeout(30_000, async () => {
  const first = await h.server();
  const second = h.spawn(bin('server'), ['--dir', first.dir, '--port', '0'], 'second');
  const { code } = await second.exited;
  assert.is(code, 1);
  assert.is(second.stderr, `builder-server: state directory in use by pid ${first.proc.pid}: ${first.dir} (one server per state directory)\n`);
  const ok = await h.client(first, ['info', '--json']);
  assert.is(ok.code, 0);
}));

t('an unusable --dir gives one line and exit 1, at once', withTimeout(30_000, async () => {
  const file = h.path('a-file');
  writeFileSync(file, '');
  for (const [dir, why] of [['/proc/nope', /cannot create it/], [file, /not a directory/], [join(file, 'below'), /cannot create it|not a directory/]] as const) {
    const p = h.spawn(bin('server'), ['--dir', dir, '--port', '0'], 'server');
    const { code } = await p.exited;
    assert.is(code, 1, dir);
    assert.match(p.stderr, new RegExp(`^builder-server: cannot use state directory ${dir}: .*\\n$`));
    assert.match(p.stderr, why);
  }
  if (!need('root', process.getuid?.() === 0, 'running the server as another user needs root')) return;
  const locked = h.path('locked');
  mkdirSync(locked, { mode: 0o700 });
  const r = spawnSync(process.execPath, [bin('server'), '--dir', join(locked, 'state'), '--port', '0'], { uid: 65534, gid: 65534, timeout: 10_000, encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, /^builder-server: cannot use state directory .*: (cannot create it: )?permission denied \(EACCES\)\n$/);
}));

t.run();
