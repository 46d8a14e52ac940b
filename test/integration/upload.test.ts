// Uploads to builder-web, end to end: real builder-server and builder-worker processes, a
// builder-web stand-in on port 0. Every result arrives exactly once and byte-exact, also when
// builder-web is down for a while, when the server is killed with -9 between attempts or after
// builder-web stored a build but before its answer came; wrong credentials are refused loudly,
// kept, and sent after the fix; builder-inspect reads stored results and `full` files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeExec, encodeExec, type ExecRecord } from '../../src/builder-web/format.js';
import { execToJson, type ExecJson } from '../../src/builder-web/json-form.js';
import { RETRIES_AFTER_500 } from '../../src/server/upload/uploader.js';
import { BuilderWebStandin } from '../helpers/builder-web-standin.js';
import { Harness, eventually, repoRoot, withTimeout, type ServerHandle } from '../helpers/processes.js';

const vectorDir = join(repoRoot, 'test', 'fixtures', 'builder-web-vectors');
const PLATFORM = 'linux';

let h: Harness;
let standin: BuilderWebStandin | undefined;

test.before.each(() => {
  h = new Harness('builder-upload-');
});
test.after.each(async () => {
  await standin?.stop();
  standin = undefined;
  await h.cleanup();
});

function startServer(s: BuilderWebStandin, opts: { port?: number; url?: string } = {}): Promise<ServerHandle> {
  return h.server({ args: ['--upload', opts.url ?? s.url(), '--upload-backoff', '0.2'], ...(opts.port ? { port: opts.port } : {}) });
}

/** Schedules NAME with this script and runs it once; resolves with the run's uuid and result directory. */
async function runJob(srv: ServerHandle, name: string, script: string | Buffer): Promise<{ uuid: string; dir: string }> {
  const file = h.path(`${name}.sh`);
  writeFileSync(file, script);
  const s = await h.client(srv, ['schedule', name, PLATFORM, file, '--period', 'never']);
  assert.is(s.code, 0, s.stderr);
  const e = await h.client(srv, ['execute', name]);
  assert.is(e.code, 0, e.stderr);
  const m = await srv.proc.waitFor(new RegExp(`run finished run=(\\S+) job=${name} `), 30_000);
  const uuid = m[1]!;
  return { uuid, dir: join(srv.dir, 'results', name, uuid) };
}

/** The stored result in builder-web's terms, read independently of the uploader's code. */
function expectSameAsStored(rec: ExecRecord, dir: string): void {
  const meta = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as {
    uuid: string; job: string; platform: string; started: string; finished: string; artifacts: Array<{ path: string }>;
  };
  assert.is(rec.uuid, meta.uuid);
  assert.is(rec.job.name.toString(), meta.job);
  assert.is(rec.job.platform.toString(), meta.platform);
  assert.ok(rec.job.script.equals(readFileSync(join(dir, 'script'))), 'script');
  assert.is(rec.started.getTime(), Date.parse(meta.started));
  assert.is(rec.finished.getTime(), Date.parse(meta.finished));
  const file = readFileSync(join(dir, 'console'));
  const lines: Array<[bigint, string]> = [];
  for (let at = 0; at < file.length;) {
    const nl = file.indexOf(0x0a, at);
    const sp = file.indexOf(0x20, at);
    lines.push([BigInt(file.toString('latin1', at, sp)) * 1_000_000n, file.subarray(sp + 1, nl).toString('hex')]);
    at = nl + 1;
  }
  assert.equal(rec.console.map(([d, l]) => [d, l.toString('hex')]), lines.reverse(), 'console newest first, in ns');
  assert.equal(rec.artifacts.map(([p]) => p.toString()), meta.artifacts.map((a) => a.path), 'artifact paths');
  rec.artifacts.forEach(([p, data]) => assert.ok(data.equals(readFileSync(join(dir, 'artifacts', p.toString()))), `artifact ${p} byte-exact`));
}

async function uploadsJson(srv: ServerHandle, failed = false): Promise<{ counts: Record<string, number>; uploads: Array<{ uuid: string; state: string; attempts: number; lastError: string | null }> }> {
  const r = await h.client(srv, ['uploads', '--json', ...(failed ? ['--failed'] : [])]);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Awaited<ReturnType<typeof uploadsJson>>;
}

/** Each accepted exactly once: one 201 per uuid, no other upload kept. */
function expectExactlyOnce(s: BuilderWebStandin, uuids: string[]): void {
  assert.equal([...s.received.keys()].sort(), [...uuids].sort());
  for (const u of uuids) assert.is(s.seen.filter((x) => x.key === u && x.status === 201).length, 1, `one 201 for ${u}`);
}

const BINARY = 'printf "$(i=0; while [ $i -lt 256 ]; do printf "\\\\%03o" $i; i=$((i+1)); done)" > all-bytes.bin\n';
const JOBS: Record<string, string> = {
  // every byte value, twice through the shell's printf; and a file with a NUL in the middle
  binary: `${BINARY}printf 'a\\000b\\377' > nul.bin\necho binary done\n`,
  unicode: `echo 'héllo wörld ✓'\nprintf '日本語 🐫\\n\\n'\nprintf 'no newline at end ∑'\n`,
  quiet: 'true > empty-file\n',
  deep: 'mkdir -p a/b/c/d/e/f/g/h/i/j && echo deep > a/b/c/d/e/f/g/h/i/j/file.txt && echo top > top.txt\necho made\n',
};

test('results arrive exactly once and byte-exact; inspect and export agree with what builder-web got', withTimeout(90_000, async () => {
  standin = await BuilderWebStandin.start();
  const srv = await startServer(standin);
  h.worker(srv, PLATFORM);
  const runs: Record<string, { uuid: string; dir: string }> = {};
  for (const [name, script] of Object.entries(JOBS)) runs[name] = await runJob(srv, name, script);
  await standin.waitForUploads(4);
  expectExactlyOnce(standin, Object.values(runs).map((r) => r.uuid));
  for (const [name, run] of Object.entries(runs)) {
    const got = standin.received.get(run.uuid)!;
    expectSameAsStored(got.record!, run.dir);
    assert.is(got.record!.job.name.toString(), name);
  }
  // the details the format is easy to get wrong
  const bin = standin.received.get(runs.binary!.uuid)!.record!;
  const allBytes = bin.artifacts.find(([p]) => p.toString() === 'all-bytes.bin')![1];
  assert.ok(allBytes.equals(Buffer.from(Array.from({ length: 256 }, (_, i) => i))), 'all 256 byte values');
  const uni = standin.received.get(runs.unicode!.uuid)!.record!;
  assert.equal(uni.console.map(([, l]) => l.toString()), ['no newline at end ∑', '', '日本語 🐫', 'héllo wörld ✓']);
  assert.ok(uni.console.every(([d], i, all) => i === 0 || d <= all[i - 1]![0]), 'deltas decrease: newest first');
  assert.equal(standin.received.get(runs.quiet!.uuid)!.record!.console, [], 'empty console');
  assert.ok(standin.received.get(runs.quiet!.uuid)!.record!.artifacts.some(([p, d]) => p.toString() === 'empty-file' && d.length === 0));
  assert.ok(standin.received.get(runs.deep!.uuid)!.record!.artifacts.some(([p]) => p.toString() === 'a/b/c/d/e/f/g/h/i/j/file.txt'));

  const list = await uploadsJson(srv);
  assert.is(list.counts.uploaded, 4);
  assert.ok(list.uploads.every((u) => u.state === 'uploaded' && u.attempts === 1));
  const table = await h.client(srv, ['uploads']);
  assert.match(table.stdout, /4 uploaded, 0 pending, 0 refused, 0 failed/);

  // builder-inspect on the stored result
  const unicodeDir = runs.unicode!.dir;
  const job = await h.inspect([unicodeDir, '--job']);
  assert.is(job.code, 0, job.stderr);
  assert.match(job.stdout, new RegExp(`uuid:\\s+${runs.unicode!.uuid}`));
  assert.match(job.stdout, /result:\s+exited 0/);
  const con = await h.inspect([unicodeDir, '--console']);
  assert.equal(con.stdout.split('\n').slice(0, -1).map((l) => l.replace(/^\s*\+\d+\.\d{3}s /, '')), ['héllo wörld ✓', '日本語 🐫', '', 'no newline at end ∑']);
  const script = await h.inspect(['--dir', srv.dir, runs.unicode!.uuid, '--script']);
  assert.is(script.stdout, JOBS.unicode);
  const json = await h.inspect(['--dir', srv.dir, runs.deep!.uuid, '--json']);
  assert.is((JSON.parse(json.stdout) as { uuid: string }).uuid, runs.deep!.uuid);
  const out = h.path('out-deep');
  const o = await h.inspect([runs.deep!.dir, '--output', out]);
  assert.is(o.code, 0, o.stderr);
  assert.is(readFileSync(join(out, 'a/b/c/d/e/f/g/h/i/j/file.txt'), 'utf8'), 'deep\n');
  const o2 = await h.inspect([runs.binary!.dir, '--output', h.path('out-bin')]);
  assert.is(o2.code, 0, o2.stderr);
  assert.ok(readFileSync(h.path('out-bin', 'all-bytes.bin')).equals(allBytes));

  // --export writes exactly the bytes builder-web received
  for (const [name, run] of Object.entries(runs)) {
    const file = h.path(`${name}.full`);
    const x = await h.inspect([run.dir, '--export', file]);
    assert.is(x.code, 0, x.stderr);
    assert.ok(readFileSync(file).equals(standin.received.get(run.uuid)!.body!), `export of ${name} equals the upload`);
  }
  const missing = await h.inspect(['--dir', srv.dir, '00000000-0000-4000-8000-000000000000']);
  assert.is(missing.code, 1);
  assert.is(missing.stderr.trim().split('\n').length, 1, 'one-line error');
}));

test('builder-web down: every result arrives exactly once after it is back, across kill -9 of the server', withTimeout(120_000, async () => {
  standin = await BuilderWebStandin.start();
  let srv = await startServer(standin);
  const port = srv.port;
  h.worker(srv, PLATFORM);
  await standin.stop();
  const uuids: string[] = [];
  for (const name of ['down-1', 'down-2', 'down-3']) uuids.push((await runJob(srv, name, `echo ${name}; echo x > out.txt\n`)).uuid);
  // each has failed at least twice (connection refused), and is still pending
  await eventually(async () => {
    const l = await uploadsJson(srv);
    return l.uploads.length === 3 && l.uploads.every((u) => u.state === 'pending' && u.attempts >= 2 && /ECONNREFUSED/.test(u.lastError ?? ''));
  }, 20_000, 'three pending uploads with failed attempts');
  const failedList = await h.client(srv, ['uploads', '--failed']);
  assert.match(failedList.stdout, /ECONNREFUSED/);

  // kill -9 between attempts; builder-web comes back while the server is down
  srv.proc.kill('SIGKILL');
  await srv.proc.exited;
  await standin.listen();
  srv = await startServer(standin, { port });
  await standin.waitForUploads(3);
  expectExactlyOnce(standin, uuids);
  await eventually(async () => (await uploadsJson(srv)).counts.uploaded === 3, 10_000, 'all uploaded');

  // stored by builder-web, the answer lost to a kill -9: the next attempt gets 409, counted as uploaded
  standin.delayMs = 5000;
  const late = await runJob(srv, 'late-answer', 'echo once\n');
  await standin.waitForUploads(4);
  srv.proc.kill('SIGKILL');
  await srv.proc.exited;
  standin.delayMs = 0;
  srv = await startServer(standin, { port });
  await standin.nextStatus(409);
  await eventually(async () => (await uploadsJson(srv)).uploads.find((u) => u.uuid === late.uuid)?.state === 'uploaded', 10_000, 'late one uploaded');
  expectExactlyOnce(standin, [...uuids, late.uuid]);
  for (const u of [...uuids, late.uuid]) assert.ok(standin.received.get(u)!.record, u);
}));

test('wrong password: refused loudly, kept, shown by uploads --failed; upload-retry --all after the fix', withTimeout(60_000, async () => {
  const password = 'wr0ng:p@ss/wörd';
  standin = await BuilderWebStandin.start({ user: 'builder', password: 'right' });
  const srv = await startServer(standin, { url: standin.url('builder', password) });
  h.worker(srv, PLATFORM);
  const run = await runJob(srv, 'refused-job', 'echo hi; echo data > a.txt\n');
  await srv.proc.waitFor(/UPLOAD REFUSED: builder-web refused the upload \(401\)/);
  const failed = await h.client(srv, ['uploads', '--failed']);
  assert.match(failed.stdout, /REFUSED/);
  assert.match(failed.stdout, new RegExp(run.uuid));
  assert.match(failed.stdout, /401/);
  // not retried on its own
  await new Promise((r) => setTimeout(r, 1000));
  assert.is(standin.seen.filter((s) => s.status === 401).length, 1, 'tried once, not in a loop');
  // nothing deleted, and the password never shown
  assert.ok(existsSync(join(run.dir, 'run.json')));
  assert.ok(existsSync(join(run.dir, 'artifacts', 'a.txt')));
  for (const text of [srv.proc.stderr, failed.stdout, (await h.client(srv, ['uploads', '--json'])).stdout]) {
    assert.not.match(text, 'p@ss');
    assert.not.match(text, encodeURIComponent(password));
    assert.not.match(text, Buffer.from(`builder:${password}`).toString('base64'));
  }
  // the fix (builder-web's side here), then a retry
  standin.password = password;
  const retry = await h.client(srv, ['upload-retry', '--all']);
  assert.is(retry.code, 0, retry.stderr);
  assert.match(retry.stdout, /queued 1 upload again/);
  await standin.waitForUploads(1);
  expectSameAsStored(standin.received.get(run.uuid)!.record!, run.dir);
  await eventually(async () => (await uploadsJson(srv)).uploads[0]?.state === 'uploaded', 10_000, 'uploaded');
  assert.equal((await uploadsJson(srv, true)).uploads, []);
}));

test('a 500 that stays (body not decodable): tried 3 more times, then failed, not retried in a loop; upload-retry UUID sends it again', withTimeout(60_000, async () => {
  standin = await BuilderWebStandin.start();
  standin.alwaysStatus = 500;
  const srv = await startServer(standin);
  h.worker(srv, PLATFORM);
  const run = await runJob(srv, 'five-hundred', 'echo x\n');
  await standin.nextStatus(500);
  await eventually(async () => (await uploadsJson(srv)).uploads[0]?.state === 'failed', 15_000, 'failed');
  await new Promise((r) => setTimeout(r, 1000));
  assert.is(standin.seen.length, 1 + RETRIES_AFTER_500, 'a few retries, no retry loop');
  assert.ok(standin.seen.every((s) => s.status === 500));
  standin.alwaysStatus = undefined;
  const usage = await h.client(srv, ['upload-retry']);
  assert.is(usage.code, 2);
  const r = await h.client(srv, ['upload-retry', run.uuid]);
  assert.is(r.code, 0, r.stderr);
  await standin.waitForUploads(1);
  expectExactlyOnce(standin, [run.uuid]);
  const again = await h.client(srv, ['upload-retry', run.uuid]);
  assert.is(again.code, 1);
  assert.match(again.stderr, /uploaded already/);
}));

test('a transient 500 (builder-web\'s database) is tried again with back-off, and the build arrives', withTimeout(60_000, async () => {
  standin = await BuilderWebStandin.start();
  standin.failNext(2, 500);
  const srv = await startServer(standin);
  h.worker(srv, PLATFORM);
  const run = await runJob(srv, 'flaky-db', 'echo x\n');
  await standin.waitForUploads(1);
  assert.equal(standin.seen.map((s) => s.status), [500, 500, 201]);
  expectExactlyOnce(standin, [run.uuid]);
  await eventually(async () => (await uploadsJson(srv)).uploads[0]?.state === 'uploaded', 10_000, 'uploaded');
  const row = (await uploadsJson(srv)).uploads[0]!;
  assert.is(row.attempts, 3);
}));

test('without --upload, uploads requests say so', withTimeout(30_000, async () => {
  const srv = await h.server();
  const r = await h.client(srv, ['uploads']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /not configured/);
}));

test('builder-inspect reads builder-web full files', withTimeout(60_000, async () => {
  const names = readdirSync(vectorDir).filter((f) => f.endsWith('.full'));
  assert.ok(names.length >= 8);
  for (const f of names) {
    const path = join(vectorDir, f);
    const want = JSON.parse(readFileSync(path.replace(/\.full$/, '.json'), 'utf8')) as ExecJson;
    const job = await h.inspect([path, '--json']);
    assert.is(job.code, 0, `${f}: ${job.stderr}`);
    const got = JSON.parse(job.stdout) as { uuid: string; console: number; artifacts: unknown[] };
    assert.is(got.uuid, want.uuid, f);
    assert.is(got.console, want.console.length, f);
    assert.is(got.artifacts.length, want.artifacts.length, f);
    const x = await h.inspect([path, '--export', h.path(f)]);
    assert.is(x.code, 0, x.stderr);
    assert.ok(readFileSync(h.path(f)).equals(readFileSync(path)), `${f}: export is the same record`);
  }
  // the console comes out oldest first with its time since the start
  const uni = join(vectorDir, 'unicode.full');
  const rec = decodeExec(readFileSync(uni));
  const con = await h.inspect([uni, '--console']);
  const expected = [...rec.console].reverse().map(([ns, l]) => `+${(Number(ns / 1_000_000n) / 1000).toFixed(3)}s ${l.toString()}`);
  assert.equal(con.stdout.split('\n').slice(0, -1).map((l) => l.trimStart()), expected);
  const script = await h.inspect([uni, '--script']);
  assert.is(script.stdout, rec.job.script.toString());
  const text = await h.inspect([uni]);
  assert.match(text.stdout, /job:\s+unicode-job/);
  // artifacts byte-exact
  const out = h.path('out-vec');
  assert.is((await h.inspect([join(vectorDir, 'exited0-artifacts.full'), '--output', out])).code, 0);
  const ex = execToJson(decodeExec(readFileSync(join(vectorDir, 'exited0-artifacts.full'))));
  for (const [p, b64] of ex.artifacts) assert.ok(readFileSync(join(out, p as string)).equals(Buffer.from(b64, 'base64')), String(p));
  // a bad file: one line, exit 1; usage: exit 2
  const bad = await h.inspect([join(vectorDir, 'README.md')]);
  assert.is(bad.code, 1);
  assert.is(bad.stderr.trim().split('\n').length, 1);
  assert.is((await h.inspect([])).code, 2);
  assert.is((await h.inspect([uni, '--bogus'])).code, 2);
}));

test('builder-inspect --output never writes outside DIR', withTimeout(30_000, async () => {
  const outside = h.path('outside');
  mkdirSync(outside);
  const out = h.path('out');
  mkdirSync(out);
  symlinkSync(outside, join(out, 'link'));
  symlinkSync(join(outside, 'target'), join(out, 'file-link'));
  const hostile = encodeExec({
    job: { name: 'hostile', script: '', platform: 'x' },
    uuid: '11111111-2222-4333-8444-555555555555',
    console: [],
    started: new Date(0),
    finished: new Date(1000),
    result: { kind: 'exited', value: 0 },
    artifacts: [
      ['../escape', Buffer.from('no')],
      ['a/../../escape2', Buffer.from('no')],
      [join(outside, 'absolute'), Buffer.from('no')],
      ['link/through-symlink', Buffer.from('no')],
      ['file-link', Buffer.from('no')],
      ['ok/inside.txt', Buffer.from('yes')],
    ],
  });
  const file = h.path('hostile.full');
  writeFileSync(file, hostile);
  const r = await h.inspect([file, '--output', out]);
  assert.is(r.code, 1, 'refusals are reported with status 1');
  for (const p of ['../escape', 'a/../../escape2', 'link/through-symlink', 'file-link']) assert.match(r.stderr, `refused artifact ${JSON.stringify(p)}`);
  assert.match(r.stderr, /absolute path/);
  assert.equal(readdirSync(outside), [], 'nothing written outside');
  assert.not.ok(existsSync(h.path('escape')));
  assert.not.ok(existsSync(h.path('escape2')));
  assert.ok(lstatSync(join(out, 'file-link')).isSymbolicLink());
  assert.is(readFileSync(join(out, 'ok', 'inside.txt'), 'utf8'), 'yes');
}));

test.run();
