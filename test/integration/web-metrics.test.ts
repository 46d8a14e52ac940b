// GET /metrics of a real server with real runs passes Prometheus's own `promtool check metrics`
// and counts what happened; /healthz answers 200 while the server is healthy.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { need } from '../helpers/env.js';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';

const havePromtool = (): boolean => spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

/** The value of one sample, by its exact name and labels as exposed. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('/metrics passes promtool check metrics and counts jobs, queues, runs, durations, workers, outbox, artifact bytes and verdicts', withTimeout(90_000, async () => {
  if (!need('promtool', havePromtool(), 'apt-get install prometheus (Debian package), as .ci/run does')) return;
  const h = new Harness();
  try {
    mkdirSync(h.path('etc'));
    const server = await h.server({ args: ['--http', '127.0.0.1:0'] });
    const web = `http://127.0.0.1:${(await server.proc.waitFor(/web view listening address=127\.0\.0\.1:(\d+)/))[1]}`;
    h.worker(server, 'debian-12', ['--name', 'w1']);
    const ok = h.script('ok', 'mkdir -p out\nprintf 0123456789 > out/ten.bin\n');
    const bad = h.script('bad', 'exit 4\n');
    assert.is((await h.client(server, ['schedule', 'ok', 'debian-12', ok, '--period', 'never'])).code, 0);
    assert.is((await h.client(server, ['schedule', 'bad', 'debian-12', bad])).code, 0);
    assert.is((await h.client(server, ['schedule', 'queued', 'freebsd-14', bad])).code, 0);
    for (let i = 0; i < 2; i++) {
      assert.is((await h.client(server, ['execute', 'ok'])).code, 0);
      await eventually(async () => (await h.history(server, 'ok')).length === i + 1, 30_000, `run ${i + 1} of ok`);
    }
    await eventually(async () => (await h.history(server, 'bad')).length === 1, 30_000, 'the run of bad');

    const res = await fetch(`${web}/metrics`);
    assert.is(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.is(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}\n---\n${text}`);

    assert.is(sample(text, 'builder_jobs_scheduled'), 3);
    assert.is(sample(text, 'builder_queue_length{platform="freebsd-14"}'), 1);
    assert.is(sample(text, 'builder_runs_running{platform="debian-12"}'), 0);
    assert.is(sample(text, 'builder_runs_finished_total{platform="debian-12",kind="exited",success="true"}'), 2);
    assert.is(sample(text, 'builder_runs_finished_total{platform="debian-12",kind="exited",success="false"}'), 1);
    assert.is(sample(text, 'builder_run_duration_seconds_count{platform="debian-12"}'), 3);
    assert.is(sample(text, 'builder_run_duration_seconds_bucket{platform="debian-12",le="+Inf"}'), 3);
    assert.is(sample(text, 'builder_workers_connected{platform="debian-12",state="idle"}'), 1);
    assert.is(sample(text, 'builder_upload_outbox{state="pending"}'), 0);
    assert.is(sample(text, 'builder_artifact_bytes_received_total'), 20);
    assert.is(sample(text, 'builder_repro_comparisons_total{platform="debian-12",verdict="reproduced"}'), 1);

    const health = await fetch(`${web}/healthz`);
    assert.is(health.status, 200);
    assert.is(await health.text(), 'ok\n');
  } finally {
    await h.cleanup();
  }
}));

test.run();
