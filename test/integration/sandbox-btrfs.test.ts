// What only btrfs-ns promises, for real on the loop-mounted btrfs that test/env/setup-btrfs.sh
// makes (BUILDER_TEST_BTRFS, default /var/tmp/builder-btrfs, with a read-only base@clean), as
// root: the unprivileged user and hostname, isolation from the host, the base and the network,
// a kill that reaches children that left the process group, a bad base, bad options. The
// contract every backend fulfils is sandbox-contract.test.ts.
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { btrfsNsBackend } from '../../src/worker/sandbox/btrfs-ns.js';
import { buildEnv } from '../../src/worker/build-env.js';
import { InfraError } from '../../src/worker/sandbox/types.js';
import type { JobSpec, Sandbox, SandboxBackend } from '../../src/worker/sandbox/types.js';
import { need } from '../helpers/env.js';
import { eventually } from '../helpers/processes.js';

const mnt = process.env.BUILDER_TEST_BTRFS ?? '/var/tmp/builder-btrfs';
const base = join(mnt, 'base@clean');
const available = (() => {
  try {
    return process.getuid?.() === 0 && /ro=true/.test(execFileSync('btrfs', ['property', 'get', '-ts', base, 'ro']).toString());
  } catch {
    return false;
  }
})();
const workDir = mkdtempSync(join(tmpdir(), 'builder-btrfs-test-'));
const workerId = `t${process.pid}`;
const backend = (opts: Record<string, string> = {}, id = workerId): SandboxBackend =>
  btrfsNsBackend.create({ 'btrfs-base': base, ...opts }, { workerId, workDir, log: () => undefined, ...(id ? { workerId: id } : {}) });
const job = (script: string, uuid = randomUUID()): JobSpec =>
  ({ uuid, name: 'j', platform: 'linux', script, env: buildEnv({ uuid, name: 'j', platform: 'linux' }) });
const snapshots = (id = workerId) => readdirSync(mnt).filter((n) => n.startsWith(`builder-${id}-`));
const ready = () => need(`btrfs at ${mnt}`, available, 'run test/env/setup-btrfs.sh as root (or set BUILDER_TEST_BTRFS)');

async function run(sb: Sandbox) {
  let out = '';
  const h = await sb.start((c) => (out += c.toString()));
  const r = await h.done;
  return { ...r, out };
}

test.after(async () => {
  if (available) await backend().sweep().catch(() => undefined);
  rmSync(workDir, { recursive: true, force: true });
});

test('a job runs as the unprivileged user with the hostname builder, in a snapshot deleted after', async () => {
  if (!ready()) return;
  const sb = await backend().prepare(job('id -u; hostname\n'));
  assert.equal(snapshots().length, 1);
  const r = await run(sb);
  assert.equal(r.status, { kind: 'exited', code: 0 });
  assert.is(r.out, '65534\nbuilder\n');
  await sb.destroy();
  assert.equal(snapshots(), []);
});

test('a job cannot change the host, the base, or see the host network or environment', async () => {
  if (!ready()) return;
  process.env.BUILDER_SECRET_FOR_TEST = 'leak';
  const marker = join(mnt, `escape-${randomUUID()}`);
  const before = readFileSync('/etc/passwd', 'utf8');
  const sb = await backend().prepare(
    job(
      `echo x 2>/dev/null >> /etc/passwd || echo no-etc\necho x 2>/dev/null > ${marker} || echo no-host-path\n` +
        'ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "\n' +
        'echo "secret=${BUILDER_SECRET_FOR_TEST:-none}"\n',
    ),
  );
  const r = await run(sb);
  delete process.env.BUILDER_SECRET_FOR_TEST;
  assert.is(r.out, 'no-etc\nno-host-path\nlo\nsecret=none\n');
  assert.is(readFileSync('/etc/passwd', 'utf8'), before);
  assert.not.ok(existsSync(marker));
  assert.not.match(readFileSync(join(base, 'etc/passwd'), 'utf8'), /^x$/m);
  await sb.destroy();
});

test('kill() ends even a child that left the process group (setsid); nothing left', async () => {
  if (!ready()) return;
  const n = 50_000 + Math.floor(Math.random() * 40_000); // numbers no other test's sleep uses
  const count = () => execSync(`ps -eo args | grep -cE '^sleep (${n}|${n + 1}|${n + 2})$' || true`).toString().trim();
  const sb = await backend().prepare(job(`sleep ${n} & setsid sleep ${n + 1} & sleep ${n + 2}\n`));
  const h = await sb.start(() => undefined);
  await eventually(() => count() === '3', 10_000, 'the three sleeps to run');
  await h.kill();
  const r = await h.done;
  assert.equal(r.status, { kind: 'signalled', signal: 9 });
  await sb.destroy();
  assert.is(count(), '0');
  assert.equal(snapshots(), []);
});

test('a bad base is an InfraError and leaves nothing; bad options are refused', async () => {
  if (!ready()) return;
  const e1 = await backend({ 'btrfs-base': join(mnt, 'no-such-base') }).prepare(job('true')).catch((e: unknown) => e);
  assert.instance(e1, InfraError);
  const e2 = await backend({ 'btrfs-base': join(mnt, 'base') }).prepare(job('true')).catch((e: unknown) => e);
  assert.instance(e2, InfraError, 'a writable base is refused');
  assert.match((e2 as Error).message, /read-only/);
  assert.equal(snapshots(), []);
  assert.throws(() => backend({ user: '0:0' }), /root/);
  assert.throws(() => backend({ network: 'bridge' }), /--network/);
});

test.run();
