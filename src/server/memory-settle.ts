// Memory given back once a burst is over (issue 9: after the attacks, memory back near its
// start). What a burst leaves behind is V8's heap: pages it grew into and left sparsely used
// (34 MB of them after the attack bench, for 15.5 MB of live objects). V8 gives such pages back
// when its memory reducer runs a compacting collection, which it does some seconds after a full
// collection if the process is idle by then: after the attack bench that happened within 15 s in
// some runs, and in others not, leaving the server 25 MB above its start.
// So the server watches itself: when its RSS has grown well above the lowest it has been and the
// event loop has gone quiet, it runs one full collection that compacts every page. Because that
// stops the loop for as long as moving the live heap takes, it runs only when idle, at most once
// per MIN_GAP_MS, and not again for memory that the last one could not give back (memory that is
// in use: 2,000 connected workers) until the server has been busy again or grown further.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ServerClock, TimerHandle } from './clock.js';

/** how often RSS and the event loop's utilisation are looked at */
export const CHECK_MS = 2_000;
/** growth above the lowest RSS seen that is worth a collection */
export const GROWTH_BYTES = 16 * 1024 * 1024;
/** the least time between two collections */
export const MIN_GAP_MS = 30_000;
/** utilisation of the event loop over one check below which the server counts as idle ... */
export const IDLE_UTILISATION = 0.05;
/** ... and above which as busy */
export const BUSY_UTILISATION = 0.25;

export interface MemorySettleDeps {
  clock: ServerClock;
  /** the process's resident set now, in bytes */
  rssBytes: () => number;
  /** the event loop's utilisation (0-1) since the last call */
  utilisation: () => number;
  /** one full, synchronous collection */
  collect: () => void;
  /** told after each collection: RSS before it and one check later, and how long it held the event loop */
  collected?: (beforeBytes: number, afterBytes: number, pauseMs: number) => void;
}

/** Starts watching; returns the stop function. */
export function startMemorySettle(deps: MemorySettleDeps): () => void {
  const { clock } = deps;
  let floor = Infinity;
  /** RSS measured one check after the last collection: what it could not give back */
  let afterLast: number | undefined;
  /** RSS just before the last collection, until the check after it has measured what it freed */
  let measureAfter: number | undefined;
  let pauseMs = 0;
  let busySinceLast = false;
  let lastAt = -Infinity;
  let timer: TimerHandle | undefined;
  let stopped = false;

  const check = (): void => {
    const rss = deps.rssBytes();
    const utilisation = deps.utilisation();
    floor = Math.min(floor, rss);
    if (measureAfter !== undefined) {
      afterLast = rss;
      deps.collected?.(measureAfter, rss, pauseMs);
      measureAfter = undefined;
    }
    if (utilisation >= BUSY_UTILISATION) busySinceLast = true;
    const grown = rss > floor + GROWTH_BYTES;
    const worthAgain = afterLast === undefined || busySinceLast || rss > afterLast + GROWTH_BYTES;
    if (grown && worthAgain && utilisation < IDLE_UTILISATION && clock.now() - lastAt >= MIN_GAP_MS) {
      const t0 = performance.now();
      deps.collect();
      pauseMs = performance.now() - t0;
      lastAt = clock.now();
      busySinceLast = false;
      measureAfter = rss;
    }
    if (!stopped) timer = clock.setTimeout(check, CHECK_MS);
  };
  timer = clock.setTimeout(check, CHECK_MS);
  return () => {
    stopped = true;
    clock.clearTimeout(timer);
  };
}

/**
 * A full collection that also compacts the whole old generation, so that the pages the burst
 * filled and left sparsely used are emptied and given back. A plain full collection (`gc()`)
 * compacts only the few most fragmented pages: after the attack bench it gave back 2-4 MB of
 * the 20 MB above the start, and the rest came back only when V8's own memory reducer happened
 * to run (in some runs within 15 s, in others not). Compacting everything costs a longer pause
 * (about 4 ms per MB of live heap here), which is why startMemorySettle runs it only when idle.
 *
 * `gc` is V8's own, as under --expose-gc: without that flag on node's command line (the
 * launchers do not give it) the flag is set now and the function taken from a new context, the
 * only place V8 then puts it; the flag is cleared again so that no later context gets one.
 * Compaction of every page is V8's --compact-on-every-full-gc, set around the call only.
 */
export function compactingCollection(): () => void {
  // found at the first collection, not at start: most servers never need one
  let gc: (() => void) | undefined;
  const find = (): (() => void) => {
    const exposed = (globalThis as { gc?: unknown }).gc;
    if (typeof exposed === 'function') return exposed as () => void;
    setFlagsFromString('--expose-gc');
    try {
      return runInNewContext('gc') as () => void;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  };
  return () => {
    gc ??= find();
    setFlagsFromString('--compact-on-every-full-gc');
    try {
      gc();
    } finally {
      setFlagsFromString('--no-compact-on-every-full-gc');
    }
  };
}
