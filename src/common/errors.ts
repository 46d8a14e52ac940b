// Errors with a stable code. A BuilderError reaches users as one line without a stack (exit 1,
// or 2 for a UsageError; see run-main.ts); anything else is a bug and keeps its stack.

/**
 * Every code the tree uses. Refusals cross the wire as their code (a plain string there, since a
 * newer server may know more codes): a client turns a code it does not know into REMOTE.
 */
export const ERROR_CODES = [
  // command line and local files
  'USAGE', 'USAGE_UUID', 'TOKEN', 'BAD_INPUT', 'BAD_RESULT', 'NOT_FOUND',
  // connection, hello and frames
  'CONNECT', 'TIMEOUT', 'AUTH', 'VERSION', 'PROTOCOL', 'FRAME_TOO_LARGE', 'FRAME_EMPTY', 'FRAME_NOT_MESSAGE', 'REMOTE',
  // refusals of requests
  'BAD_REQUEST', 'BAD_NAME', 'BAD_TIME', 'BAD_TIMEOUT', 'BAD_TIMING', 'BAD_UUID', 'BAD_TEMPLATE', 'NO_TEMPLATE',
  'NAME_USED', 'NO_JOB', 'NO_PLATFORM', 'NO_RUN', 'NO_WORKER', 'DROPPED', 'NOT_DROPPED', 'INTERNAL',
  // uploads and the builder-web format
  'BUILDER_WEB_FORMAT', 'NO_UPLOADS', 'UPLOAD_URL', 'ALREADY_UPLOADED', 'NOT_A_BUILD',
  // server state and worker sandboxes
  'STORE', 'SANDBOX_INFRA',
  // reproducibility: comparisons, diff reports, provenance and its signing key
  'BAD_ARTIFACTS', 'DIFF', 'PROVENANCE', 'KEY',
  'BAD_SECRET', 'BAD_EPOCH', // templated jobs' environment: secrets and SOURCE_DATE_EPOCH (issue 8)
  'NO_REFERENCE', // reproducibility tracking: verify finds no successful run to compare a rebuild with
  'FORBIDDEN', 'TLS', // credentials per role and encrypted links (issue 9)
  'SANDBOX_CONFIG', // issue 14, operations: a worker's sandbox cannot work as configured (no image, base or snapshot): exit 78
  'DISK_FULL', // faults and storage (issue 9): the state directory's disk refused a change; nothing was changed
  'NOT_STORED', 'NO_ARTIFACT', 'FETCH', 'NO_RETENTION', // finished runs fetched remotely, retention (issue 14)
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN = new Set<string>(ERROR_CODES);
export const isErrorCode = (code: string): code is ErrorCode => KNOWN.has(code);
/** A code as it came over the wire: ours, or REMOTE for one this program does not know. */
export const errorCodeFromWire = (code: string): ErrorCode => (isErrorCode(code) ? code : 'REMOTE');

export class BuilderError extends Error {
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BuilderError';
  }
}

/** Bad command line: exit status 2. `hint` replaces the default "try PROGRAM --help". */
export class UsageError extends BuilderError {
  readonly hint: string | undefined;
  constructor(message: string, options?: { hint?: string }) {
    super('USAGE', message);
    this.name = 'UsageError';
    this.hint = options?.hint;
  }
}

/** A sandbox could not be made or torn down: the job is retried elsewhere, not blamed. */
export class InfraError extends BuilderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SANDBOX_INFRA', message, options);
    this.name = 'InfraError';
  }
}

/**
 * A sandbox backend that cannot work as configured (its image, base subvolume or snapshot does
 * not exist): the worker exits 78 (EX_CONFIG) at start instead of failing every job.
 */
export class SandboxConfigError extends BuilderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SANDBOX_CONFIG', message, options);
    this.name = 'SandboxConfigError';
  }
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
