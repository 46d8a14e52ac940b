// What only the docker backend promises, against a real engine (test/env/setup-docker.sh builds
// the images): labels, --user, isolation from the host, limits, a missing image, a real Debian
// build. Output, exit codes, signals, kill, artifacts, teardown and sweep are the contract every
// backend fulfils: sandbox-contract.test.ts. Skips locally without an engine; fails in CI
// (BUILDER_TEST_STRICT=1).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dockerBackend } from '../../src/worker/sandbox/docker.js';
import { buildEnv } from '../../src/worker/build-env.js';
import { InfraError } from '../../src/worker/sandbox/types.js';
import type { JobSpec, Sandbox, SandboxBackend } from '../../src/worker/sandbox/types.js';
import { need } from '../helpers/env.js';
import { eventually } from '../helpers/processes.js';

const BUSYBOX = 'builder-test-busybox';
const DEBIAN = 'builder-test-debian:bookworm';
const ok = (args: string[]): boolean => {
  try {
    execFileSync('docker', args, { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
};
const engine = ok(['info']);
const haveBusybox = engine && ok(['image', 'inspect', BUSYBOX]);
const haveDebian = engine && ok(['image', 'inspect', DEBIAN]);
const workDir = mkdtempSync(join(tmpdir(), 'builder-docker-test-'));
const workerId = `t${process.pid}`;

const backend = (opts: Record<string, string> = {}, id = workerId): SandboxBackend =>
  dockerBackend.create({ image: BUSYBOX, ...opts }, { workerId: id, workDir, log: () => undefined });
const job = (script: string, uuid = randomUUID()): JobSpec =>
  ({ uuid, name: 'j', platform: 'linux', script, env: buildEnv({ uuid, name: 'j', platform: 'linux' }) });
const containers = (label: string): string[] =>
  execFileSync('docker', ['ps', '-aq', '--filter', `label=${label}`]).toString().split('\n').filter(Boolean);

async function run(sb: Sandbox) {
  let out = '';
  const h = await sb.start((c) => (out += c.toString()));
  const r = await h.done;
  return { ...r, out };
}

const ready = () => need('docker engine', engine && haveBusybox, 'start dockerd and run test/env/setup-docker.sh');

test.after(async () => {
  if (engine) await backend().sweep().catch(() => undefined);
  rmSync(workDir, { recursive: true, force: true });
});

test('a sandbox is labelled with its job and its worker, and runs the script as --user', async () => {
  if (!ready()) return;
  const j = job('id -u; id -g\n');
  const sb = await backend({ user: '65534:65534' }).prepare(j);
  assert.equal(containers(`builder.job=${j.uuid}`).length, 1, 'labelled with the job');
  assert.equal(containers(`builder.worker=${workerId}`).length, 1, 'labelled with the worker');
  const r = await run(sb);
  assert.is(r.out, '65534\n65534\n');
  await sb.destroy();
  assert.equal(containers(`builder.job=${j.uuid}`), [], 'container removed');
});

test('a job that writes to /etc and to host paths changes nothing on the host', async () => {
  if (!ready()) return;
  const marker = `/tmp/builder-escape-${randomUUID()}`;
  const before = readFileSync('/etc/passwd', 'utf8');
  // as root inside the container (the image's default user): it may change its own /etc only
  const sb = await backend().prepare(job(`echo hacked >> /etc/passwd && echo x > ${marker} && echo x > /etc/builder-escape && echo wrote`));
  const r = await run(sb);
  assert.is(r.out, 'wrote\n');
  assert.is(readFileSync('/etc/passwd', 'utf8'), before);
  assert.not.ok(existsSync(marker));
  assert.not.ok(existsSync('/etc/builder-escape'));
  await sb.destroy();
});

test('limits: memory, pids and network none are applied', async () => {
  if (!ready()) return;
  const sb = await backend({ memory: '64m', pids: '50', network: 'none', cpus: '0.5' }).prepare(
    job(
      'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max\n' +
        'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max\nls /sys/class/net\n',
    ),
  );
  const r = await run(sb);
  assert.is(r.out, `50\n${64 * 1024 * 1024}\nlo\n`);
  await sb.destroy();
});

test('a killed job still reports the peak memory it used', async () => {
  if (!ready()) return;
  const sb = await backend().prepare(job('echo started\nsleep 600\n'));
  let out = '';
  const h = await sb.start((c) => (out += c.toString()));
  await eventually(() => out.includes('started'), 20_000, 'the job to start');
  await h.kill();
  const r = await h.done;
  assert.equal(r.status, { kind: 'signalled', signal: 9 });
  assert.ok((r.stats.peakMemoryBytes ?? 0) > 0, 'peak memory measured');
  await sb.destroy();
});

test('a missing image or an unreachable engine is an InfraError and leaves nothing', async () => {
  if (!ready()) return;
  const j = job('true');
  const err = await backend({ image: 'builder-test-no-such-image:1' }).prepare(j).catch((e: unknown) => e);
  assert.instance(err, InfraError);
  assert.match((err as Error).message, /No such image/i);
  assert.equal(containers(`builder.job=${j.uuid}`), []);
  const down = await backend({ 'docker-socket': join(workDir, 'no.sock') }).prepare(job('true')).catch((e: unknown) => e);
  assert.instance(down, InfraError);
  assert.throws(() => dockerBackend.create({}, { workerId, workDir, log: () => undefined }), /--image/);
});

test('a real Debian build: apt-get installs a compiler, compiles and runs a C program; the binary is the artifact', async () => {
  if (!need('image ' + DEBIAN, engine && haveDebian, 'run test/env/setup-docker.sh (needs debootstrap and the Debian archive)')) return;
  const b = dockerBackend.create({ image: DEBIAN }, { workerId, workDir, log: () => undefined });
  const sb = await b.prepare(
    job(
      [
        'set -e',
        'export DEBIAN_FRONTEND=noninteractive',
        'apt-get update -qq',
        'apt-get install -y -qq --no-install-recommends tcc libc6-dev >/dev/null',
        "printf '#include <stdio.h>\\nint main(void) { puts(\"hello from debian\"); return 0; }\\n' > hello.c",
        'tcc -o hello hello.c',
        './hello',
        'rm hello.c',
      ].join('\n') + '\n',
    ),
  );
  try {
    const r = await run(sb);
    assert.equal(r.status, { kind: 'exited', code: 0 }, r.out.slice(-2000));
    assert.ok(r.out.includes('hello from debian\n'), r.out.slice(-2000));
    const set = await sb.collect();
    assert.equal(set.files.map((f) => f.path), ['hello']);
    const head = readFileSync(set.files[0]!.hostPath).subarray(0, 4);
    assert.equal([...head], [0x7f, 0x45, 0x4c, 0x46], 'an ELF binary');
    assert.ok((set.files[0]!.mode & 0o111) !== 0, 'executable');
  } finally {
    await sb.destroy();
  }
});

test.run();
