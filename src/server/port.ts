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
    onClose: (fn) => {
      const listener = (): void => fn();
      conn.once('close', listener);
      return () => void conn.off('close', listener);
    },
  };
}
