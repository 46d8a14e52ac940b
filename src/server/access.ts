// Which requests each credential may send. One table: the ops that only read. A reader token
// may send those; the admin token any; a worker token none (credentials.ts refuses its client
// hello). An op missing from the table needs the admin token, so a new op is closed to readers
// until someone decides it only reads.
import { BuilderError } from '../common/errors.js';
import type { Op } from '../protocol/replies.js';
import type { CredentialKind } from './credentials.js';

export const READ_ONLY_OPS: ReadonlySet<Op> = new Set<Op>([
  'info', 'info-summary', 'info-page', 'history', 'observe', 'observe-latest', 'workers', 'uploads', 'templates', 'render', 'compare', 'repro-record',
  // finished runs fetched from anywhere, and what a retention pass would delete
  'run-console', 'run-result', 'fetch-artifacts', 'prune-plan',
]);

/** Throws the refusal when `kind` may not send `op`. */
export function checkAccess(kind: CredentialKind, op: Op): void {
  if (kind === 'admin') return;
  if (kind === 'reader' && READ_ONLY_OPS.has(op)) return;
  throw new BuilderError('FORBIDDEN', `${op} needs the admin token; this ${kind} token may only read (${[...READ_ONLY_OPS].join(', ')})`);
}
