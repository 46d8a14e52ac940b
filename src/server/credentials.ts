// Who may do what. Three kinds of credential:
//   admin   the server's token (DIR/token or --token-file): every request, and workers of any name
//   reader  a named token for clients that only look (info, history, observe, ...; access.ts)
//   worker  a named token tied to one worker name: a worker hello with that name, nothing else
// Named tokens are made by `builder-client token add-worker|add-reader NAME` and stored as
// verifiers only (auth.ts). Connections are remembered per credential, so revoking one closes
// them at once; the next hello with it is refused, as it is no longer known.
import { BuilderError } from '../common/errors.js';
import { checkNamedProof, makeNamedToken, peerMac, sameMac, serverProof, verifierOf, type Verifier } from '../protocol/auth.js';
import type { Connection } from '../protocol/connection.js';
import type { Hello, Role } from '../protocol/messages.js';
import type { TokenInfo } from '../protocol/replies.js';
import type { Store, TokenKind } from './store/index.js';

/** a worker token's name is the worker's name, so the same rules */
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export type CredentialKind = 'admin' | TokenKind;

export interface Credential {
  readonly kind: CredentialKind;
  /** the token's name; 'admin' for the admin token */
  readonly name: string;
  /** challenge step: the server's proof that it knows this credential */
  serverProof(peerNonce: Buffer): Buffer;
  /** auth step: does the peer's mac prove the credential? */
  verify(mac: Buffer, role: Role, serverNonce: Buffer, peerNonce: Buffer): boolean;
  /** after auth: undefined when this credential may say this hello, else why not */
  refusal(hello: Hello): string | undefined;
}

function adminCredential(token: string): Credential {
  return {
    kind: 'admin',
    name: 'admin',
    serverProof: (peerNonce) => serverProof(token, peerNonce),
    verify: (mac, role, sn, pn) => sameMac(mac, peerMac(token, role, sn, pn)),
    refusal: () => undefined,
  };
}

function namedCredential(name: string, kind: TokenKind, v: Verifier): Credential {
  return {
    kind,
    name,
    serverProof: (peerNonce) => serverProof(v.serverKey, peerNonce),
    verify: (mac, role, sn, pn) => checkNamedProof(v, mac, name, role, sn, pn),
    refusal: (hello) => {
      if (kind === 'reader') return hello.role === 'client' ? undefined : `reader token ${name} cannot be used by a worker`;
      if (hello.role !== 'worker') return `worker token ${name} cannot send client requests`;
      if (hello.worker?.name !== name) return `worker token ${name} belongs to worker ${name}, not to worker ${JSON.stringify((hello.worker?.name ?? '').slice(0, 128))}`;
      return undefined;
    },
  };
}

export class Credentials {
  private readonly admin: Credential;
  private readonly bound = new WeakMap<Connection, Credential>();
  private readonly live = new Map<string, Set<Connection>>();

  constructor(private readonly store: Store, adminToken: string) {
    this.admin = adminCredential(adminToken);
  }

  /** The credential a hello names (none: the admin token), or why it is unknown. */
  lookup(hello: Hello): Credential | string {
    if (hello.credential === undefined) return this.admin;
    const row = this.store.token(hello.credential);
    if (!row) return `unknown or revoked token ${JSON.stringify(hello.credential.slice(0, 128))}`;
    return namedCredential(row.name, row.kind, { storedKey: row.stored_key, serverKey: row.server_key });
  }

  /** Remembers which credential a connection authenticated with, until it closes. */
  bind(conn: Connection, cred: Credential): void {
    this.bound.set(conn, cred);
    let set = this.live.get(cred.name);
    if (!set) this.live.set(cred.name, (set = new Set()));
    set.add(conn);
    conn.once('close', () => {
      set!.delete(conn);
      if (set!.size === 0 && this.live.get(cred.name) === set) this.live.delete(cred.name);
    });
  }

  /** The credential of an authenticated connection (admin for one never bound: tests' rigs). */
  of(conn: Connection): Credential {
    return this.bound.get(conn) ?? this.admin;
  }

  /** Makes a named token; the token is returned once and only its verifier is stored. */
  add(kind: TokenKind, name: string): string {
    if (!TOKEN_NAME.test(name)) {
      throw new BuilderError('BAD_NAME', `invalid token name "${name.slice(0, 130)}": use letters, digits and . _ + - (up to 128, not starting with a symbol)`);
    }
    if (name === 'admin') throw new BuilderError('NAME_USED', 'the name "admin" is the server\'s own token');
    if (this.store.token(name)) throw new BuilderError('NAME_USED', `a token named ${name} exists already (token revoke ${name} first)`);
    const token = makeNamedToken(name);
    const v = verifierOf(token);
    this.store.tx(() => this.store.addToken({ name, kind, stored_key: v.storedKey, server_key: v.serverKey, created: Date.now() }));
    return token;
  }

  list(): TokenInfo[] {
    return this.store.tokens().map((r) => ({
      name: r.name, kind: r.kind, created: new Date(r.created).toISOString(), connections: this.live.get(r.name)?.size ?? 0,
    }));
  }

  /** Forgets a named token and closes its connections; returns how many were closed. */
  revoke(name: string): number {
    if (!this.store.tx(() => this.store.removeToken(name))) throw new BuilderError('NOT_FOUND', `no token named ${name}`);
    const conns = [...(this.live.get(name) ?? [])];
    this.live.delete(name);
    for (const c of conns) c.fail({ t: 'error', code: 'AUTH', message: `token ${name} was revoked` }, `token ${name} revoked`);
    return conns.length;
  }
}
