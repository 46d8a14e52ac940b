// Whole jobs through the server in real sandboxes: Docker containers and btrfs snapshots in
// namespaces, with kill -9 of the worker mid-job and the sweep at its next start.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';
import { need } from '../helpers/env.js';

const t = suite('sandboxes end to end');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
};
const dockerReady = (): boolean =>
  need('docker engine with builder-test-busybox', sh('docker', ['image', 'inspect', 'builder-test-busybox']).length > 0,
    'start dockerd and run test/env/setup-docker.sh');
const btrfsMount = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';
const btrfsReady = (): boolean =>
  need(`btrfs at ${btrfsMount}`, process.getuid?.() === 0 && /ro=true/.test(sh('btrfs', ['property', 'get', '-ts', join(btrfsMount, 'base@clean'), 'ro'])),
    'run test/env/setup-btrfs.sh as root');

interface RunJson { job: string; result: { kind: string; code?: number }; dir: string; refusals: Array<{ path: string }> }
const finished = (s: ServerHandle, job: string) =>
  eventually(async () => {
    const r = await h.history<RunJson>(s, job);
    return r.length > 0 && r[0];
  }, 60_000, `a result of ${job}`);

const hostProbe = '/tmp/builder-sandbox-escape-probe';
const escapeScript = `echo pwned > ${hostProbe} 2>/dev/null; echo pwned >> /etc/passwd 2>/dev/null; mkdir -p out; echo artifact > out/a.txt; echo in-sandbox; exit 4\n`;

t('docker: a job runs in a container from the platform image; artifacts come back; the host is untouched', withTimeout(90_000, async () => {
  if (!dockerReady()) return;
  const server = await h.server();
  const passwd = readFileSync('/etc/passwd', 'utf8');
  h.worker(server, 'busybox', ['--sandbox', 'docker', '--image', 'builder-test-busybox', '--name', 'dock1', '--network', 'none']);
  await h.client(server, ['schedule', 'contained', 'busybox', h.script('c', escapeScript)]);
  const run = await finished(server, 'contained');
  assert.equal(run.result, { kind: 'exited', code: 4 });
  assert.is(readFileSync(join(run.dir, 'artifacts/out/a.txt'), 'utf8'), 'artifact\n');
  assert.match(readFileSync(join(run.dir, 'console'), 'utf8'), /in-sandbox/);
  assert.not.ok(existsSync(hostProbe), 'nothing written on the host');
  assert.is(readFileSync('/etc/passwd', 'utf8'), passwd);
  await eventually(() => sh('docker', ['ps', '-aq', '--filter', 'label=builder.worker=dock1']).trim() === '', 10_000, 'the container to be removed');
}));

t('docker: kill -9 of the worker mid-job leaves nothing behind after its next start', withTimeout(90_000, async () => {
  if (!dockerReady()) return;
  const server = await h.server({ args: ['--lease', '1'] });
  const w = h.worker(server, 'busybox', ['--sandbox', 'docker', '--image', 'builder-test-busybox', '--name', 'dock2']);
  await h.client(server, ['schedule', 'stuck', 'busybox', h.script('s', 'echo started\nsleep 1000\n'), '--period', 'never']);
  await h.client(server, ['execute', 'stuck']);
  await eventually(() => sh('docker', ['ps', '-q', '--filter', 'label=builder.worker=dock2']).trim() !== '', 30_000, 'a running container');
  w.kill('SIGKILL');
  await w.exited;
  assert.ok(sh('docker', ['ps', '-aq', '--filter', 'label=builder.worker=dock2']).trim() !== '', 'the container outlived its worker');
  await h.client(server, ['unschedule', 'stuck']);
  const again = h.worker(server, 'busybox', ['--sandbox', 'docker', '--image', 'builder-test-busybox', '--name', 'dock2']);
  await again.waitFor(/swept leftover/, 30_000);
  assert.is(sh('docker', ['ps', '-aq', '--filter', 'label=builder.worker=dock2']).trim(), '');
}));

t('btrfs-ns: a job runs in a fresh snapshot as an unprivileged user; the host is untouched; the snapshot is deleted', withTimeout(60_000, async () => {
  if (!btrfsReady()) return;
  const server = await h.server();
  const passwd = readFileSync('/etc/passwd', 'utf8');
  h.worker(server, 'bb', ['--sandbox', 'btrfs-ns', '--btrfs-base', join(btrfsMount, 'base@clean'), '--name', 'snap1']);
  await h.client(server, ['schedule', 'snapped', 'bb', h.script('b', `id -u\n${escapeScript}`)]);
  const run = await finished(server, 'snapped');
  assert.equal(run.result, { kind: 'exited', code: 4 });
  const consoleText = readFileSync(join(run.dir, 'console'), 'utf8');
  assert.match(consoleText, /^\d+ 65534$/m, 'ran as nobody');
  assert.is(readFileSync(join(run.dir, 'artifacts/out/a.txt'), 'utf8'), 'artifact\n');
  assert.not.ok(existsSync(hostProbe));
  assert.is(readFileSync('/etc/passwd', 'utf8'), passwd);
  await eventually(() => !readdirSync(btrfsMount).some((n) => n.startsWith('builder-snap1-')), 10_000, 'the snapshot to be deleted');
}));

t('btrfs-ns: kill -9 of the worker mid-job leaves nothing behind after its next start', withTimeout(60_000, async () => {
  if (!btrfsReady()) return;
  const server = await h.server({ args: ['--lease', '1'] });
  const args = ['--sandbox', 'btrfs-ns', '--btrfs-base', join(btrfsMount, 'base@clean'), '--name', 'snap2'];
  const w = h.worker(server, 'bb', args);
  await h.client(server, ['schedule', 'stuck', 'bb', h.script('s', 'echo started\nsleep 1000\n'), '--period', 'never']);
  await h.client(server, ['execute', 'stuck']);
  await eventually(() => readdirSync(btrfsMount).some((n) => n.startsWith('builder-snap2-')), 30_000, 'a snapshot');
  await eventually(() => sh('pgrep', ['-f', 'sleep 1000']).trim() !== '', 10_000, 'the job to run');
  w.kill('SIGKILL');
  await w.exited;
  await h.client(server, ['unschedule', 'stuck']);
  const again = h.worker(server, 'bb', args);
  await again.waitFor(/swept leftover/, 30_000);
  await again.waitFor(/connected/, 30_000);
  assert.not.ok(readdirSync(btrfsMount).some((n) => n.startsWith('builder-snap2-')), 'no snapshot left');
}));

t.run();
