// zfs-jail through stand-in zfs, jail, jexec, jls and umount programs first on PATH (no ZFS or
// jails on Linux CI): they record their arguments and emulate the effect, so these tests assert
// the exact command sequence and that the clone is destroyed on every path. The contract every
// backend fulfils (output, exit codes, signals, kill, artifacts, teardown, sweep) runs against
// the same stand-ins in test/integration/sandbox-contract.test.ts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { execSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildEnv } from '../../src/worker/build-env.js';
import { InfraError } from '../../src/worker/sandbox/types.js';
import type { JobSpec, SandboxBackend } from '../../src/worker/sandbox/types.js';
import { expandRange, zfsJailBackend } from '../../src/worker/sandbox/zfs-jail.js';

// dist/test/unit -> the source tree's fixtures (they are not compiled)
const standins = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/zfs-standin');
const originalPath = process.env.PATH;
const SNAP = 'zroot/jails/base@clean';
let T = '';
let state = '';
let log = '';

function setup(fail?: string): void {
  T = mkdtempSync(join(tmpdir(), 'builder-zfs-'));
  state = join(T, 'state');
  log = join(T, 'log');
  const base = join(state, 'snap', SNAP);
  mkdirSync(join(base, 'etc'), { recursive: true });
  writeFileSync(join(base, 'etc/passwd'), 'root:*:0:0::/root:/bin/sh\nbuilder:*:497:497::/work:/bin/sh\n');
  writeFileSync(join(T, 'resolv.conf'), 'nameserver 192.0.2.53\n');
  writeFileSync(log, '');
  process.env.PATH = `${standins}:${originalPath}`;
  process.env.BUILDER_STANDIN_ROOT = state;
  process.env.BUILDER_STANDIN_LOG = log;
  if (fail) process.env.BUILDER_STANDIN_FAIL = fail;
  else delete process.env.BUILDER_STANDIN_FAIL;
}

function teardown(): void {
  process.env.PATH = originalPath;
  delete process.env.BUILDER_STANDIN_FAIL;
  rmSync(T, { recursive: true, force: true });
}

const backend = (workerId = 'w1'): SandboxBackend =>
  zfsJailBackend.create(
    { 'zfs-snapshot': SNAP, 'resolv-conf': join(T, 'resolv.conf') },
    { workerId, workDir: T, log: () => undefined },
  );

const job = (uuid: string, script: string): JobSpec =>
  ({ uuid, name: 'j', platform: 'freebsd-14', script, env: buildEnv({ uuid, name: 'j', platform: 'freebsd-14', sourceDateEpoch: 1700000000 }) });
const commands = (): string[] => readFileSync(log, 'utf8').split('\n').filter(Boolean);
const ds = (uuid: string, w = 'w1') => `zroot/jails/builder-${w}-${uuid}`;
const mnt = (uuid: string, w = 'w1') => join(state, 'mnt', ds(uuid, w));

function expectedRun(uuid: string, ip = '127.0.2.2'): string[] {
  const j = `builder-w1-${uuid}`;
  return [
    `zfs clone ${SNAP} ${ds(uuid)}`,
    `zfs get -H -o value mountpoint ${ds(uuid)}`,
    `jail -c name=${j} path=${mnt(uuid)} host.hostname=${j} interface=orb ip4.addr=${ip} mount.devfs persist`,
    // exactly the job's environment (the login class's is dropped by env -i), umask 022 first
    `jexec -l -U builder -d /work ${j} /usr/bin/env -i SOURCE_DATE_EPOCH=1700000000 TZ=UTC LC_ALL=C.UTF-8 LANG=C.UTF-8 ` +
      `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp BUILDER_JOB=j BUILDER_PLATFORM=freebsd-14 ` +
      `BUILDER_UUID=${uuid} /bin/sh -c umask 022; exec /bin/sh "$0" /.builder-script`,
    `jail -r ${j}`,
    `umount -f ${mnt(uuid)}/dev`,
    `zfs destroy -rf ${ds(uuid)}`,
  ];
}

function nothingLeft(): void {
  assert.is(readFileSync(join(state, 'datasets'), 'utf8').trim(), '', 'no dataset left');
  assert.not.ok(existsSync(join(state, 'mnt', 'zroot/jails', 'builder-w1-u1')), 'clone directory removed');
  const jails = existsSync(join(state, 'jails')) ? execSync(`ls ${join(state, 'jails')}`).toString().trim() : '';
  assert.is(jails, '', 'no jail left');
  const mounts = existsSync(join(state, 'mounts')) ? readFileSync(join(state, 'mounts'), 'utf8').trim() : '';
  assert.is(mounts, '', 'devfs unmounted');
}

test.before.each(() => setup());
test.after.each(() => teardown());

test('a job: merged output, exit code, artifacts from the clone, exact command sequence, clone destroyed', async () => {
  const b = backend();
  const sb = await b.prepare(
    job('u1', 'echo one; echo two >&2; echo three\nmkdir -p out/sub; printf hello > out/sub/a.txt; printf 12345 > b.bin\ncat /etc/resolv.conf 2>/dev/null; exit 3\n'),
  );
  assert.is(await readFile(join(mnt('u1'), 'etc/resolv.conf'), 'utf8'), 'nameserver 192.0.2.53\n');
  let out = '';
  const h = await sb.start((c) => (out += c.toString()));
  const r = await h.done;
  assert.equal(r.status, { kind: 'exited', code: 3 });
  assert.ok(out.startsWith('one\ntwo\nthree\n'), out);
  const set = await sb.collect();
  assert.equal(
    set.files.map((f) => [f.path, f.size]),
    [['b.bin', 5], ['out/sub/a.txt', 5]],
  );
  await sb.destroy();
  await sb.destroy(); // twice is fine
  assert.equal(commands(), expectedRun('u1'));
  nothingLeft();
});

test('kill() of a long job with a background child ends everything; destroy leaves nothing', async () => {
  const sb = await backend().prepare(job('u1', 'sleep 991 & sleep 992\n'));
  const h = await sb.start(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  await h.kill();
  const r = await h.done;
  assert.equal(r.status, { kind: 'signalled', signal: 9 });
  await sb.destroy();
  const left = execSync("ps -eo args | grep -E '^sleep 99[12]$' || true").toString().trim();
  assert.is(left, '', 'no process of the job is left');
  const seq = commands();
  assert.equal(seq, expectedRun('u1'), 'jail removed once, clone destroyed');
  nothingLeft();
});

test('clone fails: InfraError, and a destroy of the (maybe half-made) clone anyway', async () => {
  teardown();
  setup('clone');
  const err = await backend().prepare(job('u1', 'true\n')).catch((e: unknown) => e);
  assert.instance(err, InfraError);
  assert.match((err as Error).message, /out of space/);
  assert.equal(commands(), [`zfs clone ${SNAP} ${ds('u1')}`, `zfs destroy -rf ${ds('u1')}`]);
  nothingLeft();
});

test('jail fails to start: InfraError; devfs unmounted and the clone destroyed', async () => {
  teardown();
  setup('jail-start');
  const err = await backend().prepare(job('u1', 'true\n')).catch((e: unknown) => e);
  assert.instance(err, InfraError);
  const all = expectedRun('u1');
  assert.equal(commands(), [all[0], all[1], all[2], all[5], all[6]]);
  nothingLeft();
});

test('destroy reports busy once: retried, the clone is gone', async () => {
  teardown();
  setup('destroy-busy-once');
  const sb = await backend().prepare(job('u1', 'echo hi > x\n'));
  const h = await sb.start(() => undefined);
  await h.done;
  assert.equal((await sb.collect()).files.map((f) => f.path), ['x']);
  await sb.destroy();
  const all = expectedRun('u1');
  assert.equal(commands(), [...all, all[6]]);
  nothingLeft();
});

test('sweep removes the jail and clone a crashed predecessor left, and only its own', async () => {
  const crashed = await backend().prepare(job('u1', 'true\n'));
  void crashed; // never destroyed: as if the worker had been killed
  const other = await backend('w2').prepare(job('u9', 'true\n'));
  writeFileSync(log, '');
  const removed = await backend().sweep();
  assert.equal(removed, ['jail builder-w1-u1', `clone ${ds('u1')}`]);
  assert.equal(commands(), [
    'jls -N name',
    'jail -r builder-w1-u1',
    'zfs list -H -o name -r zroot/jails',
    `zfs get -H -o value mountpoint ${ds('u1')}`,
    `umount -f ${mnt('u1')}/dev`,
    `zfs destroy -rf ${ds('u1')}`,
  ]);
  assert.is(readFileSync(join(state, 'datasets'), 'utf8').trim(), ds('u9', 'w2'), "the other worker's clone stays");
  await other.destroy();
  nothingLeft();
});

test('a worker named after a dotted host gets jail and clone names jail(8) takes, its own and bounded', async () => {
  const id = 'build.example.org-freebsd-14.1+p3';
  const sb = await backend(id).prepare(job('8c7f0b3e-1d2a-4b5c-9e8f-0a1b2c3d4e5f', 'echo hi > x\n'));
  const h = await sb.start(() => undefined);
  assert.equal((await h.done).status, { kind: 'exited', code: 0 });
  assert.equal((await sb.collect()).files.map((f) => f.path), ['x']);
  const jailStart = commands().find((l) => l.startsWith('jail -c'))!;
  const jailName = /name=(\S+)/.exec(jailStart)![1]!;
  assert.match(jailName, /^[A-Za-z0-9_-]+$/, jailName);
  assert.ok(jailName.length <= 100, jailName);
  assert.match(sb.id, new RegExp(`^zroot/jails/${jailName}$`));
  // a look-alike name (dots and underscores swapped) is another worker, with other names
  const other = await backend('build_example_org-freebsd-14_1_p3').prepare(job('8c7f0b3e-1d2a-4b5c-9e8f-0a1b2c3d4e5f', 'true\n'));
  assert.is.not(other.id, sb.id);
  await other.destroy();
  // a leftover of worker "w1-x" is not worker "w1"'s to sweep
  await backend('w1-x').prepare(job('u7', 'true\n'));
  assert.equal(await backend('w1').sweep(), []);
  await sb.destroy();
  assert.equal(await backend(id).sweep(), [], 'nothing left of a destroyed sandbox');
  await backend('w1-x').sweep();
  nothingLeft();
});

test('concurrent sandboxes get different addresses from the range; bad options are refused', async () => {
  const b = backend();
  const a = await b.prepare(job('u1', 'true\n'));
  const c = await b.prepare(job('u2', 'true\n'));
  const jailStarts = commands().filter((l) => l.startsWith('jail -c'));
  assert.match(jailStarts[0]!, /ip4\.addr=127\.0\.2\.2 /);
  assert.match(jailStarts[1]!, /ip4\.addr=127\.0\.2\.3 /);
  await a.destroy();
  await c.destroy();
  assert.equal(expandRange('10.0.0.5-7'), ['10.0.0.5', '10.0.0.6', '10.0.0.7']);
  assert.throws(() => zfsJailBackend.create({}, { workerId: 'w', workDir: T, log: () => undefined }), /--zfs-snapshot/);
});

test.run();
