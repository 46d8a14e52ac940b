// A peer that speaks frames by hand over a plain socket, for tests and the attack bench that
// must send what no real client would: frames in one packet, lying lengths, tags, no reads.
import { connect, type Socket } from 'node:net';
import { makeNonce, peerMac } from '../../src/protocol/auth.js';
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';
import { FrameReader, encodeFrame } from '../../src/protocol/framing.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';

export interface RawPeer {
  socket: Socket;
  /** decoded frames received so far (an undecodable one is kept as {undecodable: message}) */
  messages: Array<Record<string, unknown>>;
  closed: Promise<void>;
  isClosed(): boolean;
  /** resolves with the first received message (already or later) that matches */
  next(match: (m: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(value: unknown): void;
}

export function rawPeer(port: number, opts: { localAddress?: string; host?: string } = {}): Promise<RawPeer> {
  const socket = connect({ host: opts.host ?? '127.0.0.1', port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
  // generous, as a real client's would be: the tests judge the server's limits, not ours
  const reader = new FrameReader(256 * 1024 * 1024);
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }> = [];
  let isClosed = false;
  socket.on('data', (c: Buffer) => {
    for (const f of reader.push(c)) {
      let m: Record<string, unknown>;
      try {
        m = decodeValue(f) as Record<string, unknown>;
      } catch (err) {
        m = { undecodable: (err as Error).message };
      }
      messages.push(m);
      for (const w of [...waiters]) {
        if (w.match(m)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.on('close', () => {
    isClosed = true;
    r();
  }));
  const peer: RawPeer = {
    socket, messages, closed,
    isClosed: () => isClosed,
    next(match, timeoutMs = 10_000) {
      const seen = messages.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => m.t ?? m))}`)), timeoutMs);
        waiters.push({ match, resolve: (m) => { clearTimeout(timer); resolve(m); } });
        void closed.then(() => setTimeout(() => {
          clearTimeout(timer);
          reject(new Error(`connection closed before a matching message; got ${JSON.stringify(messages.map((m) => m.t ?? m))}`));
        }, 50));
      });
    },
    send(value) {
      socket.write(encodeFrame(encodeValue(value)));
    },
  };
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(peer));
    socket.once('error', reject);
  });
}

/**
 * Says hello and answers the challenge; `withAuth` is written in the same write() as the auth
 * frame (one TCP segment on loopback). Resolves once the welcome came.
 */
export async function rawClient(port: number, token: string, withAuth: Buffer = Buffer.alloc(0), opts: { localAddress?: string } = {}): Promise<RawPeer> {
  const peer = await rawPeer(port, opts);
  const nonce = makeNonce();
  peer.send({ t: 'hello', role: 'client', version: PROTOCOL_VERSION, nonce });
  const challenge = await peer.next((m) => m.t === 'challenge' || m.t === 'error');
  if (challenge.t !== 'challenge') throw new Error(`hello refused: ${JSON.stringify(challenge)}`);
  const mac = peerMac(token, 'client', Buffer.from(challenge.nonce as Uint8Array), nonce);
  peer.socket.write(Buffer.concat([encodeFrame(encodeValue({ t: 'auth', mac })), withAuth]));
  await peer.next((m) => m.t === 'welcome');
  return peer;
}

/** A frame of raw CBOR bytes. */
export const rawFrame = (payload: Buffer): Buffer => encodeFrame(payload);

/** CBOR for a map of text keys to already-encoded values (to put hand-made items in a message). */
export function cborMap(entries: Array<[string, Buffer]>): Buffer {
  const parts: Buffer[] = [header(5, entries.length)];
  for (const [k, v] of entries) parts.push(encodeValue(k), v);
  return Buffer.concat(parts);
}

/** A CBOR header of major type `major` with argument `n`. */
export function header(major: number, n: number): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = m | 25; b.writeUInt16BE(n, 1); return b; }
  const b = Buffer.alloc(5); b[0] = m | 26; b.writeUInt32BE(n, 1); return b;
}

/** A bignum (tag 2) whose magnitude is `bytes` long: cbor-x spends seconds per 100 KiB on it. */
export function bignum(bytes: number): Buffer {
  return Buffer.concat([Buffer.from([0xc2]), header(2, bytes), Buffer.alloc(bytes, 0xab)]);
}

/** An array of n empty maps: n bytes on the wire, n objects once decoded. */
export function emptyMaps(n: number): Buffer {
  return Buffer.concat([header(4, n), Buffer.alloc(n, 0xa0)]);
}
