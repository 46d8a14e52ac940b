// When to try an upload again: exponential backoff with jitter, capped. The jitter keeps a
// backlog of results (builder-web down for an hour) from hitting it all in the same second.

/** Delay before attempt `attempt + 1`, after `attempt` failed ones (1, 2, ...). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  // "equal jitter": at least half the delay, so retries still back off, plus up to the other half
  return Math.round(exp / 2 + random() * (exp / 2));
}
