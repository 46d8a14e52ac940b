// The only framing code: every frame is a 4-byte big-endian length followed by that many bytes
// of CBOR. The length is checked against a maximum before anything is allocated for it.
import { BuilderError } from '../common/errors.js';

export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;
const HEADER = 4;
/**
 * Every message is a CBOR map of a few fields (the largest request has a dozen): a frame whose
 * first bytes say otherwise (an array of millions of items, a map of thousands of fields) is
 * refused as soon as they arrive, before the rest of its up to 16 MiB is buffered.
 */
export const MAX_MESSAGE_FIELDS = 64;

export class FrameError extends BuilderError {
  constructor(override readonly code: 'FRAME_TOO_LARGE' | 'FRAME_EMPTY' | 'FRAME_NOT_MESSAGE', message: string) {
    super(code, message);
    this.name = 'FrameError';
  }
}

export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER);
  header.writeUInt32BE(length, 0);
  return header;
}

/** A whole frame in one buffer (the connection writes header and payload separately). */
export function encodeFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(payload.length), payload]);
}

/** Accumulates socket chunks and yields whole frame payloads. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1;

  constructor(private maxFrame: number = DEFAULT_MAX_FRAME) {}

  /** Changes the limit for the next frames (the server raises it once a peer has authenticated). */
  setMaxFrame(n: number): void {
    this.maxFrame = n;
  }

  /** Returns the complete payloads now available; throws FrameError on a bad length. */
  push(chunk: Buffer): Buffer[] {
    this.add(chunk);
    const frames: Buffer[] = [];
    for (let f = this.next(); f; f = this.next()) frames.push(f);
    return frames;
  }

  /** Buffers a chunk; take its frames with next(). */
  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete payload, or undefined. One at a time, so that a limit changed after a
   * frame (the hello succeeded) applies to the very next one, even within the same chunk.
   */
  next(): Buffer | undefined {
    const parts = this.nextParts();
    if (!parts) return undefined;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.lastLength);
  }

  /**
   * As next(), but the payload as the slices of the socket chunks it arrived in, never copied:
   * a 1 MiB artifact chunk comes in some 16 reads, and joining them would copy every byte once
   * more (the connection decodes such a frame without joining it, see codec.ts splitTail).
   */
  nextParts(): Buffer[] | undefined {
    if (this.expected < 0) {
      if (this.buffered < HEADER) return undefined;
      const h = this.take(HEADER);
      const header = h.length === 1 ? h[0]! : Buffer.concat(h);
      const length = header.readUInt32BE(0);
      if (length === 0) throw new FrameError('FRAME_EMPTY', 'empty frame (length 0)');
      if (length > this.maxFrame) {
        throw new FrameError('FRAME_TOO_LARGE', `frame of ${length} bytes announced, maximum is ${this.maxFrame}`);
      }
      this.expected = length;
      this.headChecked = false;
    }
    if (!this.headChecked) {
      const verdict = messageHead(this.peek(Math.min(this.expected, 9)));
      // a frame too short for its own map header is all here: the decoder refuses it
      if (verdict === 'wait' && this.buffered < this.expected) return undefined;
      if (verdict !== 'ok' && verdict !== 'wait') throw new FrameError('FRAME_NOT_MESSAGE', `frame of ${this.expected} bytes is not a message: ${verdict}`);
      this.headChecked = true;
    }
    if (this.buffered < this.expected) return undefined;
    this.lastLength = this.expected;
    const frame = this.take(this.expected);
    this.expected = -1;
    return frame;
  }

  private lastLength = 0;
  private headChecked = false;

  /** Up to n buffered bytes from the front, without taking them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(n, this.buffered)).subarray(0, n);
  }

  /** The first n buffered bytes as slices of the chunks that hold them. */
  private take(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        out.push(c);
        this.chunks.shift();
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** 'ok', 'wait' (too few bytes yet), or why the first bytes of a payload cannot start a message. */
function messageHead(b: Buffer): 'ok' | 'wait' | string {
  if (b.length === 0) return 'wait';
  const major = b[0]! >> 5;
  const info = b[0]! & 0x1f;
  if (major !== 5) return `a message is a CBOR map, this starts with major type ${major}`;
  if (info < 24) return 'ok';
  if (info > 27) return 'a message is a map of known length';
  const size = 1 << (info - 24);
  if (b.length < 1 + size) return 'wait';
  let count = 0;
  for (let i = 0; i < size; i++) count = count * 256 + b[1 + i]!;
  return count <= MAX_MESSAGE_FIELDS ? 'ok' : `a map of ${count} fields (a message has at most ${MAX_MESSAGE_FIELDS})`;
}
