// A full disk under the state directory: requests that change something fail with a clear
// error, reads go on, dispatch waits, the server never exits (not even when restarted while
// full), nothing acknowledged is lost, and everything resumes by itself when space returns.
// The state directory is a real small file system (a tmpfs of a few MB), filled with a ballast
// file and then freed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { need } from '../helpers/env.js';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const t = suite('disk full');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

/** Writes to file until the file system refuses: what is left free is less than one block. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(64 * 1024, 7);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  for (const size of [4096, 512, 1]) {
    try {
      for (;;) writeSync(fd, block.subarray(0, size));
    } catch {
      // full at this size too
    }
  }
  closeSync(fd);
}

interface RunJson { uuid: string; job: string; dir: string; result: { kind: string; code?: number }; refusals: Array<{ path: string; reason: string }> }

t('a full disk: clear errors, reads go on, dispatch and results wait, the server stays up, and all resumes when space returns', withTimeout(120_000, async () => {
  if (!need('root', process.getuid?.() === 0, 'the test mounts a small tmpfs as the state directory')) return;
  const dir = h.path('state');
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m,mode=0700', 'tmpfs', dir]);
  const ballast = join(dir, 'ballast');
  try {
    let server = await h.server({ dir });
    const port = server.port;
    const w1 = h.worker(server, 'p', ['--name', 'one']);
    await w1.waitFor(/connected/);
    const go = h.path('go');
    await h.client(server, ['schedule', 'held', 'p', h.script('held', `echo start\nwhile [ ! -e ${go} ]; do sleep 0.05; done\necho after\nhead -c 200000 /dev/zero > art.bin\n`)]);
    await eventually(async () => (await h.info(server)).running.length === 1, 15_000, 'the held run to start');
    await h.client(server, ['schedule', 'queued', 'p', h.script('queued', 'echo queued-ran\n')]);
    assert.equal((await h.info(server)).queues.p, ['queued']);

    fill(ballast);
    const refused = await h.client(server, ['schedule', 'new-job', 'p', h.script('n', 'true\n')]);
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /out of space or failing.*nothing was changed/);
    assert.not.match(refused.stderr, /\n.+\n/, 'one line');
    const during = await h.info(server);
    assert.equal(during.schedule.map((j: { name: string }) => j.name).sort(), ['held', 'queued'], 'reads keep working');

    // a second worker: the queued job cannot be stored as a run, so dispatch waits
    const w2 = h.worker(server, 'p', ['--name', 'two']);
    await w2.waitFor(/connected/);
    await server.proc.waitFor(/dispatch waits until the disk takes it/);
    // the held run ends while the disk is full: its artifact is refused, its result waits
    writeFileSync(go, '');
    await server.proc.waitFor(/cannot store a finished run/, 20_000);
    assert.ok(server.proc.running, 'the server is still up');
    assert.equal(await h.history(server, 'held'), []);

    // restarted while the disk is full, it starts, serves reads, and takes the workers back
    server.proc.kill('SIGKILL');
    await server.proc.exited;
    server = await h.server({ dir, port });
    await eventually(async () => (await h.info(server)).workers.length === 2, 20_000, 'both workers back');
    assert.equal((await h.info(server)).queues.p, ['queued']);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(server.proc.running, 'the restarted server is still up');

    rmSync(ballast);
    const [held] = await eventually(async () => {
      const r = await h.history<RunJson>(server, 'held');
      return r.length > 0 && r;
    }, 30_000, 'the held result stored once space returned');
    assert.equal(held!.result, { kind: 'exited', code: 0 });
    const lines = readFileSync(join(held!.dir, 'console'), 'utf8').replace(/^\d+ /gm, '');
    assert.is(lines, 'start\nafter\n', 'no console line lost');
    const art = held!.refusals.find((r) => r.path === 'art.bin');
    assert.ok(!art || /cannot store: ENOSPC/.test(art.reason), JSON.stringify(held!.refusals));
    const [queued] = await eventually(async () => {
      const r = await h.history<RunJson>(server, 'queued');
      return r.length > 0 && r;
    }, 30_000, 'the queued job to run once space returned');
    assert.equal(queued!.result, { kind: 'exited', code: 0 });
    const ok = await h.client(server, ['schedule', 'new-job', 'p', h.script('n2', 'true\n'), '--period', 'never']);
    assert.is(ok.code, 0, ok.stderr);
    assert.ok(server.proc.running);
  } finally {
    // lazily: the programs still running keep their files until the harness stops them
    execFileSync('umount', ['-l', dir]);
  }
}));

t('an artifact that the disk cannot take is refused with its reason; the run is stored and the worker goes on', withTimeout(90_000, async () => {
  if (!need('root', process.getuid?.() === 0, 'the test mounts a small tmpfs as the state directory')) return;
  const dir = h.path('state');
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', dir]);
  try {
    const server = await h.server({ dir });
    h.worker(server, 'p');
    // 30 MB into a file system of 8: the write fails part way
    await h.client(server, ['schedule', 'huge', 'p', h.script('huge', 'echo making\nhead -c 30000000 /dev/zero > huge.bin\necho small > small.txt\n')]);
    const [run] = await eventually(async () => {
      const r = await h.history<RunJson>(server, 'huge');
      return r.length > 0 && r;
    }, 60_000, 'the run stored');
    assert.equal(run!.result, { kind: 'exited', code: 0 });
    const huge = run!.refusals.find((r) => r.path === 'huge.bin');
    assert.match(huge?.reason ?? '', /cannot store: ENOSPC/);
    const meta = JSON.parse(readFileSync(join(run!.dir, 'run.json'), 'utf8'));
    assert.equal(meta.artifacts.map((a: { path: string }) => a.path), ['small.txt']);
    // the worker takes the next job
    await h.client(server, ['schedule', 'after', 'p', h.script('after', 'echo fine\n')]);
    await eventually(async () => (await h.history(server, 'after')).length === 1, 30_000, 'the next job on the same worker');
  } finally {
    // lazily: the programs still running keep their files until the harness stops them
    execFileSync('umount', ['-l', dir]);
  }
}));

t.run();
