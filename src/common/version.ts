// The package's version, for `--version` in the four programs. Read from the package.json that
// ships beside the compiled code (the repository's, or PREFIX/lib/builder/package.json of an
// installed package), so one number is kept in one place.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// dist/src/common/version.js -> the package root is three levels up
const PACKAGE_JSON = fileURLToPath(new URL('../../../package.json', import.meta.url));

let cached: string | undefined;
export function packageVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: unknown };
      cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}

/** What `PROGRAM --version` prints: the program and the package version, one line. */
export const versionLine = (program: string): string => `${program} ${packageVersion()}`;
