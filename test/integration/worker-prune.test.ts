// Disks that fill up on workers (issue 9): below --min-free a worker prunes what it owns and no
// job holds, then takes jobs again. For real: btrfs-ns on a small loop-mounted btrfs of its own
// (filled by a leftover snapshot), docker against the engine (a stopped container with our label,
// the engine's data root checked), zfs-jail through the stand-ins.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildEnv } from '../../src/worker/build-env.js';
import { dockerBackend } from '../../src/worker/sandbox/docker.js';
import { zfsJailBackend } from '../../src/worker/sandbox/zfs-jail.js';
import type { JobSpec } from '../../src/worker/sandbox/types.js';
import { makeDiskCheck } from '../../src/worker/disk.js';
import type { Logger } from '../../src/common/log.js';
import { need } from '../helpers/env.js';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const works = (cmd: string, args: string[]): boolean => {
  try {
    sh(cmd, args);
    return true;
  } catch {
    return false;
  }
};
const job = (script: string, uuid: string = randomUUID()): JobSpec =>
  ({ uuid, name: 'j', platform: 'linux', script, env: buildEnv({ uuid, name: 'j', platform: 'linux' }) });

const sourceBase = join(process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs', 'base@clean');
const root = process.getuid?.() === 0;
const btrfs = root && works('btrfs', ['property', 'get', '-ts', sourceBase, 'ro']) && works('mkfs.btrfs', ['--version']);

test('btrfs-ns: a worker short of space prunes its leftover snapshot, then runs the job', withTimeout(120_000, async () => {
  if (!need('root and btrfs', btrfs, `run test/env/setup-btrfs.sh as root (a busybox base at ${sourceBase})`)) return;
  const h = new Harness('builder-prune-');
  // outside the harness's directory, which cleanup removes while the mount would still be there
  const outside = mkdtempSync(join(tmpdir(), 'builder-prune-fs-'));
  const img = join(outside, 'small.img');
  const mnt = join(outside, 'mnt');
  mkdirSync(mnt);
  let mounted = false;
  try {
    // a file system of its own, small enough to fill in a moment
    sh('truncate', ['-s', '320M', img]);
    sh('mkfs.btrfs', ['-q', img]);
    sh('mount', ['-o', 'loop', img, mnt]);
    mounted = true;
    sh('btrfs', ['-q', 'subvolume', 'create', join(mnt, 'base')]);
    sh('cp', ['-a', `${sourceBase}/.`, join(mnt, 'base')]);
    sh('btrfs', ['-q', 'subvolume', 'snapshot', '-r', join(mnt, 'base'), join(mnt, 'base@clean')]);
    const server = await h.server();
    const worker = h.worker(server, 'linux', ['--name', 'pruner', '--sandbox', 'btrfs-ns', '--btrfs-base', join(mnt, 'base@clean'),
      '--min-free', '40']);
    await eventually(async () => (await h.info(server)).workers.length === 1, 15_000, 'the worker connected');

    // what a destroy that failed leaves: one of this worker's snapshots, here holding most of the disk
    const leftover = join(mnt, `builder-pruner-${randomUUID()}`);
    sh('btrfs', ['-q', 'subvolume', 'snapshot', join(mnt, 'base@clean'), leftover]);
    sh('dd', ['if=/dev/urandom', `of=${join(leftover, 'work', 'fill')}`, 'bs=1M', 'count=200', 'status=none']);
    sh('sync', []);
    const free = Number(sh('df', ['--output=pcent', mnt]).split('\n')[1]!.trim().replace('%', ''));
    assert.ok(100 - free < 40, `the disk is below --min-free (${100 - free}% free)`);

    const file = h.script('ok', 'echo built > out.txt\n');
    assert.is((await h.client(server, ['schedule', 'after-prune', 'linux', file, '--period', 'never'])).code, 0);
    assert.is((await h.client(server, ['execute', 'after-prune'])).code, 0);
    const [run] = await eventually(async () => {
      const runs = await h.history(server, 'after-prune');
      return runs.length >= 1 && runs;
    }, 60_000, 'the run');
    assert.equal(run.result, { kind: 'exited', code: 0 }, JSON.stringify(run.result));
    assert.is(readFileSync(join(run.dir, 'artifacts', 'out.txt'), 'utf8'), 'built\n');
    assert.match(worker.stdout + worker.stderr, new RegExp(`pruned snapshot ${leftover.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.not.ok(works('btrfs', ['subvolume', 'show', leftover]), 'the leftover is gone');
    const w = (await h.info(server)).workers[0];
    assert.is(w.diskShort, false);
    assert.ok(w.freePercent >= 40, `free again: ${w.freePercent}%`);
  } finally {
    await h.cleanup();
    // the worker is gone: the mount can go, then the loop file
    if (mounted && !works('umount', [mnt])) works('umount', ['-l', mnt]);
    rmSync(outside, { recursive: true, force: true });
  }
}));

const BUSYBOX = 'builder-test-busybox';
const docker = works('docker', ['image', 'inspect', BUSYBOX]);

test('docker: prune removes stopped containers with this worker\'s label that no job holds, and checks the engine\'s data root', withTimeout(60_000, async () => {
  if (!need('a Docker engine with the test images', docker, 'run test/env/setup-docker.sh as root')) return;
  const workDir = mkdtempSync(join(tmpdir(), 'builder-prune-docker-'));
  const id = `prune${process.pid}`;
  const backend = dockerBackend.create({ image: BUSYBOX }, { workerId: id, workDir, log: () => undefined });
  const created: string[] = [];
  try {
    const dataRoot = sh('docker', ['info', '--format', '{{.DockerRootDir}}']).trim();
    assert.equal(await backend.diskPaths!(), [dataRoot]);
    // a leftover of ours, one of another worker's, and a job still held
    const mine = sh('docker', ['create', '--label', `builder.worker=${id}`, '--label', 'builder.job=old', BUSYBOX, 'true']).trim();
    const theirs = sh('docker', ['create', '--label', `builder.worker=${id}x`, BUSYBOX, 'true']).trim();
    created.push(mine, theirs);
    const held = await backend.prepare(job('echo hi\n'));
    const removed = await backend.prune!();
    assert.equal(removed, [`container ${mine.slice(0, 12)} (job old)`]);
    assert.not.ok(works('docker', ['inspect', mine]), 'our leftover is gone');
    assert.ok(works('docker', ['inspect', theirs]), "another worker's stays");
    assert.ok(works('docker', ['inspect', held.id]), 'a held job stays');
    await held.destroy();
  } finally {
    for (const c of created) works('docker', ['rm', '-f', c]);
    rmSync(workDir, { recursive: true, force: true });
  }
}));

const standins = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/zfs-standin');

test('zfs-jail: below --min-free the disk check prunes leftover jails and clones, never a held one', async () => {
  const T = mkdtempSync(join(tmpdir(), 'builder-prune-zfs-'));
  const saved = { PATH: process.env.PATH, ROOT: process.env.BUILDER_STANDIN_ROOT, LOG: process.env.BUILDER_STANDIN_LOG };
  try {
    const state = join(T, 'state');
    const snap = join(state, 'snap', 'zroot/jails/base@clean');
    mkdirSync(join(snap, 'etc'), { recursive: true });
    writeFileSync(join(snap, 'etc/passwd'), 'builder:*:497:497::/work:/bin/sh\n');
    writeFileSync(join(T, 'resolv.conf'), '');
    writeFileSync(join(T, 'log'), '');
    process.env.PATH = `${standins}:${process.env.PATH}`;
    process.env.BUILDER_STANDIN_ROOT = state;
    process.env.BUILDER_STANDIN_LOG = join(T, 'log');
    const make = () => zfsJailBackend.create({ 'zfs-snapshot': 'zroot/jails/base@clean', 'resolv-conf': join(T, 'resolv.conf') },
      { workerId: 'w1', workDir: T, log: () => undefined });
    // a predecessor's sandbox whose destroy never came, then a live job of this backend
    await make().prepare(job('true\n', 'left1'));
    const backend = make();
    const held = await backend.prepare(job('true\n', 'held1'));
    const lines: string[] = [];
    const log: Logger = {
      debug: () => undefined, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), child: () => log,
    };
    // 101%: always short, so the check prunes
    const check = makeDiskCheck(backend, 101, log);
    const r = await check();
    assert.is(r.short, true);
    assert.equal(readFileSync(join(state, 'datasets'), 'utf8').trim(), 'zroot/jails/builder-w1-held1', 'only the held clone is left');
    assert.ok(lines.some((l) => l.includes('pruned clone zroot/jails/builder-w1-left1')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('pruned jail builder-w1-left1')), lines.join('\n'));
    await held.destroy();
  } finally {
    process.env.PATH = saved.PATH;
    process.env.BUILDER_STANDIN_ROOT = saved.ROOT;
    process.env.BUILDER_STANDIN_LOG = saved.LOG;
    rmSync(T, { recursive: true, force: true });
  }
});

test.run();
