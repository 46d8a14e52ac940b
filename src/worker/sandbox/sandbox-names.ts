// Names of the things a backend makes per job (a jail, a ZFS clone, a btrfs snapshot, a
// container), derived from the worker's name. A worker's default name is HOSTNAME-PLATFORM, and
// a host name has dots, which jail(8) reads as a child jail's path ("a.b" is b inside a) and
// refuses; a platform may have "+" or ".", which Docker refuses in a container name. So the
// worker's part is kept to [A-Za-z0-9_-] and bounded, with a digest of the full name when it had
// to be changed, so two workers never share a prefix (and so never sweep each other's).
import { createHash } from 'node:crypto';

const SAFE = /^[A-Za-z0-9_-]{1,40}$/;
/** what a uuid (or a test's short id without a dash) looks like after the prefix */
const OWN_REST = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[A-Za-z0-9_]+)$/;

/** "builder-ID-": ID is the worker's name when safe, else a cleaned, shortened form plus a digest. */
export function sandboxPrefix(workerId: string): string {
  if (SAFE.test(workerId)) return `builder-${workerId}-`;
  const cleaned = workerId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
  const digest = createHash('sha256').update(workerId).digest('hex').slice(0, 8);
  return `builder-${cleaned}-${digest}-`;
}

/** The name for one job's sandbox: only [A-Za-z0-9_-], whatever the job's uuid came as. */
export const sandboxName = (prefix: string, uuid: string): string => prefix + uuid.replace(/[^A-Za-z0-9_-]/g, '_');

/**
 * True when `name` is one of this worker's sandboxes, not another worker's whose name merely
 * starts the same ("w1" and "w1-x"): what follows the prefix must be a job's id alone.
 */
export const isOwnSandbox = (name: string, prefix: string): boolean =>
  name.startsWith(prefix) && OWN_REST.test(name.slice(prefix.length));
