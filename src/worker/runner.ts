// Runs one job in one sandbox and decides its result. Line splitting, the time limit, the
// no-output limit, the output cap and cancellation live here once, for every backend. The
// caller cancels through an AbortSignal and gets back what the run made, the sandbox's
// teardown included: removing the sandbox is the caller's decision (the uplink keeps it
// until the server has acknowledged the result).
import { errorMessage } from '../common/errors.js';
import type { Job, Refusal, RunResult, RunStats } from '../protocol/messages.js';
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
  const ended = (e: Ending): RunOutcome => ({ ...e, teardown: teardown() });
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

  let silence: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  try {
    try {
      sandbox = await backend.prepare({
        uuid: job.uuid, name: job.name, platform: job.platform, script: job.script,
        env: { ...job.env, SOURCE_DATE_EPOCH: String(job.sourceDateEpoch) },
      });
    } catch (err) {
      return infra(err);
    }
    if (stopReason) return ended({ result: stopReason, stats: {}, artifacts: [], refusals: [] });

    const armSilence = (): void => {
      clearTimeout(silence);
      silence = setTimeout(() => stop({ kind: 'timeout', reason: `no output for ${Math.round(limits.noOutputTimeoutMs / 1000)} s` }),
        limits.noOutputTimeoutMs);
    };
    deadline = setTimeout(() => stop({ kind: 'timeout', reason: 'timeout' }), job.timeoutMs);
    armSilence();
    const handle = await sandbox.start((chunk) => {
      armSilence();
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
