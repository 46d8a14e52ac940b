// A finished run's console lines leave the database once its result's file holds them. They used
// to be deleted in the transaction that finishes the run, which held the event loop for 0.55 s
// for a console at a worker's default cap (64 MiB: 330,000 lines of 200 bytes): everyone's
// requests, heartbeats and live consoles waited. They are deleted here instead, SWEEP_LINES per
// turn of the event loop, once run:finished has said the run is stored. Until then readers of a
// finished run's console already go to its file (web view, `console`, observers), so lines still
// in the database are never shown twice. A crash mid-way leaves lines behind: at start, every run
// with lines in the database that is not running is swept too.
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ServerEvents } from './events.js';
import { isStorageFault, type Store } from './store/index.js';

/** lines deleted per turn of the event loop (some 8 ms here) */
export const SWEEP_LINES = 5_000;
/** how long a sweep waits after the disk refused a delete */
export const SWEEP_RETRY_MS = 2_000;

export class ConsoleSweeper {
  private readonly queue: string[] = [];
  private sweeping = false;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Store, events: ServerEvents, private readonly log: Logger) {
    this.unsubscribe = events.on('run:finished', (run) => this.add(run.uuid));
    for (const uuid of store.runsWithLines()) {
      if (store.run(uuid)?.state !== 'running') this.add(uuid);
    }
  }

  /** Runs whose lines are still to go (tests look). */
  get pending(): number {
    return this.queue.length;
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
  }

  private add(uuid: string): void {
    this.queue.push(uuid);
    if (!this.sweeping) void this.sweep();
  }

  private async sweep(): Promise<void> {
    this.sweeping = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const uuid = this.queue[0]!;
        try {
          if (this.store.dropFirstLines(uuid, SWEEP_LINES) < SWEEP_LINES) this.queue.shift();
        } catch (err) {
          if (!isStorageFault(err)) {
            // not the disk: this run's lines stay (until the next start), the others still go
            this.log.error('cannot delete a finished run\'s console lines from the database', { run: uuid, error: errorMessage(err) });
            this.queue.shift();
          }
          await new Promise((resolve) => setTimeout(resolve, SWEEP_RETRY_MS).unref());
          continue;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.sweeping = false;
    }
  }
}
