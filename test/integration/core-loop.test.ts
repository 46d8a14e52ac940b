// The core loop with the real programs: schedule → run → stored result, observing, and the
// schedule semantics users rely on.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('core loop');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());


interface RunJson { uuid: string; job: string; result: { kind: string; code?: number; reason?: string }; dir: string; refusals: Array<{ path: string; reason: string }>; stats: { peakMemoryBytes?: number } }


t('a scheduled job runs on a worker and its result, console and artifacts are stored', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'debian-12');
  const file = h.script('build', 'echo building\necho oops >&2\nmkdir -p out/deep\nprintf "\\001\\002binary" > out/deep/x.bin\necho done\n');
  const r = await h.client(server, ['schedule', 'hello', 'debian-12', file]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /scheduled hello on debian-12/);
  const [run] = await eventually(async () => (await h.history<RunJson>(server)).length === 1 && h.history<RunJson>(server), 20_000, 'a finished run');
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  const dir = run!.dir;
  assert.is(readFileSync(join(dir, 'artifacts/out/deep/x.bin'), 'latin1'), '\x01\x02binary');
  assert.not.ok(existsSync(join(dir, 'artifacts', 'script.sh')), 'the script is not an artifact');
  const consoleText = readFileSync(join(dir, 'console'), 'utf8');
  assert.match(consoleText, /^\d+ building\n\d+ oops\n\d+ done\n$/, 'stdout and stderr merged in order');
  assert.is(readFileSync(join(dir, 'script'), 'utf8'), readFileSync(file, 'utf8'));
  const meta = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  assert.is(meta.artifacts[0].path, 'out/deep/x.bin');
  assert.is(meta.artifacts[0].sha256, createHash('sha256').update('\x01\x02binary', 'latin1').digest('hex'));
  assert.is(meta.artifacts[0].size, 8);
}));

t('the same name cannot be scheduled twice; bad input changes nothing and says why in one line', withTimeout(20_000, async () => {
  const server = await h.server();
  const file = h.script('s', 'true\n');
  assert.is((await h.client(server, ['schedule', 'job1', 'linux', file, '--period', 'never'])).code, 0);
  const dup = await h.client(server, ['schedule', 'job1', 'linux', file]);
  assert.is(dup.code, 1);
  assert.is(dup.stderr.trim(), 'builder-client: job name already used: job1');
  const badCron = await h.client(server, ['schedule', 'job2', 'linux', file, '--cron', '99 * * * *']);
  assert.is(badCron.code, 2, 'a bad --cron is a usage error');
  assert.is(badCron.stderr.trim().split('\n').length, 1);
  assert.match(badCron.stderr, /invalid cron expression "99 \* \* \* \*"/);
  const usage = await h.client(server, ['schedule', 'job3', 'linux']);
  assert.is(usage.code, 2);
  const badPeriod = await h.client(server, ['schedule', 'job3', 'linux', file, '--period', 'monthly']);
  assert.is(badPeriod.code, 2);
  assert.match(badPeriod.stderr, /--period must be one of hourly\|daily\|weekly\|never/);
  const unknown = await h.client(server, ['frobnicate']);
  assert.is(unknown.code, 2);
  const info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.schedule.map((j: { name: string }) => j.name), ['job1']);
  for (const cmd of ['schedule', 'execute', 'observe', 'history', 'info', 'reschedule']) {
    const help = await h.client(server, [cmd, '--help']);
    assert.is(help.code, 0);
    assert.match(help.stdout, new RegExp(`usage: builder-client ${cmd}`));
  }
}));

t('observe shows the past lines, then the live ones, then the result', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const go = h.path('go');
  const file = h.script('obs', `echo past-1\necho past-2\nwhile [ ! -e ${go} ]; do sleep 0.05; done\necho live-1\nexit 7\n`);
  await h.client(server, ['schedule', 'obs', 'p', file]);
  const uuid = await eventually(async () => {
    const info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
    return info.running[0]?.uuid as string | undefined;
  });
  // the first lines are on the server before anyone observes
  await eventually(async () => {
    const o = h.clientProc(server, ['observe', uuid]);
    await o.waitFor(/past-2/);
    o.kill();
    return true;
  });
  const watcher = h.clientProc(server, ['observe', uuid]);
  await watcher.waitFor(/past-1\n.*past-2/);
  assert.not.match(watcher.stdout, /live-1/);
  writeFileSync(go, '');
  const { code } = await watcher.exited;
  assert.match(watcher.stdout, /\+\d+\.\d{3}s past-1\n\s*\+\d+\.\d{3}s past-2\n\s*\+\d+\.\d{3}s live-1\n/);
  assert.match(watcher.stderr, /exited 7/);
  assert.is(code, 7, 'observe ends with the job\'s exit status');
  const latest = await h.client(server, ['observe-latest', '--job', 'obs']);
  assert.is(latest.code, 1);
  assert.match(latest.stderr, /no running job named obs/);
}));

t('execute moves a job to the front; --follow streams the run and exits with its status', withTimeout(30_000, async () => {
  const server = await h.server();
  const file = h.script('f', 'echo following\nexit 3\n');
  for (const name of ['a', 'b', 'c']) await h.client(server, ['schedule', name, 'x86', file]);
  let info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.queues.x86, ['a', 'b', 'c']);
  assert.is((await h.client(server, ['execute', 'c'])).code, 0);
  info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.queues.x86, ['c', 'a', 'b']);
  const follow = h.clientProc(server, ['execute', 'b', '--follow']);
  await follow.waitFor(/queued b first/);
  h.worker(server, 'x86');
  const { code } = await follow.exited;
  assert.is(code, 3);
  assert.match(follow.stdout, /following/);
  assert.match(follow.stderr, /following run [0-9a-f-]{36} of b on x86/);
  const missing = await h.client(server, ['execute', 'nope']);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /no job named nope/);
}));

t('execute --follow with an idle worker: the run starts at once, and the answer still comes before the run', withTimeout(30_000, async () => {
  const server = await h.server();
  const file = h.script('g', 'echo at once\n');
  await h.client(server, ['schedule', 'g', 'x86', file, '--period', 'never']);
  h.worker(server, 'x86');
  await eventually(async () => JSON.parse((await h.client(server, ['workers', '--json'])).stdout).length === 1, 10_000, 'the worker');
  const r = await h.client(server, ['execute', 'g', '--follow']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /at once/);
  const queued = r.stderr.indexOf('queued g first on: x86');
  const following = r.stderr.search(/following run [0-9a-f-]{36} of g on x86/);
  assert.ok(queued >= 0 && following > queued, `stderr in the wrong order:\n${r.stderr}`);
}));

t('reschedule and unschedule change the schedule; never-jobs wait for execute', withTimeout(20_000, async () => {
  const server = await h.server();
  const file = h.script('r', 'true\n');
  await h.client(server, ['schedule', 'nightly', 'arm', file, '--cron', '0 3 * * *', '--tz', 'Europe/Berlin']);
  await h.client(server, ['schedule', 'manual', 'arm', file, '--period', 'never']);
  let info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.queues.arm, ['nightly'], 'a never-job is not queued at schedule time');
  const manual = info.schedule.find((j: { name: string }) => j.name === 'manual');
  assert.is(manual.next, null);
  const r = await h.client(server, ['reschedule', 'nightly', '2030-01-01T00:00:00Z', '--period', 'weekly']);
  assert.is(r.code, 0, r.stderr);
  info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  const nightly = info.schedule.find((j: { name: string }) => j.name === 'nightly');
  assert.is(nightly.next, '2030-01-01T00:00:00.000Z');
  assert.is(nightly.period, 'weekly');
  assert.is(nightly.cron, null);
  const bad = await h.client(server, ['reschedule', 'nightly', '2030-01-01 00:00']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /expected RFC 3339 in UTC/);
  assert.is((await h.client(server, ['unschedule', 'nightly'])).code, 0);
  info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.schedule.map((j: { name: string }) => j.name), ['manual']);
  assert.equal(info.queues.arm, [], 'unscheduling removes the job from its queue');
  assert.is((await h.client(server, ['unschedule', 'nightly'])).code, 1);
}));

t('a dropped platform keeps its jobs paused, refuses schedules, stays dropped when its worker connects, and undrop resumes them', withTimeout(40_000, async () => {
  const server = await h.server();
  const file = h.script('d', 'echo paused-then-resumed\n');
  await h.client(server, ['schedule', 'j1', 'old', file]);
  const drop = await h.client(server, ['drop-platform', 'old']);
  assert.is(drop.code, 0, drop.stderr);
  assert.match(drop.stdout, /dropped platform old; paused jobs: j1/);
  let info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.schedule.map((j: { name: string; paused?: boolean }) => [j.name, j.paused]), [['j1', true]], 'the job is kept, paused');
  assert.equal(info.dropped, ['old']);
  assert.match((await h.client(server, ['info', '--all'])).stdout, /j1 .*paused \(platform dropped\)/);
  // the default info is the summary: the platform, dropped, its paused job counted, its queue kept
  const summary = await h.client(server, ['info']);
  assert.is(summary.code, 0, summary.stderr);
  assert.match(summary.stdout, /^1 job \(0 orb-build\), 1 paused/);
  assert.match(summary.stdout, /^old +1 +1 +0 +0 +dropped \(1 job paused\) +j1$/m);
  const page = JSON.parse((await h.client(server, ['info', '--json', '--limit', '1'])).stdout);
  assert.equal([page.schedule.map((j: { name: string; paused?: boolean }) => [j.name, j.paused]), page.next], [[['j1', true]], null]);
  const refused = await h.client(server, ['schedule', 'j2', 'old', file]);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /platform old is dropped/);
  const execute = await h.client(server, ['execute', 'j1']);
  assert.is(execute.code, 1);
  assert.match(execute.stderr, /job j1 is paused: its platform old is dropped/);
  // a restart must not forget it (the original did)
  server.proc.kill('SIGTERM');
  await server.proc.exited;
  const again = await h.server({ dir: server.dir });
  const worker = h.worker(again, 'old');
  await worker.waitFor(/platform is dropped on the server/);
  const workers = JSON.parse((await h.client(again, ['workers', '--json'])).stdout);
  assert.is(workers[0].dropped, true);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await h.history(again), [], 'a paused job does not run');
  const undrop = await h.client(again, ['undrop-platform', 'old']);
  assert.is(undrop.code, 0, undrop.stderr);
  assert.match(undrop.stdout, /resumed jobs: j1/);
  await h.client(again, ['schedule', 'j3', 'old', h.script('d2', 'echo now-it-runs\n')]);
  const runs = await eventually(async () => {
    const r = JSON.parse((await h.client(again, ['history', '--json'])).stdout) as RunJson[];
    return r.length === 2 && r;
  });
  assert.equal(runs.map((r) => r.job).sort(), ['j1', 'j3'], 'the paused job ran once it was resumed');
  info = JSON.parse((await h.client(again, ['info', '--json'])).stdout);
  assert.equal(info.dropped, []);
  assert.equal(info.schedule.map((j: { paused?: boolean }) => j.paused ?? false), [false, false]);
  // unschedule is the one way to delete a job, and its runs stay in history
  assert.is((await h.client(again, ['unschedule', 'j1'])).code, 0);
  assert.equal((await h.history<RunJson>(again, 'j1')).length, 1);
}));

t('a job past its timeout is ended as a timeout and its whole process tree is killed', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  const pidFile = h.path('child.pid');
  const file = h.script('slow', `sleep 1000 &\necho $! > ${pidFile}\necho started\nsleep 1000\n`);
  await h.client(server, ['schedule', 'slow', 'p', file, '--timeout', '2']);
  const [run] = await eventually(async () => {
    const r = await h.history<RunJson>(server);
    return r.length > 0 && r;
  }, 20_000, 'the timed-out run');
  assert.equal(run!.result, { kind: 'timeout', reason: 'timeout' });
  const pid = Number(readFileSync(pidFile, 'utf8'));
  await eventually(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000, 'the background child to be gone');
  assert.match(readFileSync(join(run!.dir, 'console'), 'utf8'), /started/);
}));

t('cancel ends a running job', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  await h.client(server, ['schedule', 'long', 'p', h.script('long', 'echo hi\nsleep 1000\n')]);
  const uuid = await eventually(async () => JSON.parse((await h.client(server, ['info', '--json'])).stdout).running[0]?.uuid as string);
  const r = await h.client(server, ['cancel', uuid]);
  assert.is(r.code, 0, r.stderr);
  const [run] = await eventually(async () => {
    const x = await h.history<RunJson>(server);
    return x.length > 0 && x;
  });
  assert.is(run!.result.kind, 'cancelled');
  assert.is((await h.client(server, ['cancel', uuid])).code, 1);
}));

t('a big artifact arrives whole: stored with the sha256 of the file the job wrote, byte for byte', withTimeout(60_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  // past the server's datasync step (64 MiB) and not a whole number of chunks or writes
  const size = 70 * 1024 * 1024 + 12345;
  await h.client(server, ['schedule', 'big', 'p', h.script('big', `head -c ${size} /dev/urandom > big.bin\nsha256sum big.bin\n`), '--period', 'never']);
  await h.client(server, ['execute', 'big']);
  const [run] = await eventually(async () => (await h.history<RunJson>(server, 'big')).length === 1 && h.history<RunJson>(server, 'big'), 50_000, 'the run stored');
  const own = /^\d+ ([0-9a-f]{64})  big\.bin$/m.exec(readFileSync(join(run!.dir, 'console'), 'utf8'))?.[1];
  assert.ok(own, 'the job printed its own sha256');
  const meta = JSON.parse(readFileSync(join(run!.dir, 'run.json'), 'utf8'));
  assert.equal(meta.artifacts.map((a: { path: string; size: number; sha256: string }) => [a.path, a.size, a.sha256]), [['big.bin', size, own]]);
  assert.equal(meta.refusals, []);
  const stored = createHash('sha256').update(readFileSync(join(run!.dir, 'artifacts/big.bin'))).digest('hex');
  assert.is(stored, own, 'the stored bytes are the job\'s');
}));

t('artifacts that are links out of the job directory are refused and the refusal is reported', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  await h.client(server, ['schedule', 'links', 'p', h.script('l', 'ln -s /etc/passwd leak\nln -s ../../.. up\necho ok > good\n')]);
  const [run] = await eventually(async () => {
    const x = await h.history<RunJson>(server);
    return x.length > 0 && x;
  });
  assert.equal(run!.result, { kind: 'exited', code: 0 });
  const reasons = Object.fromEntries(run!.refusals.map((r) => [r.path, r.reason]));
  assert.match(reasons.leak ?? '', /outside the job directory/);
  assert.match(reasons.up ?? '', /outside the job directory/);
  assert.ok(existsSync(join(run!.dir, 'artifacts/good')));
  assert.not.ok(existsSync(join(run!.dir, 'artifacts/leak')));
}));

t('orb-build jobs run on every platform with a template, with the package and platform filled in', withTimeout(30_000, async () => {
  writeFileSync(h.path('etc', 'orb-build.template.debian-12'), 'echo "opam install {{package}} on {{platform}}"\n');
  const server = await h.server();
  await h.client(server, ['orb-build', 'early', 'mirage-skeleton', '--period', 'never']);
  const linux = h.worker(server, 'debian-12');
  // a platform without a template of its own or a shipped one (freebsd-14 has a shipped one)
  const bsd = h.worker(server, 'openbsd-7');
  await linux.waitFor(/connected/);
  await bsd.waitFor(/connected/);
  const bad = await h.client(server, ['orb-build', 'evil', 'x; rm -rf /']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /invalid opam package name/);
  const r = await h.client(server, ['orb-build', 'solo5', 'solo5-bindings-hvt']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /queued on: debian-12/);
  const [run] = await eventually(async () => {
    const x = await h.history<RunJson>(server, 'solo5');
    return x.length > 0 && x;
  });
  assert.match(readFileSync(join(run!.dir, 'console'), 'utf8'), /opam install solo5-bindings-hvt on debian-12/);
  await server.proc.waitFor(/no orb-build template for this platform.*platform=openbsd-7|platform=openbsd-7.*no orb-build template/);
  const info = JSON.parse((await h.client(server, ['info', '--json'])).stdout);
  assert.equal(info.queues['openbsd-7'], []);
}));

t.run();
