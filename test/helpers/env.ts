// Tests that need a real Docker engine or a btrfs file system skip with a clear message on a
// developer's machine, and fail in CI, where BUILDER_TEST_STRICT=1 is set by .ci/run.
export const strict = process.env.BUILDER_TEST_STRICT === '1';

/** Returns true when the test may go on; false (after saying why) when it must skip. */
export function need(what: string, available: boolean, hint: string): boolean {
  if (available) return true;
  if (strict) throw new Error(`${what} is required in CI (BUILDER_TEST_STRICT=1) but not available: ${hint}`);
  console.log(`  SKIP: ${what} not available (${hint})`);
  return false;
}
