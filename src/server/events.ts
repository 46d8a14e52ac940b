// What happens in the server that several parts need to hear of, as typed events. The
// coordinator emits; the uploader listens to run:finished, and so will reproducibility
// tracking, provenance, metrics and a web view. Listeners run synchronously, after the change
// is stored, and a listener that throws is logged without stopping the others or the emitter.
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import type { RunResult } from '../protocol/messages.js';
import type { Comparison } from '../repro/compare.js';

export interface RunFacts {
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  attempt: number;
}

export interface EventMap {
  'run:started': RunFacts & { started: number };
  /** console lines of a running run, stored (masked) by then; seq is the first line's number */
  'run:lines': { uuid: string; seq: number; lines: ReadonlyArray<readonly [number, Buffer]> };
  /**
   * The worker says a run has ended (its result arrived and is being stored): the worker's slot
   * takes a new job from now, while the result is written (see WorkerSession.storing)
   */
  'run:ended-at-worker': RunFacts;
  /** dir is the stored result directory, or null when its files could not be written */
  'run:finished': RunFacts & { result: RunResult; finished: number; dir: string | null; retried: boolean };
  /**
   * A successful run was compared with the previous successful run of its job on its platform
   * (stored by then); against and comparison are null when there was none.
   */
  'run:compared': RunFacts & { against: string | null; comparison: Comparison | null; dir: string | null };
  'worker:joined': { name: string; platform: string; capacity: number };
  'worker:left': { name: string; platform: string; reason: string };
}

export type EventName = keyof EventMap;
type Listener<K extends EventName> = (payload: EventMap[K]) => void;

export class ServerEvents {
  private readonly listeners: { [K in EventName]?: Array<Listener<K>> } = {};

  constructor(private readonly log?: Logger) {}

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends EventName>(name: K, listener: Listener<K>): () => void {
    const list = (this.listeners[name] ??= []) as Array<Listener<K>>;
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  emit<K extends EventName>(name: K, payload: EventMap[K]): void {
    const list = this.listeners[name] as Array<Listener<K>> | undefined;
    if (!list) return;
    for (const listener of [...list]) {
      try {
        listener(payload);
      } catch (err) {
        this.log?.error('event listener failed', { event: name, error: errorMessage(err) });
      }
    }
  }
}
