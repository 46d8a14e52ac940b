// What a connection may cost before it has authenticated, and after. Until the hello has
// succeeded a peer is anyone: it may send only small frames, must finish within a few seconds,
// and only so many such connections are open at once, in total and from one address, so that a
// flood of half-open or idle sockets from one place never keeps real clients and workers out.
import type { Socket } from 'node:net';
import { printable, type Logger } from '../common/log.js';
import { DEAD_AFTER_MS } from '../protocol/connection.js';

/** Largest frame before authentication: a worker's hello listing ~200 held runs fits. */
export const PRE_AUTH_MAX_FRAME = 16 * 1024;
/** The hello, challenge and auth must be over within this. */
export const HANDSHAKE_MS = Number(process.env.BUILDER_HANDSHAKE_MS ?? 5000);
export const MAX_UNAUTHENTICATED = 256;
export const MAX_UNAUTHENTICATED_PER_ADDRESS = 64;
/**
 * A client (an observer, often a person at a terminal that may be paused) is closed for silence
 * only after this; workers keep the short DEAD_AFTER_MS, as their runs are re-dispatched when
 * they go. A silent client costs little: what it is sent is bounded (client-handler, observers).
 */
export const CLIENT_DEAD_AFTER_MS = Number(process.env.BUILDER_CLIENT_DEAD_AFTER_MS ?? Math.max(30_000, 6 * DEAD_AFTER_MS));

export interface Admitted {
  /** The connection authenticated or closed: it no longer counts. Idempotent. */
  release(): void;
}

export class Admission {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(
    private readonly log: Logger,
    private readonly limits = { total: MAX_UNAUTHENTICATED, perAddress: MAX_UNAUTHENTICATED_PER_ADDRESS },
  ) {}

  /** Counts a new connection, or refuses it (closed at once, one log line) past a cap. */
  admit(socket: Socket): Admitted | undefined {
    const address = socket.remoteAddress ?? '?';
    const here = this.byAddress.get(address) ?? 0;
    const refusal = this.total >= this.limits.total
      ? `${this.total} unauthenticated connections open (the most is ${this.limits.total})`
      : here >= this.limits.perAddress
        ? `${here} unauthenticated connections open from this address (the most is ${this.limits.perAddress})`
        : undefined;
    if (refusal) {
      this.log.warn(`connection refused: ${refusal}`, { peer: `${printable(address, 64)}:${socket.remotePort ?? '?'}` });
      socket.on('error', () => undefined);
      socket.destroy();
      return undefined;
    }
    this.total++;
    this.byAddress.set(address, here + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const n = (this.byAddress.get(address) ?? 1) - 1;
        if (n <= 0) this.byAddress.delete(address);
        else this.byAddress.set(address, n);
      },
    };
  }
}
