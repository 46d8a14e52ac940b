// The stored result's types: what run.json holds and the rows it is written from. The store
// keeps artifacts and console lines in these shapes too, so a row goes to disk unconverted.
import type { RunResult, SandboxDescription } from '../protocol/messages.js';
import type { RunCore } from '../protocol/replies.js';

/** One artifact as stored: its path under artifacts/, and what was checked on arrival. */
export interface ArtifactRow { path: string; size: number; mode: number; sha256: string }

/** One console line: its sequence number in the run, milliseconds since the start, raw bytes. */
export interface ConsoleRow { seq: number; ms: number; data: Buffer }

/** run.json: everything about a run except its script, console and artifact bytes. */
export interface RunMeta extends RunCore {
  finished: string;
  result: RunResult;
  artifacts: ArtifactRow[];
  /** what the run ran in, as its worker described it (absent when it never reported one) */
  sandbox?: SandboxDescription;
}
