// Who watches which run: observers of a live run (observe, observe-latest) and followers
// waiting for a job's next run to start (execute --follow). The run ledger feeds it lines and
// ends; the dispatcher tells it when a run starts.
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import type { RunResult } from '../protocol/messages.js';
import { Observer } from './observers.js';
import type { ObserverPort } from './port.js';
import type { Store } from './store/index.js';

interface Follower { port: ObserverPort; id: number; job: string; platforms: Set<string>; unsubscribe: () => void }

export interface WatchedRun { uuid: string; job: string; platform: string }

export class Observing {
  private readonly watching = new Map<string, Set<Observer>>();
  private readonly followers = new Set<Follower>();
  /** each observer's close listener on its connection, removed when its run ends */
  private readonly unsubscribe = new WeakMap<Observer, () => void>();

  constructor(private readonly store: Store, private readonly log: Logger) {}

  /** Watches a live run: what it printed so far, then every new line, then its end. */
  watch(port: ObserverPort, id: number, run: WatchedRun): void {
    this.attach(port, id, run).catchUp((from, limit) => this.store.views.consoleAfter(run.uuid, from - 1, limit)).catch((err: unknown) => {
      // a storage fault: the observer goes on with the live lines, told how many it missed
      this.log.warn(`cannot read the stored console of run ${run.uuid} for an observer: ${errorMessage(err)}`, { job: run.job });
    });
  }

  /** The next run of this job on one of these platforms will be watched from its start. */
  follow(port: ObserverPort, id: number, job: string, platforms: string[]): void {
    const f: Follower = { port, id, job, platforms: new Set(platforms), unsubscribe: () => undefined };
    this.followers.add(f);
    f.unsubscribe = port.onClose(() => this.followers.delete(f));
  }

  /** A run started: its job's followers on its platform watch it from here. */
  started(run: WatchedRun): void {
    for (const f of this.followers) {
      if (f.job !== run.job || !f.platforms.has(run.platform)) continue;
      this.followers.delete(f);
      f.unsubscribe();
      if (f.port.closed) continue;
      this.attach(f.port, f.id, run);
    }
  }

  /** New lines of a run, the first numbered seq: stored already (or kept while the disk is full). */
  lines(uuid: string, seq: number, lines: Array<[number, Buffer]>): void {
    const set = this.watching.get(uuid);
    if (set) for (const obs of set) obs.live(seq, lines);
  }

  /** The run ended, after printing `lines` lines. */
  ended(uuid: string, result: RunResult, lines: number): void {
    const set = this.watching.get(uuid);
    this.watching.delete(uuid);
    if (set) {
      for (const obs of set) {
        obs.end(result, lines);
        this.unsubscribe.get(obs)?.();
      }
    }
  }

  private attach(port: ObserverPort, id: number, run: WatchedRun): Observer {
    const obs = new Observer(port, id, run.uuid);
    obs.started(run.job, run.platform);
    let set = this.watching.get(run.uuid);
    if (!set) this.watching.set(run.uuid, (set = new Set()));
    set.add(obs);
    this.unsubscribe.set(obs, port.onClose(() => set.delete(obs)));
    return obs;
  }
}
