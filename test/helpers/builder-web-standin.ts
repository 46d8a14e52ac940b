// A builder-web stand-in that speaks the upload contract: POST /upload with HTTP basic auth,
// the body decoded as an exec record; 201 Created, 409 when it has that uuid already, 401 for
// wrong credentials, 500 when the body does not decode. It keeps what it accepted, and can be
// stopped and restarted on the same port, slowed, or made to fail, to test the uploader's retries.
// Bodies above `keepUpTo` bytes are only hashed on the way (for the 1 GiB bench), never held.
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeExec, type ExecRecord } from '../../src/builder-web/format.js';

export interface StandinOptions {
  user?: string;
  password?: string;
  /** 0 (default) picks a free port */
  port?: number;
  /** bodies up to this size are kept and decoded; larger ones are hashed only (default 64 MiB) */
  keepUpTo?: number;
}

/** One accepted upload. */
export interface Received {
  /** the decoded record's uuid, or for hashed-only bodies their sha256 */
  key: string;
  sha256: string;
  length: number;
  /** the raw body and its decoding, when kept */
  body?: Buffer;
  record?: ExecRecord;
  at: number;
}

/** Every request, whatever the answer. */
export interface Seen { status: number; key: string | undefined; authorized: boolean; length: number }

export class BuilderWebStandin extends EventEmitter {
  user: string;
  password: string;
  /** wait this long before answering each request (after the body was read and an upload kept:
   *  a crash of the uploader in that window is "stored, but the answer was lost") */
  delayMs = 0;
  /** answer always with this status (e.g. 500), without looking at the body */
  alwaysStatus: number | undefined;
  readonly received = new Map<string, Received>();
  readonly seen: Seen[] = [];
  private failing: Array<number> = [];
  private server: Server | undefined;
  private readonly keepUpTo: number;
  port = 0;

  private constructor(opts: StandinOptions) {
    super();
    this.user = opts.user ?? 'user';
    this.password = opts.password ?? 'pass';
    this.keepUpTo = opts.keepUpTo ?? 64 << 20;
    this.port = opts.port ?? 0;
  }

  static async start(opts: StandinOptions = {}): Promise<BuilderWebStandin> {
    const s = new BuilderWebStandin(opts);
    await s.listen();
    return s;
  }

  /** The upload URL with credentials (by default the ones the stand-in expects). */
  url(user = this.user, password = this.password): string {
    return `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${this.port}/upload`;
  }

  /** The next n requests get `status` (default 503) after their body was read. */
  failNext(n: number, status = 503): void {
    this.failing.push(...Array<number>(n).fill(status));
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  async listen(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => void this.handle(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500).end(`stand-in error: ${err.message}`);
    }));
    // a 1 GiB body over a slow loop must not hit node's default request timeout
    server.requestTimeout = 0;
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and cuts every open connection (builder-web gone); `listen()` comes back on the same port. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  /** Resolves once `n` distinct uploads have been accepted. */
  async waitForUploads(n: number, timeoutMs = 20_000): Promise<void> {
    if (this.received.size >= n) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('upload', check);
        reject(new Error(`stand-in: ${this.received.size} uploads after ${timeoutMs} ms, expected ${n}; seen ${JSON.stringify(this.seen.slice(-10))}`));
      }, timeoutMs);
      const check = (): void => {
        if (this.received.size < n) return;
        clearTimeout(timer);
        this.off('upload', check);
        resolve();
      };
      this.on('upload', check);
    });
  }

  /** Resolves at the next request answered with `status`. */
  nextStatus(status: number, timeoutMs = 20_000): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('request', check);
        reject(new Error(`stand-in: no ${status} answer within ${timeoutMs} ms; seen ${JSON.stringify(this.seen.slice(-10))}`));
      }, timeoutMs);
      const check = (s: Seen): void => {
        if (s.status !== status) return;
        clearTimeout(timer);
        this.off('request', check);
        resolve(s);
      };
      this.on('request', check);
    });
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    if (!h.startsWith('Basic ')) return false;
    const decoded = Buffer.from(h.slice(6), 'base64').toString('utf8');
    return decoded === `${this.user}:${this.password}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = async (status: number, text: string, key?: string, length = 0, authorized = true): Promise<void> => {
      const seen: Seen = { status, key, authorized, length };
      this.seen.push(seen);
      this.emit('request', seen);
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (!res.destroyed) res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
    };
    if (req.method !== 'POST' || req.url !== '/upload') {
      req.resume();
      return answer(404, 'not found');
    }
    const authorized = this.authorized(req);
    // read the whole body first (like a server that parses before it answers), hashing it
    const hash = createHash('sha256');
    const declared = Number(req.headers['content-length'] ?? NaN);
    const keep = authorized && this.alwaysStatus === undefined && !(declared > this.keepUpTo);
    const parts: Buffer[] = [];
    let length = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      length += chunk.length;
      if (keep) parts.push(chunk);
    }
    const sha256 = hash.digest('hex');
    if (!authorized) return answer(401, 'Unauthorized: wrong user or password', undefined, length, false);
    if (this.alwaysStatus !== undefined) return answer(this.alwaysStatus, 'stand-in told to fail', undefined, length);
    const failWith = this.failing.shift();
    if (failWith !== undefined) return answer(failWith, 'stand-in told to fail for a while', undefined, length);
    let key = sha256;
    let body: Buffer | undefined;
    let record: ExecRecord | undefined;
    if (keep) {
      body = Buffer.concat(parts, length);
      try {
        record = decodeExec(body);
      } catch (err) {
        return answer(500, `Internal Server Error: ${(err as Error).message}`, undefined, length);
      }
      key = record.uuid;
    }
    if (this.received.has(key)) return answer(409, 'Conflict: build exists already', key, length);
    const got: Received = { key, sha256, length, at: Date.now(), ...(body ? { body } : {}), ...(record ? { record } : {}) };
    this.received.set(key, got);
    this.emit('upload', got);
    return answer(201, 'Created', key, length);
  }
}
