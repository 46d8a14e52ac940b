// builder-server check: stored results against the database, one line per problem, exit 1 if
// any; clean while a server runs on the same directory.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/server/store/index.js';
import { Harness, bin, withTimeout } from '../helpers/processes.js';
import { storeRun } from '../helpers/stored-runs.js';

const t = suite('check');
let h: Harness;
t.before.each(() => {
  h = new Harness();
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

async function check(dir: string, extra: string[] = []) {
  const p = h.spawn(bin('server'), ['check', '--dir', dir, ...extra], 'check');
  const { code } = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

t('a sound state directory checks clean, also while its server runs; every kind of damage is one line and exit 1', withTimeout(60_000, async () => {
  const dir = h.path('state');
  mkdirSync(dir);
  const store = openStore(join(dir, 'state.db'));
  const runs = [];
  for (let i = 0; i < 6; i++) {
    runs.push(await storeRun(store, dir, {
      job: 'j', finished: Date.now() - i * 1000,
      artifacts: [{ path: 'out/a.bin', data: Buffer.alloc(1000, i) }, { path: 'b.txt', data: Buffer.from(`b${i}\n`) }],
    }));
  }
  // a run still going: its incoming directory is not a leftover
  store.insertRun({ uuid: '11111111-1111-4111-8111-111111111111', job: 'j', platform: 'p', worker: 'w', script: 'true', attempt: 1, timeout_sec: 60, started: Date.now() });
  mkdirSync(join(dir, 'incoming', '11111111-1111-4111-8111-111111111111', 'artifacts'), { recursive: true });
  store.close();

  const server = await h.server({ dir });
  const clean = await check(dir);
  assert.is(clean.code, 0, clean.stdout + clean.stderr);
  assert.is(clean.stdout, '');
  assert.match(clean.stderr, /checked 6 runs, 12 artifacts \(\d+ bytes\): no problems/);
  server.proc.kill('SIGTERM');
  await server.proc.exited;

  const [r0, r1, r2, r3, r4, r5] = runs as [typeof runs[0], typeof runs[0], typeof runs[0], typeof runs[0], typeof runs[0], typeof runs[0]];
  writeFileSync(join(r0.dir, 'artifacts/out/a.bin'), Buffer.alloc(1000, 9)); // same size, other bytes
  appendFileSync(join(r1.dir, 'artifacts/b.txt'), 'more');                   // other size
  rmSync(join(r2.dir, 'artifacts/b.txt'));                                   // missing
  writeFileSync(join(r3.dir, 'artifacts/extra'), 'x');                       // not recorded
  rmSync(join(r4.dir, 'run.json'));                                          // half-written
  rmSync(r5.dir, { recursive: true });                                       // directory gone
  mkdirSync(join(dir, 'results', 'j', '22222222-2222-4222-8222-222222222222'));  // unknown
  const left = join(dir, 'incoming', '33333333-3333-4333-8333-333333333333');
  mkdirSync(left, { recursive: true });
  utimesSync(left, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));

  const bad = await check(dir);
  assert.is(bad.code, 1);
  const lines = bad.stdout.trim().split('\n');
  assert.is(lines.length, 8, bad.stdout);
  const expect = [
    `run ${r0.uuid} (j): artifact out/a.bin has sha256 `,
    `run ${r1.uuid} (j): artifact b.txt has 7 bytes, recorded 3`,
    `run ${r2.uuid} (j): artifact b.txt is missing`,
    `run ${r3.uuid} (j): artifacts/extra is not recorded`,
    `run ${r4.uuid} (j): run.json is missing (half-written result)`,
    `run ${r5.uuid} (j): result directory results/j/${r5.uuid} is missing`,
    'results/j/22222222-2222-4222-8222-222222222222: no run in the database has this directory',
    'incoming/33333333-3333-4333-8333-333333333333: half-written result of no running run',
  ];
  for (const e of expect) assert.ok(lines.some((l) => l.startsWith(e)), `expected a line starting with: ${e}\n${bad.stdout}`);
  assert.match(bad.stderr, /8 problems/);
}));

t('check refuses a usage error with 2 and a directory without a database with 1, in one line', withTimeout(20_000, async () => {
  const usage = await check(h.path('x'), ['--bogus']);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /unknown option --bogus/);
  const none = await check(h.path('nothing'));
  assert.is(none.code, 1);
  assert.is(none.stderr.trim().split('\n').length, 1);
  assert.match(none.stderr, /cannot open state database .* read-only/);
}));

t.run();
