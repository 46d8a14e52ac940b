import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeptRun } from '../../src/worker/kept-run.js';

test('a kept run keeps the newest lines within its bound and resends those after the server\'s last', () => {
  const h = new KeptRun('u', 'j', 0);
  const line = Buffer.alloc(1000, 0x61);
  for (let i = 0; i < 40_000; i++) h.addLine(i, line); // ~41 MB offered, 16 MiB kept
  assert.is(h.nextSeq, 40_000);
  const all = h.linesAfter(-1);
  assert.ok(all.length > 10_000 && all.length < 17_000, `kept ${all.length} lines`);
  assert.is(all.at(-1)![0], 39_999, 'the newest line is kept');
  assert.is(all[0]![0], 40_000 - all.length, 'what is kept has no gaps');
  assert.equal(h.linesAfter(39_997).map(([seq]) => seq), [39_998, 39_999]);
  assert.equal(h.linesAfter(39_999), []);
});

test.run();
