// One wording for results, used by the server's log and by the client's tables.
import type { RunResult } from './messages.js';

export function describeResult(r: RunResult): string {
  switch (r.kind) {
    case 'exited': return `exited ${r.code}`;
    case 'signalled': return `killed by signal ${r.signal}`;
    case 'stopped': return `stopped by signal ${r.signal}`;
    case 'timeout': return r.reason === 'timeout' ? 'timeout' : `timeout (${r.reason})`;
    case 'cancelled': return `cancelled (${r.reason})`;
    case 'failed': return `${r.infra ? 'infrastructure failure' : 'failed'}: ${r.message}`;
    default: {
      const never: never = r;
      return String(never);
    }
  }
}

/** The exit status a CLI reports for a run it followed: the script's own when it exited. */
export function exitStatusOf(r: RunResult): number {
  if (r.kind === 'exited') return r.code;
  if (r.kind === 'signalled' || r.kind === 'stopped') return 128 + r.signal;
  return 1;
}
