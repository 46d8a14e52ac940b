// People watching a run. A slow observer loses lines (counted, and told how many) instead of
// making the server buffer without bound; the end of the run always reaches it.
import type { RunResult } from '../protocol/messages.js';
import type { ObserverPort } from './port.js';

const MAX_BACKLOG = 1 << 20;

export class Observer {
  private skipped = 0;
  constructor(readonly port: ObserverPort, readonly id: number, readonly uuid: string) {}

  get gone(): boolean {
    return this.port.closed;
  }

  started(job: string, platform: string): void {
    this.port.send({ t: 'started', id: this.id, uuid: this.uuid, job, platform });
  }

  line(ms: number, data: Buffer): void {
    if (this.port.backlog > MAX_BACKLOG) {
      this.skipped++;
      return;
    }
    this.flushSkipped();
    this.port.send({ t: 'line', id: this.id, uuid: this.uuid, ms, data });
  }

  end(result: RunResult): void {
    this.flushSkipped();
    this.port.send({ t: 'end', id: this.id, uuid: this.uuid, result });
  }

  private flushSkipped(): void {
    if (this.skipped === 0) return;
    this.port.send({ t: 'skipped', id: this.id, uuid: this.uuid, count: this.skipped });
    this.skipped = 0;
  }
}
