// Runs a command as the leader of a new process group with stdout and stderr merged into one
// socket (output-channel.ts), so that output keeps its order and one kill reaches every process
// the script started.
//
// This is node:child_process, not execa (which runs every other tool, see run-tool.ts), on
// purpose: execa's `all` merges two pipes in this process, where a line written to stderr can
// be read before an earlier stdout line, while one pipe shared by both descriptors in the child
// keeps the kernel's order byte for byte, and execa has no option for that. The rest of what
// execa adds does not apply to a job either: a non-zero exit is the build's result, not an
// error; output is streamed as it comes, never buffered (maxBuffer would cut a long build); and
// its kill and cancelSignal end the one child, where we must signal the whole group (-pgid).
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { outputChannels } from './output-channel.js';
import { sampleTree } from './proc-stats.js';
import type { ExitStatus, RunHandle } from './types.js';
import { InfraError } from './types.js';

const signalNumber = (name: NodeJS.Signals): number => constants.signals[name] ?? 0;

export interface GroupCommand {
  file: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** the file mode creation mask (octal digits) the command starts with */
  umask?: string;
}

export function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

export async function spawnGroup(cmd: GroupCommand, onOutput: (chunk: Buffer) => void): Promise<RunHandle> {
  if (cmd.umask !== undefined && !/^[0-7]{3,4}$/.test(cmd.umask)) throw new InfraError(`umask must be 3 or 4 octal digits, got "${cmd.umask}"`);
  // stdout and stderr are one socket (output-channel.ts), so lines are never reordered between the two
  const cannotStart = (err: unknown): InfraError =>
    new InfraError(`cannot start ${cmd.file}: ${(err as Error).message}`, { cause: err });
  const { childEnd, ourEnd } = await outputChannels.pair().catch((err: unknown) => Promise.reject(cannotStart(err)));
  let child: ChildProcess;
  // the child inherits the umask at fork: set for the spawn only (it is synchronous up to the
  // child's exec), so the worker's own files keep the worker's
  const before = cmd.umask !== undefined ? process.umask(parseInt(cmd.umask, 8)) : undefined;
  try {
    child = spawn(cmd.file, cmd.args, {
      cwd: cmd.cwd,
      env: cmd.env ?? process.env,
      detached: true,
      stdio: ['ignore', childEnd, childEnd],
    });
  } catch (err) {
    ourEnd.destroy();
    throw cannotStart(err);
  } finally {
    if (before !== undefined) process.umask(before);
    // the child has its own copies; ours would keep the output open after the child ended
    childEnd.destroy();
  }
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      ourEnd.destroy();
      reject(cannotStart(err));
    });
    child.once('spawn', () => {
      const pgid = child.pid!;
      const stats = sampleTree(pgid);
      ourEnd.on('data', onOutput);
      // a read error ends the output like its end does; the run's status comes from the exit
      ourEnd.on('error', () => undefined);
      const exited = new Promise<ExitStatus>((res) => {
        child.once('exit', (code, signal) => {
          // what the script left running in the background must not outlive it
          killGroup(pgid);
          res(signal ? { kind: 'signalled', signal: signalNumber(signal) } : { kind: 'exited', code: code ?? 0 });
        });
      });
      // the output has ended when every process that held the child's end closed it
      const closed = new Promise<void>((res) => ourEnd.once('close', () => res()));
      const done = (async () => {
        const status = await exited;
        await closed;
        return { status, stats: await stats.stop() };
      })();
      resolve({
        done,
        kill: async () => {
          killGroup(pgid);
          await closed;
        },
      });
    });
  });
}
