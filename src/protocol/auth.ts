// Challenge-response on a shared secret: both sides prove they know the token with an HMAC over
// fresh nonces, so the token itself never crosses the wire and a recorded hello cannot be replayed.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from './messages.js';

export const NONCE_BYTES = 32;

export function makeNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function serverProof(token: string, peerNonce: Buffer): Buffer {
  return createHmac('sha256', token).update('builder-server\0').update(peerNonce).digest();
}

export function peerMac(token: string, role: Role, serverNonce: Buffer, peerNonce: Buffer): Buffer {
  return createHmac('sha256', token).update(`builder-${role}\0`).update(serverNonce).update(peerNonce).digest();
}

export function sameMac(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
