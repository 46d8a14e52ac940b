// A run this worker holds until the server has acknowledged its result: the console lines the
// server may not have yet (bounded), the result, and the sandbox to destroy at the end.
import type { RunResult, RunStats, Refusal } from '../protocol/messages.js';
import type { ArtifactFile, Sandbox } from './sandbox/types.js';

const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface Ending {
  result: RunResult;
  stats: RunStats;
  artifacts: ArtifactFile[];
  refusals: Refusal[];
}

export class HeldRun {
  /** lines not known to be stored by the server: [seq, ms, data] */
  private buffer: Array<[number, number, Buffer]> = [];
  /** index of the oldest kept line: dropping from the front by shift() would be O(n) per line */
  private head = 0;
  private bufferedBytes = 0;
  nextSeq = 0;
  ending: Ending | undefined;
  sandbox: Sandbox | undefined;
  cancel: ((reason: string) => void) | undefined;
  readonly started = Date.now();

  constructor(readonly uuid: string, readonly name: string) {}

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
