// One framed, typed, heart-beating connection. Both ends of every conversation use it, so the
// size limit, the decoding checks and the liveness rules exist once.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { decodeValue, encodeValue, splitTail } from './codec.js';
import { DEFAULT_MAX_FRAME, FrameReader, frameHeader } from './framing.js';
import type { Message } from './messages.js';
import { ProtocolError, parseMessage } from './parse.js';

export interface ConnectionOptions {
  maxFrame?: number;
  /** send a ping when nothing was sent for this long */
  heartbeatMs?: number;
  /** close when nothing was received for this long */
  deadAfterMs?: number;
}

/**
 * Bytes of frames one connection has handled in a turn of the event loop past which the rest
 * waits for the next turn, its socket paused meanwhile. libuv reads up to 32 x 64 KiB of one
 * socket per turn, and a peer that sends as fast as it can (a worker printing without pause) had
 * the server handle all of it (some 100 console batches, each a commit) before any other peer's
 * request: with this it takes its share of each turn and no more.
 */
export const TURN_BYTES = 64 * 1024;

/** chunks from this size on are sent without a copy (sendChunk); smaller ones cost little either way */
const BIG_CHUNK = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export const HEARTBEAT_MS = Number(process.env.BUILDER_HEARTBEAT_MS ?? 1000);
export const DEAD_AFTER_MS = Number(process.env.BUILDER_DEAD_AFTER_MS ?? 5000);

export interface ConnectionEvents {
  message: [Message];
  close: [reason: string];
  /**
   * A frame that decoded but is not a valid message (a request with a field of the wrong type).
   * With a listener the connection stays open and the listener answers; without one it closes.
   */
  malformed: [error: ProtocolError, value: unknown];
}

export class Connection extends EventEmitter<ConnectionEvents> {
  readonly peer: string;
  private readonly reader: FrameReader;
  private lastSent = Date.now();
  private lastReceived = Date.now();
  private lastTick = Date.now();
  /** bytes handed to the socket, and when the peer last took some of them */
  private queuedBytes = 0;
  private flushedBytes = 0;
  private lastFlushProgress = Date.now();
  private deadAfterMs: number;
  private timer: NodeJS.Timeout | undefined;
  private closedReason: string | undefined;
  private holding = false;
  /** why the socket is not read now: the owners' reasons (their backlogs) and 'turn' (TURN_BYTES) */
  private readonly pausedBy = new Set<string>();
  /** bytes of frames handled in this turn of the event loop; reset by a setImmediate */
  private turnBytes = 0;

  constructor(readonly socket: Socket, opts: ConnectionOptions = {}) {
    super();
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.reader = new FrameReader(opts.maxFrame ?? DEFAULT_MAX_FRAME);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    socket.on('close', () => this.close('connection closed by peer'));
    const beat = opts.heartbeatMs ?? HEARTBEAT_MS;
    this.deadAfterMs = opts.deadAfterMs ?? DEAD_AFTER_MS;
    const every = Math.max(50, Math.min(beat, this.deadAfterMs) / 2);
    this.timer = setInterval(() => {
      const now = Date.now();
      // A tick that comes late means this process was not running (stopped, or busy with a big
      // frame): what the peer sent meanwhile is still unread in the socket, and timers run before
      // sockets are read. The time we were away is not the peer's silence.
      const away = now - this.lastTick - every;
      this.lastTick = now;
      const flushed = this.queuedBytes - this.socket.writableLength;
      if (flushed > this.flushedBytes || this.socket.writableLength === 0) this.lastFlushProgress = now;
      this.flushedBytes = flushed;
      if (away > every) {
        this.lastReceived = Math.min(now, this.lastReceived + away);
        this.lastFlushProgress = Math.min(now, this.lastFlushProgress + away);
      } else if (this.pausedByOwner()) {
        // We stopped reading this peer (our disk, or its own unread replies, is behind): its
        // silence is ours to cause, not a sign it is gone. It is gone if it reads nothing either.
        this.lastReceived = now;
        if (now - this.lastFlushProgress > this.deadAfterMs) {
          return this.close(`peer read nothing for ${now - this.lastFlushProgress} ms (${this.socket.writableLength} bytes unsent)`);
        }
      } else if (now - this.lastReceived > this.deadAfterMs) {
        return this.close(`no frame from peer for ${now - this.lastReceived} ms`);
      }
      if (now - this.lastSent >= beat) this.send({ t: 'ping' });
    }, every);
    this.timer.unref();
  }

  /**
   * Changes the limits once more is known of the peer: the server accepts only small frames
   * before the hello has succeeded, and gives a silent client longer than a worker.
   */
  setLimits(limits: { maxFrame?: number; deadAfterMs?: number }): void {
    if (limits.maxFrame !== undefined) this.reader.setMaxFrame(limits.maxFrame);
    if (limits.deadAfterMs !== undefined) this.deadAfterMs = limits.deadAfterMs;
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Sends one message; false means the socket buffer is full (await drained()). */
  send(msg: Message): boolean {
    if (this.closed) return false;
    this.lastSent = Date.now();
    if (msg.t === 'chunk' && msg.data.length >= BIG_CHUNK) return this.sendChunk(msg.uuid, msg.data);
    const payload = encodeValue(msg);
    // header and payload as two writes in one writev, so a 1 MiB chunk is not copied again
    this.queuedBytes += 4 + payload.length;
    this.socket.cork();
    this.socket.write(frameHeader(payload.length));
    const ok = this.socket.write(payload);
    this.socket.uncork();
    return ok;
  }

  /**
   * An artifact chunk without copying its data into the encoder's buffer: the message is encoded
   * with its data empty (the last byte, 0x40, an empty byte string), that byte becomes the
   * header of a byte string of the data's length, and the data follows as its own write. The
   * bytes on the wire are those encodeValue would give.
   */
  private sendChunk(uuid: string, data: Buffer): boolean {
    const head = encodeValue({ t: 'chunk', uuid, data: EMPTY });
    if (head[head.length - 1] !== 0x40) throw new Error('cbor-x did not encode an empty byte string last');
    const string = Buffer.allocUnsafe(5);
    string[0] = 0x5a; // byte string, 4-byte length
    string.writeUInt32BE(data.length, 1);
    const length = head.length - 1 + 5 + data.length;
    this.queuedBytes += 4 + length;
    this.socket.cork();
    this.socket.write(Buffer.concat([frameHeader(length), head.subarray(0, head.length - 1), string]));
    const ok = this.socket.write(data);
    this.socket.uncork();
    return ok;
  }

  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.on('close', done);
    });
  }

  /** Bytes queued in the socket but not yet written: observers use it to tell a slow reader. */
  get backlog(): number {
    return this.socket.writableLength;
  }

  /**
   * Stops reading frames (what arrives stays buffered, undecoded) until release(). The hello
   * hands the connection over with this on, so that a message arriving in the same packet as
   * the auth or the welcome is neither emitted before its new owner listens nor read under the
   * limits of before.
   */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    this.readFrames();
  }

  /**
   * Stops reading the socket for `reason` until resumeReading(reason): the socket is read again
   * once no reason is left, so owners that pause for different causes (their queue, the peer's
   * unread replies, this connection's share of the turn) do not resume one another's pause.
   */
  pauseReading(reason: string): void {
    this.pausedBy.add(reason);
    this.socket.pause();
  }

  resumeReading(reason: string): void {
    if (!this.pausedBy.delete(reason) || this.pausedBy.size > 0 || this.closed) return;
    this.socket.resume();
  }

  /**
   * The socket is not read for a reason of its owner's (pauseReading, or the socket paused
   * directly); a turn's share alone lasts one turn and says nothing of the peer.
   */
  private pausedByOwner(): boolean {
    return this.socket.isPaused() && !(this.pausedBy.size === 1 && this.pausedBy.has('turn'));
  }

  close(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    if (this.timer) clearInterval(this.timer);
    this.socket.end();
    // a peer that never reads must not keep the socket open
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.emit('close', reason);
  }

  /** Sends a last message, then closes once it is flushed. */
  fail(msg: Message, reason: string): void {
    if (this.closed) return;
    this.send(msg);
    this.close(reason);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceived = Date.now();
    this.reader.add(chunk);
    this.readFrames();
  }

  private readFrames(): void {
    while (!this.holding && !this.closed) {
      if (this.turnBytes >= TURN_BYTES) {
        // the rest (buffered here and in the socket) waits for the next turn; see TURN_BYTES
        if (!this.pausedBy.has('turn')) this.pauseReading('turn');
        return;
      }
      let parts: Buffer[] | undefined;
      try {
        parts = this.reader.nextParts();
      } catch (err) {
        this.socket.destroy();
        this.close(`bad frame: ${(err as Error).message}`);
        return;
      }
      if (!parts) return;
      this.countTurn(parts);
      if (parts.length > 1 && this.emitChunkParts(parts)) continue;
      const frame = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      let msg: Message;
      let value: unknown;
      try {
        value = decodeValue(frame);
        msg = parseMessage(value);
      } catch (err) {
        // well-formed CBOR that is not a valid message: its owner may answer it (a DecodeError,
        // bad CBOR or a tag, is not a ProtocolError and always closes)
        if (err instanceof ProtocolError && this.listenerCount('malformed') > 0) {
          this.emit('malformed', err, value);
          if (this.closed) return;
          continue;
        }
        this.socket.destroy();
        this.close(`undecodable frame: ${(err as Error).message}`);
        return;
      }
      if (msg.t === 'ping') continue;
      this.emit('message', msg);
    }
  }

  /** Counts a frame against this turn's share; the first of a turn arms the turn's end. */
  private countTurn(parts: Buffer[]): void {
    if (this.turnBytes === 0) {
      setImmediate(() => {
        this.turnBytes = 0;
        if (!this.pausedBy.has('turn')) return;
        this.resumeReading('turn');
        this.readFrames();
      });
    }
    // never 0 after this: frames are not empty (FrameReader refuses them)
    for (const p of parts) this.turnBytes += p.length;
  }

  /**
   * An artifact chunk that arrived in several socket reads is handed on as one chunk message
   * per read, its data slices of what was read, instead of being copied into one buffer first:
   * a chunk's data is only ever appended (written and hashed in order), so the pieces mean the
   * same as the whole. Only a frame that is exactly {t: 'chunk', uuid, data} with data last;
   * false for any other, which is then decoded whole.
   */
  private emitChunkParts(parts: Buffer[]): boolean {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const split = splitTail(parts, total);
    if (!split) return false;
    const v = split.value as Record<string, unknown> | null;
    if (typeof v !== 'object' || v === null || v.t !== 'chunk') return false;
    const keys = Object.keys(v);
    if (keys.length !== 3 || keys[0] !== 't' || keys[1] !== 'uuid' || keys[2] !== 'data') return false;
    let msg: Message;
    try {
      msg = parseMessage(v);
    } catch {
      return false;
    }
    if (msg.t !== 'chunk' || msg.data.length !== 0) return false;
    if (split.tail.length === 0) this.emit('message', msg);
    for (const data of split.tail) {
      if (this.closed) return true;
      this.emit('message', { ...msg, data });
    }
    return true;
  }
}
