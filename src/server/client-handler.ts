// The server's side of a client connection, after the hello:
//   client -> req {id, op, ...}   server -> res {id, ok, data | code, message}
//   observe, observe-latest and execute --follow then stream started/line/skipped/end with the same id.
import type { Logger } from '../common/log.js';
import { BuilderError, errorMessage } from '../common/errors.js';
import type { Connection } from '../protocol/connection.js';
import { handleRequest, type RequestContext } from './requests.js';
import { checkAccess } from './access.js';
import type { CredentialKind } from './credentials.js';
import { isStorageFault } from './store/index.js';

/** `access`: the kind of credential the client authenticated with (access.ts says what it may send). */
export function serveClient(conn: Connection, ctx: RequestContext, log: Logger, access: CredentialKind = 'admin'): void {
  let chain: Promise<void> = Promise.resolve();
  conn.on('message', (msg) => {
    if (msg.t !== 'req') {
      log.warn(`unexpected message from client: ${msg.t}`, { peer: conn.peer });
      return;
    }
    chain = chain.then(async () => {
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
    });
  });
}
