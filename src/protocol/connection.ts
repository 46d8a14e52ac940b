// One framed, typed, heart-beating connection. Both ends of every conversation use it, so the
// size limit, the decoding checks and the liveness rules exist once.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { decodeValue, encodeValue } from './codec.js';
import { DEFAULT_MAX_FRAME, FrameReader, frameHeader } from './framing.js';
import type { Message } from './messages.js';
import { parseMessage } from './parse.js';

export interface ConnectionOptions {
  maxFrame?: number;
  /** send a ping when nothing was sent for this long */
  heartbeatMs?: number;
  /** close when nothing was received for this long */
  deadAfterMs?: number;
}

export const HEARTBEAT_MS = Number(process.env.BUILDER_HEARTBEAT_MS ?? 1000);
export const DEAD_AFTER_MS = Number(process.env.BUILDER_DEAD_AFTER_MS ?? 5000);

export interface ConnectionEvents {
  message: [Message];
  close: [reason: string];
}

export class Connection extends EventEmitter<ConnectionEvents> {
  readonly peer: string;
  private readonly reader: FrameReader;
  private lastSent = Date.now();
  private lastReceived = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private closedReason: string | undefined;
  private held: Message[] | undefined;

  constructor(readonly socket: Socket, opts: ConnectionOptions = {}) {
    super();
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.reader = new FrameReader(opts.maxFrame ?? DEFAULT_MAX_FRAME);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    socket.on('close', () => this.close('connection closed by peer'));
    const beat = opts.heartbeatMs ?? HEARTBEAT_MS;
    const dead = opts.deadAfterMs ?? DEAD_AFTER_MS;
    this.timer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastReceived > dead) this.close(`no frame from peer for ${now - this.lastReceived} ms`);
      else if (now - this.lastSent >= beat) this.send({ t: 'ping' });
    }, Math.max(50, Math.min(beat, dead) / 2));
    this.timer.unref();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Sends one message; false means the socket buffer is full (await drained()). */
  send(msg: Message): boolean {
    if (this.closed) return false;
    this.lastSent = Date.now();
    const payload = encodeValue(msg);
    // header and payload as two writes in one writev, so a 1 MiB chunk is not copied again
    this.socket.cork();
    this.socket.write(frameHeader(payload.length));
    const ok = this.socket.write(payload);
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
   * Queues incoming messages instead of emitting them, until release(). The hello hands the
   * connection over with this on, so that a message arriving in the same packet as the welcome
   * is not emitted before its new owner listens.
   */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const queued = this.held ?? [];
    this.held = undefined;
    for (const msg of queued) {
      if (this.closed) return;
      this.emit('message', msg);
    }
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
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.socket.destroy();
      this.close(`bad frame: ${(err as Error).message}`);
      return;
    }
    for (const frame of frames) {
      let msg: Message;
      try {
        msg = parseMessage(decodeValue(frame));
      } catch (err) {
        this.socket.destroy();
        this.close(`undecodable frame: ${(err as Error).message}`);
        return;
      }
      if (msg.t === 'ping') continue;
      if (this.held) this.held.push(msg);
      else this.emit('message', msg);
      if (this.closed) return;
    }
  }
}
