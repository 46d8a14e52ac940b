// A run this worker keeps until the server has acknowledged its result: the console lines the
// server may not have yet (bounded), the result once the runner has it, and the sandbox's
// teardown, done only after the ack (or when the run is dropped). Owned by the uplink; the
// runner never sees it (it only takes an AbortSignal and returns what it made).
import type { Ending } from './runner.js';

const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export class KeptRun {
  /** lines not known to be stored by the server: [seq, ms, data] */
  private buffer: Array<[number, number, Buffer]> = [];
  /** index of the oldest kept line: dropping from the front by shift() would be O(n) per line */
  private head = 0;
  private bufferedBytes = 0;
  nextSeq = 0;
  /** the result, once the runner has returned */
  ending: Ending | undefined;
  /** removes the run's sandbox; set when the runner returns */
  teardown: (() => Promise<void>) | undefined;
  /** settles when the runner has returned and what follows is done (a dropped run torn down) */
  settled: Promise<void> = Promise.resolve();
  /** aborted to cancel the run (a cancel from the server, a dropped run, a hard stop) */
  readonly stop = new AbortController();

  /** the run's secret from its job message, shown to the server to re-attach the run */
  secret: string | undefined;

  constructor(readonly uuid: string, readonly name: string, readonly started: number) {}

  addLine(ms: number, data: Buffer): [number, number, Buffer] {
    const entry: [number, number, Buffer] = [this.nextSeq++, ms, data];
    this.buffer.push(entry);
    this.bufferedBytes += data.length + 32;
    // oldest first: those are the ones most likely already stored by the server
    while (this.bufferedBytes > MAX_BUFFERED_BYTES && this.buffer.length - this.head > 1) {
      const dropped = this.buffer[this.head++]!;
      this.bufferedBytes -= dropped[2].length + 32;
    }
    if (this.head > 4096 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    return entry;
  }

  /** Lines after the server's last stored one, to send again after a re-attach. */
  linesAfter(haveSeq: number): Array<[number, number, Buffer]> {
    const kept = this.buffer.slice(this.head);
    const first = kept.findIndex(([seq]) => seq > haveSeq);
    return first < 0 ? [] : kept.slice(first);
  }
}
