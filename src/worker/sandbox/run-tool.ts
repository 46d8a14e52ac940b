// Runs a system tool (zfs, jail, btrfs, mknod...) through execa and returns its stdout. A
// failure becomes a ToolError: an InfraError (the sandbox's fault, so the job is retried)
// carrying execa's facts, the command, its exit code or signal and the tool's own stderr,
// since those tools say best what went wrong.
import { execa, ExecaError } from 'execa';
import { InfraError } from './types.js';

/** the most a tool may print: `zfs list` of a big pool is the largest output we read */
const MAX_OUTPUT = 16 << 20;

export class ToolError extends InfraError {
  constructor(
    message: string,
    /** the command line as execa ran it, e.g. "zfs destroy -rf zroot/jails/x" */
    readonly command: string,
    /** undefined when the tool could not be started or was killed by a signal */
    readonly exitCode: number | undefined,
    readonly signal: string | undefined,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ToolError';
  }
}

/** the last lines of a tool's stderr are its reason; earlier ones are usually progress */
const tail = (text: string): string => text.trim().split('\n').slice(-3).join(' / ');

export function toolError(err: ExecaError): ToolError {
  const stderr = typeof err.stderr === 'string' ? err.stderr : '';
  const how =
    err.exitCode !== undefined ? `exit code ${err.exitCode}`
    : err.signal !== undefined ? `killed by ${err.signal}`
    : (err.code ?? 'failed to start');
  const why = tail(stderr) || err.originalMessage || err.shortMessage;
  return new ToolError(`${err.command}: ${how}: ${why}`, err.command, err.exitCode, err.signal, stderr, { cause: err });
}

/**
 * Runs `file args` and resolves to its stdout (without the final newline). With env, the tool
 * sees only that environment; without, the worker's.
 */
export async function runTool(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await execa(file, args, {
      ...(env ? { env, extendEnv: false } : {}),
      maxBuffer: MAX_OUTPUT,
      stdin: 'ignore',
    });
    return stdout;
  } catch (err) {
    if (err instanceof ExecaError) throw toolError(err);
    throw new InfraError(`${file} ${args.join(' ')}: ${(err as Error).message}`, { cause: err });
  }
}

/** what a tool printed on stderr when it failed, for callers that tell failures apart by it */
export const toolStderr = (err: unknown): string => (err instanceof ToolError ? err.stderr : '');
