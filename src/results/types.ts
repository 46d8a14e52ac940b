// The stored result's types: what run.json holds and the rows it is written from. The store
// keeps artifacts and console lines in these shapes too, so a row goes to disk unconverted.
import type { Refusal, RunResult, RunStats, SandboxDescription } from '../protocol/messages.js';

/** One artifact as stored: its path under artifacts/, and what was checked on arrival. */
export interface ArtifactRow { path: string; size: number; mode: number; sha256: string }

/** One console line: its sequence number in the run, milliseconds since the start, raw bytes. */
export interface ConsoleRow { seq: number; ms: number; data: Buffer }

/** run.json: everything about a run except its script, console and artifact bytes. */
export interface RunMeta {
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  attempt: number;
  started: string;
  finished: string;
  result: RunResult;
  stats: RunStats;
  refusals: Refusal[];
  artifacts: ArtifactRow[];
  /** what the run ran in, as its worker described it (absent when it never reported one) */
  sandbox?: SandboxDescription;
}
