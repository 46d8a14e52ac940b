// SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104), a constant-time comparison and random bytes,
// without node:crypto. The handshake needs a few HMACs of inputs under 200 bytes; loading
// node:crypto costs a command-line client 5-8 ms of its start-up (its module graph: ciphers,
// keys, X.509, WebCrypto), a fifth of the whole budget over node's own start-up (issue 11).
// This is not a general-purpose hash: it is written for small inputs (it copies the message
// once to pad it) and is checked against node:crypto on random inputs in
// test/unit/light-crypto.test.ts. Everything that hashes data in bulk (artifacts, results,
// provenance) keeps node:crypto.
import { closeSync, openSync, readSync } from 'node:fs';

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);


/** The SHA-256 digest (32 bytes) of the concatenated parts. */
export function sha256(...parts: Uint8Array[]): Buffer {
  const length = parts.reduce((n, p) => n + p.length, 0);
  // the message, a 0x80 byte, zeros to 56 mod 64, and the length in bits (big-endian, 64 bits)
  const padded = Buffer.alloc(Math.ceil((length + 9) / 64) * 64);
  let off = 0;
  for (const p of parts) {
    padded.set(p, off);
    off += p.length;
  }
  padded[length] = 0x80;
  const bits = length * 8;
  padded.writeUInt32BE(Math.floor(bits / 0x1_0000_0000), padded.length - 8);
  padded.writeUInt32BE(bits >>> 0, padded.length - 4);

  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  // rotations and byte order written out rather than through helpers: a client runs this twice,
  // cold, in the interpreter, where every call and Buffer method is paid for (about 1 ms an HMAC)
  const w = new Uint32Array(64);
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0, o = block; i < 16; i++, o += 4) w[i] = ((padded[o]! << 24) | (padded[o + 1]! << 16) | (padded[o + 2]! << 8) | padded[o + 3]!) >>> 0;
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15]!, y = w[i - 2]!;
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[i]! + w[i]!) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h0 = (h0 + a) >>> 0;
    h1 = (h1 + b) >>> 0;
    h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0;
    h4 = (h4 + e) >>> 0;
    h5 = (h5 + f) >>> 0;
    h6 = (h6 + g) >>> 0;
    h7 = (h7 + h) >>> 0;
  }
  const out = Buffer.alloc(32);
  const hs = [h0, h1, h2, h3, h4, h5, h6, h7];
  for (let i = 0; i < 8; i++) {
    const v = hs[i]!;
    out[i * 4] = v >>> 24;
    out[i * 4 + 1] = (v >>> 16) & 0xff;
    out[i * 4 + 2] = (v >>> 8) & 0xff;
    out[i * 4 + 3] = v & 0xff;
  }
  return out;
}

const BLOCK = 64;
const bytesOf = (x: string | Uint8Array): Uint8Array => (typeof x === 'string' ? Buffer.from(x, 'utf8') : x);

/** HMAC-SHA256 of the concatenated parts under key (a string is taken as its UTF-8 bytes). */
export function hmacSha256(key: string | Uint8Array, ...parts: Array<string | Uint8Array>): Buffer {
  let k = bytesOf(key);
  if (k.length > BLOCK) k = sha256(k);
  const ipad = Buffer.alloc(BLOCK, 0x36);
  const opad = Buffer.alloc(BLOCK, 0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i]! ^= k[i]!;
    opad[i]! ^= k[i]!;
  }
  return sha256(opad, sha256(ipad, ...parts.map(bytesOf)));
}

/** Whether a and b are equal, in a time that depends on their length only. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * n random bytes from the kernel (/dev/urandom, on Linux and FreeBSD alike); the Web Crypto
 * global's (node:crypto underneath) when that device cannot be read (a chroot or jail without it).
 * No import for that case: node:module's createRequire alone loads the ESM loader's modules.
 */
export function randomBytesLight(n: number): Buffer {
  const out = Buffer.alloc(n);
  try {
    const fd = openSync('/dev/urandom', 'r');
    try {
      for (let off = 0; off < n;) {
        const got = readSync(fd, out, off, n - off, null);
        if (got <= 0) throw new Error('/dev/urandom: short read');
        off += got;
      }
    } finally {
      closeSync(fd);
    }
    return out;
  } catch {
    // getRandomValues fills at most 64 KiB a call
    for (let off = 0; off < n; off += 65536) globalThis.crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
    return out;
  }
}
