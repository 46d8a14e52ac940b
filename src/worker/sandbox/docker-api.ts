// A minimal client for the Docker engine API on its unix socket: only the calls the docker
// backend makes. Errors that mean "the engine is not there" or "the engine refused" become
// InfraError with the engine's own message, so a job is retried instead of blamed.
import type { Duplex, Readable } from 'node:stream';
import type { Pool } from 'undici';
import { InfraError } from './types.js';

// 1.41 is Docker 20.10, the oldest engine we test against; newer engines accept it too.
const API = '/v1.41';

export class DockerApi {
  private pool: Promise<Pool> | undefined;
  constructor(readonly socketPath = '/var/run/docker.sock') {}

  /** undici is loaded on first use, so `builder-worker --help` and other backends never pay for it */
  private get client(): Promise<Pool> {
    // no timeouts: a wait or an archive download lasts as long as the job; a pool, because a
    // wait holds its connection for the whole job while other calls go on
    this.pool ??= import('undici').then(
      ({ Pool }) => new Pool('http://docker', { socketPath: this.socketPath, headersTimeout: 0, bodyTimeout: 0, connections: null }),
    );
    return this.pool;
  }

  /** one request; returns the status and the body as a stream (caller consumes it) */
  async raw(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Readable }> {
    const isJson = body !== undefined && !(body instanceof Buffer) && typeof (body as Readable).pipe !== 'function';
    try {
      const res = await (await this.client).request({
        method,
        path: API + path,
        headers: isJson ? { 'content-type': 'application/json', ...headers } : headers,
        body: isJson ? JSON.stringify(body) : (body as Buffer | Readable | undefined) ?? null,
      });
      return { status: res.statusCode, body: res.body as unknown as Readable };
    } catch (err) {
      throw new InfraError(`Docker engine at ${this.socketPath} not reachable: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** a request whose JSON answer we want; non-2xx becomes InfraError unless `ok` lists it */
  async json<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, ok: number[] = []): Promise<{ status: number; data: T }> {
    const res = await this.raw(method, path, body);
    const text = await readAll(res.body);
    if ((res.status < 200 || res.status >= 300) && !ok.includes(res.status)) {
      throw new InfraError(`Docker ${method} ${path.split('?')[0]}: ${res.status} ${engineMessage(text)}`);
    }
    let data: T;
    try {
      data = (text.length ? JSON.parse(text.toString('utf8')) : undefined) as T;
    } catch {
      data = undefined as T;
    }
    return { status: res.status, data };
  }

  /**
   * POST .../attach hijacks the connection; undici hands us the raw socket after a 101. With
   * `stdin`, what we write goes to the container's stdin, and ending our side closes it (for a
   * container made with OpenStdin and StdinOnce).
   */
  async attach(id: string, stdin = false): Promise<Duplex> {
    try {
      const { socket } = await (await this.client).upgrade({
        path: `${API}/containers/${id}/attach?stream=1&stdout=1&stderr=1${stdin ? '&stdin=1' : ''}`,
        method: 'POST',
        protocol: 'tcp',
      });
      return socket;
    } catch (err) {
      throw new InfraError(`Docker attach to ${id.slice(0, 12)} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.pool) await (await this.pool).close();
    this.pool = undefined;
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function engineMessage(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { message?: string };
    if (parsed.message) return parsed.message;
  } catch {
    // not JSON: show the text as is
  }
  return body.toString('utf8').trim().slice(0, 500);
}

/**
 * Splits Docker's multiplexed stream (8-byte header: stream type, 3 zero bytes, big-endian
 * length) back into payloads with their stream (1 stdout, 2 stderr). Used for attach without a
 * TTY; our command merges the script's stderr into stdout inside the container, so the order of
 * the bytes is the order they were written.
 */
export function demux(onPayload: (chunk: Buffer, stream: number) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (pending.length < 8) return;
      const len = pending.readUInt32BE(4);
      if (pending.length < 8 + len) {
        // pass on what has come of a large frame at once, so output is never held back
        if (pending.length > 8) {
          onPayload(pending.subarray(8), pending[0]!);
          const rest = Buffer.alloc(8);
          pending.copy(rest, 0, 0, 4);
          rest.writeUInt32BE(len - (pending.length - 8), 4);
          pending = rest;
        }
        return;
      }
      if (len > 0) onPayload(pending.subarray(8, 8 + len), pending[0]!);
      pending = pending.subarray(8 + len);
    }
  };
}
