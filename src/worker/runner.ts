// Runs one job in one sandbox and decides its result. Line splitting, the time limit, the
// no-output limit, the output cap and cancellation live here once, for every backend.
import { errorMessage } from '../common/errors.js';
import type { Job, RunResult } from '../protocol/messages.js';
import { buildEnv } from './build-env.js';
import type { Ending, HeldRun } from './held-run.js';
import { LineSplitter } from './line-splitter.js';
import type { SandboxBackend } from './sandbox/types.js';

export interface RunLimits {
  noOutputTimeoutMs: number;
  /** console bytes kept per run; the rest is counted and reported in one marker line */
  outputCapBytes: number;
}

export type LineSink = (seq: number, ms: number, data: Buffer) => void;

export async function runJob(backend: SandboxBackend, job: Job, held: HeldRun, limits: RunLimits, sink: LineSink): Promise<Ending> {
  const t0 = held.started;
  let outputBytes = 0;
  let droppedBytes = 0;
  const emit = (data: Buffer): void => {
    const [seq, ms] = held.addLine(Date.now() - t0, data);
    sink(seq, ms, data);
  };
  const splitter = new LineSplitter((line) => {
    if (outputBytes + line.length > limits.outputCapBytes) {
      droppedBytes += line.length + 1;
      return;
    }
    outputBytes += line.length + 1;
    emit(line);
  });

  // whatever goes wrong outside the script itself is the sandbox's fault, not the build's
  const infra = (err: unknown): Ending => ({
    result: { kind: 'failed', message: errorMessage(err), infra: true },
    stats: {}, artifacts: [], refusals: [],
  });

  let stopReason: RunResult | undefined;
  let kill: (() => Promise<void>) | undefined;
  const stop = (r: RunResult): void => {
    if (stopReason) return;
    stopReason = r;
    void kill?.();
  };
  held.cancel = (reason) => stop({ kind: 'cancelled', reason });

  // SOURCE_DATE_EPOCH and the job's own variables (secrets) come with the job from servers
  // speaking protocol version 2 on; buildEnv() checks them and fills in for older servers
  const sent = job as { sourceDateEpoch?: number; env?: Record<string, string> };
  let env: Record<string, string>;
  try {
    env = buildEnv({ ...job, sourceDateEpoch: sent.sourceDateEpoch, extraEnv: sent.env }, t0);
  } catch (err) {
    // the same job would fail the same way on any worker: the build's fault, not retried
    return { result: { kind: 'failed', message: errorMessage(err), infra: false }, stats: {}, artifacts: [], refusals: [] };
  }
  try {
    held.sandbox = await backend.prepare({ uuid: job.uuid, name: job.name, platform: job.platform, script: job.script, env });
  } catch (err) {
    return infra(err);
  }
  if (stopReason) return { result: stopReason, stats: {}, artifacts: [], refusals: [] };

  let silence: NodeJS.Timeout | undefined;
  const armSilence = (): void => {
    clearTimeout(silence);
    silence = setTimeout(() => stop({ kind: 'timeout', reason: `no output for ${Math.round(limits.noOutputTimeoutMs / 1000)} s` }),
      limits.noOutputTimeoutMs);
  };
  const deadline = setTimeout(() => stop({ kind: 'timeout', reason: 'timeout' }), job.timeoutMs);
  armSilence();
  try {
    const handle = await held.sandbox.start((chunk) => {
      armSilence();
      splitter.push(chunk);
    });
    kill = handle.kill;
    if (stopReason) void kill();
    const { status, stats } = await handle.done;
    splitter.end();
    if (droppedBytes > 0) emit(Buffer.from(`[builder: output cap of ${limits.outputCapBytes} bytes reached; ${droppedBytes} bytes dropped]`));
    const result: RunResult = stopReason ?? status;
    if (result.kind !== 'exited') return { result, stats, artifacts: [], refusals: [] };
    try {
      const { files, refusals } = await held.sandbox.collect();
      return { result, stats, artifacts: files, refusals };
    } catch (err) {
      return { result, stats, artifacts: [], refusals: [{ path: '*', reason: `cannot collect artifacts: ${errorMessage(err)}` }] };
    }
  } catch (err) {
    return infra(err);
  } finally {
    clearTimeout(deadline);
    clearTimeout(silence);
  }
}
