// A clock for in-process tests: time moves only when the test says so, and the timers that
// fall due on the way run in order, each at its own time.
import type { ServerClock, TimerHandle } from '../../src/server/clock.js';

interface Pending { at: number; seq: number; fn: () => void }

export class FakeClock implements ServerClock {
  private timers = new Map<TimerHandle, Pending>();
  private seq = 0;

  constructor(private t: number) {}

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = { timer: this.seq } as unknown as TimerHandle;
    this.timers.set(handle, { at: this.t + Math.max(0, ms), seq: this.seq++, fn });
    return handle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.timers.delete(handle);
  }

  /** Moves time forward by ms, running every timer due by then, earliest first. */
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      let next: [TimerHandle, Pending] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at > until) continue;
        if (!next || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[1].seq < next[1].seq)) next = entry;
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = until;
  }

  /** How many timers are armed (a stopped coordinator leaves none behind). */
  get armed(): number {
    return this.timers.size;
  }
}
