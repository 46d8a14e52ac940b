// btrfs-ns for real on the loop-mounted btrfs that test/env/setup-btrfs.sh makes
// (BUILDER_TEST_BTRFS, default /var/tmp/builder-btrfs, with a read-only base@clean).
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

test('a job: merged output in order, exit code, artifacts with paths and sizes, snapshot deleted', async () => {
  if (!ready()) return;
  const sb = await backend().prepare(
    job('echo one; echo two >&2; echo three\nid -u; hostname\nmkdir -p out/sub; printf hello > out/sub/a.txt; head -c 3000 /dev/zero > big.bin\nln -s /etc/passwd outside\nexit 3\n'),
  );
  assert.equal(snapshots().length, 1);
  const r = await run(sb);
  assert.equal(r.status, { kind: 'exited', code: 3 });
  assert.is(r.out, 'one\ntwo\nthree\n65534\nbuilder\n');
  const set = await sb.collect();
  assert.equal(set.files.map((f) => [f.path, f.size]), [['big.bin', 3000], ['out/sub/a.txt', 5]]);
  assert.equal(set.refusals.map((x) => x.path), ['outside']);
  await sb.destroy();
  await sb.destroy();
  assert.equal(snapshots(), []);
});

test('a script killed by a signal is reported as signalled', async () => {
  if (!ready()) return;
  const sb = await backend().prepare(job('echo before; kill -9 $$; echo after\n'));
  const r = await run(sb);
  assert.equal(r.status, { kind: 'signalled', signal: 9 });
  assert.is(r.out, 'before\n');
  await sb.destroy();
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

test('kill() of a long job with a background child (even one that left the group) ends all; nothing left', async () => {
  if (!ready()) return;
  const sb = await backend().prepare(job('sleep 1001 & setsid sleep 1002 & sleep 1003\n'));
  const h = await sb.start(() => undefined);
  await new Promise((r) => setTimeout(r, 400));
  assert.is(execSync("ps -eo args | grep -cE '^sleep 100[123]$' || true").toString().trim(), '3');
  await h.kill();
  const r = await h.done;
  assert.equal(r.status, { kind: 'signalled', signal: 9 });
  await sb.destroy();
  assert.is(execSync("ps -eo args | grep -cE '^sleep 100[123]$' || true").toString().trim(), '0');
  assert.equal(snapshots(), []);
});

test("sweep removes a crashed predecessor's snapshot, and only this worker's", async () => {
  if (!ready()) return;
  await backend().prepare(job('true')); // never destroyed
  const other = await backend({}, `${workerId}x`).prepare(job('true'));
  const removed = await backend().sweep();
  assert.is(removed.length, 1);
  assert.match(removed[0]!, new RegExp(`^snapshot ${mnt}/builder-${workerId}-`));
  assert.equal(snapshots(), []);
  assert.is(snapshots(`${workerId}x`).length, 1);
  await other.destroy();
  assert.equal(snapshots(`${workerId}x`), []);
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
