// The installable tree (scripts/stage.ts) and the packages made from it (scripts/package.ts):
// what is in them and what is not, that the staged programs run on their own node_modules, and
// that building twice from the same tree gives the same bytes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDeb, buildFreebsd, type FreebsdManifest } from '../../scripts/package.js';
import { packageVersion, programs, repoRoot, stage, walk } from '../../scripts/stage.js';
import { need } from '../helpers/env.js';

const epoch = 1_700_000_000;
const scratch: string[] = [];
function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `builder-${prefix}-`));
  scratch.push(d);
  return d;
}
test.after(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** One line per entry: path, type, mode, mtime and (for files) the sha256 of the bytes. */
function fingerprint(root: string): string[] {
  return ['', ...walk(root)].map((r) => {
    const st = lstatSync(join(root, r));
    const kind = st.isDirectory() ? 'd' : st.isFile() ? 'f' : '?';
    const sum = st.isFile() ? createHash('sha256').update(readFileSync(join(root, r))).digest('hex') : '-';
    return `${r || '.'} ${kind} ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)} ${sum}`;
  });
}

let linuxTree = '';
function linuxStage(): string {
  if (linuxTree === '') {
    linuxTree = join(tmp('stage'), 'root');
    stage({ destdir: linuxTree, prefix: '/usr', system: 'linux', epoch });
  }
  return linuxTree;
}

test('stage twice from the same tree: the same entries, bytes, modes and mtimes', () => {
  const a = fingerprint(linuxStage());
  const b = join(tmp('stage'), 'root');
  stage({ destdir: b, prefix: '/usr', system: 'linux', epoch });
  const fb = fingerprint(b);
  assert.is(a.length, fb.length, 'entry counts differ');
  assert.equal(a.filter((l, i) => l !== fb[i]).slice(0, 5), [], 'entries differ');
  assert.ok(a.every((l) => l.split(' ')[3] === String(epoch)), 'every entry carries the fixed mtime');
});

test('the staged tree: launchers, compiled code only, production dependencies only, service files', () => {
  const root = linuxStage();
  const entries = walk(root);
  for (const p of programs) {
    const st = lstatSync(join(root, 'usr', 'bin', `builder-${p}`));
    assert.is(st.mode & 0o777, 0o755, `builder-${p} is executable`);
    assert.ok(entries.includes(`usr/share/man/man1/builder-${p}.1.gz`), `man page of builder-${p}`);
    assert.ok(entries.includes(`usr/lib/builder/dist/src/${p}/main.js`));
    assert.ok(entries.includes(`usr/lib/builder/dist/bundle/bin/builder-${p}.cjs`), `the bundle of builder-${p}`);
  }
  assert.equal(entries.filter((e) => /\.(ts|map)$/.test(e) && !e.includes('node_modules/')), [], 'no TypeScript, no source maps');
  assert.equal(entries.filter((e) => /^usr\/lib\/builder\/dist\/(test|bench|scripts)\b/.test(e)), [], 'no tests, bench or scripts');
  for (const dev of ['typescript', 'uvu', '@types']) {
    assert.not.ok(existsSync(join(root, 'usr/lib/builder/node_modules', dev)), `dev dependency ${dev} staged`);
  }
  for (const dep of ['better-sqlite3', 'cbor-x', 'execa', 'handlebars', 'node-cron', 'undici']) {
    assert.ok(existsSync(join(root, 'usr/lib/builder/node_modules', dep, 'package.json')), `dependency ${dep} missing`);
  }
  assert.ok(entries.includes('usr/lib/builder/node_modules/better-sqlite3/build/Release/better_sqlite3.node'));
  assert.not.ok(entries.some((e) => e.startsWith('usr/lib/builder/node_modules/better-sqlite3/deps/')), 'sqlite sources staged');
  assert.is(existsSync(join(root, 'usr/lib/builder/templates')), existsSync(join(repoRoot, 'templates')));
  for (const f of ['usr/lib/systemd/system/builder.service', 'usr/lib/systemd/system/builder-worker@.service',
    'usr/lib/systemd/system/builder-worker-btrfs@.service', 'usr/lib/systemd/system/builder-worker-process@.service',
    'usr/lib/sysusers.d/builder.conf', 'usr/lib/tmpfiles.d/builder.conf', 'etc/default/builder', 'etc/default/builder-worker']) {
    assert.ok(entries.includes(f), `${f} not staged`);
  }
  assert.match(readFileSync(join(root, 'usr/lib/systemd/system/builder.service'), 'utf8'), /^ExecStart=\/usr\/bin\/builder-server /m);
});

test('the staged programs run on the staged node_modules alone', () => {
  const lib = join(linuxStage(), 'usr', 'lib', 'builder');
  const help = spawnSync(process.execPath, [join(lib, 'launch.cjs'), 'server', '--help'], { encoding: 'utf8', cwd: tmpdir() });
  assert.is(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: builder-server/);
  // what the launchers run is each program's bundle: every one starts from the staged tree
  for (const p of programs) {
    const v = spawnSync(process.execPath, [join(lib, 'launch.cjs'), p, '--version'], { encoding: 'utf8', cwd: tmpdir() });
    assert.is(v.status, 0, v.stderr);
    assert.is(v.stdout.trim(), `builder-${p} ${packageVersion()}`);
  }
  // The native addon came along built: open a database with the staged copy.
  const sqlite = spawnSync(process.execPath, ['--input-type=module', '-e',
    `import D from ${JSON.stringify(join(lib, 'node_modules', 'better-sqlite3', 'lib', 'index.js'))}; console.log(new D(':memory:').prepare('select 6*7 as x').get().x)`],
  { encoding: 'utf8', cwd: tmpdir() });
  assert.is(sqlite.stdout.trim(), '42', sqlite.stderr);
});

test('a launcher without a node says which node it needs, in one line', () => {
  const r = spawnSync(join(linuxStage(), 'usr', 'bin', 'builder-client'), ['info'], {
    encoding: 'utf8', env: { PATH: '/nonexistent', BUILDER_NODE: '/nonexistent/node' },
  });
  assert.is(r.status, 127);
  assert.match(r.stderr, /^builder-client: needs Node\.js 20 or newer, but "\/nonexistent\/node" was not found/);
  assert.is(r.stderr.trim().split('\n').length, 1);
});

test('the .deb: built twice, the same bytes; its control data, conffiles and owners', () => {
  if (!need('dpkg-deb', spawnSync('dpkg-deb', ['--version']).status === 0, 'apt-get install dpkg-dev')) return;
  const a = buildDeb(epoch, tmp('deb'));
  const b = buildDeb(epoch, tmp('deb'));
  assert.ok(a.endsWith(`builder_${packageVersion()}_${spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim()}.deb`), a);
  assert.ok(readFileSync(a).equals(readFileSync(b)), 'two builds of the .deb differ');
  const field = (f: string): string => spawnSync('dpkg-deb', ['-f', a, f], { encoding: 'utf8' }).stdout.trim();
  assert.is(field('Package'), 'builder');
  assert.is(field('Version'), packageVersion());
  assert.match(field('Recommends'), /nodejs \(>= 20\)/);
  const info = spawnSync('dpkg-deb', ['-I', a, 'conffiles'], { encoding: 'utf8' });
  assert.equal(info.stdout.trim().split('\n'), ['/etc/default/builder', '/etc/default/builder-worker']);
  const list = spawnSync('dpkg-deb', ['-c', a], { encoding: 'utf8' }).stdout.trim().split('\n');
  assert.ok(list.every((l) => l.split(/\s+/)[1] === 'root/root'), 'every entry owned by root/root');
  assert.ok(list.some((l) => /^-rwxr-xr-x .* \.\/usr\/bin\/builder-server$/.test(l)));
  const scripts = spawnSync('dpkg-deb', ['-I', a], { encoding: 'utf8' }).stdout;
  for (const s of ['postinst', 'prerm', 'postrm']) assert.match(scripts, new RegExp(`\\b${s}\\b`));
});

test('FreeBSD +MANIFEST: parses, lists exactly the staged files with their sha256, the user and @dir', () => {
  const dir = tmp('freebsd');
  const manifestPath = buildFreebsd(epoch, dir);
  const text = readFileSync(manifestPath, 'utf8');
  const m = JSON.parse(text) as FreebsdManifest;
  const root = join(dir, 'root');
  const staged = walk(root).filter((r) => lstatSync(join(root, r)).isFile()).map((r) => `/${r}`);
  assert.equal(Object.keys(m.files).sort(), staged.sort());
  for (const [path, f] of Object.entries(m.files)) {
    assert.is(f.sum, createHash('sha256').update(readFileSync(join(root, path))).digest('hex'), path);
  }
  assert.is(m.files['/usr/local/bin/builder-worker']?.perm, '0755');
  assert.is(m.files['/usr/local/etc/rc.d/builder_worker']?.perm, '0755');
  assert.ok(m.files['/usr/local/etc/newsyslog.conf.d/builder.conf']);
  assert.is(m.prefix, '/usr/local');
  assert.equal([m.name, m.version, m.origin], ['builder', packageVersion(), 'devel/builder']);
  assert.equal(m.users, ['builder']);
  assert.equal(m.directories['/var/db/builder'], { uname: 'builder', gname: 'builder', perm: '0700' });
  assert.match(m.scripts['pre-install'] ?? '', /pw useradd builder -u 497/);
  assert.match(m.scripts['pre-install'] ?? '', /pw groupadd builder -g 497/);
  // The staged rc.d scripts call the programs where the package puts them.
  assert.match(readFileSync(join(root, 'usr/local/etc/rc.d/builder'), 'utf8'), /builder_program:=\/usr\/local\/bin\/builder-server/);
  assert.is(readFileSync(buildFreebsd(epoch, tmp('freebsd')), 'utf8'), text, 'a second manifest differs');
});

test.run();
