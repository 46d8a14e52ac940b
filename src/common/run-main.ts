// The one exit policy of the four programs:
//   0 (or what the program returns)  done
//   2  a usage error: one line, ending with a hint to the usage text
//   1  a refusal (a BuilderError, from the server or local), or a file that cannot be read or
//      written (a Node system error: ENOENT, EACCES, EADDRINUSE...): one line, no stack
//   1  anything else is a bug: its message, then its stack
import { BuilderError, UsageError } from './errors.js';

/** An error of the system (a file, a socket), not of our code: an errno code such as ENOENT. */
const isSystemError = (err: unknown): err is NodeJS.ErrnoException =>
  err instanceof Error && /^E[A-Z0-9]+$/.test(String((err as NodeJS.ErrnoException).code));

/** Writes the error the way the policy says and returns the exit status for it. */
export function reportError(program: string, err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`${program}: ${err.message} (${err.hint ?? `try ${program} --help`})\n`);
    return 2;
  }
  if (err instanceof BuilderError || isSystemError(err)) {
    process.stderr.write(`${program}: ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`${program}: unexpected error (a bug): ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  return 1;
}

/**
 * Runs a program's main. A returned number is the exit status (once stdout has been flushed to
 * a pipe); returning nothing leaves the process running (a server, a worker).
 */
export function runMain(program: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      if (code === undefined) return;
      process.exitCode = code;
      process.stdout.write('', () => process.exit(code));
    },
    (err: unknown) => {
      const code = reportError(program, err);
      process.exitCode = code;
      process.stdout.write('', () => process.exit(code));
    },
  );
}
