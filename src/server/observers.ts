// People watching a run. A slow observer loses live lines (counted, and told how many) instead
// of making the server buffer without bound; the end of the run always reaches it. An observer
// that joins a run late first catches up with what the run printed so far, read from the
// database a page per turn of the event loop and only as fast as it reads: a run that has
// printed a million lines is never read whole into memory, nor in one go while others wait.
import type { RunResult } from '../protocol/messages.js';
import type { ObserverPort } from './port.js';

const MAX_BACKLOG = 1 << 20;
/** stored lines sent per turn of the event loop while catching up */
export const CATCH_UP_PAGE = 500;

/** A run's stored lines, at most `limit` of them from sequence number `from` on. */
export type StoredLines = (from: number, limit: number) => Array<{ seq: number; ms: number; data: Buffer }>;

export class Observer {
  private skipped = 0;
  /** the sequence number of the next line due to this observer */
  private next = 0;
  /** reading the stored lines; live lines are in the database meanwhile and read from there */
  private catchingUp = false;
  /** the run ended while catching up: said once the stored lines are sent */
  private ending: { result: RunResult; lines: number } | undefined;

  constructor(readonly port: ObserverPort, readonly id: number, readonly uuid: string) {}

  get gone(): boolean {
    return this.port.closed;
  }

  started(job: string, platform: string): void {
    this.port.send({ t: 'started', id: this.id, uuid: this.uuid, job, platform });
  }

  /** Sends what the run has printed so far, then goes on with its live lines. */
  catchUp(stored: StoredLines): void {
    this.catchingUp = true;
    void this.pump(stored);
  }

  /** A live line, numbered seq in the run. */
  line(seq: number, ms: number, data: Buffer): void {
    if (this.catchingUp || seq < this.next) return;
    // lines the store never had (the disk refused them and they were dropped) count as lost
    if (seq > this.next) this.skipped += seq - this.next;
    this.next = seq + 1;
    if (this.port.backlog > MAX_BACKLOG) {
      this.skipped++;
      return;
    }
    this.flushSkipped();
    this.port.send({ t: 'line', id: this.id, uuid: this.uuid, ms, data });
  }

  /**
   * The run ended after printing `lines` lines. Those this observer was neither sent nor told of
   * are counted as lost: once a run is stored its lines leave the database for its result's file
   * (console-sweeper.ts), so an observer still catching up then (one that reads slowly) may lose
   * the rest, and is told so.
   */
  end(result: RunResult, lines: number): void {
    if (this.catchingUp) {
      this.ending = { result, lines };
      return;
    }
    if (lines > this.next) this.skipped += lines - this.next;
    this.next = Math.max(this.next, lines);
    this.flushSkipped();
    this.port.send({ t: 'end', id: this.id, uuid: this.uuid, result });
  }

  private async pump(stored: StoredLines): Promise<void> {
    while (!this.port.closed) {
      if (this.port.backlog > MAX_BACKLOG) {
        await this.port.drained();
        // a port that says drained while still full is asked again a little later, not at once
        if (this.port.backlog > MAX_BACKLOG) await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const page = stored(this.next, CATCH_UP_PAGE);
      this.port.batch(() => {
        for (const l of page) this.port.send({ t: 'line', id: this.id, uuid: this.uuid, ms: l.ms, data: l.data });
      });
      if (page.length > 0) this.next = page[page.length - 1]!.seq + 1;
      if (page.length < CATCH_UP_PAGE) {
        // everything stored is sent: from here on the live lines, in the same turn, so none is missed
        this.catchingUp = false;
        if (this.ending) this.end(this.ending.result, this.ending.lines);
        return;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private flushSkipped(): void {
    if (this.skipped === 0) return;
    this.port.send({ t: 'skipped', id: this.id, uuid: this.uuid, count: this.skipped });
    this.skipped = 0;
  }
}
