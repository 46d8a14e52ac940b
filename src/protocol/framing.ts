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

  constructor(private readonly maxFrame: number = DEFAULT_MAX_FRAME) {}

  /** Returns the complete payloads now available; throws FrameError on a bad length. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < HEADER) break;
        const header = this.take(HEADER);
        const length = header.readUInt32BE(0);
        if (length === 0) throw new FrameError('FRAME_EMPTY', 'empty frame (length 0)');
        if (length > this.maxFrame) {
          throw new FrameError('FRAME_TOO_LARGE', `frame of ${length} bytes announced, maximum is ${this.maxFrame}`);
        }
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      frames.push(this.take(this.expected));
      this.expected = -1;
    }
    return frames;
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
