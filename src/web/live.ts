// GET /run/UUID/events: a run's console as Server-Sent Events. The stream first catches up from
// line `after + 1` (the query's `after`, or the Last-Event-ID an EventSource sends when it comes
// back) to what is stored, a batch at a time and waiting for the socket to drain, so a page
// opened late in a big build never makes the server hold its console; then every new line as
// the ledger stores it (run:lines, sent at once: no batching timer); then `end` with the result,
// and the stream closes.
//
// Events: `line` (id: the line's number from 0; data {n, ms, text}), `skipped` (data {count}:
// lines a reader too slow to keep up lost; it may reload the page), `end` (data: the result).
// While catching up, lines announced live are ignored: they are in the store already and the
// catch-up loop reaches them; the switch to live sending happens in the same tick as the last
// store read, so no line falls between the two. Once the run has finished its lines are only in
// the console file, which the catch-up reads instead.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { RunResult } from '../protocol/messages.js';
import type { ServerEvents } from '../server/events.js';
import type { Store } from '../server/store/index.js';
import { consoleIndex, consoleLinesFrom } from './console-file.js';
import { resultView } from './pages.js';

const BATCH = 500;
/** bytes waiting in the socket before live lines are dropped for this reader */
const MAX_BACKLOG = 1 << 20;
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

class LiveStream {
  private catchingUp = true;
  /** the number of the last line sent */
  private sent: number;
  private skipped = 0;
  ended = false;
  private end: { result: RunResult; dir: string | null } | undefined;
  private readonly keepalive: NodeJS.Timeout;

  constructor(private readonly store: Store, private readonly res: ServerResponse, private readonly uuid: string, after: number) {
    this.sent = after;
    this.keepalive = setInterval(() => this.res.write(': keep-alive\n\n'), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  async start(finishedAlready?: { result: RunResult; dir: string | null }): Promise<void> {
    this.end = finishedAlready;
    try {
      while (!this.ended && this.end === undefined) {
        const rows = this.store.views.consoleAfter(this.uuid, this.sent, BATCH);
        if (rows.length === 0) {
          // caught up, in the same tick as the read: from here every line comes through live()
          this.catchingUp = false;
          return;
        }
        const out: string[] = [];
        for (const r of rows) this.line(r.seq, r.ms, r.data, out);
        this.res.write(out.join(''));
        await this.drained();
      }
      if (this.end && !this.ended) await this.finishFromFile();
    } catch (err) {
      this.res.write(`event: error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`);
      this.close();
    }
  }

  live(seq: number, lines: ReadonlyArray<readonly [number, Buffer]>): void {
    if (this.catchingUp || this.ended) return;
    // the batch's events in one write, not one (and a chunk of the response) per line
    const out: string[] = [];
    const full = this.res.writableLength > MAX_BACKLOG;
    lines.forEach(([ms, data], i) => {
      const n = seq + i;
      if (n <= this.sent) return;
      if (full) {
        this.skipped++;
        this.sent = n;
        return;
      }
      this.line(n, ms, data, out);
    });
    if (out.length > 0) this.res.write(out.join(''));
  }

  finished(result: RunResult, dir: string | null): void {
    if (this.ended) return;
    if (this.catchingUp) {
      // the catch-up loop sees this and goes on from the console file
      this.end = { result, dir };
      return;
    }
    this.sendEnd(result);
  }

  close(): void {
    clearInterval(this.keepalive);
    this.ended = true;
    if (!this.res.writableEnded) this.res.end();
  }

  private async finishFromFile(): Promise<void> {
    const { result, dir } = this.end!;
    if (dir !== null) {
      const file = join(dir, 'console');
      const index = await consoleIndex(file);
      for await (const batch of consoleLinesFrom(file, index, this.sent + 1)) {
        if (this.ended) return;
        const out: string[] = [];
        for (const [n, ms, data] of batch) this.line(n, ms, data, out);
        this.res.write(out.join(''));
        await this.drained();
      }
    }
    this.sendEnd(result);
  }

  /** Writes one line's event, or adds it to `out` when a batch is written at once. */
  private line(n: number, ms: number, data: Buffer, out?: string[]): void {
    let text = '';
    if (this.skipped > 0) {
      text = `event: skipped\ndata: ${JSON.stringify({ count: this.skipped })}\n\n`;
      this.skipped = 0;
    }
    this.sent = n;
    // JSON keeps a line's own CR or LF from ending the event early
    text += `event: line\nid: ${n}\ndata: ${JSON.stringify({ n: n + 1, ms, text: data.toString('utf8') })}\n\n`;
    if (out) out.push(text);
    else this.res.write(text);
  }

  private sendEnd(result: RunResult): void {
    const row = this.store.run(this.uuid);
    const view = resultView(JSON.stringify(result))!;
    const finished = row?.finished ?? null;
    this.res.write(`event: end\ndata: ${JSON.stringify({
      result: view, finished: finished === null ? null : new Date(finished).toISOString(),
      durationMs: finished === null || !row ? null : finished - row.started,
    })}\n\n`);
    this.close();
  }

  /**
   * Waits until the reader has taken most of what was written; and in any case for the next turn
   * of the event loop: a socket that takes everything at once would otherwise keep the catch-up
   * loop running in one go (all microtasks) over the whole console, while everyone else waits.
   */
  private drained(): Promise<void> {
    if (this.res.writableLength < MAX_BACKLOG / 4 || this.ended) return new Promise((resolve) => setImmediate(resolve));
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
}
