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
  /** per address, its unauthenticated sockets, oldest first */
  private readonly byAddress = new Map<string, Set<Socket>>();
  /** the address each socket was counted under (a destroyed socket forgets its own) */
  private readonly addressOf = new Map<Socket, string>();
  private total = 0;

  constructor(
    private readonly log: Logger,
    private readonly limits = { total: MAX_UNAUTHENTICATED, perAddress: MAX_UNAUTHENTICATED_PER_ADDRESS },
  ) {}

  /**
   * Counts a new connection, or refuses it (closed at once, one log line) when its address has
   * too many. When all addresses together have too many, the oldest connection of the address
   * with the most makes room instead: a flood from a few places cannot keep a newcomer out,
   * and an honest hello takes milliseconds, far less than a flood needs to come round again.
   */
  admit(socket: Socket): Admitted | undefined {
    const address = socket.remoteAddress ?? '?';
    const peer = (s: Socket): string => `${printable(s.remoteAddress ?? '?', 64)}:${s.remotePort ?? '?'}`;
    const mine = this.byAddress.get(address);
    if (mine && mine.size >= this.limits.perAddress) {
      this.log.warn(`connection refused: ${mine.size} unauthenticated connections open from this address (the most is ${this.limits.perAddress})`, { peer: peer(socket) });
      socket.on('error', () => undefined);
      socket.destroy();
      return undefined;
    }
    if (this.total >= this.limits.total) {
      let busiest: Set<Socket> | undefined;
      for (const set of this.byAddress.values()) if (!busiest || set.size > busiest.size) busiest = set;
      const oldest = busiest?.values().next().value;
      if (oldest) {
        this.log.warn(`connection dropped: ${this.total} unauthenticated connections open (the most is ${this.limits.total}); the oldest of the busiest address makes room`, {
          peer: `${printable(this.addressOf.get(oldest) ?? '?', 64)}:${oldest.remotePort ?? '?'}`,
        });
        this.forget(oldest);
        oldest.destroy();
      }
    }
    let set = this.byAddress.get(address);
    if (!set) this.byAddress.set(address, (set = new Set()));
    set.add(socket);
    this.addressOf.set(socket, address);
    this.total++;
    return { release: () => this.forget(socket) };
  }

  private forget(socket: Socket): void {
    const address = this.addressOf.get(socket);
    if (address === undefined) return;
    this.addressOf.delete(socket);
    const set = this.byAddress.get(address)!;
    set.delete(socket);
    this.total--;
    if (set.size === 0) this.byAddress.delete(address);
  }
}
