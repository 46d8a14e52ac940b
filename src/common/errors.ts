// Errors with a stable code. Only UsageError and BuilderError reach users as one line without a
// stack; anything else is a bug and keeps its stack.
export class BuilderError extends Error {
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BuilderError';
  }
}

/** Bad command line: exit status 2. */
export class UsageError extends BuilderError {
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'UsageError';
  }
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
