// The only framing code: every frame is a 4-byte big-endian length followed by that many bytes
// of CBOR. The length is checked against a maximum before anything is allocated for it.
import { BuilderError } from '../common/errors.js';

export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;
const HEADER = 4;

export class FrameError extends BuilderError {
  constructor(override readonly code: 'FRAME_TOO_LARGE' | 'FRAME_EMPTY', message: string) {
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
    if (this.expected < 0) {
      if (this.buffered < HEADER) return undefined;
      const header = this.take(HEADER);
      const length = header.readUInt32BE(0);
      if (length === 0) throw new FrameError('FRAME_EMPTY', 'empty frame (length 0)');
      if (length > this.maxFrame) {
        throw new FrameError('FRAME_TOO_LARGE', `frame of ${length} bytes announced, maximum is ${this.maxFrame}`);
      }
      this.expected = length;
    }
    if (this.buffered < this.expected) return undefined;
    const frame = this.take(this.expected);
    this.expected = -1;
    return frame;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const part = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, part);
      filled += part;
      if (part === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(part);
    }
    this.buffered -= n;
    return out;
  }
}
