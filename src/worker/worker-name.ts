// A worker's name: shown in `workers` and `info`, and the prefix of everything its sandboxes
// create (containers, snapshots, clones, the --work-dir subdirectory), so a bad one is refused
// at start with a usage error rather than failing later in a backend.
import { UsageError } from '../common/errors.js';
import { checkName } from '../common/names.js';

export const MAX_WORKER_NAME_BYTES = 64;
/** jobs at once: more than this is a typo (1e15), not a machine */
export const MAX_CAPACITY = 1024;

export function checkWorkerName(name: string, given: boolean): string {
  const what = given ? `--name "${printable(name)}"` : `the default name "${printable(name)}" (HOSTNAME-PLATFORM; give --name)`;
  if (name === '') throw new UsageError('--name must not be empty');
  if (Buffer.byteLength(name) > MAX_WORKER_NAME_BYTES) throw new UsageError(`${what} is longer than ${MAX_WORKER_NAME_BYTES} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new UsageError(`${what} contains a character that is not printable`);
  try {
    checkName('job', name);
  } catch {
    throw new UsageError(`${what}: use letters, digits and . _ + - (not starting with a symbol)`);
  }
  return name;
}

/** The name as it can be shown on one line: control characters escaped. */
const printable = (s: string): string =>
  // eslint-disable-next-line no-control-regex
  s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
