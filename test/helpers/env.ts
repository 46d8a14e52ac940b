// Tests that need a real Docker engine or a btrfs file system skip with a clear message on a
// developer's machine, and fail in CI, where BUILDER_TEST_STRICT=1 is set by .ci/run.
//
// uvu counts a test that returns early as passed, so a skip also reports itself to the runner:
// test/run-all.ts names a file in BUILDER_TEST_SKIPS for each test file it runs, counts one skip
// per line written there, and takes that many from the file's passed tests.
import { appendFileSync } from 'node:fs';

export const strict = process.env.BUILDER_TEST_STRICT === '1';

/** Returns true when the test may go on; false (after recording the skip) when it must skip. */
export function need(what: string, available: boolean, hint: string): boolean {
  if (available) return true;
  if (strict) throw new Error(`${what} is required in CI (BUILDER_TEST_STRICT=1) but not available: ${hint}`);
  return skip(`${what} not available (${hint})`);
}

/** Records that the calling test did not run what it tests; the caller returns at once. */
export function skip(reason: string): false {
  const line = reason.replace(/\s+/g, ' ');
  console.log(`  SKIP: ${line}`);
  const file = process.env.BUILDER_TEST_SKIPS;
  if (file) appendFileSync(file, `${line}\n`);
  return false;
}
