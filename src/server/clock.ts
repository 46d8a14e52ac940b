// Time as the coordinator sees it: the current time and timers, injectable so leases,
// deadlines and retry back-off can be tested in-process with a fake clock. The scheduler's
// Clock (now only) is a subset of this one.
export type TimerHandle = { readonly timer: unique symbol };

export interface ServerClock {
  now(): number;
  /** a timer that does not keep the process alive (all the server's timers are such) */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const systemClock: ServerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t as unknown as TimerHandle;
  },
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout | undefined),
};
