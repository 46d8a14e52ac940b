// builder-server --http IP:PORT: a read-only web view of the schedule, jobs, runs, consoles and
// artifacts, their JSON twins under /api/, a live console (Server-Sent Events), Prometheus
// metrics and a health check, on node:http. Only GET and HEAD are answered (405 otherwise):
// nothing here changes any state. Every response forbids inline scripts and framing (CSP), so
// even a value that got past escaping could not run; pages are Handlebars templates, rendered
// here, that work without JavaScript except the live console.
import { createReadStream } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { basename, join, sep } from 'node:path';
import { accessSync, constants } from 'node:fs';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { artifactPathProblem, isUuid } from '../common/names.js';
import type { Coordinator } from '../server/coordinator.js';
import type { ServerEvents } from '../server/events.js';
import type { Store } from '../server/store/index.js';
import { authorized, type BasicAuth } from './auth.js';
import { consoleText } from './console-file.js';
import { LiveConsoles } from './live.js';
import { Metrics } from './metrics.js';
import { frontPage, jobPage, parseCursor, runPage, type RunsFrom, type ViewContext } from './pages.js';
import { makeRenderer, type Renderer } from './render.js';

export interface WebViewOptions {
  host: string;
  port: number;
  auth: BasicAuth | undefined;
  store: Store;
  coordinator: Coordinator;
  events: ServerEvents;
  configDir: string;
  stateDir: string;
  /** whether the protocol listener (workers and clients) is up, for /healthz */
  listening: () => boolean;
  log: Logger;
  /** templates/web/ by default */
  templatesDir?: string;
}

export interface WebView {
  address: { host: string; port: number };
  live: LiveConsoles;
  metrics: Metrics;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export async function startWebView(opts: WebViewOptions): Promise<WebView> {
  const renderer = makeRenderer(opts.templatesDir);
  const ctx: ViewContext = { store: opts.store, coordinator: opts.coordinator, configDir: opts.configDir };
  const live = new LiveConsoles(opts.store, opts.events);
  const metrics = new Metrics(opts.store, opts.coordinator);
  const handler = makeHandler(ctx, opts, renderer, live, metrics);
  const server: Server = createServer({ noDelay: true }, (req, res) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    handler(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) opts.log.error('web view request failed', { path: req.url, error: errorMessage(err) });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const message = err instanceof HttpError ? err.message : 'internal error (see the server log)';
      if (wantsJson(req)) sendJson(res, status, { error: message });
      else sendHtml(res, status, renderer.page('error', `${status}`, { status, message }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  opts.log.info('web view listening', { address: `${opts.host}:${port}`, auth: opts.auth ? 'basic' : 'none' });
  return {
    address: { host: opts.host, port },
    live,
    metrics,
    close: () => new Promise<void>((resolve) => {
      live.stop();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

const wantsJson = (req: IncomingMessage): boolean => (req.url ?? '').startsWith('/api/');

function sendHtml(res: ServerResponse, status: number, html: string): void {
  const body = Buffer.from(html, 'utf8');
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  const body = Buffer.from(text, 'utf8');
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(body);
}

/** ?page=N (1-based), or `fallback` when absent; "last" for the last page */
function pageParam(url: URL, fallback: number | 'last'): number | 'last' {
  const raw = url.searchParams.get('page');
  if (raw === null || raw === '') return fallback;
  if (raw === 'last') return 'last';
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new HttpError(400, `page must be a number from 1, or "last", got "${raw}"`);
  return n;
}

/** A job page's ?before=F,R / ?after=F,R (cursors from its links), else its ?page= */
function runsFromParam(url: URL): RunsFrom {
  for (const key of ['before', 'after'] as const) {
    const raw = url.searchParams.get(key);
    if (raw === null || raw === '') continue;
    const cursor = parseCursor(raw);
    if (!cursor) throw new HttpError(400, `${key} must be a cursor "finished,rowid" from a link of this page, got "${raw}"`);
    return key === 'before' ? { before: cursor } : { after: cursor };
  }
  const p = pageParam(url, 1);
  return p === 'last' ? 'oldest' : p === 1 ? 'newest' : { page: p };
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, 'malformed percent-encoding in the path');
  }
}

function runUuid(raw: string): string {
  const uuid = decodeSegment(raw);
  if (!isUuid(uuid)) throw new HttpError(404, 'no such run (not a uuid)');
  return uuid;
}

function makeHandler(ctx: ViewContext, opts: WebViewOptions, renderer: Renderer, live: LiveConsoles, metrics: Metrics) {
  const { store } = ctx;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (opts.auth && !authorized(req, opts.auth)) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="builder", charset="UTF-8"', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('authentication required\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('the web view is read-only: only GET and HEAD\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://view.invalid');
    const path = url.pathname;
    const api = path === '/api' || path.startsWith('/api/');
    const rest = api ? path.slice(4) || '/' : path;
    const parts = rest.split('/').slice(1);

    if (!api && path === '/metrics') return sendText(res, 200, metrics.render(), 'text/plain; version=0.0.4; charset=utf-8');
    if (!api && path === '/healthz') {
      const problem = healthProblem(opts);
      return sendText(res, problem ? 503 : 200, `${problem ?? 'ok'}\n`);
    }
    if (!api && parts[0] === 'static' && parts.length === 2) {
      const asset = renderer.asset(parts[1]!);
      if (!asset) throw new HttpError(404, 'no such file');
      res.writeHead(200, { 'Content-Type': asset.type, 'Content-Length': asset.body.length, 'Cache-Control': 'max-age=300' });
      res.end(asset.body);
      return;
    }

    if (rest === '/') {
      const p = pageParam(url, 1);
      const data = frontPage(ctx, p === 'last' ? Number.MAX_SAFE_INTEGER : p);
      return api ? sendJson(res, 200, data) : sendHtml(res, 200, renderer.page('front', 'builder', data));
    }
    if (parts[0] === 'job' && parts.length === 2 && parts[1] !== '') {
      const name = decodeSegment(parts[1]!);
      const data = jobPage(ctx, name, runsFromParam(url));
      if (!data) throw new HttpError(404, `no job named ${name}, and no runs of one`);
      return api ? sendJson(res, 200, data) : sendHtml(res, 200, renderer.page('job', `${name} - builder`, data));
    }
    if (parts[0] === 'run' && parts.length >= 2) {
      const uuid = runUuid(parts[1]!);
      const sub = parts.slice(2);
      if (sub.length === 0) {
        const data = await runPage(ctx, uuid, pageParam(url, 'last'));
        if (!data) throw new HttpError(404, `no run with uuid ${uuid}`);
        return api ? sendJson(res, 200, data) : sendHtml(res, 200, renderer.page('run', `${data.job} ${uuid} - builder`, data));
      }
      if (api) throw new HttpError(404, 'no such page');
      if (sub.length === 1 && sub[0] === 'events') {
        if (req.method === 'HEAD') {
          if (!store.run(uuid)) throw new HttpError(404, `no run with uuid ${uuid}`);
          res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store' });
          res.end();
          return;
        }
        const last = req.headers['last-event-id'] ?? url.searchParams.get('after') ?? '-1';
        const after = Number(last);
        if (!Number.isSafeInteger(after) || after < -1) throw new HttpError(400, `after must be a line number, got "${String(last)}"`);
        if (!live.serve(req, res, uuid, after)) throw new HttpError(404, `no run with uuid ${uuid}`);
        return;
      }
      if (sub.length === 1 && sub[0] === 'console.txt') return rawConsole(store, res, uuid);
      if (sub.length === 1 && (sub[0] === 'compare.txt' || sub[0] === 'provenance.json')) {
        const row = store.run(uuid);
        if (!row?.dir) throw new HttpError(404, `run ${uuid} has no stored result`);
        return sendFile(res, join(row.dir, sub[0]), row.dir, sub[0] === 'compare.txt' ? 'text/plain; charset=utf-8' : 'application/json', undefined);
      }
      if (sub[0] === 'artifact' && sub.length >= 2) {
        const artifact = decodeSegment(sub.slice(1).join('/'));
        return sendArtifact(store, res, uuid, artifact);
      }
    }
    throw new HttpError(404, 'no such page');
  };
}

function healthProblem(opts: WebViewOptions): string | null {
  if (!opts.listening()) return 'the protocol listener is not up';
  const store = opts.store.views.writable();
  if (store) return store;
  try {
    accessSync(opts.stateDir, constants.W_OK);
  } catch (err) {
    return `state directory ${opts.stateDir} not writable: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`;
  }
  return null;
}

/**
 * An artifact of a run, streamed. Only paths the run's record lists are served, and the file
 * must resolve (links followed) inside the run's artifacts/ directory: a request can name no
 * other file, whatever dots, slashes or encodings it carries.
 */
async function sendArtifact(store: Store, res: ServerResponse, uuid: string, path: string): Promise<void> {
  const row = store.run(uuid);
  if (!row?.dir) throw new HttpError(404, `run ${uuid} has no stored result`);
  if (artifactPathProblem(path)) throw new HttpError(404, 'no such artifact');
  const listed = store.views.artifact(uuid, path);
  if (!listed) throw new HttpError(404, 'no such artifact');
  const root = join(row.dir, 'artifacts');
  const disposition = `attachment; filename="${basename(path).replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(basename(path))}`;
  await sendFile(res, join(root, path), root, 'application/octet-stream', disposition);
}

async function sendFile(res: ServerResponse, file: string, root: string, type: string, disposition: string | undefined): Promise<void> {
  let real: string;
  let realRoot: string;
  try {
    [real, realRoot] = await Promise.all([realpath(file), realpath(root)]);
  } catch {
    throw new HttpError(404, 'no such file');
  }
  if (!real.startsWith(realRoot + sep)) throw new HttpError(404, 'no such file');
  const fh = await open(real, 'r');
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new HttpError(404, 'no such file');
  }
  res.writeHead(200, {
    'Content-Type': type, 'Content-Length': st.size, 'Cache-Control': 'no-store',
    ...(disposition ? { 'Content-Disposition': disposition } : {}),
  });
  const stream = createReadStream('', { fd: fh.fd, autoClose: false });
  stream.pipe(res);
  await new Promise<void>((resolve) => {
    const done = (): void => resolve();
    stream.once('end', done);
    stream.once('error', () => {
      res.destroy();
      resolve();
    });
    res.once('close', done);
  });
  stream.destroy();
  await fh.close();
}

/**
 * The console as plain text, one line per line, without the times: from the store while the
 * run goes on, from its console file once stored, in batches either way.
 */
async function rawConsole(store: Store, res: ServerResponse, uuid: string): Promise<void> {
  const row = store.run(uuid);
  if (!row) throw new HttpError(404, `no run with uuid ${uuid}`);
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  const write = async (chunk: Buffer): Promise<void> => {
    if (!res.write(chunk)) await drained(res);
  };
  if (row.state === 'running') {
    let seq = -1;
    for (;;) {
      const rows = store.views.consoleAfter(uuid, seq, 1000);
      if (rows.length === 0 || res.destroyed) break;
      seq = rows.at(-1)!.seq;
      await write(Buffer.concat(rows.flatMap((r) => [r.data, Buffer.from('\n')])));
    }
  } else if (row.dir) {
    for await (const chunk of consoleText(join(row.dir, 'console'))) {
      if (res.destroyed) break;
      await write(chunk);
    }
  }
  res.end();
}

/** Waits until the response's buffer has drained, or the reader is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
