// Challenge-response on a shared secret: both sides prove they know the token with an HMAC over
// fresh nonces, so the token itself never crosses the wire and a recorded hello cannot be replayed.
//
// Two kinds of secret:
// - the admin token (DIR/token): both sides hold it, the HMAC key is the token itself (as since
//   the first release, so existing set-ups keep working);
// - named tokens (`builder:NAME:HEX`, made by `builder-client token add-worker|add-reader`): the
//   server keeps only a verifier, SCRAM-style (RFC 5802's idea, not its wire format):
//     clientKey = HMAC(token, "builder-client-key"), storedKey = SHA256(clientKey),
//     serverKey = HMAC(token, "builder-server-key").
//   The server stores storedKey and serverKey. The peer answers with
//     clientKey XOR HMAC(storedKey, "builder-ROLE\0" | NAME | server nonce | peer nonce);
//   the server recomputes the HMAC, XORs it off and checks SHA256 of what is left against
//   storedKey. So a copy of the database (a backup) cannot be used to log in as that worker or
//   reader: it lacks clientKey, which only the token yields.
// The hashes come from light-crypto.ts, not node:crypto, whose loading would cost every
// command-line client several milliseconds of its start-up (see there).
import { constantTimeEqual, hmacSha256, randomBytesLight, sha256 } from './light-crypto.js';
import type { Role } from './messages.js';

export const NONCE_BYTES = 32;

export function makeNonce(): Buffer {
  return randomBytesLight(NONCE_BYTES);
}

export function serverProof(token: string | Buffer, peerNonce: Buffer): Buffer {
  return hmacSha256(token, 'builder-server\0', peerNonce);
}

export function peerMac(token: string, role: Role, serverNonce: Buffer, peerNonce: Buffer): Buffer {
  return hmacSha256(token, `builder-${role}\0`, serverNonce, peerNonce);
}

export function sameMac(a: Buffer, b: Buffer): boolean {
  return constantTimeEqual(a, b);
}

// ---- named tokens ----

/** builder:NAME:64 hex digits; NAME follows the job/platform name rules. */
const NAMED = /^builder:([A-Za-z0-9][A-Za-z0-9._+-]{0,127}):([0-9a-f]{64})$/;

/** The credential's name when `token` is a named token, else undefined (the admin token). */
export function namedTokenName(token: string): string | undefined {
  return NAMED.exec(token)?.[1];
}

export function makeNamedToken(name: string): string {
  return `builder:${name}:${randomBytesLight(32).toString('hex')}`;
}

export interface Verifier {
  storedKey: Buffer;
  serverKey: Buffer;
}

const clientKeyOf = (token: string): Buffer => hmacSha256(token, 'builder-client-key');

/** What the server keeps of a named token. */
export function verifierOf(token: string): Verifier {
  return { storedKey: sha256(clientKeyOf(token)), serverKey: hmacSha256(token, 'builder-server-key') };
}

function signature(storedKey: Buffer, role: Role, name: string, serverNonce: Buffer, peerNonce: Buffer): Buffer {
  return hmacSha256(storedKey, `builder-${role}\0${name}\0`, serverNonce, peerNonce);
}

const xor = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((byte, i) => byte ^ (b[i] ?? 0)));

/** The peer's answer with a named token. */
export function namedProof(token: string, name: string, role: Role, serverNonce: Buffer, peerNonce: Buffer): Buffer {
  const clientKey = clientKeyOf(token);
  return xor(clientKey, signature(sha256(clientKey), role, name, serverNonce, peerNonce));
}

/** The server's check of that answer against the stored verifier. */
export function checkNamedProof(v: Verifier, proof: Buffer, name: string, role: Role, serverNonce: Buffer, peerNonce: Buffer): boolean {
  if (proof.length !== 32) return false;
  const clientKey = xor(proof, signature(v.storedKey, role, name, serverNonce, peerNonce));
  return sameMac(sha256(clientKey), v.storedKey);
}
