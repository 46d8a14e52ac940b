// The contract every sandbox backend fulfils. A backend makes one Sandbox per job; the runner
// (src/worker/runner.ts) owns line splitting, timeouts and reporting, so backends only create,
// run, collect and destroy.
import type { RunResult, RunStats, Refusal, SandboxDescription, ScriptBytes } from '../../protocol/messages.js';

export interface JobSpec {
  uuid: string;
  name: string;
  platform: string;
  /** the script's bytes, written into the sandbox as they are */
  script: ScriptBytes;
  /** exactly the environment the script sees, nothing added from the worker's (build-env.ts) */
  env: Readonly<Record<string, string>>;
}

/** A file the job left behind, already on the worker's own file system. */
export interface ArtifactFile {
  /** relative to the job's directory, with '/' separators, never absolute, never '..' */
  path: string;
  /** where the worker can read it (inside the clone, snapshot, or a host copy) */
  hostPath: string;
  size: number;
  mode: number;
}

export interface ArtifactSet {
  files: ArtifactFile[];
  refusals: Refusal[];
}

/** How a script ended, as the sandbox saw it. Timeouts and cancels are decided by the runner. */
export type ExitStatus =
  | { kind: 'exited'; code: number }
  | { kind: 'signalled'; signal: number }
  | { kind: 'stopped'; signal: number };

export interface RunHandle {
  /** resolves when the script's process (tree) is gone */
  done: Promise<{ status: ExitStatus; stats: RunStats }>;
  /** kill everything inside the sandbox at once; safe to call twice */
  kill(): Promise<void>;
}

export interface Sandbox {
  /** for logs: the container id, clone name, snapshot path... */
  readonly id: string;
  /** starts the script; merged stdout+stderr bytes go to onOutput as they come */
  start(onOutput: (chunk: Buffer) => void): Promise<RunHandle>;
  /** the files the job left in its directory (not the script); called only after an exit */
  collect(): Promise<ArtifactSet>;
  /** removes every trace; must succeed after a kill, after a failed start, and when called twice */
  destroy(): Promise<void>;
  /**
   * What the job runs in, for the run's provenance (image and its digest, base snapshot). A
   * backend without it is described by its name alone.
   */
  describe?(): Promise<SandboxDescription>;
}

// InfraError (the sandbox could not be made, run or removed: the job is retried) lives with the
// other error classes; re-exported here for the sandbox backends.
export { InfraError, SandboxConfigError } from '../../common/errors.js';

export interface SandboxBackend {
  readonly name: string;
  /** makes a fresh sandbox for one job; throws InfraError when it cannot */
  prepare(job: JobSpec): Promise<Sandbox>;
  /**
   * Called once at worker start, before sweep: throws SandboxConfigError when the backend cannot
   * work as configured and waiting will not change that (the image, base subvolume or snapshot
   * does not exist), so the worker exits 78 instead of failing every job it takes. Other errors
   * (an engine not up yet) are thrown as they are: the worker exits 1 and is restarted.
   */
  check?(): Promise<void>;
  /** removes what a crashed predecessor left; returns one line per removed thing */
  sweep(): Promise<string[]>;
  /** the directory whose file system holds the sandboxes, for the free-space check */
  readonly storagePath: string;
  /**
   * Removes what this worker owns and no longer needs (leftover snapshots, clones, stopped
   * containers; never a running job's); returns one line per removed thing. Called when free
   * space is short (--min-free).
   */
  prune?(): Promise<string[]>;
  /** other directories whose file systems the backend fills (docker: the engine's data root) */
  diskPaths?(): Promise<string[]>;
}

export interface BackendOption {
  flag: string;           // e.g. '--image'
  value: string;          // e.g. 'IMAGE'
  description: string;
  default?: string;
}

export interface BackendContext {
  /** a name unique to this worker, used as prefix/label of everything it creates */
  workerId: string;
  /** where the worker may keep its own files */
  workDir: string;
  log: (line: string) => void;
}

export interface BackendFactory {
  name: string;
  description: string;
  options: BackendOption[];
  /** options by flag without dashes (e.g. { image: 'debian:12' }); throws a one-line error on bad values */
  create(options: Readonly<Record<string, string>>, ctx: BackendContext): SandboxBackend;
}

export type { RunResult, SandboxDescription };
