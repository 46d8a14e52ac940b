// Runs a system tool (btrfs, zfs, jail...) and returns its stdout; a failure becomes an
// InfraError carrying the tool's own stderr, since those tools say best what went wrong.
import { execFile } from 'node:child_process';
import { InfraError } from './types.js';

export interface ToolError extends InfraError {
  stderr: string;
}

export function runTool(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: env ?? process.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const text = (stderr || err.message).trim().split('\n').slice(-3).join(' / ');
      const e = new InfraError(`${file} ${args.join(' ')}: ${text}`, { cause: err }) as ToolError;
      e.stderr = stderr;
      reject(e);
    });
  });
}
