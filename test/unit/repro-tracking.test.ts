// Reproducibility tracking in-process: the coordinator with an in-memory store and a fake clock,
// real result files in a temporary directory, the tracker listening to run:finished. Covers which
// run is compared with which, what is stored, the diff report file, the job's state changes
// and the notify command, and the dispatcher's preference for another worker (verify).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../src/common/log.js';
import type { RunResult } from '../../src/protocol/messages.js';
import { Notifier, type NotifySummary } from '../../src/server/repro/notify.js';
import { reproRecord } from '../../src/server/repro/requests.js';
import { ReproTracker, stateChanges } from '../../src/server/repro/tracker.js';
import { Rig, type FakeWorker } from '../helpers/coordinator-rig.js';
import { eventually } from '../helpers/processes.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const ok: RunResult = { kind: 'exited', code: 0 };
const failed: RunResult = { kind: 'exited', code: 3 };

let rig: Rig;
let tracker: ReproTracker;
const logged: string[] = [];
const recording: Logger = {
  debug() {}, info() {}, error: (m) => void logged.push(m), warn: (m) => void logged.push(m), child: () => recording,
};
const start = (notifier?: Notifier): void => {
  tracker = new ReproTracker({ store: rig.store, events: rig.events, log: quiet, notifier, diffoscope: false });
};
test.before.each(() => {
  rig = new Rig();
  logged.length = 0;
});
test.after.each(async () => {
  await tracker.idle();
  tracker.stop();
  rig.close();
});

/** Runs the job once on w with these artifacts and this result; returns the run's uuid. */
async function runOnce(w: FakeWorker, artifacts: Record<string, string>, result: RunResult = ok, job = 'a'): Promise<string> {
  rig.store.enqueue(w.platform, job);
  rig.coordinator.dispatch(w.platform);
  const sent = rig.jobsSent(w);
  const uuid = sent[sent.length - 1]!;
  assert.ok(rig.store.run(uuid)?.state === 'running', 'a run was started');
  for (const [path, body] of Object.entries(artifacts)) {
    const data = Buffer.from(body);
    rig.coordinator.artifactStart(w, { t: 'artifact', uuid, path, size: data.length, mode: 0o644 });
    await rig.coordinator.artifactChunk(w, { t: 'chunk', uuid, data });
    await rig.coordinator.artifactEnd(w, { t: 'artifact-end', uuid, sha256: createHash('sha256').update(data).digest('hex') });
  }
  rig.clock.advance(1000);
  await rig.finish(w, uuid, result);
  return uuid;
}

const verdictOf = (uuid: string) => rig.store.comparison(uuid);

test('each successful run is compared with the previous successful run of its job on its platform; failed runs get no verdict', async () => {
  start();
  rig.schedule('a');
  const { w } = rig.join('w1');
  // the job was queued by schedule: this first run has nothing to compare with
  const first = rig.jobsSent(w)[0]!;
  await rig.finish(w, first, ok);
  const r1 = await runOnce(w, { 'out/a.txt': 'one\n', 'b.bin': 'x' });
  assert.is(verdictOf(first), undefined, 'the first run has no verdict');
  assert.is(verdictOf(r1)?.verdict, 'differs', 'two new artifacts');
  assert.equal(JSON.parse(verdictOf(r1)!.added), ['b.bin', 'out/a.txt']);
  const r2 = await runOnce(w, { 'out/a.txt': 'one\n', 'b.bin': 'x' });
  assert.is(verdictOf(r2)?.verdict, 'reproduced');
  assert.is(verdictOf(r2)?.against_uuid, r1);
  const broken = await runOnce(w, { 'out/a.txt': 'two\n' }, failed);
  assert.is(verdictOf(broken), undefined, 'a failed run has no verdict');
  const r3 = await runOnce(w, { 'out/a.txt': 'two\n', 'c.txt': 'c' });
  const v3 = verdictOf(r3)!;
  assert.is(v3.against_uuid, r2, 'compared with the last successful run, not the failed one');
  assert.is(v3.verdict, 'differs');
  assert.equal([JSON.parse(v3.changed), JSON.parse(v3.added), JSON.parse(v3.removed)], [['out/a.txt'], ['c.txt'], ['b.bin']]);
});

test('runs on another platform are not compared with each other', async () => {
  start();
  rig.schedule('a', 'p');
  const { w: wp } = rig.join('wp', 'p');
  await rig.finish(wp, rig.jobsSent(wp)[0]!, ok);
  rig.store.addPlatform('q');
  const { w: wq } = rig.join('wq', 'q');
  const onQ = await runOnce(wq, {});
  assert.is(verdictOf(onQ), undefined, 'the first successful run on q');
  const onP = await runOnce(wp, {});
  assert.is(verdictOf(onP)?.against_uuid, rig.jobsSent(wp)[0]);
});

test('a differs verdict gets a diff report in the run\'s result directory, not in run.json', async () => {
  start();
  rig.schedule('a');
  const { w } = rig.join('w1');
  const first = rig.jobsSent(w)[0]!;
  await rig.finish(w, first, ok);
  const r1 = await runOnce(w, { 'stamp.txt': 'built\n1700000000123456789\nend\n', 'same': 's' });
  const r2 = await runOnce(w, { 'stamp.txt': 'built\n1700000042987654321\nend\n', 'same': 's' });
  await tracker.idle();
  const row = verdictOf(r2)!;
  const dir = rig.store.run(r2)!.dir!;
  assert.is(row.report, join(dir, 'compare.txt'));
  const report = readFileSync(row.report!, 'utf8');
  assert.match(report, `comparison of run ${r2} with run ${r1}`);
  assert.match(report, '-1700000000123456789');
  assert.match(report, '+1700000042987654321');
  assert.not.match(readFileSync(join(dir, 'run.json'), 'utf8'), /1700000042987654321|compare/);
  assert.not.ok(existsSync(join(rig.store.run(first)!.dir!, 'compare.txt')), 'a run without a verdict has no report');
  const r3 = await runOnce(w, { 'stamp.txt': 'built\n1700000042987654321\nend\n', 'same': 's' });
  await tracker.idle();
  assert.is(verdictOf(r3)?.verdict, 'reproduced');
  assert.not.ok(existsSync(join(rig.store.run(r3)!.dir!, 'compare.txt')), 'a reproduced run has no report');
});

test('state changes: starts failing, recovers, stops reproducing, reproduces again; each once', () => {
  const prev = (outcome: 'ok' | 'failing', verdict: 'reproduced' | 'differs' | null) =>
    ({ job: 'a', platform: 'p', outcome, verdict, uuid: 'u', updated: 0 });
  assert.equal(stateChanges(undefined, 'ok', undefined), []);
  assert.equal(stateChanges(undefined, 'failing', undefined), ['starts-failing']);
  assert.equal(stateChanges(prev('failing', null), 'failing', undefined), [], 'still failing is no change');
  assert.equal(stateChanges(prev('failing', 'reproduced'), 'ok', 'reproduced'), ['recovers']);
  assert.equal(stateChanges(prev('ok', 'reproduced'), 'ok', 'differs'), ['stops-reproducing']);
  assert.equal(stateChanges(prev('ok', null), 'ok', 'differs'), ['stops-reproducing'], 'a first differs is news too');
  assert.equal(stateChanges(prev('ok', 'differs'), 'ok', 'differs'), [], 'still differing is no change');
  assert.equal(stateChanges(prev('ok', 'differs'), 'ok', 'reproduced'), ['reproduces-again']);
  assert.equal(stateChanges(prev('failing', 'differs'), 'ok', 'reproduced'), ['recovers', 'reproduces-again']);
});

test('the notify command gets each change once, as JSON on stdin; a failing command is logged once and changes nothing', async () => {
  const file = join(rig.dir, 'notified.jsonl');
  const notifier = new Notifier(`cat >> '${file}'`, quiet, 10_000);
  start(notifier);
  rig.schedule('a');
  const { w } = rig.join('w1');
  await rig.finish(w, rig.jobsSent(w)[0]!, ok);
  await runOnce(w, { x: '1' }); // differs (new artifact): stops reproducing
  await runOnce(w, { x: '1' }); // reproduced: reproduces again
  await runOnce(w, { x: '1' }); // still reproduced
  const failing = await runOnce(w, { x: '1' }, failed); // starts failing
  await runOnce(w, { x: '1' }, failed);
  await runOnce(w, { x: '1' }); // recovers
  await tracker.idle();
  const events = await eventually(() => {
    const lines = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
    return lines.length >= 4 && lines.map((l) => JSON.parse(l) as NotifySummary);
  }, 10_000, 'four notifications');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(events.map((e) => e.event), ['stops-reproducing', 'reproduces-again', 'starts-failing', 'recovers']);
  assert.is(readFileSync(file, 'utf8').trim().split('\n').length, 4, 'nothing more came');
  assert.equal(events[0]!.added, ['x']);
  assert.is(events[2]!.uuid, failing);
  assert.equal(events[2]!.result, failed);
  await notifier.close();

  const broken = new Notifier('echo cannot deliver >&2; exit 7', recording, 10_000);
  tracker.stop();
  start(broken);
  const before = rig.store.history('a', 100).length;
  await runOnce(w, { x: '1' }, failed);
  await eventually(() => logged.length > 0, 10_000, 'the failure to be logged');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(logged, ['notify command failed: exit 7: cannot deliver']);
  assert.is(rig.store.history('a', 100).length, before + 1, 'the run was stored all the same');
  await broken.close();
});

test('history --repro: how many reproduced, the streak since when, and what broke it last', async () => {
  start();
  rig.schedule('a');
  const { w } = rig.join('w1');
  await rig.finish(w, rig.jobsSent(w)[0]!, ok);
  await runOnce(w, { x: '1', y: 'y' });
  await runOnce(w, { x: '1', y: 'y' });
  const breaking = await runOnce(w, { x: '2', y: 'y' });
  const firstAgain = await runOnce(w, { x: '2', y: 'y' });
  await runOnce(w, { x: '2', y: 'y' });
  const [rec] = reproRecord(rig.store, 'a', undefined).platforms;
  assert.is(rec!.compared, 5);
  assert.is(rec!.reproduced, 3);
  assert.is(rec!.differs, 2);
  assert.equal(rec!.streak?.count, 2);
  assert.is(rec!.streak?.sinceUuid, firstAgain);
  assert.is(rec!.lastBreak?.uuid, breaking);
  assert.equal(rec!.lastBreak?.changed, ['x']);
});

test('a queue entry that avoids a worker goes to another worker of the platform, waiting for it while it is busy', () => {
  start();
  rig.schedule('busy');
  const { w: w2 } = rig.join('w2');
  assert.is(rig.jobsSent(w2).length, 1, 'w2 is busy with another job');
  const { w: w1 } = rig.join('w1');
  rig.schedule('a');
  rig.store.setAvoidWorker('p', 'a', 'w1');
  rig.coordinator.dispatch('p');
  assert.is(rig.jobsSent(w1).length, 0, 'w1 leaves it for w2');
  // another job may still go to w1 meanwhile
  rig.schedule('other');
  rig.coordinator.dispatch('p');
  assert.is(rig.store.run(rig.jobsSent(w1)[0]!)?.job, 'other');
  void rig.finish(w2, rig.jobsSent(w2)[0]!, ok).then(() => {});
  return eventually(() => rig.jobsSent(w2).length === 2, 2000, 'w2 to take it').then(() => {
    assert.is(rig.store.run(rig.jobsSent(w2)[1]!)?.job, 'a');
  });
});

test('with no other worker of the platform connected, the avoided worker takes the entry', async () => {
  start();
  rig.schedule('a');
  const { w: w1 } = rig.join('w1');
  const { w: w2 } = rig.join('w2');
  rig.schedule('hold');
  rig.coordinator.dispatch('p');
  assert.is(rig.jobsSent(w2).length, 1, 'w2 took another job');
  await rig.finish(w1, rig.jobsSent(w1)[0]!, ok);
  rig.store.enqueue('p', 'a');
  rig.store.setAvoidWorker('p', 'a', 'w1');
  rig.coordinator.dispatch('p');
  assert.is(rig.jobsSent(w1).length, 1, 'w1 waits while w2 is there');
  rig.drop(w2);
  assert.is(rig.jobsSent(w1).length, 2, 'once w2 is gone, w1 takes it');
  assert.is(rig.store.run(rig.jobsSent(w1)[1]!)?.job, 'a');
});

test.run();
