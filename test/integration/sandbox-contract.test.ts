// The contract of src/worker/sandbox/types.ts, run against every backend the worker can select:
// process, docker (real engine), btrfs-ns (real btrfs, root), and zfs-jail through the stand-in
// zfs/jail/jexec programs of test/fixtures/zfs-standin. What only one backend promises (isolation,
// limits, options, exact zfs command sequences) is tested in that backend's own file.
// Docker and btrfs skip locally when missing and fail in CI (BUILDER_TEST_STRICT=1).
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { findBackend } from '../../src/worker/sandbox/registry.js';
import { buildEnv } from '../../src/worker/build-env.js';
import type { ExitStatus, JobSpec, RunHandle, Sandbox, SandboxBackend } from '../../src/worker/sandbox/types.js';
import { need } from '../helpers/env.js';
import { eventually, sleepers, withTimeout } from '../helpers/processes.js';

/** One backend under test: how to make it, and how to see what it left behind. */
interface Subject {
  name: string;
  /** false (after recording the skip) when this machine cannot run it */
  ready(): boolean;
  backend(workerId: string): SandboxBackend;
  /** every container, snapshot, clone, jail or directory of this worker's sandboxes that exists */
  leftovers(workerId: string): string[];
  before?(): void;
  after?(): void;
}

const quiet = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
};
const scratch = mkdtempSync(join(tmpdir(), 'builder-contract-'));
const ctx = (workerId: string) => ({ workerId, workDir: join(scratch, workerId), log: () => undefined });
const listDir = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

const processSubject: Subject = {
  name: 'process',
  ready: () => true,
  backend: (id) => findBackend('process').create({}, ctx(id)),
  leftovers: (id) => listDir(join(scratch, id, 'jobs')),
};

const dockerImage = 'builder-test-busybox';
let dockerAvailable: boolean | undefined;
const dockerSubject: Subject = {
  name: 'docker',
  ready: () =>
    need('docker engine with ' + dockerImage, (dockerAvailable ??= quiet('docker', ['image', 'inspect', dockerImage]).length > 0),
      'start dockerd and run test/env/setup-docker.sh'),
  backend: (id) => findBackend('docker').create({ image: dockerImage }, ctx(id)),
  leftovers: (id) => quiet('docker', ['ps', '-aq', '--filter', `label=builder.worker=${id}`]).split('\n').filter(Boolean),
};

const btrfsMount = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';
const btrfsBase = join(btrfsMount, 'base@clean');
let btrfsAvailable: boolean | undefined;
const btrfsSubject: Subject = {
  name: 'btrfs-ns',
  ready: () =>
    need(`btrfs at ${btrfsMount}, as root`,
      (btrfsAvailable ??= process.getuid?.() === 0 && /ro=true/.test(quiet('btrfs', ['property', 'get', '-ts', btrfsBase, 'ro']))),
      'run test/env/setup-btrfs.sh as root (or set BUILDER_TEST_BTRFS)'),
  backend: (id) => findBackend('btrfs-ns').create({ 'btrfs-base': btrfsBase }, ctx(id)),
  leftovers: (id) => listDir(btrfsMount).filter((n) => n.startsWith(`builder-${id}-`)),
};

// dist/test/integration -> the source tree's stand-ins (they are not compiled)
const standins = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/zfs-standin');
const zfsState = join(scratch, 'zfs-state');
const zfsSnapshot = 'zroot/jails/base@clean';
const savedEnv = { ...process.env };
const zfsSubject: Subject = {
  name: 'zfs-jail (stand-in)',
  ready: () => true,
  before() {
    mkdirSync(join(zfsState, 'snap', zfsSnapshot, 'etc'), { recursive: true });
    writeFileSync(join(zfsState, 'snap', zfsSnapshot, 'etc/passwd'), 'root:*:0:0::/root:/bin/sh\nbuilder:*:497:497::/work:/bin/sh\n');
    writeFileSync(join(scratch, 'resolv.conf'), 'nameserver 192.0.2.53\n');
    process.env.PATH = `${standins}:${savedEnv.PATH}`;
    process.env.BUILDER_STANDIN_ROOT = zfsState;
    process.env.BUILDER_STANDIN_LOG = join(scratch, 'zfs-commands');
  },
  after() {
    process.env.PATH = savedEnv.PATH;
    delete process.env.BUILDER_STANDIN_ROOT;
    delete process.env.BUILDER_STANDIN_LOG;
  },
  backend: (id) => findBackend('zfs-jail').create({ 'zfs-snapshot': zfsSnapshot, 'resolv-conf': join(scratch, 'resolv.conf') }, ctx(id)),
  leftovers: (id) => {
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : []);
    return [
      ...read(join(zfsState, 'datasets')).filter((d) => d.includes(`/builder-${id}-`)).map((d) => `dataset ${d}`),
      ...listDir(join(zfsState, 'jails')).filter((j) => j.startsWith(`builder-${id}-`)).map((j) => `jail ${j}`),
      ...read(join(zfsState, 'mounts')).filter((m) => m.includes(`/builder-${id}-`)).map((m) => `mount ${m}`),
    ];
  },
};

const job = (script: string): JobSpec => {
  const spec = { uuid: randomUUID(), name: 'contract', platform: 'test', script };
  return { ...spec, env: buildEnv(spec) };
};

async function run(sb: Sandbox): Promise<{ status: ExitStatus; out: string }> {
  let out = '';
  const h = await sb.start((c) => (out += c.toString('utf8')));
  const { status } = await h.done;
  return { status, out };
}


function contract(s: Subject): void {
  const t = suite(`sandbox contract: ${s.name}`);
  const worker = `c${process.pid}${s.name.replace(/[^a-z]/g, '').slice(0, 4)}`;
  let setUp = false;
  // asked in each test, not in a before hook: uvu reports a failing hook as no failure at all,
  // and each test that cannot run is one skip
  const ready = (): boolean => {
    if (!s.ready()) return false;
    if (!setUp) s.before?.();
    setUp = true;
    return true;
  };
  let made: Sandbox[] = [];
  const prepare = async (script: string, id = worker): Promise<Sandbox> => {
    const sb = await s.backend(id).prepare(job(script));
    made.push(sb);
    return sb;
  };

  t.after.each(async () => {
    for (const sb of made) await sb.destroy().catch(() => undefined);
    made = [];
  });
  t.after(async () => {
    if (setUp) {
      await s.backend(worker).sweep().catch(() => undefined);
      s.after?.();
    }
  });

  t('stdout and stderr arrive merged, in the order the script wrote them, none lost', withTimeout(60_000, async () => {
    if (!ready()) return;
    const sb = await prepare('i=0\nwhile [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done\nprintf "no newline"\n');
    const r = await run(sb);
    let expected = '';
    for (let i = 0; i < 300; i++) expected += `out ${i}\nerr ${i}\n`;
    assert.is(r.out, expected + 'no newline');
    assert.equal(r.status, { kind: 'exited', code: 0 });
  }));

  t('the exit code of the script is reported', withTimeout(60_000, async () => {
    if (!ready()) return;
    for (const code of [0, 3, 255]) {
      const r = await run(await prepare(`echo before\nexit ${code}\necho after\n`));
      assert.equal(r.status, { kind: 'exited', code }, `exit ${code}`);
      assert.is(r.out, 'before\n');
    }
  }));

  t('a script killed by a signal is reported as signalled with that signal', withTimeout(60_000, async () => {
    if (!ready()) return;
    for (const [name, number] of [['KILL', 9], ['TERM', 15]] as const) {
      const r = await run(await prepare(`echo before; kill -${name} $$; echo after\n`));
      assert.equal(r.status, { kind: 'signalled', signal: number }, `kill -${name}`);
      assert.is(r.out, 'before\n');
    }
  }));

  t('a script that stops itself is still ended by kill(), as signalled 9', withTimeout(60_000, async () => {
    if (!ready()) return;
    let out = '';
    const h: RunHandle = await (await prepare('echo stopping; kill -STOP $$; echo resumed\n')).start((c) => (out += c.toString()));
    await eventually(() => out.includes('stopping\n'), 20_000, 'the script to stop itself');
    await h.kill();
    const { status } = await h.done;
    assert.equal(status, { kind: 'signalled', signal: 9 });
    assert.is(out, 'stopping\n');
  }));

  t('kill() ends the whole process tree at once, background children included; twice is fine', withTimeout(60_000, async () => {
    if (!ready()) return;
    const n = 50_000 + Math.floor(Math.random() * 40_000);
    const h = await (await prepare(`sleep ${n} &\n(sleep ${n + 1} &)\necho started\nsleep ${n + 2}\n`)).start(() => undefined);
    await eventually(() => sleepers(n).length + sleepers(n + 1).length + sleepers(n + 2).length === 3, 20_000, 'the three sleeps to run');
    const t0 = Date.now();
    await h.kill();
    await h.kill();
    const { status } = await h.done;
    assert.ok(Date.now() - t0 < 10_000, `kill took ${Date.now() - t0} ms`);
    assert.equal(status, { kind: 'signalled', signal: 9 });
    await eventually(() => [n, n + 1, n + 2].every((k) => sleepers(k).length === 0), 10_000, 'no sleep of the job to be left');
  }));

  t('artifacts: files with their paths, sizes and modes; links inside followed; links out, dangling links and fifos refused', withTimeout(60_000, async () => {
    if (!ready()) return;
    const long = 'x'.repeat(150);
    const sb = await prepare(
      [
        'mkdir -p out/sub empty/dir',
        'printf hello > out/sub/a.txt',
        'head -c 3000 /dev/zero > big.bin',
        `printf long > "out/${long}"`,
        'printf "#!/bin/sh\\n" > tool; chmod 755 tool',
        'ln -s out/sub/a.txt inside',
        'ln -s out/sub linkdir',
        'ln -s /etc/passwd absolute',
        'ln -s ../../../../../../../../etc/passwd up',
        'ln -s /etc etcdir',
        'ln -s no-such-file dangling',
        'mkfifo fifo',
        'exit 0',
      ].join('\n') + '\n',
    );
    const r = await run(sb);
    assert.equal(r.status, { kind: 'exited', code: 0 }, r.out);
    const set = await sb.collect();
    assert.equal(
      set.files.map((f) => [f.path, f.size]),
      [['big.bin', 3000], ['inside', 5], ['out/sub/a.txt', 5], [`out/${long}`, 4], ['tool', 10]],
      'the script itself is never an artifact, a link to a directory inside adds nothing',
    );
    const byPath = new Map(set.files.map((f) => [f.path, f]));
    assert.is(readFileSync(byPath.get('out/sub/a.txt')!.hostPath, 'utf8'), 'hello');
    assert.is(readFileSync(byPath.get('inside')!.hostPath, 'utf8'), 'hello');
    assert.is(byPath.get('tool')!.mode & 0o777, 0o755);
    for (const f of set.files) {
      assert.not.ok(f.path.startsWith('/') || f.path.split('/').includes('..'), `${f.path}: relative, no ..`);
    }
    assert.equal(set.refusals.map((x) => x.path).sort(), ['absolute', 'dangling', 'etcdir', 'fifo', 'up']);
  }));

  t('destroy leaves nothing: after a run, after a kill, without a start, and when called twice', withTimeout(90_000, async () => {
    if (!ready()) return;
    const ran = await prepare('echo hi > file\n');
    await run(ran);
    const killed = await prepare('sleep 600\n');
    const h = await killed.start(() => undefined);
    const idle = await prepare('true\n');
    assert.ok(s.leftovers(worker).length >= 3, `three sandboxes exist: ${s.leftovers(worker).join(', ')}`);
    await h.kill();
    await h.done;
    for (const sb of [ran, killed, idle]) {
      await sb.destroy();
      await sb.destroy();
    }
    made = [];
    assert.equal(s.leftovers(worker), []);
  }));

  t("sweep removes what a crashed predecessor left, and only this worker's", withTimeout(90_000, async () => {
    if (!ready()) return;
    await s.backend(worker).sweep(); // what an earlier failure may have left
    const crashed = await s.backend(worker).prepare(job('echo running\nsleep 600\n'));
    let out = '';
    const h = await crashed.start((c) => (out += c.toString())); // never killed nor destroyed: the worker "died"
    await eventually(() => out.includes('running'), 20_000, 'the job to run');
    const other = await prepare('true\n', `${worker}o`);
    const removed = await s.backend(worker).sweep();
    assert.ok(removed.length >= 1, 'says what it removed');
    assert.equal(s.leftovers(worker), []);
    assert.ok(s.leftovers(`${worker}o`).length >= 1, "the other worker's sandbox stays");
    await h.done; // the sweep ended the job too
    await other.destroy();
    assert.equal(s.leftovers(`${worker}o`), []);
  }));

  t.run();
}

for (const s of [processSubject, dockerSubject, btrfsSubject, zfsSubject]) contract(s);

// after the last suite: uvu runs them in the order of their run() calls
const last = suite('sandbox contract: scratch');
last.after(() => rmSync(scratch, { recursive: true, force: true }));
last.run();
