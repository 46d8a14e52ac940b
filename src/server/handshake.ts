// The server's side of the hello, for both roles:
//   1. peer -> hello {role, version, nonce[, worker]}   (a version mismatch ends it here)
//   2. server -> challenge {nonce, proof of the token over the peer's nonce}
//   3. peer -> auth {mac of the token over both nonces}  (a wrong mac ends it here)
//   4. the credential must allow this hello: its role, and for a worker token the worker's name
// Nothing the peer says before step 3 is acted on. Which secret the proofs use comes from the
// credential the hello names (credentials.ts): the admin token, or a worker's or reader's token.
import type { Logger } from '../common/log.js';
import { makeNonce } from '../protocol/auth.js';
import type { Connection } from '../protocol/connection.js';
import { PROTOCOL_VERSION, type Hello, type Message } from '../protocol/messages.js';
import type { Credential, Credentials } from './credentials.js';
import { HANDSHAKE_MS } from './admission.js';

/** Resolves with the hello once authenticated (credentials.of(conn) then says with what). */
export function handshake(conn: Connection, credentials: Credentials, log: Logger): Promise<Hello | undefined> {
  return new Promise((resolve) => {
    let hello: Hello | undefined;
    let credential: Credential | undefined;
    let nonce: Buffer | undefined;
    const finish = (value: Hello | undefined): void => {
      clearTimeout(timer);
      conn.off('message', onMessage);
      conn.off('close', onClose);
      resolve(value);
    };
    const refuse = (code: string, message: string): void => {
      log.warn(`hello refused: ${message}`, { peer: conn.peer, role: hello?.role, credential: credential?.name });
      conn.fail({ t: 'error', code, message }, message);
      finish(undefined);
    };
    const onMessage = (msg: Message): void => {
      if (!hello) {
        if (msg.t !== 'hello') return refuse('PROTOCOL', `expected hello, got ${msg.t}`);
        if (msg.role !== 'client' && msg.role !== 'worker') return refuse('PROTOCOL', `unknown role "${String(msg.role)}"`);
        if (msg.version !== PROTOCOL_VERSION) {
          return refuse('VERSION', `protocol version mismatch: ${msg.role} speaks version ${msg.version}, server speaks version ${PROTOCOL_VERSION}`);
        }
        if (msg.role === 'worker' && !msg.worker) return refuse('PROTOCOL', 'worker hello without worker details');
        const found = credentials.lookup(msg);
        if (typeof found === 'string') return refuse('AUTH', `authentication failed: ${found}`);
        hello = msg;
        credential = found;
        nonce = makeNonce();
        conn.send({ t: 'challenge', version: PROTOCOL_VERSION, nonce, proof: credential.serverProof(msg.nonce) });
        return;
      }
      if (msg.t !== 'auth') return refuse('PROTOCOL', `expected auth, got ${msg.t}`);
      if (!credential!.verify(msg.mac, hello.role, nonce!, hello.nonce)) {
        return refuse('AUTH', 'authentication failed: wrong token');
      }
      const denied = credential!.refusal(hello);
      if (denied !== undefined) return refuse('FORBIDDEN', denied);
      credentials.bind(conn, credential!);
      // a request sent in the same packet as the auth frame waits for its handler and for the
      // limits of an authenticated peer (server.ts sets both, then release())
      conn.hold();
      finish(hello);
    };
    const onClose = (): void => finish(undefined);
    const timer = setTimeout(() => refuse('TIMEOUT', `no hello within ${HANDSHAKE_MS / 1000} s`), HANDSHAKE_MS);
    conn.on('message', onMessage);
    conn.on('close', onClose);
  });
}
