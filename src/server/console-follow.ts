// Following a run's console for one reader, whatever carries it: a protocol observer
// (observers.ts: `observe`, `execute --follow`) or a web page (web/live.ts: Server-Sent Events).
//
// A reader that joins late first catches up with what the run printed so far, read from where it
// is stored a page per turn of the event loop and only as fast as the reader takes it: a run that
// has printed a million lines is never read whole into memory, nor in one go while others wait.
// Lines announced live meanwhile are ignored: they are stored already and the catch-up reaches
// them; the switch to live lines happens in the same tick as the last store read, so no line
// falls between the two nor comes twice. A reader too slow for the live lines loses them instead
// of making the server buffer without bound, and is told how many before its next line or the
// end; the end of the run always reaches it.

import type { ConsoleRow } from '../results/index.js';

/** stored lines sent per turn of the event loop while catching up */
export const CATCH_UP_PAGE = 500;
/** bytes a reader has not taken yet past which its live lines are dropped */
export const MAX_BACKLOG = 1 << 20;
/**
 * the catch-up sends its next page only once the reader has taken all but this much: it never by
 * itself brings a reader near the point where live lines are dropped
 */
const CATCH_UP_UNREAD = MAX_BACKLOG / 4;
/** how long the catch-up waits before asking again a reader that says drained while still full */
const RECHECK_MS = 50;

/** a console line as the store and the result's file hold it (results/types.ts) */
export type StoredLine = ConsoleRow;

/**
 * A run's stored lines, at most `limit` of them from number `from` on; fewer than `limit` means
 * that is all there is now. Where lines may still arrive it must answer synchronously, so that
 * the switch to live lines is made in the same tick as the read.
 */
export type StoredLines = (from: number, limit: number) => StoredLine[] | Promise<StoredLine[]>;

/** What carries a console to one reader, in its own format. */
export interface ConsoleReader<Result> {
  /** the reader is gone (or was sent the end) */
  readonly closed: boolean;
  /** bytes written that the reader has not taken yet */
  readonly unsent: number;
  /** resolves once what waits has gone, or the reader has */
  drained(): Promise<void>;
  /** what fn writes goes in one write */
  batch(fn: () => void): void;
  line(seq: number, ms: number, data: Buffer): void;
  /** this many lines before the next one (or the end) were not sent */
  skipped(count: number): void;
  end(result: Result): void;
}

export class ConsoleFollow<Result> {
  /** the number of the next line due to the reader */
  private next: number;
  /** lost lines the reader has not been told of yet */
  private skipped = 0;
  private catchingUp = false;
  /** the run ended while catching up: said once the stored lines are sent */
  private ending: { result: Result; lines: number | undefined } | undefined;

  constructor(private readonly reader: ConsoleReader<Result>, from = 0) {
    this.next = from;
  }

  /**
   * Sends what is stored from the reader's next line on, then lets the live lines through (and
   * the end, if it came meanwhile). Resolves once that switch is made or the reader is gone;
   * rejects with what reading the stored lines threw, after switching to the live lines all the same.
   */
  async catchUp(stored: StoredLines): Promise<void> {
    this.catchingUp = true;
    while (!this.reader.closed) {
      let page: StoredLine[];
      try {
        const read = stored(this.next, CATCH_UP_PAGE);
        page = Array.isArray(read) ? read : await read;
      } catch (err) {
        // what could not be read is lost to this reader, who is told how many with the next line
        // or the end (a gap in the live lines counts); the end still reaches it
        this.catchingUp = false;
        if (this.ending) this.end(this.ending.result, this.ending.lines);
        throw err;
      }
      if (this.reader.closed) return;
      if (page.length > 0) this.reader.batch(() => page.forEach((l) => this.send(l.seq, l.ms, l.data)));
      if (page.length < CATCH_UP_PAGE) {
        // everything stored is sent: from here on the live lines, in the same tick, so none is missed
        this.catchingUp = false;
        if (this.ending) this.end(this.ending.result, this.ending.lines);
        return;
      }
      await this.readerCaughtUp();
    }
  }

  /** Live lines, the first numbered seq in the run: all in one write. */
  live(seq: number, lines: ReadonlyArray<readonly [number, Buffer]>): void {
    if (this.catchingUp || this.reader.closed) return;
    this.reader.batch(() => lines.forEach(([ms, data], i) => this.liveLine(seq + i, ms, data)));
  }

  /**
   * The run ended, after printing `lines` lines when the caller knows. Those this reader was
   * neither sent nor told of are counted as lost: a reader that catches up from the database
   * after the run was stored may find its lines gone to the result's file (console-sweeper.ts).
   */
  end(result: Result, lines?: number): void {
    if (this.reader.closed) return;
    if (this.catchingUp) {
      this.ending = { result, lines };
      return;
    }
    if (lines !== undefined && lines > this.next) {
      this.skipped += lines - this.next;
      this.next = lines;
    }
    this.flushSkipped();
    this.reader.end(result);
  }

  private liveLine(seq: number, ms: number, data: Buffer): void {
    if (seq < this.next) return;
    // lines the store never had (lost between worker and server) count as lost
    if (seq > this.next) this.skipped += seq - this.next;
    if (this.reader.unsent > MAX_BACKLOG) {
      this.skipped++;
      this.next = seq + 1;
      return;
    }
    this.send(seq, ms, data);
  }

  private send(seq: number, ms: number, data: Buffer): void {
    this.flushSkipped();
    this.next = seq + 1;
    this.reader.line(seq, ms, data);
  }

  private flushSkipped(): void {
    if (this.skipped === 0) return;
    this.reader.skipped(this.skipped);
    this.skipped = 0;
  }

  /**
   * The next turn of the event loop at the earliest (a reader that takes everything at once
   * would otherwise have the whole console sent in one go while everyone else waits), and not
   * before the reader has taken most of what it was sent.
   */
  private async readerCaughtUp(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (!this.reader.closed && this.reader.unsent > CATCH_UP_UNREAD) {
      await this.reader.drained();
      if (this.reader.unsent > CATCH_UP_UNREAD) await new Promise((resolve) => setTimeout(resolve, RECHECK_MS));
    }
  }
}
