// The build environment (src/worker/build-env.ts) as jobs see it: on every backend a script
// that prints `env` and `umask` gets exactly the documented variables and 0022, and nothing of
// the worker's own environment (its token, its locale, its HOME), of a Docker image's ENV or of
// the engine's additions. The backends are driven directly, as the sandbox unit tests do; the
// process sandbox also through a real server and worker.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildEnv, BuildEnvError } from '../../src/worker/build-env.js';
import { findBackend } from '../../src/worker/sandbox/registry.js';
import type { SandboxBackend } from '../../src/worker/sandbox/types.js';
import { need } from '../helpers/env.js';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** exported by the shell running the script itself; PWD is checked, the others are its own */
const SHELL_OWN = ['PWD', 'OLDPWD', 'SHLVL', '_'];
const SCRIPT = 'env\necho "umask=$(umask)"\necho made > made.txt\n';
const EPOCH = 1700000000;

/** What the job must see, written out here rather than taken from build-env.ts. */
const expected = (uuid: string, platform: string, epoch = String(EPOCH)): Record<string, string> => ({
  SOURCE_DATE_EPOCH: epoch,
  TZ: 'UTC',
  LC_ALL: 'C.UTF-8',
  LANG: 'C.UTF-8',
  PATH,
  HOME: '/tmp',
  BUILDER_JOB: 'env-job',
  BUILDER_PLATFORM: platform,
  BUILDER_UUID: uuid,
  BUILDER_SECRET_ONE: 'carried by the job = with spaces',
});

/** Splits the console into the `env` lines (as a map), the umask, and PWD. */
function parse(out: string): { env: Record<string, string>; umask: string | undefined; pwd: string | undefined } {
  const env: Record<string, string> = {};
  let umask: string | undefined;
  for (const line of out.split('\n').filter(Boolean)) {
    if (line.startsWith('umask=')) umask = line.slice(6);
    else {
      const eq = line.indexOf('=');
      assert.ok(eq > 0, `an env line: ${JSON.stringify(line)} in\n${out}`);
      env[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  const pwd = env.PWD;
  for (const name of SHELL_OWN) delete env[name];
  return { env, umask, pwd };
}

/** The worker's own environment while a test runs: none of it may reach a job. */
const WORKER_ONLY = { BUILDER_TOKEN: 'secret-xyz', FOO: 'bar-of-the-worker', TZ: 'Europe/Berlin', LC_ALL: 'de_DE.UTF-8', LANG: 'de_DE.UTF-8', HOME: '/root/worker-home' };

async function withWorkerEnv<T>(fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(WORKER_ONLY).map((k) => [k, process.env[k]]));
  Object.assign(process.env, WORKER_ONLY);
  // a worker started with a strict umask: the job's must still be 022
  const umask = process.umask(0o077);
  try {
    return await fn();
  } finally {
    process.umask(umask);
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Runs SCRIPT as one job on `backend` and checks everything the job saw. */
async function checkBackend(backend: SandboxBackend, platform: string, workDirOf: (sandboxId: string) => string | RegExp): Promise<void> {
  const uuid = randomUUID();
  const env = buildEnv({ uuid, name: 'env-job', platform, sourceDateEpoch: EPOCH, extraEnv: { BUILDER_SECRET_ONE: 'carried by the job = with spaces' } });
  const sb = await withWorkerEnv(() => backend.prepare({ uuid, name: 'env-job', platform, script: SCRIPT, env }));
  try {
    let out = '';
    const h = await withWorkerEnv(() => sb.start((c) => (out += c.toString())));
    const { status } = await h.done;
    assert.equal(status, { kind: 'exited', code: 0 }, out);
    const seen = parse(out);
    assert.equal(seen.env, expected(uuid, platform), `${backend.name}: exactly the documented variables`);
    assert.is(seen.umask, '0022', `${backend.name}: umask`);
    const dir = workDirOf(sb.id);
    if (typeof dir === 'string') assert.is(seen.pwd, dir, `${backend.name}: PWD`);
    else assert.match(seen.pwd ?? '', dir);
    for (const leak of ['secret-xyz', 'bar-of-the-worker', 'Europe/Berlin', 'de_DE', 'worker-home', 'from-image']) {
      assert.not.ok(out.includes(leak), `${backend.name}: "${leak}" reached the job:\n${out}`);
    }
    const { files } = await sb.collect();
    assert.equal(files.map((f) => [f.path, (f.mode & 0o777).toString(8)]), [['made.txt', '644']], `${backend.name}: created under umask 022`);
  } finally {
    await sb.destroy();
  }
}

const ctx = (workDir: string, workerId = `env${process.pid}`) => ({ workerId, workDir, log: () => undefined });
const sh = (cmd: string, args: string[], input?: string): boolean => {
  try {
    execFileSync(cmd, args, { timeout: 30_000, stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'ignore'], ...(input === undefined ? {} : { input }) });
    return true;
  } catch {
    return false;
  }
};

const direct = suite('build environment, backends driven directly');
let T = '';
direct.before.each(() => {
  T = mkdtempSync(join(tmpdir(), 'builder-env-test-'));
});
direct.after.each(() => rmSync(T, { recursive: true, force: true }));

direct('process: exactly the documented environment and umask 022, nothing of the worker\'s', withTimeout(20_000, async () => {
  const backend = findBackend('process').create({}, ctx(T));
  await checkBackend(backend, 'linux', (id) => join(id, 'work'));
}));

const IMAGE = 'builder-test-busybox';
/** the test image plus an ENV line and the engine's own HOSTNAME and HOME: none may reach the job */
const LEAKY_IMAGE = 'builder-test-busybox-envleak';

direct('docker: the image\'s ENV and the engine\'s variables do not reach the job', withTimeout(60_000, async () => {
  if (!need('docker engine with builder-test-busybox', sh('docker', ['image', 'inspect', IMAGE]), 'start dockerd and run test/env/setup-docker.sh')) return;
  assert.ok(sh('docker', ['build', '-q', '-t', LEAKY_IMAGE, '-'], `FROM ${IMAGE}\nENV IMAGE_LEAK=from-image HOME=/image-home\n`), 'built the leaky image');
  const backend = findBackend('docker').create({ image: LEAKY_IMAGE, user: '65534:65534' }, ctx(T));
  try {
    await checkBackend(backend, 'linux', () => '/work');
  } finally {
    await backend.sweep();
    sh('docker', ['image', 'rm', LEAKY_IMAGE]);
  }
}));

const btrfsMount = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';
direct('btrfs-ns: exactly the documented environment inside the namespaces', withTimeout(30_000, async () => {
  let base = false;
  try {
    base = process.getuid?.() === 0 && /ro=true/.test(execFileSync('btrfs', ['property', 'get', '-ts', join(btrfsMount, 'base@clean'), 'ro']).toString());
  } catch {
    // no btrfs-progs, or no base
  }
  if (!need(`btrfs at ${btrfsMount}`, base, 'run test/env/setup-btrfs.sh as root (or set BUILDER_TEST_BTRFS)')) return;
  const backend = findBackend('btrfs-ns').create({ 'btrfs-base': join(btrfsMount, 'base@clean') }, ctx(T));
  try {
    await checkBackend(backend, 'linux', () => '/work');
  } finally {
    await backend.sweep();
  }
}));

// zfs and jails do not exist on Linux: the stand-ins of test/unit/sandbox-zfs-jail.test.ts run
// the jexec command line on the host, which still shows what `env -i` leaves the script
const standins = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/zfs-standin');
direct('zfs-jail (stand-ins): what jexec -l and the login class add is dropped', withTimeout(20_000, async () => {
  const snap = 'zroot/jails/base@clean';
  const state = join(T, 'state');
  mkdirSync(join(state, 'snap', snap, 'etc'), { recursive: true });
  writeFileSync(join(state, 'snap', snap, 'etc/passwd'), `builder:*:${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}::/work:/bin/sh\n`);
  writeFileSync(join(T, 'resolv.conf'), 'nameserver 192.0.2.53\n');
  writeFileSync(join(T, 'log'), '');
  const saved = { PATH: process.env.PATH, R: process.env.BUILDER_STANDIN_ROOT, L: process.env.BUILDER_STANDIN_LOG };
  process.env.PATH = `${standins}:${saved.PATH}`;
  process.env.BUILDER_STANDIN_ROOT = state;
  process.env.BUILDER_STANDIN_LOG = join(T, 'log');
  try {
    const backend = findBackend('zfs-jail').create({ 'zfs-snapshot': snap, 'resolv-conf': join(T, 'resolv.conf') }, ctx(T, 'w1'));
    // the stand-in's working directory is the clone's /work on the host
    await checkBackend(backend, 'freebsd-14', () => /\/mnt\/zroot\/jails\/builder-w1-[^/]+\/work$/);
  } finally {
    process.env.PATH = saved.PATH;
    for (const [k, v] of [['BUILDER_STANDIN_ROOT', saved.R], ['BUILDER_STANDIN_LOG', saved.L]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}));

direct('extra variables may not override the fixed ones, nor be names a shell cannot take', () => {
  const job = { uuid: 'u', name: 'n', platform: 'p', sourceDateEpoch: EPOCH };
  assert.throws(() => buildEnv({ ...job, extraEnv: { PATH: '/evil' } }), (e: unknown) => e instanceof BuildEnvError && /"PATH": set by the builder/.test(e.message));
  assert.throws(() => buildEnv({ ...job, extraEnv: { BUILDER_UUID: 'x' } }), /"BUILDER_UUID": set by the builder/);
  assert.throws(() => buildEnv({ ...job, extraEnv: { '1X': 'x' } }), /"1X": a name is letters, digits and _/);
  assert.throws(() => buildEnv({ ...job, extraEnv: { 'A-B': 'x' } }), /"A-B"/);
  assert.throws(() => buildEnv({ ...job, extraEnv: { PWD: '/x' } }), /"PWD": the job's shell sets it/);
  assert.throws(() => buildEnv({ ...job, extraEnv: { A: 'x\0y' } }), /NUL/);
  assert.throws(() => buildEnv({ ...job, sourceDateEpoch: -1 }), /SOURCE_DATE_EPOCH must be a whole number/);
  assert.throws(() => buildEnv({ ...job, sourceDateEpoch: 1.5 }), /SOURCE_DATE_EPOCH/);
  // a server that sends no SOURCE_DATE_EPOCH: the run's start, in whole seconds
  assert.is(buildEnv({ uuid: 'u', name: 'n', platform: 'p' }, 1_700_000_123_999).SOURCE_DATE_EPOCH, '1700000123');
});

direct.run();

const e2e = suite('build environment, through a server and a worker');
let h: Harness;
e2e.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
e2e.after.each(async () => h.cleanup());

e2e('a job run by a real worker sees only the documented environment, not the worker\'s token or locale', withTimeout(30_000, async () => {
  const from = Math.floor(Date.now() / 1000);
  const server = await h.server();
  const token = h.token(server);
  // the worker authenticates with the token file; its environment carries the token anyway
  h.worker(server, 'debian-12', [], { ...WORKER_ONLY, BUILDER_TOKEN: token });
  const file = h.script('env', 'env\necho "umask=$(umask)"\n');
  const r = await h.client(server, ['schedule', 'env-job', 'debian-12', file]);
  assert.is(r.code, 0, r.stderr);
  const [run] = await eventually(async () => {
    const runs = await h.history<{ uuid: string; dir: string; result: { kind: string } }>(server, 'env-job');
    return runs.length > 0 && runs;
  }, 20_000, 'a finished run');
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  const out = readFileSync(join(run!.dir, 'console'), 'utf8').replace(/^\d+ /gm, '');
  const seen = parse(out);
  const epoch = Number(seen.env.SOURCE_DATE_EPOCH);
  assert.ok(epoch >= from && epoch <= Date.now() / 1000, `SOURCE_DATE_EPOCH ${epoch} is this job's time`);
  const want = expected(run!.uuid, 'debian-12', String(epoch));
  delete want.BUILDER_SECRET_ONE;
  assert.equal(seen.env, want);
  assert.is(seen.umask, '0022');
  assert.match(seen.pwd ?? '', /\/work$/);
  for (const leak of [token, 'secret-xyz', 'bar-of-the-worker', 'Europe/Berlin', 'de_DE', 'worker-home']) {
    assert.not.ok(out.includes(leak), `"${leak}" reached the job:\n${out}`);
  }
}));

e2e.run();
