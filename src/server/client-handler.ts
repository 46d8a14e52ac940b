// The server's side of a client connection, after the hello:
//   client -> req {id, op, ...}   server -> res {id, ok, data | code, message}
//   observe, observe-latest and execute --follow then stream started/line/skipped/end with the same id.
// A request that does not check (a field of the wrong type) is answered with res ok:false
// naming the field, or an error when it has no id; the connection stays open.
// Requests are handled one at a time. A client that sends and never reads cannot make the
// server buffer without bound: past a backlog of unsent replies, or of requests not yet
// handled, its socket is no longer read until it catches up.
import type { Logger } from '../common/log.js';
import { BuilderError, errorMessage } from '../common/errors.js';
import type { Connection } from '../protocol/connection.js';
import type { Request } from '../protocol/messages.js';
import { isMap } from '../protocol/schema.js';
import { handleRequest, type RequestContext } from './requests.js';
import { checkAccess } from './access.js';
import type { CredentialKind } from './credentials.js';
import { isStorageFault } from './store/index.js';

/** Unsent bytes past which no further request of this client is handled until it reads. */
export const MAX_REPLY_BACKLOG = 1 << 20;
/** Requests received but not yet handled past which its socket is no longer read. */
const MAX_QUEUED = 32;

/** `access`: the kind of credential the client authenticated with (access.ts says what it may send). */
export function serveClient(conn: Connection, ctx: RequestContext, log: Logger, access: CredentialKind = 'admin'): void {
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  const enqueue = (work: () => Promise<void>): void => {
    queued++;
    if (queued >= MAX_QUEUED) conn.pauseReading('queue');
    chain = chain.then(async () => {
      // a client that does not read its replies waits here, unread, with nothing more built for it
      if (conn.backlog > MAX_REPLY_BACKLOG) {
        conn.pauseReading('replies');
        await conn.drained();
      }
      if (!conn.closed) await work();
      queued--;
      if (queued < MAX_QUEUED / 2) conn.resumeReading('queue');
      if (conn.backlog <= MAX_REPLY_BACKLOG) conn.resumeReading('replies');
    });
  };

  conn.on('message', (msg) => {
    if (msg.t !== 'req') {
      log.warn(`unexpected message from client: ${msg.t}`, { peer: conn.peer });
      return;
    }
    enqueue(() => handle(msg));
  });
  conn.on('malformed', (err, value) => {
    const id = isMap(value) && value.t === 'req' && Number.isSafeInteger(value.id) ? (value.id as number) : undefined;
    log.warn('malformed request refused', { peer: conn.peer, error: err.message });
    enqueue(async () => {
      if (id !== undefined) conn.send({ t: 'res', id, ok: false, code: err.code, message: err.message });
      else conn.send({ t: 'error', code: err.code, message: err.message });
    });
  });

  const handle = async (msg: Request): Promise<void> => {
    try {
      checkAccess(access, msg.op);
      const data = await handleRequest(ctx, conn, msg);
      conn.send({ t: 'res', id: msg.id, ok: true, data: data ?? null });
      if (msg.op !== 'info' && msg.op !== 'history' && msg.op !== 'workers' && msg.op !== 'uploads') {
        log.info(`client request ${msg.op}`, { peer: conn.peer, ...('name' in msg ? { job: msg.name } : {}) });
      }
    } catch (err) {
      if (isStorageFault(err)) {
        // a full disk is the operator's to fix, not a bug: said as such, and the server goes on
        const message = `cannot store the change, the server's state directory is out of space or failing (${errorMessage(err)}); nothing was changed`;
        log.error('request refused: the disk refused the change', { op: msg.op, error: errorMessage(err) });
        conn.send({ t: 'res', id: msg.id, ok: false, code: 'DISK_FULL', message });
        return;
      }
      const code = err instanceof BuilderError ? err.code : 'INTERNAL';
      if (code === 'INTERNAL') log.error('request failed', { op: msg.op, error: errorMessage(err) });
      conn.send({ t: 'res', id: msg.id, ok: false, code, message: errorMessage(err) });
    }
  };
}
