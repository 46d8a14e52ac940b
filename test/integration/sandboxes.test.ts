// Whole jobs through the server in real sandboxes: Docker containers and btrfs snapshots in
// namespaces, with kill -9 of the worker mid-job and the sweep at its next start.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, eventually, sleepers, withTimeout, type ServerHandle } from '../helpers/processes.js';
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

/** A backend as a worker selects it, and how to see its sandboxes and the job's processes. */
interface Backend {
  name: string;
  ready(): boolean;
  platform: string;
  args(worker: string): string[];
  /** this worker's containers or snapshots that exist */
  sandboxes(worker: string): string[];
}
const backends: Backend[] = [
  {
    name: 'docker',
    ready: dockerReady,
    platform: 'busybox',
    args: (w) => ['--sandbox', 'docker', '--image', 'builder-test-busybox', '--name', w, '--network', 'none'],
    sandboxes: (w) => sh('docker', ['ps', '-aq', '--filter', `label=builder.worker=${w}`]).split('\n').filter(Boolean),
  },
  {
    name: 'btrfs-ns',
    ready: btrfsReady,
    platform: 'bb',
    args: (w) => ['--sandbox', 'btrfs-ns', '--btrfs-base', join(btrfsMount, 'base@clean'), '--name', w],
    sandboxes: (w) => readdirSync(btrfsMount).filter((n) => n.startsWith(`builder-${w}-`)),
  },
];


for (const b of backends) {
  t(`${b.name}: a job runs in a fresh sandbox; artifacts come back; the host is untouched; the sandbox is removed`, withTimeout(90_000, async () => {
    if (!b.ready()) return;
    const w = `${b.name.slice(0, 4)}1`;
    const server = await h.server();
    const passwd = readFileSync('/etc/passwd', 'utf8');
    h.worker(server, b.platform, b.args(w));
    await h.client(server, ['schedule', 'contained', b.platform, h.script('c', `id -u\n${escapeScript}`)]);
    const run = await finished(server, 'contained');
    assert.equal(run.result, { kind: 'exited', code: 4 });
    assert.is(readFileSync(join(run.dir, 'artifacts/out/a.txt'), 'utf8'), 'artifact\n');
    const consoleText = readFileSync(join(run.dir, 'console'), 'utf8');
    assert.match(consoleText, /in-sandbox/);
    if (b.name === 'btrfs-ns') assert.match(consoleText, /^\d+ 65534$/m, 'ran as nobody');
    assert.not.ok(existsSync(hostProbe), 'nothing written on the host');
    assert.is(readFileSync('/etc/passwd', 'utf8'), passwd);
    await eventually(() => b.sandboxes(w).length === 0, 10_000, 'the sandbox to be removed');
  }));

  t(`${b.name}: kill -9 of the worker mid-job leaves no sandbox behind after its next start`, withTimeout(90_000, async () => {
    if (!b.ready()) return;
    const w = `${b.name.slice(0, 4)}2`;
    const n = 50_000 + Math.floor(Math.random() * 40_000); // a sleep no other test runs
    const server = await h.server({ args: ['--lease', '1'] });
    const first = h.worker(server, b.platform, b.args(w));
    await h.client(server, ['schedule', 'stuck', b.platform, h.script('s', `echo started\nsleep ${n}\n`), '--period', 'never']);
    await h.client(server, ['execute', 'stuck']);
    await eventually(() => sleepers(n).length === 1, 30_000, 'the job to run');
    assert.is(b.sandboxes(w).length, 1);
    first.kill('SIGKILL');
    await first.exited;
    assert.is(b.sandboxes(w).length, 1, 'the sandbox outlived its worker');
    await h.client(server, ['unschedule', 'stuck']);
    const again = h.worker(server, b.platform, b.args(w));
    await again.waitFor(/swept leftover/, 30_000);
    await again.waitFor(/connected/, 30_000);
    assert.equal(b.sandboxes(w), [], 'no sandbox left');
    if (b.name === 'docker') {
      await eventually(() => sleepers(n).length === 0, 10_000, 'the job to end with its container');
    } else {
      // btrfs-ns sweep deletes the snapshot but leaves a running job alive in its namespaces (a
      // known gap, see sandbox-contract.test.ts); its env is scrubbed, so the harness cannot
      // find it by its test mark: end it here
      for (const pid of sleepers(n)) process.kill(pid, 'SIGKILL');
    }
  }));
}

t.run();
