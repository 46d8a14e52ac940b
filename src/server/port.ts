// What the coordinator needs of a peer (a worker or an observing client): a way to send, to
// know it is gone, and to hear when it goes. A socket Connection is adapted to it here; tests
// hand the coordinator plain objects instead, so its logic runs without processes.
import type { Connection } from '../protocol/connection.js';
import type { Message } from '../protocol/messages.js';

export interface Port {
  send(msg: Message): void;
  readonly closed: boolean;
  /**
   * fn is called once when the peer goes; the returned function unsubscribes, so a long-lived
   * client that observes run after run does not pile up listeners
   */
  onClose(fn: () => void): () => void;
}

/** An observer's port also says how much is waiting to be sent, so slow ones lose lines. */
export interface ObserverPort extends Port {
  readonly backlog: number;
  /** resolves once what waits to be sent has gone (or the peer has) */
  drained(): Promise<void>;
  /**
   * Sends what fn sends in one write: a batch of console lines is a frame per line, and one
   * system call per frame cost a busy run's observers more than storing the lines.
   */
  batch(fn: () => void): void;
}

export function connectionPort(conn: Connection): ObserverPort {
  return {
    send: (msg) => void conn.send(msg),
    get closed() {
      return conn.closed;
    },
    get backlog() {
      return conn.backlog;
    },
    drained: () => conn.drained(),
    batch: (fn) => {
      conn.socket.cork();
      try {
        fn();
      } finally {
        conn.socket.uncork();
      }
    },
    onClose: (fn) => {
      const listener = (): void => fn();
      conn.once('close', listener);
      return () => void conn.off('close', listener);
    },
  };
}

/**
 * A port that keeps what it is sent until release(), then sends it, in order, and passes
 * everything on from then: an `execute --follow` hears of its run ("started") only after the
 * answer to its own request, though the run may start before that answer has gone.
 */
export function heldPort(port: ObserverPort): ObserverPort & { release(): void } {
  let held: Message[] | undefined = [];
  return Object.create(port, {
    send: { value: (msg: Message): void => void (held ? held.push(msg) : port.send(msg)) },
    batch: { value: (fn: () => void): void => (held ? fn() : port.batch(fn)) },
    release: {
      value: (): void => {
        const msgs = held ?? [];
        held = undefined;
        if (!port.closed && msgs.length > 0) port.batch(() => msgs.forEach((m) => port.send(m)));
      },
    },
  }) as ObserverPort & { release(): void };
}

/** What afterCommits needs of the store (group commit, see store/index.ts). */
export interface CommitSync {
  commitMark(): number;
  isDurable(mark: number): boolean;
  synced(mark?: number): Promise<void> | undefined;
}

/** how long a message waits before the fsync it waits for is tried again after failing */
const SYNC_RETRY_MS = 2_000;

/**
 * A port whose messages leave only once every deferred commit made before each was sent is on
 * disk (group commit): a worker is never handed a run, nor anything after it, on the strength of
 * a row that a power cut could still take back. Messages keep their order; with nothing waiting
 * they go at once.
 */
export function afterCommits<P extends Port>(port: P, store: CommitSync, onSyncError?: (err: unknown) => void): P {
  const waiting: Array<[number, Message]> = [];
  let flushing = false;
  const flush = async (): Promise<void> => {
    flushing = true;
    try {
      while (waiting.length > 0) {
        try {
          await store.synced(waiting[0]![0]);
        } catch (err) {
          onSyncError?.(err);
          await new Promise((r) => setTimeout(r, SYNC_RETRY_MS));
          continue;
        }
        while (waiting.length > 0 && store.isDurable(waiting[0]![0])) {
          const [, msg] = waiting.shift()!;
          if (!port.closed) port.send(msg);
        }
      }
    } finally {
      flushing = false;
    }
  };
  return Object.create(port, {
    send: {
      value: (msg: Message): void => {
        const mark = store.commitMark();
        if (!flushing && waiting.length === 0 && store.isDurable(mark)) return port.send(msg);
        waiting.push([mark, msg]);
        if (!flushing) void flush();
      },
    },
  }) as P;
}
