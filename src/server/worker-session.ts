// What the server knows about one connected, authenticated worker.
import type { Port } from './port.js';

export interface WorkerSession {
  port: Port;
  /** the worker's address, as shown by `workers` */
  peer: string;
  name: string;
  platform: string;
  capacity: number;
  runs: Set<string>;
  draining: boolean;
  diskShort: boolean;
  freePercent: number | undefined;
  sandbox: string | undefined;
  since: number;
}

export const freeSlots = (w: WorkerSession): number =>
  w.draining || w.diskShort || w.port.closed ? 0 : w.capacity - w.runs.size;
