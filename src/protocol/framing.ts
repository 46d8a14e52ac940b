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
    }
    if (this.buffered < this.expected) return undefined;
    this.lastLength = this.expected;
    const frame = this.take(this.expected);
    this.expected = -1;
    return frame;
  }

  private lastLength = 0;

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
