// The .deb installed the way an administrator does it, in a fresh Debian 12 container that runs
// systemd as PID 1: dpkg -i starts builder.service as the builder user, two
// builder-worker-process@PLATFORM.service instances take jobs, builder-client (as builder) runs a job on
// each; then dpkg -r and dpkg -P, and what each leaves behind.
//
// The container: the local image builder-test-debian:bookworm (test/env/setup-docker.sh) plus
// systemd, committed once as builder-test-debian-systemd:bookworm. systemd as PID 1 needs
// CAP_SYS_ADMIN and the host's cgroup tree; --privileged is refused by this engine ("unable to
// apply caps"), the capability alone is enough.
//
// Node: Debian 12's nodejs is 18, too old. The test does what the README tells an administrator
// with an official build: a node >= 20 in /usr/local/bin (here the host's own binary, which
// needs only libc and libstdc++). This container has no Docker engine: the workers are the
// process sandbox's unit (a dynamic user that gets the token as a systemd credential), hardened
// as shipped, which also shows that unit's settings work where systemd runs in a container.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDeb } from '../../scripts/package.js';
import { need } from '../helpers/env.js';

const baseImage = 'builder-test-debian:bookworm';
const systemdImage = 'builder-test-debian-systemd:bookworm';
const container = `builder-deb-test-${process.pid}`;

function sh(cmd: string, args: string[], input?: string): { status: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...(input === undefined ? {} : { input }) });
  return { status: r.status, out: r.stdout ?? '', err: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}
/** Runs a shell command in the container; fails the test with its output when it fails. */
function inside(script: string): string {
  const r = sh('docker', ['exec', container, 'sh', '-c', script]);
  assert.is(r.status, 0, `in the container: ${script}\nexit ${r.status}\n${r.out}${r.err}`);
  return r.out;
}
const status = (script: string): number | null => sh('docker', ['exec', container, 'sh', '-c', script]).status;

function waitFor(what: string, script: string, ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (status(script) === 0) return;
    spawnSync('sleep', ['0.3']);
  }
  const journal = sh('docker', ['exec', container, 'journalctl', '--no-pager', '-n', '60']);
  assert.unreachable(`timed out after ${ms} ms waiting for ${what}\n${journal.out}`);
}

function systemdImageReady(): boolean {
  if (sh('docker', ['image', 'inspect', systemdImage]).status === 0) return true;
  const name = `builder-systemd-prep-${process.pid}`;
  const r = sh('docker', ['run', '--name', name, baseImage, 'sh', '-c',
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus >/dev/null']);
  const ok = r.status === 0 && sh('docker', ['commit', '--change', 'CMD ["/sbin/init"]', name, systemdImage]).status === 0;
  sh('docker', ['rm', '-f', name]);
  if (!ok) console.log(`  could not make ${systemdImage}: ${r.err.slice(-2000)}`);
  return ok;
}

test('dpkg -i in Debian 12 with systemd: server and two workers run a job each; dpkg -r keeps state, dpkg -P removes it', () => {
  const docker = sh('docker', ['image', 'inspect', baseImage]).status === 0;
  if (!need(`a Docker engine with ${baseImage}`, docker, 'start dockerd and run test/env/setup-docker.sh')) return;
  if (!need('dpkg-deb', sh('dpkg-deb', ['--version']).status === 0, 'apt-get install dpkg-dev')) return;
  if (!need(`the image ${systemdImage} (apt-get install systemd from Debian's archive)`, systemdImageReady(), 'containers must reach deb.debian.org')) return;

  const dir = mkdtempSync(join(tmpdir(), 'builder-deb-'));
  try {
    const deb = buildDeb(1_700_000_000, dir);
    const run = sh('docker', ['run', '-d', '--name', container, '--cap-add', 'SYS_ADMIN',
      '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
      '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw', '--tmpfs', '/run', '--tmpfs', '/run/lock', systemdImage, '/sbin/init']);
    assert.is(run.status, 0, run.err);
    waitFor('systemd to boot', 'systemctl is-system-running | grep -Eq "running|degraded"', 60_000);

    assert.is(sh('docker', ['cp', deb, `${container}:/tmp/builder.deb`]).status, 0);
    inside('dpkg -i /tmp/builder.deb');
    // No node yet (Debian's is too old and not installed): one line that names the version.
    const noNode = sh('docker', ['exec', container, 'builder-client', 'info']);
    assert.is(noNode.status, 127);
    assert.match(noNode.err, /^builder-client: needs Node\.js 20 or newer, but "node" was not found/);

    assert.is(sh('docker', ['cp', '-L', process.execPath, `${container}:/usr/local/bin/node`]).status, 0);
    // The package started the server before node was there; systemd retries it (Restart=).
    inside('systemctl reset-failed builder.service; systemctl restart builder.service');
    waitFor('the server to write its token', 'test -s /var/lib/builder/token && systemctl is-active -q builder.service', 30_000);
    assert.match(inside('getent passwd builder'), /^builder:x:497:497:builder server:\/var\/lib\/builder:\/usr\/sbin\/nologin$/m);
    assert.is(inside('stat -c "%a %U %G" /var/lib/builder').trim(), '700 builder builder');
    assert.is(inside('systemctl is-enabled builder.service').trim(), 'enabled');
    assert.is(inside('stat -c %U /proc/$(systemctl show -p MainPID --value builder.service)').trim(), 'builder', 'the server runs as builder');

    inside(`echo 'BUILDER_WORKER_FLAGS="--capacity 2"' > /etc/default/builder-worker-local-b
systemctl enable --now builder-worker-process@local-a.service builder-worker-process@local-b.service`);
    waitFor('two workers', 'runuser -u builder -- builder-client workers | grep -q local-a && runuser -u builder -- builder-client workers | grep -q local-b', 30_000);

    inside(`printf '#!/bin/sh\\necho "built on $1"\\n' > /tmp/hello.sh; chmod 644 /tmp/hello.sh`);
    for (const platform of ['local-a', 'local-b']) {
      inside(`cd /tmp && runuser -u builder -- builder-client schedule hello-${platform} ${platform} /tmp/hello.sh --period never`);
      const out = inside(`cd /tmp && runuser -u builder -- builder-client execute hello-${platform} --follow`);
      assert.match(out, /built on/, out);
    }
    const history = inside('runuser -u builder -- builder-client history');
    assert.match(history, /hello-local-a/);
    assert.match(history, /hello-local-b/);
    assert.ok(inside('ls /var/lib/builder/results').includes('hello-local-a'));
    // Each service's log is in the journal.
    assert.ok(inside('journalctl -u builder.service --no-pager -q').trim() !== '', 'no server log in the journal');
    assert.ok(inside('journalctl -u builder-worker-process@local-b.service --no-pager -q').trim() !== '', 'no worker log in the journal');
    assert.is.not(inside('stat -c %U /proc/$(systemctl show -p MainPID --value builder-worker-process@local-a.service)').trim(), 'builder',
      'the process worker (whose jobs run as its user) is not the server\'s user');

    inside('dpkg -r builder');
    for (const gone of ['/usr/bin/builder-server', '/usr/lib/builder', '/usr/lib/systemd/system/builder.service']) {
      assert.is.not(status(`test -e ${gone}`), 0, `${gone} is left after dpkg -r`);
    }
    assert.is.not(status('systemctl is-active -q builder.service'), 0, 'the server still runs after dpkg -r');
    assert.is.not(status("grep -l 'builder-[w]orker' /proc/[0-9]*/cmdline"), 0, 'a worker still runs after dpkg -r');
    inside('test -f /etc/default/builder && test -f /etc/default/builder-worker && test -s /var/lib/builder/token && getent passwd builder');
    assert.match(inside('dpkg -l builder | tail -n 1'), /^rc\s+builder\b/);

    inside('dpkg -P builder');
    for (const gone of ['/etc/default/builder', '/etc/default/builder-worker', '/var/lib/builder']) {
      assert.is.not(status(`test -e ${gone}`), 0, `${gone} is left after dpkg -P`);
    }
    inside('getent passwd builder && getent group builder'); // kept: see packaging/debian/postrm
    assert.is.not(status('dpkg -s builder'), 0, 'dpkg still knows builder after purge');
  } finally {
    sh('docker', ['rm', '-f', container]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
