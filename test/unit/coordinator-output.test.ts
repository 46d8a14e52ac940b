// Console lines and results, in-process: lines sent again after a re-attach are stored and
// shown once; a result is acknowledged only once it is stored.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Message } from '../../src/protocol/messages.js';
import { CATCH_UP_PAGE } from '../../src/server/console-follow.js';
import { Rig, fakePort } from '../helpers/coordinator-rig.js';

let rig: Rig;
test.before.each(() => {
  rig = new Rig();
});
test.after.each(() => rig.close());

/** console lines, each printed at 10 ms per letter of the alphabet ('a' at 0, 'b' at 10, ...) */
const lines = (...texts: string[]): Array<[number, Buffer]> => texts.map((t) => [(t.charCodeAt(0) - 97) * 10, Buffer.from(t)]);
const shown = (sent: Message[]) => sent.flatMap((m) => (m.t === 'line' ? [m.data.toString()] : []));

test('lines sent again after a re-attach are stored and shown once', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  const observer = fakePort();
  assert.ok(rig.coordinator.observe(observer, 7, uuid!));
  rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq: 0, lines: lines('a', 'b') });
  rig.drop(w);
  const { w: back, welcome } = rig.join('w1', 'p', [{ uuid: uuid!, lastSeq: 1, finished: false, secret: rig.secretOf(w, uuid!) }]);
  assert.equal(welcome.attach, [{ uuid: uuid!, haveSeq: 1 }]);
  // the worker's buffer overlaps what the server has: seq 1 again, then new lines
  rig.coordinator.output(back, { t: 'output', uuid: uuid!, seq: 1, lines: lines('b', 'c', 'd') });
  rig.coordinator.output(back, { t: 'output', uuid: uuid!, seq: 1, lines: lines('b', 'c') });
  assert.equal([...rig.store.pagedLines(uuid!)].map((l) => [l.seq, l.data.toString()]), [[0, 'a'], [1, 'b'], [2, 'c'], [3, 'd']]);
  assert.equal(shown(observer.sent), ['a', 'b', 'c', 'd']);

  // a late observer sees everything so far, then the end
  const late = fakePort();
  rig.coordinator.observe(late, 8, uuid!);
  await rig.finish(back, uuid!, { kind: 'exited', code: 3 }, 3);
  assert.equal(shown(late.sent), ['a', 'b', 'c', 'd']);
  assert.equal(late.sent.at(-1), { t: 'end', id: 8, uuid: uuid!, result: { kind: 'exited', code: 3 } });

  const dir = rig.store.run(uuid!)!.dir!;
  assert.is(readFileSync(join(dir, 'console'), 'utf8'), '0 a\n10 b\n20 c\n30 d\n');
  assert.ok(!existsSync(join(rig.dir, 'incoming', uuid!)), 'the incoming directory was renamed into place');
});

test('a result is stored before it is acknowledged, and a second result for the run is refused', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  let storedWhenAcked: string | undefined;
  const send = w.port.send;
  w.port.send = (m) => {
    if (m.t === 'ack') storedWhenAcked = rig.store.run(m.uuid)?.state;
    send(m);
  };
  await rig.finish(w, uuid!, { kind: 'exited', code: 0 });
  assert.is(storedWhenAcked, 'finished');
  await rig.finish(w, uuid!, { kind: 'exited', code: 1 });
  assert.is(w.port.sent.at(-1)!.t, 'refused');
  assert.equal(JSON.parse(rig.store.run(uuid!)!.result!), { kind: 'exited', code: 0 });
});

test('execute --follow: a follower watches the next run of its job from the start', () => {
  rig.schedule('a');
  const follower = fakePort();
  rig.coordinator.follow(follower, 3, 'a', ['p']);
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  assert.equal(follower.sent[0], { t: 'started', id: 3, uuid: uuid!, job: 'a', platform: 'p' });
  rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq: 0, lines: lines('hello') });
  assert.equal(shown(follower.sent), ['hello']);
});

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const numbered = (from: number, n: number): Array<[number, Buffer]> =>
  Array.from({ length: n }, (_, i) => [from + i, Buffer.from(`line ${from + i}`)]);

test('a late observer of a long run gets what was printed a page per turn, then the live lines, each once, then the end', async () => {
  rig.schedule('a');
  const { w } = rig.join('w1');
  const [uuid] = rig.jobsSent(w);
  for (let seq = 0; seq < 2_500; seq += 100) rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq, lines: numbered(seq, 100) });
  const late = fakePort();
  rig.coordinator.observe(late, 9, uuid!);
  // not the whole console in one go while everyone else waits: one page so far
  assert.is(shown(late.sent).length, CATCH_UP_PAGE);
  // lines go on arriving while it catches up
  rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq: 2_500, lines: numbered(2_500, 10) });
  for (let i = 0; i < 10; i++) await turn();
  rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq: 2_510, lines: numbered(2_510, 5) });
  await rig.finish(w, uuid!, { kind: 'exited', code: 0 }, 2_514);
  assert.equal(shown(late.sent), Array.from({ length: 2_515 }, (_, i) => `line ${i}`));
  assert.is(late.sent.filter((m) => m.t === 'skipped').length, 0);
  assert.equal(late.sent.at(-1), { t: 'end', id: 9, uuid: uuid!, result: { kind: 'exited', code: 0 } });
});

/** An observer port whose socket is full (backlog over the limit) until the test lets it read. */
function stalledPort() {
  let backlog = 0;
  let drain: () => void = () => undefined;
  const port = fakePort();
  Object.defineProperty(port, 'backlog', { get: () => backlog });
  port.drained = () => new Promise<void>((r) => (drain = r));
  return {
    port,
    stall: () => void (backlog = 2 << 20),
    read: () => {
      backlog = 0;
      drain();
    },
  };
}

for (const swept of [false, true]) {
  test(`a late observer that stops reading is sent nothing more until it reads, then ${swept ? 'told how many lines went with the run\'s end' : 'the rest'}, then the end`, async () => {
    rig.schedule('a');
    const { w } = rig.join('w1');
    const [uuid] = rig.jobsSent(w);
    for (let seq = 0; seq < 1_200; seq += 100) rig.coordinator.output(w, { t: 'output', uuid: uuid!, seq, lines: numbered(seq, 100) });
    const late = stalledPort();
    rig.coordinator.observe(late.port, 4, uuid!);
    assert.is(shown(late.port.sent).length, CATCH_UP_PAGE);
    late.stall(); // its socket is full: it reads nothing
    for (let i = 0; i < 10; i++) await turn();
    assert.is(shown(late.port.sent).length, CATCH_UP_PAGE, 'sent more to an observer that reads nothing');
    await rig.finish(w, uuid!, { kind: 'exited', code: 1 }, 1_199);
    assert.not.ok(late.port.sent.some((m) => m.t === 'end'), 'the end overtook the lines before it');
    // the console sweeper deletes a stored run's lines from the database (console-sweeper.ts)
    if (swept) rig.store.dropFirstLines(uuid!, 10_000);
    late.read();
    for (let i = 0; i < 10; i++) await turn();
    const end = { t: 'end', id: 4, uuid: uuid!, result: { kind: 'exited', code: 1 } };
    if (swept) {
      // gone from the database to the result's file: `builder-client console` has them
      assert.equal(shown(late.port.sent), Array.from({ length: CATCH_UP_PAGE }, (_, i) => `line ${i}`));
      assert.equal(late.port.sent.slice(-2), [{ t: 'skipped', id: 4, uuid: uuid!, count: 1_200 - CATCH_UP_PAGE }, end]);
    } else {
      assert.equal(shown(late.port.sent), Array.from({ length: 1_200 }, (_, i) => `line ${i}`));
      assert.equal(late.port.sent.at(-1), end);
      assert.not.ok(late.port.sent.some((m) => m.t === 'skipped'));
    }
  });
}

test.run();
