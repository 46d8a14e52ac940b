// The web view in-process (a coordinator rig, its store in memory, the view on port 0): pages on
// a big history answer fast and paged, a huge console is paged and streamed without being held,
// artifact paths cannot leave the run, nothing changes state, everything is escaped, the live
// console catches up and follows a run to its end, /healthz tells why it is unhealthy.
import { statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Logger } from '../../src/common/log.js';
import { openStore } from '../../src/server/store/index.js';
import { migrations } from '../../src/server/store/migrations.js';
import { escapeLabel } from '../../src/web/metrics.js';
import { startWebView, type WebView, type WebViewOptions } from '../../src/web/http-server.js';
import { Rig } from '../helpers/coordinator-rig.js';
import { fillHistory, HISTORY_T0, storedRun } from '../helpers/web-fixtures.js';
import { readSse, type SseEvent } from '../helpers/sse-client.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

let rig: Rig;
let view: WebView;
let base: string;

async function open(over: Partial<WebViewOptions> = {}): Promise<void> {
  view = await startWebView({
    host: '127.0.0.1', port: 0, auth: undefined, store: rig.store, coordinator: rig.coordinator, events: rig.events,
    configDir: rig.config.configDir, stateDir: rig.dir, listening: () => true, log: quiet, ...over,
  });
  base = `http://127.0.0.1:${view.address.port}`;
}

test.before.each(() => {
  rig = new Rig();
});
test.after.each(async () => {
  await view?.close();
  rig.close();
});

/** GET (or another method) with the raw path as given: fetch would normalize "..". */
function get(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the front page with 10,000 jobs and a job page with 10,000 runs are paged (their speed is measured by the bench)', async () => {
  const { busyJob } = fillHistory(rig.store, { jobs: 10_000, runs: 10_000 });
  await open();
  const front = JSON.parse((await get('/api/')).body.toString());
  assert.is(front.jobs.total, 10_000);
  assert.is(front.jobs.items.length, 100);
  assert.is(front.jobs.items[0].name, busyJob);
  // the newest of its runs (the 10,000th) exited 1
  assert.is(front.jobs.items[0].last.result.text, 'exited 1');
  const lastPage = JSON.parse((await get('/api/?page=last')).body.toString());
  assert.is(lastPage.jobs.items.at(-1).name, 'job-09999');
  const job = JSON.parse((await get(`/api/job/${busyJob}?page=2`)).body.toString());
  assert.is(job.runs.total, 10_000);
  assert.is(job.runs.items.length, 50);
  // newest first: page 2 starts with the 51st newest
  assert.is(job.runs.items[0].started, new Date(Date.parse('2026-01-01T00:00:00Z') + (10_000 - 51) * 1000).toISOString());
  assert.is(job.runs.items[0].artifacts, 1);
  // how fast these pages answer is the bench's to measure (`bench web`, `bench scale:history`),
  // not a test's: a loaded CI machine would turn a timed assertion red at random
  for (const path of ['/', `/job/${busyJob}`, `/job/${busyJob}?page=200`]) assert.is((await get(path)).status, 200, path);
});

/** the href of the pager link named `rel` in a page's HTML, as a browser reads the attribute */
function link(html: string, rel: string): string | undefined {
  const m = new RegExp(`<a href="([^"]*)" rel="${rel}">`).exec(html);
  return m?.[1]!.replace(/&#x3D;/g, '=').replace(/&amp;/g, '&');
}

test('a job\'s runs page by cursor: "older" links walk every run once down to the oldest, "newer" links walk back, ties on the finish time included', async () => {
  const { busyJob, uuids } = fillHistory(rig.store, { jobs: 1, runs: 120 });
  // three more runs finishing in the same millisecond as run 70, across the first page's end:
  // the rowid orders them (the newest page ends with the last of them)
  const tied = HISTORY_T0 + 70 * 1000 + 500;
  for (let i = 0; i < 3; i++) {
    const uuid = `00000000-0000-4000-8000-00000000000${i}`;
    uuids.splice(71 + i, 0, uuid);
    rig.store.addFinishedRun(
      { uuid, job: busyJob, platform: 'p', worker: 'w1', script: 'echo hi', attempt: 1, timeout_sec: 3600, started: tied - 100 },
      { uuid, finished: tied, result: { kind: 'exited', code: 0 }, stats: {}, refusals: [], dir: null, artifacts: [] },
    );
  }
  await open();
  const newestFirst = [...uuids].reverse();
  const seen: string[] = [];
  const pages: string[] = [];
  let path: string | undefined = `/job/${busyJob}`;
  for (let n = 0; path !== undefined && n < 10; n++) {
    const html = (await get(path)).body.toString();
    pages.push(html);
    seen.push(...[...html.matchAll(/<a href="\/run\/([0-9a-f-]{36})">/g)].map((m) => m[1]!));
    path = link(html, 'next');
  }
  assert.equal(seen, newestFirst, 'every run once, newest first, across the pages');
  assert.is(pages.length, 3);
  assert.is(link(pages[0]!, 'prev'), undefined, 'nothing newer than the newest page');
  assert.is(link(pages[2]!, 'next'), undefined, 'nothing older than the oldest page');
  // the JSON twin names the same cursors, and newer from the oldest page leads back
  const oldest = JSON.parse((await get(`/api/job/${busyJob}?page=last`)).body.toString());
  assert.equal(oldest.runs.items.map((r: { uuid: string }) => r.uuid), newestFirst.slice(-50));
  assert.is(oldest.runs.older, null);
  assert.is(oldest.runs.total, 123);
  const middle = JSON.parse((await get(`/api/job/${busyJob}?after=${oldest.runs.newer}`)).body.toString());
  assert.equal(middle.runs.items.map((r: { uuid: string }) => r.uuid), newestFirst.slice(-100, -50));
  const again = JSON.parse((await get(`/api/job/${busyJob}?before=${middle.runs.older}`)).body.toString());
  assert.equal(again.runs.items, oldest.runs.items, 'older than the middle page is the oldest page');
  // the newest page again: fewer than a page of runs is newer than the middle page's first
  const back = JSON.parse((await get(`/api/job/${busyJob}?after=${middle.runs.newer}`)).body.toString());
  assert.equal(back.runs.items.map((r: { uuid: string }) => r.uuid), newestFirst.slice(0, 50));
  assert.is(back.runs.newer, null);
  // the pager of the HTML page without JavaScript: its older link is the JSON's cursor
  assert.is(link(pages[0]!, 'next'), `/job/${busyJob}?before=${encodeURIComponent(back.runs.older)}`);
  // a cursor older than every run (its runs deleted since) shows the oldest page, not nothing
  const past = JSON.parse((await get(`/api/job/${busyJob}?before=1,1`)).body.toString());
  assert.equal(past.runs.items, oldest.runs.items);
  const bad = await get(`/api/job/${busyJob}?before=12,x`);
  assert.is(bad.status, 400);
  assert.match(bad.body.toString(), /before must be a cursor/);
});

test('/metrics counts the history written before the view started and each run, comparison and artifact after', async () => {
  fillHistory(rig.store, { jobs: 1, runs: 100 });
  await open();
  const sample = async (name: string): Promise<number> => {
    const text = (await get('/metrics')).body.toString();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in\n${text}`);
    return Number(line!.slice(name.length + 1));
  };
  // runs 0..99: every 7th from the 4th exited 1; compared from the 2nd on unless failed, every 5th differs
  assert.is(await sample('builder_runs_finished_total{platform="p",kind="exited",success="true"}'), 86);
  assert.is(await sample('builder_runs_finished_total{platform="p",kind="exited",success="false"}'), 14);
  assert.is(await sample('builder_run_duration_seconds_bucket{platform="p",le="1"}'), 100);
  assert.is(await sample('builder_run_duration_seconds_sum{platform="p"}'), 50);
  assert.is(await sample('builder_repro_comparisons_total{platform="p",verdict="differs"}'), 16);
  assert.is(await sample('builder_repro_comparisons_total{platform="p",verdict="reproduced"}'), 69);
  assert.is(await sample('builder_artifact_bytes_received_total'), 100 * 1000 + 4950);

  // a run of 20 s whose artifact list names one path twice: the second replaces the first
  const uuid = '00000000-0000-4000-8000-000000000fff';
  rig.store.addFinishedRun(
    { uuid, job: 'job-00000', platform: 'p', worker: 'w1', script: 'echo hi', attempt: 1, timeout_sec: 3600, started: HISTORY_T0 },
    {
      uuid, finished: HISTORY_T0 + 20_000, result: { kind: 'timeout', reason: 'wall clock' }, stats: {}, refusals: [], dir: null,
      artifacts: [{ path: 'a', size: 10, mode: 0o644, sha256: '00'.repeat(32) }, { path: 'a', size: 30, mode: 0o644, sha256: '11'.repeat(32) }],
    },
  );
  assert.is(await sample('builder_runs_finished_total{platform="p",kind="timeout",success="false"}'), 1);
  assert.is(await sample('builder_run_duration_seconds_bucket{platform="p",le="15"}'), 100);
  assert.is(await sample('builder_run_duration_seconds_bucket{platform="p",le="30"}'), 101);
  assert.is(await sample('builder_run_duration_seconds_count{platform="p"}'), 101);
  assert.is(await sample('builder_run_duration_seconds_sum{platform="p"}'), 70);
  assert.is(await sample('builder_artifact_bytes_received_total'), 100 * 1000 + 4950 + 30);
});

test('a database from before the totals gets them counted from its history when it is opened', () => {
  const file = join(rig.dir, 'v9.db');
  const db = new Database(file);
  for (const m of migrations.slice(0, 9)) db.exec(m);
  db.pragma('user_version = 9');
  const run = db.prepare(`INSERT INTO runs (uuid, job, platform, worker, script, attempt, timeout_sec, state, started, finished, result)
    VALUES (?, 'j', 'p', 'w', 'true', 1, 3600, ?, 0, ?, ?)`);
  run.run('u1', 'finished', 2_000, '{"kind":"exited","code":0}');
  run.run('u2', 'finished', 4_000_000, '{"kind":"exited","code":1}');
  run.run('u3', 'running', null, null);
  db.prepare("INSERT INTO artifacts (uuid, path, size, mode, sha256) VALUES ('u1', 'a', 7, 420, 'x'), ('u1', 'b', 5, 420, 'y')").run();
  db.prepare(`INSERT INTO comparisons (uuid, job, platform, against_uuid, verdict, changed, added, removed, report, created)
    VALUES ('u1', 'j', 'p', 'u0', 'reproduced', '[]', '[]', '[]', NULL, 0)`).run();
  db.close();
  const store = openStore(file);
  try {
    assert.equal(store.views.finishedTotals().sort((a, b) => a.success - b.success), [
      { platform: 'p', kind: 'exited', success: 0, n: 1 }, { platform: 'p', kind: 'exited', success: 1, n: 1 },
    ]);
    assert.equal(store.views.durationTotals().sort((a, b) => a.ms - b.ms), [
      { platform: 'p', le: '5', n: 1, ms: 2_000 }, { platform: 'p', le: '7200', n: 1, ms: 4_000_000 },
    ]);
    assert.equal(store.views.verdictTotals(), [{ platform: 'p', verdict: 'reproduced', n: 1 }]);
    assert.is(store.views.artifactBytesTotal(), 12);
  } finally {
    store.close();
  }
});

test('a console of 300,000 lines is shown a page at a time and streamed whole without being held', async () => {
  const { uuid, dir } = await storedRun(rig.store, rig.dir, 'big', { lines: 300_000, width: 200 });
  await open();
  const page = JSON.parse((await get(`/api/run/${uuid}?page=150`)).body.toString());
  assert.is(page.console.total, 300_000);
  assert.is(page.console.pages, 300);
  assert.is(page.console.lines.length, 1000);
  assert.is(page.console.lines[0].n, 149_001);
  assert.ok(page.console.lines[0].text.startsWith('line 149001 '));
  const html = (await get(`/run/${uuid}`)).body.toString();
  assert.match(html, /line 300000 /);
  assert.not.match(html, /line 299000 /);

  // the raw console (~60 MB) and the live stream of a finished run, counted as they arrive; a
  // reader that held the file whole (and its lines parsed) would grow by more than its size
  const fileMb = statSync(join(dir, 'console')).size / 2 ** 20;
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const raw = await countIn(`${base}/run/${uuid}/console.txt`, ['\n']);
  assert.is(raw[0], 300_000);
  const [lines, ends] = await countIn(`${base}/run/${uuid}/events?after=-1`, ['event: line\n', 'event: end\n']);
  clearInterval(sampler);
  assert.is(lines, 300_000);
  assert.is(ends, 1);
  const grewMb = (peak - before) / 2 ** 20;
  console.log(`  rss grew ${grewMb.toFixed(1)} MiB while streaming a ${fileMb.toFixed(0)} MiB console twice`);
  assert.ok(grewMb < fileMb, `rss grew ${grewMb.toFixed(1)} MiB`);
});

/** GETs a URL and counts each needle in the body as it arrives, keeping nothing. */
function countIn(url: string, needles: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const counts = needles.map(() => 0);
    const keep = Math.max(...needles.map((n) => n.length)) - 1;
    let carry = Buffer.alloc(0);
    request(url, (res) => {
      res.on('data', (c: Buffer) => {
        const buf = carry.length ? Buffer.concat([carry, c]) : c;
        needles.forEach((needle, k) => {
          // matches wholly inside the carried tail were counted with the previous chunk
          for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + 1)) if (i + needle.length > carry.length) counts[k]!++;
        });
        carry = Buffer.from(buf.subarray(Math.max(0, buf.length - keep)));
      });
      res.on('end', () => resolve(counts));
    }).on('error', reject).end();
  });
}

test('artifacts download with their length and name; no path leaves the run\'s artifacts', async () => {
  const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
  const { uuid, dir } = await storedRun(rig.store, rig.dir, 'art', { lines: 1, artifacts: { 'out/blob.bin': body, 'link.txt': Buffer.from('inside') } });
  writeFileSync(join(rig.dir, 'secret.txt'), 'outside');
  // a listed artifact replaced by a link pointing out of the run
  unlinkSync(join(dir, 'artifacts', 'link.txt'));
  symlinkSync(join(rig.dir, 'secret.txt'), join(dir, 'artifacts', 'link.txt'));
  await open();
  const r = await get(`/run/${uuid}/artifact/out/blob.bin`);
  assert.is(r.status, 200);
  assert.ok(r.body.equals(body));
  assert.is(r.headers['content-length'], String(body.length));
  assert.match(String(r.headers['content-disposition']), /^attachment; filename="blob.bin"/);
  for (const path of ['../run.json', '..%2Frun.json', '%2e%2e/run.json', 'out/../../run.json', '/etc/passwd', '%2Fetc%2Fpasswd',
    '..%2F..%2F..%2Fsecret.txt', 'link.txt', 'out', 'missing.bin']) {
    const res = await get(`/run/${uuid}/artifact/${path}`);
    assert.is(res.status, 404, path);
    assert.not.ok(res.body.includes('outside'), path);
  }
});

test('nothing in the web view changes state: every other method is refused', async () => {
  fillHistory(rig.store, { jobs: 3, runs: 0 });
  await open();
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const r = await get('/job/job-00000', method);
    assert.is(r.status, 405, method);
    assert.is(r.headers.allow, 'GET, HEAD');
  }
  assert.is(rig.store.jobCount(), 3);
});

test('console lines and artifact paths with markup are shown as text', async () => {
  const { uuid } = await storedRun(rig.store, rig.dir, 'xss', {
    lines: 1, extraLines: ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>'],
    artifacts: { '<b>bold</b>.txt': Buffer.from('b') },
  });
  await open();
  const r = await get(`/run/${uuid}`);
  const html = r.body.toString();
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.not.match(html, /<script>alert/);
  assert.not.match(html, /<img src=x/);
  assert.match(html, /&lt;b&gt;bold&lt;\/b&gt;.txt/);
  assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
  const raw = await get(`/run/${uuid}/console.txt`);
  assert.is(raw.headers['content-type'], 'text/plain; charset=utf-8');
  assert.is(raw.headers['x-content-type-options'], 'nosniff');
});

test('the live console catches up, follows the run, ends with its result; a late reader gets the rest from the file', async () => {
  rig.schedule('live');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  await open();
  const line = (seq: number, ...texts: string[]) =>
    rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq, lines: texts.map((t, i) => [seq + i, Buffer.from(t)] as [number, Buffer]) });
  line(0, 'one', 'two');
  const seen: SseEvent[] = [];
  let wake = (): void => {};
  const reader = readSse(`${base}/run/${uuid}/events?after=-1`, (ev) => {
    seen.push(ev);
    wake();
  });
  const waitFor = (n: number) => new Promise<void>((resolve) => {
    const check = (): void => {
      if (seen.length >= n) resolve();
    };
    wake = check;
    check();
  });
  await waitFor(2);
  assert.equal(seen.map((e) => JSON.parse(e.data).text), ['one', 'two']);
  assert.equal(seen.map((e) => e.id), ['0', '1']);
  line(2, 'three');
  await waitFor(3);
  assert.is(JSON.parse(seen[2]!.data).text, 'three');
  // a reader that saw line 0 comes back (Last-Event-ID) after the run has ended
  const late: SseEvent[] = [];
  line(3, 'four');
  await rig.finish(w, uuid!, { kind: 'exited', code: 2 }, 3);
  assert.is(await reader.done, 200);
  assert.equal(seen.map((e) => e.event), ['line', 'line', 'line', 'line', 'end']);
  assert.is(JSON.parse(seen[4]!.data).result.text, 'exited 2');
  await readSse(`${base}/run/${uuid}/events`, (ev) => late.push(ev), { 'Last-Event-ID': '0' }).done;
  assert.equal(late.map((e) => e.event === 'line' ? JSON.parse(e.data).text : e.event), ['two', 'three', 'four', 'end']);
  assert.is(view.live.readers, 0);
});

test('/healthz says why it is unhealthy; /metrics escapes label values', async () => {
  let up = true;
  await open({ listening: () => up });
  const ok = await get('/healthz');
  assert.is(ok.status, 200);
  up = false;
  const bad = await get('/healthz');
  assert.is(bad.status, 503);
  assert.match(bad.body.toString(), /protocol listener is not up/);
  assert.is(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

test.run();
