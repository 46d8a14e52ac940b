// The peer's side of the hello (see src/server/handshake.ts for the steps). Also checks the
// server's proof, so a worker never takes jobs from something that does not know the token.
// With `tls` the link is TLS first (tls.ts), and the same hello runs inside it.
import { connect, type Socket } from 'node:net';
import { BuilderError, errorCodeFromWire, type ErrorCode } from '../common/errors.js';
import { makeNonce, namedProof, namedTokenName, peerMac, sameMac, serverProof, verifierOf } from './auth.js';
import type { PeerTls } from './tls.js';
import { Connection, type ConnectionOptions } from './connection.js';
import { PROTOCOL_VERSION, type Message, type Role, type Welcome, type WorkerHelloInfo } from './messages.js';

export interface DialOptions extends ConnectionOptions {
  host: string;
  port: number;
  role: Role;
  token: string;
  worker?: WorkerHelloInfo;
  timeoutMs?: number;
  /** TLS, and how to check the server; absent: plain TCP */
  tls?: PeerTls | undefined;
}

function connectPlain(host: string, port: number): Promise<Socket> {
  const socket = connect({ host, port });
  return new Promise<Socket>((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('error', (err) =>
      reject(new BuilderError('CONNECT', `cannot connect to ${host}:${port}: ${err.message}`, { cause: err })));
  });
}

/** Connects and says hello. The connection comes back held: call release() once listening. */
export async function dial(opts: DialOptions): Promise<{ conn: Connection; welcome: Welcome }> {
  const { conn, welcome } = await hello(opts, false);
  return { conn, welcome: await welcome };
}

/**
 * As dial(), but resolves as soon as the server has proven that it knows the token and our auth is
 * sent, so the first request goes in the same round trip as the auth instead of one after the
 * welcome (the server holds frames that follow an auth until the connection is set up, see
 * src/server/handshake.ts). `welcome` settles as dial() would: it rejects when the server refuses
 * the auth, and the connection is then closed. A command-line client saves one round trip of its
 * three; nothing is sent to a server that has not proven the token first.
 */
export function dialEarly(opts: DialOptions): Promise<{ conn: Connection; welcome: Promise<Welcome> }> {
  return hello(opts, true);
}

async function hello(opts: DialOptions, early: boolean): Promise<{ conn: Connection; welcome: Promise<Welcome> }> {
  // node:tls is loaded only for a TLS link: a plain client's start-up does not pay for it
  const socket = opts.tls
    ? await (await import('./tls.js')).connectTls(opts.host, opts.port, opts.tls)
    : await connectPlain(opts.host, opts.port);
  const conn = new Connection(socket, opts);
  const nonce = makeNonce();
  // a named token (worker or reader) is proven against the server's stored verifier (auth.ts)
  const named = namedTokenName(opts.token);
  const proofKey = named === undefined ? opts.token : verifierOf(opts.token).serverKey;
  let serverKnowsToken = false;
  let ready: (r: { conn: Connection; welcome: Promise<Welcome> }) => void = () => undefined;
  let refused: (e: Error) => void = () => undefined;
  const connected = new Promise<{ conn: Connection; welcome: Promise<Welcome> }>((res, rej) => {
    ready = res;
    refused = rej;
  });
  const welcome = new Promise<Welcome>((resolve, reject) => {
    const fail = (code: ErrorCode, message: string): void => {
      cleanup();
      conn.close(message);
      const err = new BuilderError(code, message);
      reject(err);
      refused(err);
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
          serverKnowsToken = sameMac(msg.proof, serverProof(proofKey, nonce));
          conn.send({
            t: 'auth',
            mac: named === undefined ? peerMac(opts.token, opts.role, msg.nonce, nonce) : namedProof(opts.token, named, opts.role, msg.nonce, nonce),
          });
          if (early && serverKnowsToken) {
            conn.hold();
            ready({ conn, welcome });
          }
          return;
        case 'welcome':
          if (!serverKnowsToken) return fail('AUTH', `the server at ${opts.host}:${opts.port} does not know our token`);
          cleanup();
          if (!early) {
            conn.hold();
            ready({ conn, welcome });
          }
          resolve(msg);
          return;
        default:
          return fail('PROTOCOL', `expected challenge or welcome, got ${msg.t}`);
      }
    };
    const onClose = (reason: string): void => fail('CONNECT', `connection to ${opts.host}:${opts.port} lost during hello: ${reason}`);
    conn.on('message', onMessage);
    conn.on('close', onClose);
    conn.send({
      t: 'hello', role: opts.role, version: PROTOCOL_VERSION, nonce,
      ...(opts.worker ? { worker: opts.worker } : {}), ...(named !== undefined ? { credential: named } : {}),
    });
  });
  // a refusal after an early start reaches the caller through `welcome`; this copy is then unused
  welcome.catch(() => undefined);
  return connected;
}
