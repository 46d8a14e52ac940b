// The uplink's view of one connection to the server: send a message, know whether it is
// closed, hear when it closes. A port this small, instead of the socket Connection, lets the
// uplink's logic (re-attach, buffering, acks, back-off) be tested in-process against a fake
// server and a fake clock (test/unit/uplink.test.ts); tcpDialer is the real thing.
import type { Connection } from '../protocol/connection.js';
import { dial } from '../protocol/dial.js';
import type { PeerTls } from '../protocol/tls.js';
import type { Message, Welcome, WorkerHelloInfo } from '../protocol/messages.js';

export interface ServerPort {
  /** false when the socket's buffer is full: wait for drained() before sending much more */
  send(msg: Message): boolean;
  readonly closed: boolean;
  drained(): Promise<void>;
  close(reason: string): void;
  /**
   * Starts delivering the server's messages, held until now so that the welcome is dealt
   * with first, and the close (at once when the port closed before this call).
   */
  listen(onMessage: (msg: Message) => void, onClose: (reason: string) => void): void;
}

/**
 * Says hello as a worker holding `hello.running`; resolves with the port and the server's
 * welcome, or rejects (a BuilderError with code CONNECT, AUTH, VERSION, TIMEOUT...).
 */
export type Dialer = (hello: WorkerHelloInfo) => Promise<{ port: ServerPort; welcome: Welcome }>;

export function tcpDialer(server: { host: string; port: number; token: string; tls?: PeerTls | undefined }): Dialer {
  return async (worker) => {
    const { conn, welcome } = await dial({ host: server.host, port: server.port, role: 'worker', token: server.token, worker, tls: server.tls });
    return { port: connectionPort(conn), welcome };
  };
}

function connectionPort(conn: Connection): ServerPort {
  return {
    send: (msg) => conn.send(msg),
    get closed() {
      return conn.closed;
    },
    drained: () => conn.drained(),
    close: (reason) => conn.close(reason),
    listen(onMessage, onClose) {
      conn.on('message', onMessage);
      if (conn.closed) onClose('connection closed');
      else conn.once('close', onClose);
      conn.release();
    },
  };
}
