// Event-loop stalls, measured from inside the server (BUILDER_STALL_LOG=1; off by default). A
// stall is time the loop spends on one piece of work while heartbeats, live consoles and requests
// wait: node's own histogram of timer lateness (perf_hooks.monitorEventLoopDelay) catches every
// one longer than its resolution, whatever caused it. One line per interval with the longest
// stall and the 99th percentile, so a bench (or an operator) can read the worst moment of a wave.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Logger } from '../common/log.js';

/** how often a line is written, and the histogram reset */
const INTERVAL_MS = 250;

/** Starts the monitor when BUILDER_STALL_LOG=1; returns its stop function (a no-op when off). */
export function startStallMonitor(log: Logger, env: NodeJS.ProcessEnv = process.env): () => void {
  if (env.BUILDER_STALL_LOG !== '1') return () => undefined;
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const timer = setInterval(() => {
    // nanoseconds; the resolution's own wait is part of every sample, so it is taken off
    const ms = (ns: number): number => Math.max(0, Math.round((ns / 1e6 - 5) * 10) / 10);
    log.info('event loop', { maxMs: ms(h.max), p99Ms: ms(h.percentile(99)) });
    h.reset();
  }, INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    h.disable();
  };
}
