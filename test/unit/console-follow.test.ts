// Following a run's console (src/server/console-follow.ts), the rule both the protocol's observers
// and the web's live console go by, on a reader kept in memory: a late reader catches up a page at
// a time and then gets the live lines, each line once even when it arrived during the catch-up; a
// reader that stops reading loses live lines, is told how many, and still gets the end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CATCH_UP_PAGE, ConsoleFollow, MAX_BACKLOG, type ConsoleReader, type StoredLine } from '../../src/server/console-follow.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A reader whose writes are kept, one entry per write, and whose socket fills when told. */
class MemoryReader implements ConsoleReader<string> {
  readonly writes: string[][] = [];
  closed = false;
  unsent = 0;
  private pending: string[] | undefined;
  private drain: () => void = () => undefined;

  drained(): Promise<void> {
    return new Promise((resolve) => (this.drain = resolve));
  }

  /** the reader takes everything it was sent */
  read(): void {
    this.unsent = 0;
    this.drain();
  }

  batch(fn: () => void): void {
    const out: string[] = (this.pending = []);
    fn();
    this.pending = undefined;
    if (out.length > 0) this.writes.push(out);
  }

  line(seq: number, _ms: number, data: Buffer): void {
    this.write(`${seq}:${data.toString()}`);
  }

  skipped(count: number): void {
    this.write(`skipped ${count}`);
  }

  end(result: string): void {
    this.write(`end ${result}`);
    this.closed = true;
  }

  get events(): string[] {
    return this.writes.flat();
  }

  private write(event: string): void {
    if (this.pending) this.pending.push(event);
    else this.writes.push([event]);
  }
}

const text = (seq: number): string => `line ${seq}`;
const stored = (n: number): StoredLine[] => Array.from({ length: n }, (_, seq) => ({ seq, ms: seq, data: Buffer.from(text(seq)) }));
const pager = (lines: StoredLine[]) => (from: number, limit: number) => lines.filter((l) => l.seq >= from).slice(0, limit);
const live = (seq: number, n: number): Array<[number, Buffer]> => Array.from({ length: n }, (_, i) => [seq + i, Buffer.from(text(seq + i))]);
const shown = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `${from + i}:${text(from + i)}`);

test('a late reader gets the stored lines a page per turn, then the live ones: a line that arrived while it caught up comes once', async () => {
  const store = stored(1_200);
  const reader = new MemoryReader();
  const follow = new ConsoleFollow(reader);
  const caughtUp = follow.catchUp(pager(store));
  assert.equal(reader.events, shown(0, CATCH_UP_PAGE), 'the first page at once, and only that');
  // stored, then announced live while the reader is still catching up
  store.push(...stored(1_201).slice(1_200));
  follow.live(1_200, live(1_200, 1));
  await caughtUp;
  follow.live(1_200, live(1_200, 2)); // again, with the next one
  follow.end('exited 0', 1_202);
  assert.equal(reader.events, [...shown(0, 1_202), 'end exited 0']);
  assert.equal(reader.writes.map((w) => w.length), [500, 500, 201, 1, 1], 'a page, or a batch of live lines, in one write');
});

test('a reader that stops reading loses live lines, is told how many before its next line, and always gets the end', async () => {
  const reader = new MemoryReader();
  const follow = new ConsoleFollow(reader);
  follow.live(0, live(0, 2));
  reader.unsent = MAX_BACKLOG + 1;
  follow.live(2, live(2, 3));
  assert.equal(reader.events, shown(0, 2), 'sent to a reader whose backlog is full');
  reader.read();
  follow.live(5, live(5, 1));
  reader.unsent = MAX_BACKLOG + 1;
  follow.live(6, live(6, 4));
  follow.end('exited 1', 12);
  assert.equal(reader.events, [...shown(0, 2), 'skipped 3', ...shown(5, 6), 'skipped 6', 'end exited 1']);
});

test('a reader that stops reading while it catches up is sent no more pages until it reads, and the end only after them', async () => {
  const reader = new MemoryReader();
  const follow = new ConsoleFollow(reader);
  const caughtUp = follow.catchUp(pager(stored(1_200)));
  reader.unsent = MAX_BACKLOG + 1;
  for (let i = 0; i < 10; i++) await turn();
  follow.end('exited 0', 1_200);
  assert.equal(reader.events, shown(0, CATCH_UP_PAGE));
  reader.read();
  await caughtUp;
  assert.equal(reader.events, [...shown(0, 1_200), 'end exited 0']);
});

test('a catch-up whose store read fails (a storage fault) hands the reader to the live lines: it is told what it missed and gets the end', async () => {
  const reader = new MemoryReader();
  const follow = new ConsoleFollow(reader);
  let reads = 0;
  const failing = (from: number, limit: number): StoredLine[] => {
    if (++reads === 2) throw new Error('disk I/O error');
    return pager(stored(1_200))(from, limit);
  };
  const caughtUp = follow.catchUp(failing);
  follow.end('exited 0', 1_300);
  let thrown: unknown;
  await caughtUp.catch((err: unknown) => (thrown = err));
  assert.is((thrown as Error | undefined)?.message, 'disk I/O error', 'the caller hears of the fault');
  assert.equal(reader.events, [...shown(0, CATCH_UP_PAGE), `skipped ${1_300 - CATCH_UP_PAGE}`, 'end exited 0']);
});

test.run();
