// Runs one job in one sandbox and decides its result. Line splitting, the time limit, the
// no-output limit, the output cap and cancellation live here once, for every backend. The
// caller cancels through an AbortSignal and gets back what the run made, the sandbox's
// teardown included: removing the sandbox is the caller's decision (the uplink keeps it
// until the server has acknowledged the result).
import { errorMessage } from '../common/errors.js';
import type { Job, Refusal, RunResult, RunStats, SandboxDescription } from '../protocol/messages.js';
import { buildEnv } from './build-env.js';
import { LineSplitter } from './line-splitter.js';
import type { ArtifactFile, Sandbox, SandboxBackend } from './sandbox/types.js';

export interface RunLimits {
  noOutputTimeoutMs: number;
  /** console bytes kept per run; the rest is counted and reported in one marker line */
  outputCapBytes: number;
}

/** How a run ended and what it left. */
export interface Ending {
  result: RunResult;
  stats: RunStats;
  artifacts: ArtifactFile[];
  refusals: Refusal[];
  /** what the run ran in (for provenance); undefined when no sandbox was made */
  sandbox?: SandboxDescription;
}

export interface RunOutcome extends Ending {
  /** removes the sandbox (its artifacts with it); undefined when none was made */
  teardown: (() => Promise<void>) | undefined;
}

export interface RunOptions {
  backend: SandboxBackend;
  job: Job;
  limits: RunLimits;
  /** aborting it cancels the run; its reason (a string) becomes the cancel's reason */
  signal: AbortSignal;
  /** each console line (without its newline), in order, as it comes */
  onLine: (data: Buffer) => void;
}

const reasonOf = (signal: AbortSignal): string =>
  typeof signal.reason === 'string' ? signal.reason : errorMessage(signal.reason);

export async function runJob({ backend, job, limits, signal, onLine }: RunOptions): Promise<RunOutcome> {
  let outputBytes = 0;
  let droppedBytes = 0;
  const splitter = new LineSplitter((line) => {
    if (outputBytes + line.length > limits.outputCapBytes) {
      droppedBytes += line.length + 1;
      return;
    }
    outputBytes += line.length + 1;
    onLine(line);
  });

  let sandbox: Sandbox | undefined;
  const teardown = (): (() => Promise<void>) | undefined => (sandbox ? () => sandbox!.destroy() : undefined);
  let described: SandboxDescription | undefined;
  const ended = (e: Ending): RunOutcome => ({ ...e, ...(described ? { sandbox: described } : {}), teardown: teardown() });
  // whatever goes wrong outside the script itself is the sandbox's fault, not the build's
  const infra = (err: unknown): RunOutcome =>
    ended({ result: { kind: 'failed', message: errorMessage(err), infra: true }, stats: {}, artifacts: [], refusals: [] });

  let stopReason: RunResult | undefined;
  let kill: (() => Promise<void>) | undefined;
  const stop = (r: RunResult): void => {
    if (stopReason) return;
    stopReason = r;
    void kill?.();
  };
  const onAbort = (): void => stop({ kind: 'cancelled', reason: reasonOf(signal) });
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });

  // SOURCE_DATE_EPOCH and the job's own variables (secrets) come with the job; buildEnv() checks
  // them and fills in SOURCE_DATE_EPOCH for a server that sends none
  let env: Record<string, string>;
  try {
    env = buildEnv({ ...job, sourceDateEpoch: job.sourceDateEpoch, extraEnv: job.env }, Date.now());
  } catch (err) {
    // the same job would fail the same way on any worker: the build's fault, not retried
    return ended({ result: { kind: 'failed', message: errorMessage(err), infra: false }, stats: {}, artifacts: [], refusals: [] });
  }

  let silence: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  try {
    try {
      sandbox = await backend.prepare({ uuid: job.uuid, name: job.name, platform: job.platform, script: job.script, env });
    } catch (err) {
      return infra(err);
    }
    // described before the run, so it names what the job started from, whatever the job does
    described = await describeSandbox(sandbox, backend.name);
    if (stopReason) return ended({ result: stopReason, stats: {}, artifacts: [], refusals: [] });

    deadline = setTimeout(() => stop({ kind: 'timeout', reason: 'timeout' }), job.timeoutMs);
    silence = setTimeout(() => stop({ kind: 'timeout', reason: `no output for ${Math.round(limits.noOutputTimeoutMs / 1000)} s` }),
      limits.noOutputTimeoutMs);
    const handle = await sandbox.start((chunk) => {
      // one timer per run, pushed back by each chunk (refresh), not a new one per chunk
      silence?.refresh();
      splitter.push(chunk);
    });
    kill = handle.kill;
    if (stopReason) void kill();
    const { status, stats } = await handle.done;
    splitter.end();
    if (droppedBytes > 0) onLine(Buffer.from(`[builder: output cap of ${limits.outputCapBytes} bytes reached; ${droppedBytes} bytes dropped]`));
    const result: RunResult = stopReason ?? status;
    if (result.kind !== 'exited') return ended({ result, stats, artifacts: [], refusals: [] });
    try {
      const { files, refusals } = await sandbox.collect();
      return ended({ result, stats, artifacts: files, refusals });
    } catch (err) {
      return ended({ result, stats, artifacts: [], refusals: [{ path: '*', reason: `cannot collect artifacts: ${errorMessage(err)}` }] });
    }
  } catch (err) {
    return infra(err);
  } finally {
    clearTimeout(deadline);
    clearTimeout(silence);
    signal.removeEventListener('abort', onAbort);
  }
}

/** The sandbox's own description; failing to get one costs the provenance detail, not the run. */
async function describeSandbox(sandbox: Sandbox, kind: string): Promise<SandboxDescription> {
  if (!sandbox.describe) return { kind };
  try {
    return await sandbox.describe();
  } catch {
    return { kind };
  }
}
