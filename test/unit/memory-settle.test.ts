// When the server gives memory back after a burst (src/server/memory-settle.ts): one full
// collection once it has grown and gone quiet, never while it is busy, and not over and over for
// memory that is in use. In-process, with a fake clock, a scripted RSS and event-loop load.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CHECK_MS, GROWTH_BYTES, MIN_GAP_MS, compactingCollection, startMemorySettle } from '../../src/server/memory-settle.js';
import { FakeClock } from '../helpers/fake-clock.js';

const MB = 1024 * 1024;

function rig(startRss: number) {
  const clock = new FakeClock(1_000_000);
  const state = { rss: startRss, load: 0, collections: 0, freedTo: undefined as number | undefined, told: [] as Array<[number, number]> };
  const stop = startMemorySettle({
    clock,
    rssBytes: () => state.rss,
    utilisation: () => state.load,
    collect: () => {
      state.collections++;
      if (state.freedTo !== undefined) state.rss = state.freedTo;
    },
    collected: (before, after) => state.told.push([before / MB, after / MB]),
  });
  return { clock, state, stop, checks: (n: number) => clock.advance(n * CHECK_MS) };
}

test('a burst that leaves the server grown: one collection once it is quiet, none while busy', () => {
  const r = rig(70 * MB);
  r.checks(3);
  // the burst: busy, growing to 100 MB
  r.state.load = 0.9;
  for (let rss = 75; rss <= 100; rss += 5) {
    r.state.rss = rss * MB;
    r.checks(1);
  }
  assert.is(r.state.collections, 0, 'collected while busy');
  // over: quiet, the garbage still held
  r.state.load = 0.01;
  r.state.freedTo = 78 * MB;
  r.checks(1);
  assert.is(r.state.collections, 1);
  assert.is(r.state.rss, 78 * MB);
  r.checks(1);
  assert.equal(r.state.told, [[100, 78]], 'what the collection gave back, as the log says it');
  r.checks(100);
  assert.is(r.state.collections, 1, 'collected again with nothing new');
  r.stop();
  assert.is(r.clock.armed, 0, 'a timer left after stop');
});

test('grown by less than the threshold: no collection', () => {
  const r = rig(70 * MB);
  r.checks(1);
  r.state.rss = 70 * MB + GROWTH_BYTES - 1;
  r.checks(50);
  assert.is(r.state.collections, 0);
  r.stop();
});

test('memory in use (2,000 workers connected): collected once, then not again until busy again', () => {
  const r = rig(70 * MB);
  r.checks(1);
  r.state.rss = 170 * MB; // the collection cannot give any of it back
  r.checks(1);
  assert.is(r.state.collections, 1);
  r.checks(200); // idle for 400 s
  assert.is(r.state.collections, 1, 'collected again for memory that is in use');
  // the workers leave: a busy moment, then quiet; the collection now frees their memory
  r.state.load = 0.5;
  r.checks(1);
  r.state.load = 0;
  r.state.freedTo = 75 * MB;
  r.checks(1);
  assert.is(r.state.collections, 2);
  r.stop();
});

test('two bursts close together: the second waits for the minimum gap', () => {
  const r = rig(70 * MB);
  r.checks(1);
  r.state.rss = 100 * MB;
  r.checks(1);
  assert.is(r.state.collections, 1);
  const first = r.clock.now();
  r.state.load = 0.9;
  r.checks(1);
  r.state.load = 0;
  r.state.rss = 110 * MB;
  while (r.state.collections === 1) r.checks(1);
  assert.ok(r.clock.now() - first >= MIN_GAP_MS, `second collection after ${r.clock.now() - first} ms`);
  r.stop();
});

test('compactingCollection reclaims garbage and gives back the pages a sparse heap keeps; no context gets gc()', async () => {
  const { runInNewContext } = await import('node:vm');
  const { getHeapStatistics } = await import('node:v8');
  const collect = compactingCollection();
  assert.type(collect, 'function');
  // garbage it must reclaim: a weakly held object with nothing else pointing at it
  let target: object | undefined = { big: new Array(1000).fill(1) };
  const ref = new WeakRef(target);
  target = undefined;
  // a burst: 40 MB of small objects of which every tenth stays, spread over every page
  let burst: Array<{ s: string; n: number[] }> | undefined = [];
  const kept: Array<{ s: string; n: number[] }> = [];
  for (let i = 0; i < 300_000; i++) {
    const o = { s: `${'x'.repeat(50)}${i}`, n: [i, i + 1] };
    burst.push(o);
    if (i % 10 === 0) kept.push(o);
  }
  burst = undefined;
  await new Promise((r) => setImmediate(r));
  collect();
  assert.is(ref.deref(), undefined, 'the object survived a full collection');
  const h = getHeapStatistics();
  // without compaction of every page the heap stays some 100 MB for its ~13 MB in use
  assert.ok(h.total_heap_size < 3 * h.used_heap_size + 16 * MB,
    `heap ${Math.round(h.total_heap_size / MB)} MB for ${Math.round(h.used_heap_size / MB)} MB in use (${kept.length} kept)`);
  assert.is(runInNewContext('typeof gc'), 'undefined', 'a new context has gc()');
});

test.run();
