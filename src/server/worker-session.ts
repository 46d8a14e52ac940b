// What the server knows about one connected, authenticated worker.
import type { Connection } from '../protocol/connection.js';

export interface WorkerSession {
  conn: Connection;
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
  w.draining || w.diskShort || w.conn.closed ? 0 : w.capacity - w.runs.size;
