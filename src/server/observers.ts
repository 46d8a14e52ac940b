// People watching a run. A slow observer loses lines (counted, and told how many) instead of
// making the server buffer without bound; the end of the run always reaches it.
import type { Connection } from '../protocol/connection.js';
import type { RunResult } from '../protocol/messages.js';

const MAX_BACKLOG = 1 << 20;

export class Observer {
  private skipped = 0;
  constructor(readonly conn: Connection, readonly id: number, readonly uuid: string) {}

  get gone(): boolean {
    return this.conn.closed;
  }

  started(job: string, platform: string): void {
    this.conn.send({ t: 'started', id: this.id, uuid: this.uuid, job, platform });
  }

  line(ms: number, data: Buffer): void {
    if (this.conn.backlog > MAX_BACKLOG) {
      this.skipped++;
      return;
    }
    this.flushSkipped();
    this.conn.send({ t: 'line', id: this.id, uuid: this.uuid, ms, data });
  }

  end(result: RunResult): void {
    this.flushSkipped();
    this.conn.send({ t: 'end', id: this.id, uuid: this.uuid, result });
  }

  private flushSkipped(): void {
    if (this.skipped === 0) return;
    this.conn.send({ t: 'skipped', id: this.id, uuid: this.uuid, count: this.skipped });
    this.skipped = 0;
  }
}
