// Checks the service files in packaging/ and the CI/test-environment scripts with the tools
// that understand them: `systemd-analyze verify` for the systemd units, systemd-sysusers and
// systemd-tmpfiles (into a scratch root) for the users/directories, `shellcheck` for the shell
// scripts, and a stand-in rc.subr that shows the command line each FreeBSD rc.d script starts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
// Maintainer scripts of the .deb and the FreeBSD package's scripts: all run by /bin/sh.
const pkgScripts = [
  ...['postinst', 'prerm', 'postrm'].map((n) => repo('packaging', 'debian', n)),
  ...['pkg-pre-install.sh', 'pkg-post-deinstall.sh'].map((n) => repo('packaging', 'freebsd', n)),
];
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
    'builder-worker-btrfs@.service',
    'builder-worker-process@.service',
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
    'RestartPreventExitStatus=78',
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
  // one unit per sandbox kind, each starting the worker with its sandbox; none restarts after exit 78 (EX_CONFIG)
  const kinds: Array<[string, string]> = [['builder-worker@.service', '--sandbox docker'], ['builder-worker-btrfs@.service', '--sandbox btrfs-ns'],
    ['builder-worker-process@.service', '--sandbox process']];
  for (const [unit, sandbox] of kinds) {
    const text = readFileSync(join(systemdDir, unit), 'utf8');
    const start = text.split('\n').find((l) => l.startsWith('ExecStart=/usr/bin/builder-worker %i ')) ?? '';
    assert.ok(start.includes(sandbox) && start.endsWith(' $BUILDER_WORKER_FLAGS'), `${unit}: ${start}`);
    assert.match(text, /^RestartPreventExitStatus=78$/m, unit);
  }
  assert.match(worker, /^User=builder$/m, 'the docker worker does not run as root');
  assert.match(readFileSync(join(systemdDir, 'builder.sysusers.conf'), 'utf8'), /^u\s+builder\s+497\b/m);
  assert.match(readFileSync(join(systemdDir, 'builder.tmpfiles.conf'), 'utf8'), /^d\s+\/var\/lib\/builder\s+0700\s+builder\s+builder\b/m);
});

test('systemd units pass systemd-analyze verify', () => {
  if (!need('systemd-analyze', has('systemd-analyze'), 'apt-get install systemd')) return;
  const dir = scratch('units');
  try {
    for (const unit of ['builder.service', 'builder-worker@.service', 'builder-worker-btrfs@.service', 'builder-worker-process@.service']) {
      const text = readFileSync(join(systemdDir, unit), 'utf8');
      // verify fails on a missing ExecStart binary: use one that exists.
      const patched = text.replace(/^(ExecStart=)\/usr\/bin\/builder-(server|worker)\b/gm, '$1/bin/true');
      assert.is.not(patched, text, `${unit}: ExecStart not found to patch`);
      writeFileSync(join(dir, unit), patched);
    }
    // Requires=docker.service must resolve even where docker.io is not installed; the unit
    // directory of the verified files is searched first.
    writeFileSync(join(dir, 'docker.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
    for (const unit of ['builder.service', 'builder-worker@.service', 'builder-worker@debian-bookworm-amd64.service',
      'builder-worker-btrfs@debian-12.service', 'builder-worker-process@local.service']) {
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

test('shellcheck: rc.d and package scripts as sh, CI and test-environment scripts as bash', () => {
  if (!need('shellcheck', has('shellcheck'), 'apt-get install shellcheck')) return;
  const sh = run('shellcheck', ['-s', 'sh', ...rcScripts, ...pkgScripts]);
  assert.is(sh.status, 0, `shellcheck -s sh rc.d:\n${output(sh)}`);
  const bash = run('shellcheck', ['-s', 'bash', ...bashScripts]);
  assert.is(bash.status, 0, `shellcheck -s bash:\n${output(bash)}`);
});

// A stand-in for FreeBSD's /etc/rc.subr and daemon(8), just enough to run start, stop and
// status for real on Linux: rc_flags comes from ${name}_flags, start_precmd may change it, then
// `$command $rc_flags $command_args` runs (as ${name}_user on FreeBSD). Each step is recorded in
// $RC_LOG. The daemon stand-in records its arguments, starts the program in the background with
// its output in the -o file and writes its pid to the -P file.
const fakeRcSubr = `
load_rc_config() { :; }
warn() { echo "WARN: $*" >&2; }
install() { :; }
checkyesno() { eval "_v=\\\${$1}"; case "$_v" in [Yy][Ee][Ss]) return 0;; *) return 1;; esac; }
_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
run_rc_command() {
  eval "rc_flags=\\\${\${name}_flags}"
  eval "_user=\\\${\${name}_user}"
  case "$1" in
  start)
    if ! checkyesno "$rcvar"; then echo "Cannot 'start' $name. Set $rcvar to YES"; return 1; fi
    if _running; then echo "$name already running? (pid=$(cat "$pidfile"))."; return 1; fi
    if [ -n "$start_precmd" ]; then $start_precmd || return 1; fi
    echo "START $name user=\${_user:-root} $command $rc_flags $command_args" >> "$RC_LOG"
    # shellcheck disable=SC2086
    $command $rc_flags $command_args ;;
  stop)
    if ! _running; then echo "$name not running? (check $pidfile)."; return 1; fi
    echo "STOP $name pid=$(cat "$pidfile")" >> "$RC_LOG"
    kill "$(cat "$pidfile")"; rm -f "$pidfile" ;;
  status)
    if _running; then echo "$name is running as pid $(cat "$pidfile")."; else echo "$name is not running."; return 1; fi ;;
  esac
}
`;
const fakeDaemon = `#!/bin/sh
pid= log=/dev/null
while getopts rHP:o: o; do case $o in P) pid=$OPTARG;; o) log=$OPTARG;; *) ;; esac; done
shift $((OPTIND - 1))
"$@" >> "$log" 2>&1 &
echo $! > "$pid"
`;

interface RcBox { dir: string; run(script: string, args: string[], env?: Record<string, string>): { status: number | null; out: string }; log(): string[] }

/** The rc.d scripts patched to use the stand-ins, with /var/run and /var/log under a scratch dir. */
function rcBox(): RcBox {
  const dir = scratch('rc');
  for (const d of ['run', 'log', 'run/builder']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'rc.subr'), fakeRcSubr);
  writeFileSync(join(dir, 'daemon'), fakeDaemon, { mode: 0o755 });
  // The "worker": stays up until stopped, and says with which arguments it was started.
  writeFileSync(join(dir, 'program'), '#!/bin/sh\necho "ARGS $*"\nexec sleep 60\n', { mode: 0o755 });
  writeFileSync(join(dir, 'rc.log'), '');
  for (const script of ['builder', 'builder_worker']) {
    const text = readFileSync(join(rcDir, script), 'utf8');
    const patched = text
      .replace(/^\. \/etc\/rc\.subr$/m, `. ${join(dir, 'rc.subr')}`)
      .replace(/^command=\/usr\/sbin\/daemon$/m, `command=${join(dir, 'daemon')}`)
      .replace(/\/var\/run\//g, `${dir}/run/`)
      .replace(/\/var\/log\//g, `${dir}/log/`);
    assert.is.not(patched, text, `${script} does not source /etc/rc.subr`);
    writeFileSync(join(dir, script), patched, { mode: 0o755 });
  }
  return {
    dir,
    run(script, args, env = {}) {
      const r = run(join(dir, script), args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', RC_LOG: join(dir, 'rc.log'), ...env } });
      return { status: r.status, out: output(r) };
    },
    log: () => readFileSync(join(dir, 'rc.log'), 'utf8').split('\n').filter((l) => l !== ''),
  };
}
const startWords = (line: string | undefined): string[] => (line ?? '').split(/\s+/).slice(3);

test('rc.d/builder starts daemon -r -H -P ... builder-server --dir /var/db/builder FLAGS as builder; status; stop', () => {
  const box = rcBox();
  try {
    const env = { builder_enable: 'YES', builder_flags: '--ip 127.0.2.1 --port 1234', builder_program: join(box.dir, 'program') };
    const r = box.run('builder', ['start'], env);
    assert.is(r.status, 0, r.out);
    const start = box.log()[0] ?? '';
    assert.match(start, /^START builder user=builder /);
    assert.equal(startWords(start), [
      join(box.dir, 'daemon'), '-r', '-H', '-P', `${box.dir}/run/builder/builder.pid`, '-o', `${box.dir}/log/builder.log`,
      join(box.dir, 'program'), '--dir', '/var/db/builder', '--ip', '127.0.2.1', '--port', '1234',
    ]);
    assert.match(box.run('builder', ['status'], env).out, /builder is running as pid \d+/);
    assert.is(box.run('builder', ['stop'], env).status, 0);
    const st = box.run('builder', ['status'], env);
    assert.is.not(st.status, 0);
    assert.match(st.out, /builder is not running/);
    assert.is(box.run('builder', ['start'], { ...env, builder_enable: 'NO' }).status, 1, 'starts while not enabled');
  } finally {
    rmSync(box.dir, { recursive: true, force: true });
  }
});

test('rc.d/builder_worker: one worker with --sandbox zfs-jail and its flags, as root; no platform, no start', () => {
  const box = rcBox();
  try {
    const flags = '--zfs-snapshot zroot/poudriere/jails/14amd64@clean --jail-ips 127.0.2.2-127.0.2.254';
    const env = { builder_worker_enable: 'YES', builder_worker_platform: 'freebsd-14-amd64', builder_worker_flags: flags, builder_worker_program: join(box.dir, 'program'),
      builder_worker_rcscript: join(box.dir, 'builder_worker') };
    const r = box.run('builder_worker', ['start'], env);
    assert.is(r.status, 0, r.out);
    const start = box.log()[0] ?? '';
    assert.match(start, /^START builder_worker user=root /);
    assert.equal(startWords(start), [
      join(box.dir, 'daemon'), '-H', '-P', `${box.dir}/run/builder_worker.pid`, '-o', `${box.dir}/log/builder_worker.log`,
      '/bin/sh', join(box.dir, 'builder_worker'), '_supervise', join(box.dir, 'program'), 'freebsd-14-amd64', '--remote', '127.0.2.1:1234', '--token-file', '/var/db/builder/token',
      '--sandbox', 'zfs-jail', ...flags.split(' '),
    ]);
    assert.is(box.run('builder_worker', ['stop'], env).status, 0);
    const missing = box.run('builder_worker', ['start'], { ...env, builder_worker_platform: '' });
    assert.is.not(missing.status, 0, 'starting without builder_worker_platform must fail');
    assert.match(missing.out, /builder_worker_platform/);
  } finally {
    rmSync(box.dir, { recursive: true, force: true });
  }
});

test('rc.d/builder_worker profiles: each profile its own platform, flags, log and pid file; start, status and stop all or one', () => {
  const box = rcBox();
  try {
    const env = {
      builder_worker_enable: 'YES',
      builder_worker_program: join(box.dir, 'program'),
      builder_worker_rcscript: join(box.dir, 'builder_worker'),
      builder_worker_flags: '--capacity 2',
      builder_worker_profiles: 'fbsd14 deb12',
      builder_worker_fbsd14_platform: 'freebsd-14-amd64',
      builder_worker_fbsd14_flags: '--zfs-snapshot zroot/poudriere/jails/14amd64@clean',
      builder_worker_deb12_platform: 'debian-12',
      builder_worker_deb12_sandbox: 'process',
      builder_worker_deb12_remote: '10.0.0.5:1234',
    };
    const r = box.run('builder_worker', ['start'], env);
    assert.is(r.status, 0, r.out);
    assert.match(r.out, /===> builder_worker profile: fbsd14\n[^]*===> builder_worker profile: deb12/);
    const [a, b] = box.log();
    assert.equal(startWords(a).slice(3, 6), [`${box.dir}/run/builder_worker_fbsd14.pid`, '-o', `${box.dir}/log/builder_worker_fbsd14.log`]);
    assert.equal(startWords(a).slice(9), [join(box.dir, 'program'), 'freebsd-14-amd64', '--remote', '127.0.2.1:1234', '--token-file', '/var/db/builder/token',
      '--sandbox', 'zfs-jail', '--zfs-snapshot', 'zroot/poudriere/jails/14amd64@clean']);
    // deb12 has no flags of its own: the plain builder_worker_flags apply.
    assert.equal(startWords(b).slice(9), [join(box.dir, 'program'), 'debian-12', '--remote', '10.0.0.5:1234', '--token-file', '/var/db/builder/token',
      '--sandbox', 'process', '--capacity', '2']);
    const status = box.run('builder_worker', ['status'], env);
    assert.is(status.status, 0, status.out);
    assert.is(status.out.match(/builder_worker is running as pid \d+/g)?.length, 2, status.out);
    // One profile alone.
    assert.is(box.run('builder_worker', ['stop', 'deb12'], env).status, 0);
    assert.match(box.run('builder_worker', ['status', 'fbsd14'], env).out, /is running/);
    const one = box.run('builder_worker', ['status', 'deb12'], env);
    assert.is.not(one.status, 0);
    assert.match(one.out, /is not running/);
    assert.is.not(box.run('builder_worker', ['status'], env).status, 0, 'status of all must fail while one is down');
    assert.is(box.run('builder_worker', ['stop', 'fbsd14'], env).status, 0);
    assert.match(readFileSync(join(box.dir, 'log', 'builder_worker_fbsd14.log'), 'utf8'), /^ARGS freebsd-14-amd64 /m);
    const bad = box.run('builder_worker', ['start', 'no-such'], env);
    assert.is.not(bad.status, 0);
    assert.match(bad.out, /profile names are letters, digits and _/);
  } finally {
    rmSync(box.dir, { recursive: true, force: true });
  }
});

test('rc.d/builder_worker restarts a worker that exits, but not one that exits 78 (a refused token); stop passes SIGTERM on', async () => {
  const box = rcBox();
  // a zombie (exited, not yet reaped by a non-reaping init in a container) counts as gone
  const alive = (p: number): boolean => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  try {
    // the "worker": exits 1 on its first start, 78 on its second (each start is logged)
    writeFileSync(join(box.dir, 'flaky'), `#!/bin/sh\necho START >> ${box.dir}/starts\n[ "$(wc -l < ${box.dir}/starts)" -ge 2 ] && exit 78\nexit 1\n`, { mode: 0o755 });
    const env = { builder_worker_enable: 'YES', builder_worker_platform: 'p', builder_worker_program: join(box.dir, 'flaky'),
      builder_worker_rcscript: join(box.dir, 'builder_worker') };
    assert.is(box.run('builder_worker', ['start'], env).status, 0);
    const log = join(box.dir, 'log', 'builder_worker.log');
    const until = Date.now() + 10_000;
    while (!/not restarting it/.test(existsSync(log) ? readFileSync(log, 'utf8') : '') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.match(readFileSync(log, 'utf8'), /exited with status 78 .*not restarting it/);
    assert.is(readFileSync(join(box.dir, 'starts'), 'utf8'), 'START\nSTART\n', 'restarted once after 1, not after 78');
    const supervisor = Number(readFileSync(join(box.dir, 'run', 'builder_worker.pid'), 'utf8'));
    assert.not.ok(alive(supervisor), 'the supervisor has exited');
    rmSync(join(box.dir, 'run', 'builder_worker.pid')); // daemon(8) removes it; the stand-in does not
    // a healthy worker: stop ends it (and its supervisor) at once
    writeFileSync(join(box.dir, 'steady'), `#!/bin/sh\necho $$ > ${box.dir}/steady.pid\nexec sleep 60\n`, { mode: 0o755 });
    const ok = { ...env, builder_worker_program: join(box.dir, 'steady') };
    assert.is(box.run('builder_worker', ['start'], ok).status, 0);
    const pid = Number(readFileSync(join(box.dir, 'run', 'builder_worker.pid'), 'utf8'));
    const waitFile = Date.now() + 5000;
    while (!existsSync(join(box.dir, 'steady.pid')) && Date.now() < waitFile) await new Promise((r) => setTimeout(r, 50));
    const worker = Number(readFileSync(join(box.dir, 'steady.pid'), 'utf8'));
    assert.is(box.run('builder_worker', ['stop'], ok).status, 0);
    const gone = Date.now() + 5000;
    while ((alive(pid) || alive(worker)) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    assert.not.ok(alive(pid), 'the supervisor exits when stopped');
    assert.not.ok(alive(worker), 'the worker was stopped too');
  } finally {
    rmSync(box.dir, { recursive: true, force: true });
  }
});

test('systemd-analyze security: the server unit stays at an exposure of 2.0 or less', () => {
  if (!need('systemd-analyze', has('systemd-analyze'), 'apt-get install systemd')) return;
  const dir = scratch('security');
  try {
    const text = readFileSync(join(systemdDir, 'builder.service'), 'utf8');
    writeFileSync(join(dir, 'builder.service'), text.replace(/^(ExecStart=)\/usr\/bin\/builder-server\b/m, '$1/bin/true'));
    const r = run('systemd-analyze', ['security', '--offline=true', '--no-pager', 'builder.service'], { cwd: dir, env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } });
    const m = /Overall exposure level for builder\.service: (\d+(?:\.\d+)?)/.exec(output(r));
    assert.ok(m, `no exposure level in:\n${output(r)}`);
    const score = Number(m[1]);
    console.log(`  builder.service exposure (systemd-analyze security): ${score}`);
    assert.ok(score <= 2.0, `exposure ${score} is above 2.0:\n${output(r)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('systemd-analyze security: the docker worker unit stays at 5.0 or less; each worker unit is measured', () => {
  if (!need('systemd-analyze', has('systemd-analyze'), 'apt-get install systemd')) return;
  const dir = scratch('worker-security');
  try {
    const limits: Array<[string, number]> = [['builder-worker@.service', 5.0], ['builder-worker-process@.service', 5.0], ['builder-worker-btrfs@.service', 7.0]];
    for (const [unit] of limits) {
      const text = readFileSync(join(systemdDir, unit), 'utf8');
      writeFileSync(join(dir, unit), text.replace(/^(ExecStart=)\/usr\/bin\/builder-worker\b/m, '$1/bin/true'));
    }
    writeFileSync(join(dir, 'docker.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
    for (const [unit, limit] of limits) {
      const instance = unit.replace('@.', '@debian-12.');
      const r = run('systemd-analyze', ['security', '--offline=true', '--no-pager', instance], { cwd: dir, env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } });
      const m = new RegExp(`Overall exposure level for ${instance.replace(/[.@]/g, '\\$&')}: (\\d+(?:\\.\\d+)?)`).exec(output(r));
      assert.ok(m, `no exposure level for ${instance} in:\n${output(r)}`);
      const score = Number(m[1]);
      console.log(`  ${instance} exposure (systemd-analyze security): ${score}`);
      assert.ok(score <= limit, `${instance}: exposure ${score} is above ${limit}:\n${output(r)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
