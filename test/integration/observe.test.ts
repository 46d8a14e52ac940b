// A slow observer loses lines, is told how many, and still gets the run's end; the server does
// not buffer without bound for it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync } from 'node:fs';
import { Harness, eventually, withTimeout } from '../helpers/processes.js';
import { ClientSession, type Stream } from '../../src/client/session.js';

test('an observer that stops reading loses lines (and is told so), never the end', withTimeout(120_000, async () => {
  const h = new Harness();
  try {
    mkdirSync(h.path('etc'));
    const server = await h.server();
    const go = h.path('go');
    h.worker(server, 'p');
    // about 30 MB of output once the observer is attached
    await h.client(server, ['schedule', 'loud', 'p', h.script('loud', `while [ ! -e ${go} ]; do sleep 0.05; done\nyes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -n 300000\necho last\n`)]);
    const uuid = await eventually(async () => (await h.info(server)).running[0]?.uuid as string | undefined);
    const session = await ClientSession.open('127.0.0.1', server.port, h.token(server));
    const events: Stream[] = [];
    let ended!: () => void;
    const end = new Promise<void>((r) => (ended = r));
    await session.request({ op: 'observe', uuid }, (ev) => {
      events.push(ev);
      if (ev.t === 'end') ended();
    });
    session.conn.socket.pause(); // a reader that has stopped reading
    const { writeFileSync } = await import('node:fs');
    writeFileSync(go, '');
    await eventually(async () => (await h.history(server, 'loud')).length === 1, 90_000, 'the run to finish');
    session.conn.socket.resume();
    await end;
    const lines = events.filter((e) => e.t === 'line').length;
    const skipped = events.filter((e) => e.t === 'skipped').reduce((n, e) => n + (e.t === 'skipped' ? e.count : 0), 0);
    assert.ok(skipped > 0, 'some lines were skipped');
    assert.is(lines + skipped, 300_001, 'every line was either sent or counted as skipped');
    assert.is(events.at(-1)!.t, 'end');
    session.close();
  } finally {
    await h.cleanup();
  }
}));

test.run();
