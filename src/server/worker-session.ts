// What the server knows about one connected, authenticated worker.
import type { Port } from './port.js';

export interface WorkerSession {
  port: Port;
  /** the worker's address, as shown by `workers` */
  peer: string;
  name: string;
  platform: string;
  capacity: number;
  /** its runs the server holds: running, or finished and being stored (until their ack) */
  runs: Set<string>;
  /**
   * those of runs whose result has arrived and is being stored: the worker has ended them, so
   * their slots take new jobs meanwhile (at most capacity of them, so a disk that stores slowly
   * holds back dispatch rather than piling up kept sandboxes on the worker)
   */
  storing: Set<string>;
  draining: boolean;
  diskShort: boolean;
  freePercent: number | undefined;
  sandbox: string | undefined;
  since: number;
}

export const freeSlots = (w: WorkerSession): number =>
  w.draining || w.diskShort || w.port.closed ? 0 : w.capacity - w.runs.size + Math.min(w.storing.size, w.capacity);
