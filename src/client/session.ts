// A client's connection: requests with ids, answers matched to them, and the streamed events
// (started, line, skipped, end) of observed runs delivered to the request that asked.
import { BuilderError, errorCodeFromWire } from '../common/errors.js';
import type { Connection } from '../protocol/connection.js';
import { dialEarly } from '../protocol/dial.js';
import type { PeerTls } from '../protocol/tls.js';
import type { ArtifactData, ArtifactFile, ArtifactsEnd, ConsoleEnd, End, Line, Message, Request, Skipped, Started } from '../protocol/messages.js';
import type { Op, Replies } from '../protocol/replies.js';

export type Stream = Started | Line | Skipped | End | ConsoleEnd | ArtifactFile | ArtifactData | ArtifactsEnd;
/** the messages that end a request's stream */
const LAST = new Set<Stream['t']>(['end', 'console-end', 'artifacts-end']);
/** A request without its envelope (t, id); RequestBody<'info'> is one op's, RequestBody any op's. */
export type RequestBody<O extends Op = Op> = O extends Op ? Omit<Extract<Request, { op: O }>, 't' | 'id'> : never;

export class ClientSession {
  private nextId = 1;
  private waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private streams = new Map<number, (ev: Stream) => void>();

  /**
   * @param welcome the hello's end: the first request is sent before the welcome (dialEarly), so a
   * refused auth rejects every request with the hello's own error
   */
  constructor(readonly conn: Connection, private readonly welcome: Promise<unknown> = Promise.resolve()) {
    conn.on('message', (msg: Message) => this.onMessage(msg));
    conn.on('close', (reason) => {
      for (const w of this.waiting.values()) w.reject(new BuilderError('CONNECT', `connection lost: ${reason}`));
      this.waiting.clear();
    });
  }

  static async open(host: string, port: number, token: string, tls?: PeerTls): Promise<ClientSession> {
    const { conn, welcome } = await dialEarly({ host, port, token, role: 'client', tls });
    const session = new ClientSession(conn, welcome);
    conn.release();
    return session;
  }

  /**
   * Sends a request; resolves with the server's reply, typed by the op (replies.ts), or rejects
   * with its refusal. The reply is not checked field by field: the server builds it with the same
   * Replies types, so this one cast is where that contract is taken on trust.
   */
  request<B extends RequestBody>(body: B, onStream?: (ev: Stream) => void): Promise<{ id: number; data: Replies[B['op']] }> {
    const id = this.nextId++;
    if (onStream) this.streams.set(id, onStream);
    const reply = new Promise<{ id: number; data: Replies[B['op']] }>((resolve, reject) => {
      this.waiting.set(id, { resolve: (data) => resolve({ id, data: data as Replies[B['op']] }), reject });
      this.conn.send({ t: 'req', id, ...body } as Request);
    });
    // the hello's refusal settles first (its listener was there first), so it is the error seen
    return Promise.all([this.welcome, reply]).then(([, r]) => r);
  }

  close(): void {
    this.conn.close('done');
  }

  private onMessage(msg: Message): void {
    switch (msg.t) {
      case 'res': {
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (!w) return;
        if (msg.ok) w.resolve(msg.data);
        else w.reject(new BuilderError(errorCodeFromWire(msg.code), msg.message));
        return;
      }
      case 'started':
      case 'line':
      case 'skipped':
      case 'end':
      case 'console-end':
      case 'artifact-file':
      case 'artifact-data':
      case 'artifacts-end': {
        this.streams.get(msg.id)?.(msg);
        if (LAST.has(msg.t)) this.streams.delete(msg.id);
        return;
      }
      case 'error':
        for (const w of this.waiting.values()) w.reject(new BuilderError(errorCodeFromWire(msg.code), msg.message));
        this.waiting.clear();
        return;
      default:
        return;
    }
  }
}
