// What a worker does at start before it takes a job: it checks that its sandbox can work as
// configured (the image, base subvolume or snapshot exists; exit 78, EX_CONFIG, when not, which
// the service units do not restart), and it sweeps what a predecessor killed with -9 left,
// processes included. Docker and btrfs parts skip without them, and fail in CI.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { need } from '../helpers/env.js';
import { Harness, bin, eventually, withTimeout, sleepers } from '../helpers/processes.js';

const t = suite('worker start');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-wstart-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const quiet = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
};
const token = 'a-token-long-enough-for-the-check';

/** Starts a worker that has no server to go to (the check comes first) and waits for its exit. */
async function startAlone(args: string[], env: NodeJS.ProcessEnv = {}) {
  const p = h.spawn(bin('worker'), ['linux', '--remote', '127.0.0.1:1', '--work-dir', h.path('work'), '--name', 'checked', ...args],
    'worker', { BUILDER_TOKEN: token, ...env });
  const { code } = await p.exited;
  return { code, stderr: p.stderr };
}

t('a docker worker whose --image is not on the engine exits 78 naming the image', withTimeout(30_000, async () => {
  if (!need('docker engine', quiet('docker', ['version', '--format', '{{.Server.Version}}']).trim() !== '', 'start dockerd')) return;
  const r = await startAlone(['--sandbox', 'docker', '--image', 'builder-test-no-such-image:1']);
  assert.is(r.code, 78, r.stderr);
  assert.is(r.stderr, 'builder-worker: docker image builder-test-no-such-image:1 does not exist on this host ' +
    '(the worker never pulls: docker pull or build it, or fix --image)\n');
  // an engine that is not there (yet) is not a configuration error: exit 1, and the service manager retries
  const down = await startAlone(['--sandbox', 'docker', '--image', 'x', '--docker-socket', h.path('no.sock')]);
  assert.is(down.code, 1, down.stderr);
  assert.match(down.stderr, /not reachable/);
}));

t('a btrfs-ns worker whose --btrfs-base does not exist, or is writable, exits 78 naming it', withTimeout(20_000, async () => {
  const missing = h.path('no-such-base');
  const r = await startAlone(['--sandbox', 'btrfs-ns', '--btrfs-base', missing]);
  assert.is(r.code, 78, r.stderr);
  assert.match(r.stderr, new RegExp(`^builder-worker: --btrfs-base ${missing} is not a btrfs subvolume`));
  const mnt = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';
  if (!need(`btrfs at ${mnt}`, /ro=false/.test(quiet('btrfs', ['property', 'get', '-ts', join(mnt, 'base'), 'ro'])), 'run test/env/setup-btrfs.sh as root')) return;
  const writable = await startAlone(['--sandbox', 'btrfs-ns', '--btrfs-base', join(mnt, 'base')]);
  assert.is(writable.code, 78, writable.stderr);
  assert.match(writable.stderr, /is not read-only/);
}));

t('a zfs-jail worker whose --zfs-snapshot does not exist exits 78 naming it (zfs stand-in)', withTimeout(20_000, async () => {
  const standins = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/zfs-standin');
  const root = h.path('zfs');
  mkdirSync(join(root, 'snap', 'zroot/jails/base@clean'), { recursive: true });
  const env = { PATH: `${standins}:${process.env.PATH}`, BUILDER_STANDIN_ROOT: root, BUILDER_STANDIN_LOG: h.path('zfs.log') };
  const r = await startAlone(['--sandbox', 'zfs-jail', '--zfs-snapshot', 'zroot/jails/base@gone'], env);
  assert.is(r.code, 78, r.stderr);
  assert.match(r.stderr, /^builder-worker: zfs snapshot zroot\/jails\/base@gone does not exist/);
  assert.match(readFileSync(h.path('zfs.log'), 'utf8'), /^zfs list -H -o name -t snapshot zroot\/jails\/base@gone$/m);
  // the snapshot that exists passes the check: the worker goes on (to a server that is not there)
  writeFileSync(h.path('resolv.conf'), '');
  const ok = h.spawn(bin('worker'), ['linux', '--remote', '127.0.0.1:1', '--work-dir', h.path('work'), '--name', 'fine',
    '--sandbox', 'zfs-jail', '--zfs-snapshot', 'zroot/jails/base@clean'], 'worker', { BUILDER_TOKEN: token, ...env });
  await ok.waitFor(/cannot connect|connecting|retry/i, 10_000);
  assert.ok(ok.running, ok.stderr);
}));

t('kill -9 of a btrfs-ns worker mid-job: its next start ends the job left running and deletes its snapshot', withTimeout(60_000, async () => {
  const mnt = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';
  const base = join(mnt, 'base@clean');
  const available = process.getuid?.() === 0 && /ro=true/.test(quiet('btrfs', ['property', 'get', '-ts', base, 'ro']));
  if (!need(`btrfs at ${mnt}, as root`, available, 'run test/env/setup-btrfs.sh as root (or set BUILDER_TEST_BTRFS)')) return;
  const name = `crashy${process.pid}`;
  const snapshots = () => readdirSync(mnt).filter((n) => n.startsWith(`builder-${name}-`));
  const server = await h.server({ args: ['--lease', '1'] });
  const args = ['--name', name, '--sandbox', 'btrfs-ns', '--btrfs-base', base];
  const w = h.worker(server, 'linux', args);
  const n = 50_000 + Math.floor(Math.random() * 40_000);
  await h.client(server, ['schedule', 'orphan', 'linux', h.script('o', `echo started\nsleep ${n} &\nsleep ${n}\n`)]);
  await eventually(() => sleepers(n).length === 2, 20_000, 'the job to run');
  w.kill('SIGKILL');
  await w.exited;
  await new Promise((r) => setTimeout(r, 300));
  assert.is(sleepers(n).length, 2, 'the job outlived its worker, in its namespace');
  assert.is(snapshots().length, 1);
  await h.client(server, ['unschedule', 'orphan']);
  const again = h.worker(server, 'linux', args);
  await again.waitFor(new RegExp(`swept leftover process \\d+ in ${mnt}/builder-${name}-`), 20_000);
  await again.waitFor(/swept leftover snapshot/, 20_000);
  await eventually(() => sleepers(n).length === 0, 10_000, 'the leftover job to be ended');
  assert.equal(snapshots(), []);
}));

t.run();
