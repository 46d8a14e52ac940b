// Checks the service files in packaging/ and the CI/test-environment scripts with the tools
// that understand them: `systemd-analyze verify` for the systemd units, systemd-sysusers and
// systemd-tmpfiles (into a scratch root) for the users/directories, `shellcheck` for the shell
// scripts, and a stand-in rc.subr that shows the command line each FreeBSD rc.d script starts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from '../helpers/env.js';

// Compiled to dist/test/unit/packaging.test.js: the repository root is three levels up.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const repo = (...parts: string[]): string => join(root, ...parts);

const systemdDir = repo('packaging', 'systemd');
const rcDir = repo('packaging', 'freebsd', 'rc.d');
const rcScripts = ['builder', 'builder_worker'].map((n) => join(rcDir, n));
const bashScripts = [
  repo('.ci', 'run'),
  ...readdirSync(repo('test', 'env'))
    .filter((f) => f.endsWith('.sh'))
    .sort()
    .map((f) => repo('test', 'env', f)),
];

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
}
const output = (r: SpawnSyncReturns<string>): string => `${r.stdout ?? ''}${r.stderr ?? ''}`;
const has = (cmd: string): boolean => run('sh', ['-c', `command -v ${cmd}`]).status === 0;
const isRoot = process.getuid?.() === 0;

function scratch(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `builder-${prefix}-`));
}

test('the expected packaging files exist; scripts are executable', () => {
  for (const f of [
    'builder.service',
    'builder-worker@.service',
    'builder.sysusers.conf',
    'builder.tmpfiles.conf',
  ]) {
    assert.ok(statSync(join(systemdDir, f)).isFile(), f);
  }
  for (const f of ['builder.conf.sample', 'pkg-plist-notes.md']) {
    assert.ok(statSync(repo('packaging', 'freebsd', f)).isFile(), f);
  }
  for (const f of [...rcScripts, repo('.ci', 'run')]) {
    accessSync(f, constants.X_OK); // throws when not executable
  }
  assert.ok(bashScripts.some((f) => f.endsWith('setup-docker.sh')));
  assert.ok(bashScripts.some((f) => f.endsWith('setup-btrfs.sh')));
});

test('systemd units: the settings the deployment relies on', () => {
  const server = readFileSync(join(systemdDir, 'builder.service'), 'utf8');
  for (const line of [
    'ExecStart=/usr/bin/builder-server --dir /var/lib/builder',
    'User=builder',
    'Group=builder',
    'StateDirectory=builder',
    'StateDirectoryMode=0700',
    'After=network.target',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ReadWritePaths=/var/lib/builder',
    'PrivateTmp=yes',
  ]) {
    assert.ok(server.split('\n').some((l) => l.startsWith(line)), `builder.service lacks ${line}`);
  }
  const worker = readFileSync(join(systemdDir, 'builder-worker@.service'), 'utf8');
  for (const line of [
    'ExecStart=/usr/bin/builder-worker %i --remote 127.0.0.1:1234 ',
    'Restart=always',
    'Requires=docker.service',
    'EnvironmentFile=-/etc/default/builder-worker-%i',
  ]) {
    assert.ok(worker.split('\n').some((l) => l.startsWith(line)), `builder-worker@.service lacks ${line}`);
  }
  const exec = worker.split('\n').find((l) => l.startsWith('ExecStart=')) ?? '';
  for (const part of ['--sandbox docker', '--image builder-base:%i', '--token-file /var/lib/builder/token', '$BUILDER_WORKER_FLAGS']) {
    assert.ok(exec.includes(part), `worker ExecStart lacks ${part}`);
  }
  assert.match(worker, /^After=.*docker\.service/m);
  assert.match(readFileSync(join(systemdDir, 'builder.sysusers.conf'), 'utf8'), /^u\s+builder\s+497\b/m);
  assert.match(readFileSync(join(systemdDir, 'builder.tmpfiles.conf'), 'utf8'), /^d\s+\/var\/lib\/builder\s+0700\s+builder\s+builder\b/m);
});

test('systemd units pass systemd-analyze verify', () => {
  if (!need('systemd-analyze', has('systemd-analyze'), 'apt-get install systemd')) return;
  const dir = scratch('units');
  try {
    for (const unit of ['builder.service', 'builder-worker@.service']) {
      const text = readFileSync(join(systemdDir, unit), 'utf8');
      // verify fails on a missing ExecStart binary: use one that exists.
      const patched = text.replace(/^(ExecStart=)\/usr\/bin\/builder-(server|worker)\b/gm, '$1/bin/true');
      assert.is.not(patched, text, `${unit}: ExecStart not found to patch`);
      writeFileSync(join(dir, unit), patched);
    }
    // Requires=docker.service must resolve even where docker.io is not installed; the unit
    // directory of the verified files is searched first.
    writeFileSync(join(dir, 'docker.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
    for (const unit of ['builder.service', 'builder-worker@.service', 'builder-worker@debian-bookworm-amd64.service']) {
      const r = run('systemd-analyze', ['verify', join(dir, unit)], { cwd: dir, env: { ...process.env, SYSTEMD_PAGER: '' } });
      const out = output(r);
      assert.is(r.status, 0, `systemd-analyze verify ${unit} exited ${r.status}:\n${out}`);
      const unknown = out.split('\n').filter((l) => /Unknown/i.test(l));
      assert.equal(unknown, [], `systemd-analyze verify ${unit}:\n${out}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sysusers and tmpfiles entries create builder (497) and /var/lib/builder 0700', () => {
  if (!need('systemd-sysusers and systemd-tmpfiles', has('systemd-sysusers') && has('systemd-tmpfiles'), 'apt-get install systemd')) return;
  if (!need('root', isRoot, 'the sysusers/tmpfiles check chowns into a scratch root')) return;
  const dir = scratch('sysroot');
  try {
    mkdirSync(join(dir, 'etc')); // sysusers locks DIR/etc/.pwd.lock
    const su = run('systemd-sysusers', [`--root=${dir}`, join(systemdDir, 'builder.sysusers.conf')]);
    assert.is(su.status, 0, output(su));
    assert.match(readFileSync(join(dir, 'etc', 'passwd'), 'utf8'), /^builder:x:497:497:/m);
    assert.match(readFileSync(join(dir, 'etc', 'group'), 'utf8'), /^builder:x:497:/m);
    const tf = run('systemd-tmpfiles', [`--root=${dir}`, '--create', join(systemdDir, 'builder.tmpfiles.conf')]);
    assert.is(tf.status, 0, output(tf));
    const st = statSync(join(dir, 'var', 'lib', 'builder'));
    assert.is(st.mode & 0o7777, 0o700);
    assert.is(st.uid, 497);
    assert.is(st.gid, 497);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shellcheck: rc.d scripts as sh, CI and test-environment scripts as bash', () => {
  if (!need('shellcheck', has('shellcheck'), 'apt-get install shellcheck')) return;
  const sh = run('shellcheck', ['-s', 'sh', ...rcScripts]);
  assert.is(sh.status, 0, `shellcheck -s sh rc.d:\n${output(sh)}`);
  const bash = run('shellcheck', ['-s', 'bash', ...bashScripts]);
  assert.is(bash.status, 0, `shellcheck -s bash:\n${output(bash)}`);
});

// A stand-in for FreeBSD's /etc/rc.subr, just enough to print the command line `start` runs:
// rc_flags comes from ${name}_flags, start_precmd may change it, and rc.subr then runs
// `$command $rc_flags $command_args` as ${name}_user.
const fakeRcSubr = `
load_rc_config() { :; }
warn() { echo "WARN: $*" >&2; }
install() { :; }
run_rc_command() {
  eval "rc_flags=\\$\${name}_flags"
  eval "_user=\\$\${name}_user"
  if [ -n "$start_precmd" ]; then $start_precmd || return 1; fi
  echo "USER=\${_user:-root}"
  echo "RUN=$command $rc_flags $command_args"
}
`;

function rcStart(script: string, env: Record<string, string>): { status: number | null; out: string } {
  const dir = scratch('rc');
  try {
    const subr = join(dir, 'rc.subr');
    writeFileSync(subr, fakeRcSubr);
    const text = readFileSync(join(rcDir, script), 'utf8');
    const patched = text.replace(/^\. \/etc\/rc\.subr$/m, `. ${subr}`);
    assert.is.not(patched, text, `${script} does not source /etc/rc.subr`);
    writeFileSync(join(dir, script), patched);
    const r = run('sh', [join(dir, script), 'start'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
    return { status: r.status, out: output(r) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const words = (out: string): string[] =>
  (out.split('\n').find((l) => l.startsWith('RUN=')) ?? '').slice(4).trim().split(/\s+/);

test('rc.d/builder starts daemon -r -P ... builder-server --dir /var/db/builder FLAGS as builder', () => {
  const r = rcStart('builder', { builder_flags: '--ip 127.0.2.1 --port 1234', builder_program: '/bin/true' });
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /^USER=builder$/m);
  assert.equal(words(r.out), [
    '/usr/sbin/daemon', '-r', '-P', '/var/run/builder/builder.pid', '-o', '/var/log/builder.log',
    '/bin/true', '--dir', '/var/db/builder', '--ip', '127.0.2.1', '--port', '1234',
  ]);
});

test('rc.d/builder_worker starts the worker with --sandbox zfs-jail and its flags, as root', () => {
  const flags = '--zfs-snapshot zroot/poudriere/jails/14amd64@clean --jail-ips 127.0.2.2-127.0.2.254';
  const r = rcStart('builder_worker', {
    builder_worker_platform: 'freebsd-14-amd64',
    builder_worker_flags: flags,
    builder_worker_program: '/bin/true',
  });
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /^USER=root$/m);
  assert.equal(words(r.out), [
    '/usr/sbin/daemon', '-r', '-P', '/var/run/builder_worker.pid', '-o', '/var/log/builder_worker.log',
    '/bin/true', 'freebsd-14-amd64', '--remote', '127.0.2.1:1234', '--token-file', '/var/db/builder/token',
    '--sandbox', 'zfs-jail', ...flags.split(' '),
  ]);
  const missing = rcStart('builder_worker', { builder_worker_program: '/bin/true' });
  assert.is.not(missing.status, 0, 'starting without builder_worker_platform must fail');
  assert.match(missing.out, /builder_worker_platform/);
});

test.run();
