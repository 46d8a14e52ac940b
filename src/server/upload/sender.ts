// One upload attempt: POST the streamed exec record to builder-web and say what the answer
// means for the outbox. The credentials come from the URL's user:password (percent-decoded) and
// go only into the Authorization header: the URL we keep, log and show has them stripped.
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { BuilderError, errorMessage } from '../../common/errors.js';
import { BuilderWebFormatError } from '../../builder-web/format.js';
import type { ExecBody } from '../../builder-web/stream-encode.js';

export interface UploadTarget {
  /** The URL without user and password: safe to log. */
  readonly url: string;
  /** `Basic ...`, or undefined when the URL has no user. */
  readonly authorization: string | undefined;
  /** Anything in an error message that must not be shown (the password, raw and encoded). */
  readonly secrets: readonly string[];
}

/** `password` (from --upload-password-file or BUILDER_UPLOAD_PASSWORD) wins over one in the URL. */
export function parseUploadUrl(raw: string, password?: string): UploadTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BuilderError('UPLOAD_URL', `--upload: not a URL: ${raw.replace(/\/\/[^@/]*@/, '//***@')}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BuilderError('UPLOAD_URL', `--upload: expected an http or https URL, got ${url.protocol}`);
  }
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new BuilderError('UPLOAD_URL', '--upload: the user or password has a bad %-escape');
    }
  };
  const user = decode(url.username);
  const given = password ?? decode(url.password);
  const secrets = [given, url.password, encodeURIComponent(given)].filter((s) => s.length >= 3);
  url.username = '';
  url.password = '';
  const authorization = user || given ? `Basic ${Buffer.from(`${user}:${given}`, 'utf8').toString('base64')}` : undefined;
  if (authorization) secrets.push(authorization.slice(6));
  return Object.freeze({ url: url.toString(), authorization, secrets: Object.freeze(secrets) });
}

/** What an attempt means for the outbox row. */
export type Outcome =
  /** 201, or 409 (builder-web has that build already), or another 2xx */
  | { kind: 'uploaded'; status: number; note: string }
  /** 401/403: the credentials or the user's rights; kept until someone says retry */
  | { kind: 'refused'; status: number; message: string }
  /** 500 (undecodable, or a transient database error: the uploader tries it a few more times), other 4xx, or a record we cannot write */
  | { kind: 'failed'; status: number | undefined; message: string }
  /** network trouble, other 5xx, 408, 429: try again after a backoff */
  | { kind: 'retry'; status: number | undefined; message: string };

export interface SendOptions {
  /** Idle limit while sending and waiting for the answer (undici refreshes it on every write). */
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly signal?: AbortSignal;
}

const DEFAULTS: SendOptions = { headersTimeoutMs: 120_000, bodyTimeoutMs: 60_000 };

/** A builder-web error page is short; more is not worth keeping in last_error. */
const MAX_ANSWER = 2048;

let agent: Dispatcher | undefined;
/** One keep-alive pool for all uploads; TLS is verified as usual. */
const dispatcher = (): Dispatcher => (agent ??= new Agent({ keepAliveTimeout: 10_000, connections: 4 }));

export async function sendUpload(target: UploadTarget, body: ExecBody, opts: Partial<SendOptions> = {}): Promise<Outcome> {
  const o = { ...DEFAULTS, ...opts };
  // Our own read errors (a file that changed under us) must not look like network trouble.
  let localError: unknown;
  async function* guarded(): AsyncGenerator<Buffer> {
    try {
      yield* body.body;
    } catch (err) {
      localError = err;
      throw err;
    }
  }
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'content-length': String(body.length),
  };
  if (target.authorization) headers.authorization = target.authorization;
  let status: number;
  let answer: string;
  try {
    const res = await request(target.url, {
      method: 'POST',
      headers,
      body: Readable.from(guarded(), { objectMode: false, highWaterMark: 1 << 20 }),
      dispatcher: dispatcher(),
      headersTimeout: o.headersTimeoutMs,
      bodyTimeout: o.bodyTimeoutMs,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    status = res.statusCode;
    answer = await readSome(res.body);
  } catch (err) {
    if (localError !== undefined) {
      const message = `cannot read the stored result: ${redact(target, errorMessage(localError))}`;
      return localError instanceof BuilderWebFormatError || (localError as NodeJS.ErrnoException).code === 'ENOENT'
        ? { kind: 'failed', status: undefined, message }
        : { kind: 'retry', status: undefined, message };
    }
    return { kind: 'retry', status: undefined, message: redact(target, describeNetworkError(err)) };
  }
  return classify(status, redact(target, answer));
}

export function classify(status: number, answer: string): Outcome {
  const said = answer.trim() ? `: ${oneLine(answer)}` : '';
  if (status === 201) return { kind: 'uploaded', status, note: 'created' };
  if (status === 409) return { kind: 'uploaded', status, note: 'builder-web has it already' };
  if (status >= 200 && status < 300) return { kind: 'uploaded', status, note: `answered ${status}` };
  if (status === 401 || status === 403) {
    return { kind: 'refused', status, message: `builder-web refused the upload (${status})${said}; check the user and password in --upload and the user's rights, then builder-client upload-retry` };
  }
  if (status === 500) return { kind: 'failed', status, message: `builder-web could not take the build (500)${said}` };
  if (status === 408 || status === 429 || status >= 500) return { kind: 'retry', status, message: `builder-web answered ${status}${said}` };
  return { kind: 'failed', status, message: `builder-web answered ${status}${said}` };
}

async function readSome(body: AsyncIterable<Buffer> & { destroy?: (err?: Error) => void }): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    if (n < MAX_ANSWER) parts.push(chunk.subarray(0, MAX_ANSWER - n));
    n += chunk.length;
    // keep draining (small anyway) so the connection can be reused
  }
  return Buffer.concat(parts).toString('utf8');
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 300);

function describeNetworkError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.cause?.code ?? e.code;
  const msg = e.cause?.message ?? errorMessage(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

/** Strips the credentials from anything we are about to log or store. */
export function redact(target: UploadTarget, text: string): string {
  let out = text;
  for (const s of target.secrets) out = out.split(s).join('***');
  return out;
}
