// GET /run/UUID/events: a run's console as Server-Sent Events, followed as console-follow.ts does
// for every reader: from line `after + 1` (the query's `after`, or the Last-Event-ID an
// EventSource sends when it comes back) what is stored, at the reader's pace, so a page opened
// late in a big build never makes the server hold its console; then every new line as the ledger
// stores it (run:lines, sent at once: no batching timer); then `end` with the result, and the
// stream closes. Once the run has finished its lines are only in its console file, which the
// catch-up reads instead of the database.
//
// Events: `line` (id: the line's number from 0; data {n, ms, text}), `skipped` (data {count}:
// lines a reader too slow to keep up lost, or that never reached the server; it may reload the
// page), `end` (data: the result).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { RunResult } from '../protocol/messages.js';
import type { ServerEvents } from '../server/events.js';
import { ConsoleFollow, type ConsoleReader, type StoredLines } from '../server/console-follow.js';
import type { Store } from '../server/store/index.js';
import { consolePages } from './console-file.js';
import { resultView } from './pages.js';

/** a comment now and then keeps proxies and the browser from closing a quiet stream */
const KEEPALIVE_MS = 15_000;

export class LiveConsoles {
  private readonly streams = new Map<string, Set<LiveStream>>();
  private readonly unsubscribe: Array<() => void>;

  constructor(private readonly store: Store, events: ServerEvents) {
    this.unsubscribe = [
      events.on('run:lines', (e) => {
        for (const s of this.streams.get(e.uuid) ?? []) s.live(e.seq, e.lines);
      }),
      events.on('run:finished', (e) => {
        for (const s of this.streams.get(e.uuid) ?? []) s.finished(e.result, e.dir);
      }),
    ];
  }

  /** How many readers are connected (the bench and tests look). */
  get readers(): number {
    let n = 0;
    for (const set of this.streams.values()) n += set.size;
    return n;
  }

  /** Serves one reader; false when there is no such run. */
  serve(req: IncomingMessage, res: ServerResponse, uuid: string, after: number): boolean {
    const row = this.store.run(uuid);
    if (!row) return false;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    const stream = new LiveStream(this.store, res, uuid, after);
    let set = this.streams.get(uuid);
    if (!set) this.streams.set(uuid, (set = new Set()));
    set.add(stream);
    const gone = (): void => {
      stream.close();
      set.delete(stream);
      if (set.size === 0 && this.streams.get(uuid) === set) this.streams.delete(uuid);
    };
    req.once('close', gone);
    res.once('close', gone);
    void stream.start(row.state === 'finished' ? { result: JSON.parse(row.result!) as RunResult, dir: row.dir } : undefined).finally(() => {
      if (stream.ended) gone();
    });
    return true;
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    for (const set of this.streams.values()) for (const s of set) s.close();
    this.streams.clear();
  }
}

/** One reader's stream: console-follow.ts's lines, skipped counts and end as events. */
class LiveStream implements ConsoleReader<RunResult> {
  private readonly follow: ConsoleFollow<RunResult>;
  /** the finished run's console file, which the catch-up reads from then on */
  private file: { read: StoredLines; close(): void } | undefined;
  /** the events of the batch being written, when one is */
  private out: string[] | undefined;
  ended = false;
  private readonly keepalive: NodeJS.Timeout;

  constructor(private readonly store: Store, private readonly res: ServerResponse, private readonly uuid: string, after: number) {
    this.follow = new ConsoleFollow(this, after + 1);
    this.keepalive = setInterval(() => this.res.write(': keep-alive\n\n'), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  async start(finishedAlready?: { result: RunResult; dir: string | null }): Promise<void> {
    if (finishedAlready) this.readFile(finishedAlready.dir);
    const caughtUp = this.follow.catchUp((from, limit) => this.file ? this.file.read(from, limit) : this.store.views.consoleAfter(this.uuid, from - 1, limit));
    if (finishedAlready) this.follow.end(finishedAlready.result);
    try {
      await caughtUp;
    } catch (err) {
      // unless the end, which waited for the catch-up, has gone out meanwhile
      if (!this.res.writableEnded) this.res.write(`event: error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`);
      this.close();
    }
  }

  live(seq: number, lines: ReadonlyArray<readonly [number, Buffer]>): void {
    this.follow.live(seq, lines);
  }

  finished(result: RunResult, dir: string | null): void {
    if (this.ended) return;
    // a catch-up still under way goes on from the console file
    this.readFile(dir);
    this.follow.end(result);
  }

  close(): void {
    clearInterval(this.keepalive);
    this.ended = true;
    this.file?.close();
    if (!this.res.writableEnded) this.res.end();
  }

  get closed(): boolean {
    return this.ended;
  }

  get unsent(): number {
    return this.res.writableLength;
  }

  batch(fn: () => void): void {
    const out: string[] = (this.out = []);
    try {
      fn();
    } finally {
      this.out = undefined;
    }
    if (out.length > 0) this.res.write(out.join(''));
  }

  line(seq: number, ms: number, data: Buffer): void {
    // JSON keeps a line's own CR or LF from ending the event early
    this.write(`event: line\nid: ${seq}\ndata: ${JSON.stringify({ n: seq + 1, ms, text: data.toString('utf8') })}\n\n`);
  }

  skipped(count: number): void {
    this.write(`event: skipped\ndata: ${JSON.stringify({ count })}\n\n`);
  }

  end(result: RunResult): void {
    const row = this.store.run(this.uuid);
    const view = resultView(JSON.stringify(result))!;
    const finished = row?.finished ?? null;
    this.write(`event: end\ndata: ${JSON.stringify({
      result: view, finished: finished === null ? null : new Date(finished).toISOString(),
      durationMs: finished === null || !row ? null : finished - row.started,
    })}\n\n`);
    this.close();
  }

  /** Resolves at once unless the socket has asked to be waited for; then when it drained or closed. */
  drained(): Promise<void> {
    if (this.ended || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  private readFile(dir: string | null): void {
    this.file ??= dir === null ? { read: () => [], close: () => undefined } : consolePages(join(dir, 'console'));
  }

  private write(text: string): void {
    if (this.out) this.out.push(text);
    else this.res.write(text);
  }
}
