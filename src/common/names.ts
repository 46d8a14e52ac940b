// Job and platform names become directory names and log scopes, so they are kept to a safe set.
import { BuilderError } from './errors.js';
import { quote } from './quote.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export function checkName(kind: 'job' | 'platform', name: string): string {
  if (!NAME.test(name)) {
    throw new BuilderError(
      'BAD_NAME',
      `invalid ${kind} name ${quote(name)}: use letters, digits and . _ + - (up to 128, not starting with a symbol)`,
    );
  }
  return name;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const isUuid = (s: string): boolean => UUID.test(s);

/** The checks every artifact path must pass, wherever it came from (a walk, a tar stream, the wire). */
export function artifactPathProblem(path: string): string | undefined {
  if (path === '' || path.includes('\0')) return 'empty path or NUL byte';
  if (path.startsWith('/')) return 'absolute path';
  if (path.split('/').some((part) => part === '..')) return 'path contains ".."';
  return undefined;
}
