// The worker as users run it: capacity, draining, its own limits, disk checks, leftovers of a
// crashed predecessor, and failures of the sandbox told apart from failures of the build.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('worker');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

interface RunJson { uuid: string; job: string; attempt: number; started: string; finished: string; result: { kind: string; code?: number; reason?: string; message?: string; infra?: boolean }; dir: string; stats: { peakMemoryBytes?: number; cpuMs?: number } }
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t('--capacity N runs N jobs at once, each in its own directory', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p', ['--capacity', '3']);
  const go = h.path('go');
  for (const n of [1, 2, 3, 4]) {
    await h.client(server, ['schedule', `j${n}`, 'p', h.script(`j${n}`, `pwd > where\nwhile [ ! -e ${go} ]; do sleep 0.05; done\n`)]);
  }
  await eventually(async () => (await h.info(server)).running.length === 3, 15_000, 'three jobs running together');
  const workers = JSON.parse((await h.client(server, ['workers', '--json'])).stdout);
  assert.is(workers[0].running.length, 3);
  assert.is(workers[0].capacity, 3);
  writeFileSync(go, '');
  const runs = await eventually(async () => {
    const r = await h.history<RunJson>(server);
    return r.length === 4 && r;
  });
  const dirs = new Set(runs.map((r) => readFileSync(join(r.dir, 'artifacts/where'), 'utf8')));
  assert.is(dirs.size, 4);
}));

t('drain and SIGTERM: a worker finishes what it runs, takes nothing new, and exits', withTimeout(40_000, async () => {
  const server = await h.server();
  const w = h.worker(server, 'p', ['--name', 'drainme']);
  const go = h.path('go');
  await h.client(server, ['schedule', 'first', 'p', h.script('a', `while [ ! -e ${go} ]; do sleep 0.05; done\necho finished-first\n`)]);
  await eventually(async () => (await h.info(server)).running.length === 1);
  const r = await h.client(server, ['drain', 'drainme']);
  assert.is(r.code, 0, r.stderr);
  await h.client(server, ['schedule', 'second', 'p', h.script('b', 'echo second\n')]);
  const workers = JSON.parse((await h.client(server, ['workers', '--json'])).stdout);
  assert.is(workers[0].draining, true);
  writeFileSync(go, '');
  const { code } = await w.exited;
  assert.is(code, 0);
  const runs = await h.history<RunJson>(server);
  assert.equal(runs.map((x) => x.job), ['first']);
  assert.equal((await h.info(server)).queues.p, ['second']);
  // SIGTERM does the same
  const w2 = h.worker(server, 'p', ['--name', 'termme']);
  const go2 = h.path('go2');
  await h.client(server, ['unschedule', 'second']);
  await h.client(server, ['schedule', 'third', 'p', h.script('c', `while [ ! -e ${go2} ]; do sleep 0.05; done\necho third\n`)]);
  await eventually(async () => (await h.info(server)).running.length === 1);
  w2.kill('SIGTERM');
  await w2.waitFor(/SIGTERM/);
  writeFileSync(go2, '');
  assert.is((await w2.exited).code, 0);
  const third = await h.history<RunJson>(server, 'third');
  assert.equal(third[0]!.result, { kind: 'exited', code: 0 });
}));

t('--once runs one job and exits, leaving the rest queued (for service managers that restart it)', withTimeout(30_000, async () => {
  const server = await h.server();
  await h.client(server, ['schedule', 'one', 'p', h.script('one', 'echo one\n')]);
  await h.client(server, ['schedule', 'two', 'p', h.script('two', 'echo two\n')]);
  const w = h.worker(server, 'p', ['--once']);
  assert.is((await w.exited).code, 0);
  assert.equal((await h.history<RunJson>(server)).map((r) => r.job), ['one']);
  assert.equal((await h.info(server)).queues.p, ['two']);
}));

t('SIGINT twice stops a worker at once: its job is killed and its sandbox removed', withTimeout(30_000, async () => {
  const server = await h.server({ args: ['--lease', '1'] });
  const pidFile = h.path('pid');
  const w = h.worker(server, 'p', ['--name', 'impatient']);
  await h.client(server, ['schedule', 'forever', 'p', h.script('f', `sleep 1000 &\necho $! > ${pidFile}\nwait\n`)]);
  await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().length > 0);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  w.kill('SIGINT');
  await w.waitFor(/SIGINT again stops at once/);
  assert.ok(alive(pid), 'one SIGINT lets the job go on');
  w.kill('SIGINT');
  assert.is((await w.exited).code, 0);
  await eventually(() => !alive(pid), 5000, 'the job to be killed');
  const jobs = h.path('workers', 'impatient', 'jobs');
  assert.equal(existsSync(jobs) ? readdirSync(jobs) : [], []);
}));

t('a job silent for --no-output-timeout is ended with that reason; output past the cap is cut with a marker', withTimeout(40_000, async () => {
  const server = await h.server();
  h.worker(server, 'p', ['--no-output-timeout', '1', '--output-cap', '2048']);
  await h.client(server, ['schedule', 'quiet', 'p', h.script('q', 'echo hello\nsleep 30\n')]);
  await h.client(server, ['schedule', 'loud', 'p', h.script('l', 'i=0; while [ $i -lt 200 ]; do echo "line $i of some output"; i=$((i+1)); done\nexit 0\n')]);
  const runs = await eventually(async () => {
    const r = await h.history<RunJson>(server);
    return r.length === 2 && r;
  }, 30_000);
  const quiet = runs.find((r) => r.job === 'quiet')!;
  assert.is(quiet.result.kind, 'timeout');
  assert.match(quiet.result.reason!, /no output for 1 s/);
  const loud = runs.find((r) => r.job === 'loud')!;
  assert.equal(loud.result, { kind: 'exited', code: 0 }, 'the cap does not change the result');
  const lines = readFileSync(join(loud.dir, 'console'), 'utf8').trim().split('\n');
  assert.match(lines.at(-1)!, /output cap of 2048 bytes reached; \d+ bytes dropped/);
  assert.ok(lines.length < 200);
}));

t('history shows the peak memory and CPU time of each job', withTimeout(30_000, async () => {
  const server = await h.server();
  h.worker(server, 'p');
  // busy for at least a second of wall time, whatever the machine's speed: the worker samples
  // every 250 ms and a job shorter than that reports no figures (a fixed loop took 0.2 s here)
  await h.client(server, ['schedule', 'busy', 'p', h.script('b', 'i=0; end=$(($(date +%s) + 2))\nwhile [ "$(date +%s)" -lt "$end" ]; do i=$((i+1)); done\necho $i\n')]);
  const [run] = await eventually(async () => {
    const r = await h.history<RunJson>(server);
    return r.length === 1 && r;
  }, 25_000);
  assert.ok((run!.stats.peakMemoryBytes ?? 0) > 100_000, `peak memory recorded: ${run!.stats.peakMemoryBytes}`);
  assert.ok((run!.stats.cpuMs ?? 0) > 50, `cpu time recorded: ${run!.stats.cpuMs}`);
  const table = await h.client(server, ['history']);
  assert.match(table.stdout, /PEAK MEM\s+CPU/);
  assert.match(table.stdout, /busy\s+p\s+exited 0\s+\S+\s+\d+(\.\d)?(KiB|MiB)\s+\S+/);
}));

t('a worker short of disk takes no job and says so in `workers`', withTimeout(30_000, async () => {
  const server = await h.server();
  const w = h.worker(server, 'p', ['--min-free', '100']);
  await w.waitFor(/connected/);
  await h.client(server, ['schedule', 'nope', 'p', h.script('n', 'true\n')]);
  const table = await eventually(async () => {
    const r = await h.client(server, ['workers']);
    return /SHORT OF DISK/.test(r.stdout) && r.stdout;
  });
  assert.match(table, /SHORT OF DISK/);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await h.info(server)).queues.p, ['nope']);
  assert.equal(await h.history<RunJson>(server), []);
}));

t('kill -9 of a worker mid-job leaves nothing behind after its next start', withTimeout(40_000, async () => {
  const server = await h.server({ args: ['--lease', '1'] });
  const pidFile = h.path('pid');
  const w = h.worker(server, 'p', ['--name', 'crashy']);
  await h.client(server, ['schedule', 'orphan', 'p', h.script('o', `sleep 1000 &\necho $! > ${pidFile}\nwait\n`)]);
  await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().length > 0);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  w.kill('SIGKILL');
  await w.exited;
  assert.ok(alive(pid), 'the job outlived its worker');
  await h.client(server, ['unschedule', 'orphan']);
  const again = h.worker(server, 'p', ['--name', 'crashy']);
  await again.waitFor(/swept leftover process group \d+/);
  await again.waitFor(/swept leftover job directory/);
  await eventually(() => !alive(pid), 5000, 'the leftover job process to be killed');
}));

t('a sandbox that cannot be made is an infrastructure failure, retried with back-off, not a red build', withTimeout(40_000, async () => {
  const server = await h.server({ args: ['--retry-backoff', '1', '--max-attempts', '2'] });
  // the zfs-jail backend with a stand-in `zfs` whose clone fails: the sandbox cannot be created
  const fakeBin = h.path('bin');
  mkdirSync(fakeBin);
  writeFileSync(join(fakeBin, 'zfs'), '#!/bin/sh\n[ "$1" = clone ] || exit 0\necho "cannot create clone: out of space" >&2\nexit 1\n', { mode: 0o755 });
  for (const tool of ['jail', 'jexec', 'jls', 'umount']) writeFileSync(join(fakeBin, tool), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  h.worker(server, 'bsd', ['--sandbox', 'zfs-jail', '--zfs-snapshot', 'zroot/jails/base@clean'], { PATH: `${fakeBin}:${process.env.PATH}` });
  await h.client(server, ['schedule', 'build', 'bsd', h.script('b', 'echo hi\n')]);
  const runs = await eventually(async () => {
    const r = await h.history<RunJson>(server, 'build');
    return r.length === 2 && r;
  }, 30_000, 'two attempts');
  for (const r of runs) {
    assert.is(r.result.kind, 'failed');
    assert.is(r.result.infra, true);
  }
  assert.equal(runs.map((r) => r.attempt).sort(), [1, 2]);
  const gap = Date.parse(runs[0]!.started) - Date.parse(runs[1]!.finished);
  assert.ok(gap >= 900, `retried after the back-off, not at once (${gap} ms)`);
  const table = await h.client(server, ['history', 'build']);
  assert.match(table.stdout, /infrastructure failure/);
}));

t.run();
