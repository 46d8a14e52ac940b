// A finished run's console lines leave the database in steps after it is stored
// (src/server/console-sweeper.ts), never in one go that holds the server; a running run's stay;
// what a crash left behind goes at the next start. In-process, on an in-memory store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Logger } from '../../src/common/log.js';
import { ConsoleSweeper, SWEEP_LINES } from '../../src/server/console-sweeper.js';
import { ServerEvents } from '../../src/server/events.js';
import { openStore, type Store } from '../../src/server/store/index.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const T = Date.parse('2026-01-01T00:00:00Z');

function runWithLines(store: Store, uuid: string, lines: number): void {
  store.insertRun({ uuid, job: `job-${uuid}`, platform: 'p', worker: 'w', script: 'true', attempt: 1, timeout_sec: 60, started: T });
  for (let seq = 0; seq < lines; seq += 1000) {
    store.addLines(uuid, seq, Array.from({ length: Math.min(1000, lines - seq) }, (_, i) => [i, Buffer.from(`line ${seq + i}`)]));
  }
}

function finish(store: Store, events: ServerEvents, uuid: string): void {
  store.finishRun({ uuid, finished: T + 1000, result: { kind: 'exited', code: 0 }, stats: {}, refusals: [], dir: '/nowhere', artifacts: [] });
  events.emit('run:finished', {
    uuid, job: `job-${uuid}`, platform: 'p', worker: 'w', attempt: 1, result: { kind: 'exited', code: 0 }, finished: T + 1000, dir: '/nowhere', retried: false,
  });
}

test("a finished run's lines go a step per turn of the event loop; a running run's stay", async () => {
  const store = openStore(':memory:');
  const events = new ServerEvents(quiet);
  const sweeper = new ConsoleSweeper(store, events, quiet);
  runWithLines(store, 'done', 2 * SWEEP_LINES + 2_000);
  runWithLines(store, 'live', 10);
  finish(store, events, 'done');
  // one step at once, not all of it
  assert.is([...store.pagedLines('done')].length, SWEEP_LINES + 2_000);
  assert.is([...store.pagedLines('done')][0]!.seq, SWEEP_LINES, 'the oldest lines go first');
  await turn();
  assert.is([...store.pagedLines('done')].length, 2_000);
  await turn();
  assert.is([...store.pagedLines('done')].length, 0);
  assert.is(sweeper.pending, 0);
  assert.is([...store.pagedLines('live')].length, 10, "a running run's lines were deleted");
  sweeper.stop();
  store.close();
});

test('at start, lines a crash left behind go: a finished run\'s and a deleted run\'s, not a running run\'s', async () => {
  const store = openStore(':memory:');
  const events = new ServerEvents(quiet);
  runWithLines(store, 'a-finished', 300);
  store.finishRun({ uuid: 'a-finished', finished: T + 1000, result: { kind: 'exited', code: 0 }, stats: {}, refusals: [], dir: '/nowhere', artifacts: [] });
  runWithLines(store, 'b-running', 20);
  // lines without a run (its row deleted by retention before they went)
  store.addLines('c-gone', 0, [[0, Buffer.from('orphan')]]);
  const sweeper = new ConsoleSweeper(store, events, quiet);
  for (let i = 0; i < 5 && sweeper.pending > 0; i++) await turn();
  assert.equal([...store.runsWithLines()], ['b-running']);
  assert.is([...store.pagedLines('b-running')].length, 20);
  sweeper.stop();
  store.close();
});

test('stopped, it deletes no more', async () => {
  const store = openStore(':memory:');
  const events = new ServerEvents(quiet);
  const sweeper = new ConsoleSweeper(store, events, quiet);
  runWithLines(store, 'done', 3 * SWEEP_LINES);
  finish(store, events, 'done');
  sweeper.stop();
  for (let i = 0; i < 5; i++) await turn();
  assert.is([...store.pagedLines('done')].length, 2 * SWEEP_LINES);
  store.close();
});

test.run();
