// The peer's side of the hello (see src/server/handshake.ts for the steps). Also checks the
// server's proof, so a worker never takes jobs from something that does not know the token.
import { connect } from 'node:net';
import { BuilderError, errorCodeFromWire, type ErrorCode } from '../common/errors.js';
import { makeNonce, peerMac, sameMac, serverProof } from './auth.js';
import { Connection, type ConnectionOptions } from './connection.js';
import { PROTOCOL_VERSION, type Message, type Role, type Welcome, type WorkerHelloInfo } from './messages.js';

export interface DialOptions extends ConnectionOptions {
  host: string;
  port: number;
  role: Role;
  token: string;
  worker?: WorkerHelloInfo;
  timeoutMs?: number;
}

/** Connects and says hello. The connection comes back held: call release() once listening. */
export async function dial(opts: DialOptions): Promise<{ conn: Connection; welcome: Welcome }> {
  const socket = connect({ host: opts.host, port: opts.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (err) =>
      reject(new BuilderError('CONNECT', `cannot connect to ${opts.host}:${opts.port}: ${err.message}`, { cause: err })));
  });
  const conn = new Connection(socket, opts);
  const nonce = makeNonce();
  let serverKnowsToken = false;
  return new Promise((resolve, reject) => {
    const fail = (code: ErrorCode, message: string): void => {
      cleanup();
      conn.close(message);
      reject(new BuilderError(code, message));
    };
    const timer = setTimeout(() => fail('TIMEOUT', `no answer from ${opts.host}:${opts.port} within ${(opts.timeoutMs ?? 10_000) / 1000} s`),
      opts.timeoutMs ?? 10_000);
    const cleanup = (): void => {
      clearTimeout(timer);
      conn.off('message', onMessage);
      conn.off('close', onClose);
    };
    const onMessage = (msg: Message): void => {
      switch (msg.t) {
        case 'error':
          return fail(errorCodeFromWire(msg.code), `server refused: ${msg.message}`);
        case 'challenge':
          // answered even when the proof is wrong, so that the server can log the failed hello;
          // the answer is useless to anyone else, as it covers this connection's nonces only
          serverKnowsToken = sameMac(msg.proof, serverProof(opts.token, nonce));
          conn.send({ t: 'auth', mac: peerMac(opts.token, opts.role, msg.nonce, nonce) });
          return;
        case 'welcome':
          if (!serverKnowsToken) return fail('AUTH', `the server at ${opts.host}:${opts.port} does not know our token`);
          cleanup();
          conn.hold();
          resolve({ conn, welcome: msg });
          return;
        default:
          return fail('PROTOCOL', `expected challenge or welcome, got ${msg.t}`);
      }
    };
    const onClose = (reason: string): void => fail('CONNECT', `connection to ${opts.host}:${opts.port} lost during hello: ${reason}`);
    conn.on('message', onMessage);
    conn.on('close', onClose);
    conn.send({ t: 'hello', role: opts.role, version: PROTOCOL_VERSION, nonce, ...(opts.worker ? { worker: opts.worker } : {}) });
  });
}
