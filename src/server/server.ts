// Wires the parts of builder-server together and listens. The entry point reads as a table of
// contents: state, scheduler, coordinator, then one handler per connection role.
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { Logger } from '../common/log.js';
import { serverToken } from '../common/token.js';
import { Connection } from '../protocol/connection.js';
import { serveClient } from './client-handler.js';
import type { ServerConfig } from './config.js';
import { attesterFor, signingKeyDir } from './attest.js';
import { Coordinator } from './coordinator.js';
import { handshake } from './handshake.js';
import { Credentials } from './credentials.js';
import { isLoopback, loadServerTls, showFingerprint } from '../protocol/tls.js';
import { Admission, CLIENT_DEAD_AFTER_MS, PRE_AUTH_MAX_FRAME } from './admission.js';
import type { RequestContext } from './requests.js';
import { Scheduler } from './scheduler.js';
import { openStore, type Store } from './store/index.js';
import { lockStateDir, prepareStateDir } from './state-dir.js';
import { serveWorker } from './worker-handler.js';
import { ServerEvents } from './events.js';
import { parseUploadUrl } from './upload/sender.js';
import { Uploader } from './upload/uploader.js';
import { Notifier } from './repro/notify.js';
import { ReproTracker } from './repro/tracker.js';
import { Retention } from './retention.js';
import { ConsoleSweeper } from './console-sweeper.js';
import { startWebView, type WebView } from '../web/http-server.js';
import { startStallMonitor } from './stall-monitor.js';
import { compactingCollection, startMemorySettle } from './memory-settle.js';
import { systemClock } from './clock.js';
import { performance } from 'node:perf_hooks';

/** Upload retries never wait longer than this, however long builder-web has been away. */
const MAX_UPLOAD_DELAY_MS = 3_600_000;

export interface RunningServer {
  address: { host: string; port: number };
  store: Store;
  coordinator: Coordinator;
  events: ServerEvents;
  uploader: Uploader | undefined;
  tracker: ReproTracker;
  /** the web view (--http), when on */
  web: WebView | undefined;
  close(): Promise<void>;
}

export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  prepareStateDir(config.stateDir, log);
  const { token, file: tokenFile, created } = serverToken(config.stateDir, config.tokenFile);
  // after the token check, so a refused start leaves nothing behind; before the database opens
  const lock = lockStateDir(config.stateDir);
  try {
    return await serve(config, log, token, tokenFile, created, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function serve(config: ServerConfig, log: Logger, token: string, tokenFile: string, created: boolean,
  lock: { release(): void }): Promise<RunningServer> {
  if (created) log.info('created a new token', { file: tokenFile });
  // read before anything is started, so a bad certificate ends the start with one line
  const tls = config.tls ? loadServerTls(config.tls.certFile, config.tls.keyFile) : undefined;
  const serverName = `builder-server@${hostname()}`;
  const attester = config.provenance === false ? undefined : attesterFor(signingKeyDir(config.stateDir, config.tokenFile), `urn:builder:server:${hostname()}`);
  if (attester?.created) log.info('created a new provenance signing key', { file: attester.key.privateKeyFile, public: attester.key.publicKeyFile });
  const store = openStore(join(config.stateDir, 'state.db'));
  const events = new ServerEvents(log);
  const uploader = config.upload === undefined ? undefined : new Uploader(store.uploads, {
    target: parseUploadUrl(config.upload, config.uploadPassword),
    baseDelayMs: config.uploadBackoffMs,
    maxDelayMs: Math.max(MAX_UPLOAD_DELAY_MS, config.uploadBackoffMs),
  }, log);
  // the coordinator writes the outbox row with the finished run; this only wakes the sender
  if (uploader) events.on('run:finished', () => uploader.wake());
  const notifier = config.notifyCommand ? new Notifier(config.notifyCommand, log, config.notifyTimeoutMs) : undefined;
  // subscribed before anything can finish a run, so every run:finished is tracked
  const tracker = new ReproTracker({ store, events, log, notifier });
  const coordinator = new Coordinator(store, config, log, { events, uploads: uploader !== undefined, attester });
  const sweeper = new ConsoleSweeper(store, events, log);
  coordinator.recover();
  const scheduler = new Scheduler(store, config.configDir, (platforms) => platforms.forEach((p) => coordinator.dispatch(p)), log);
  const credentials = new Credentials(store, token);
  const retention = new Retention({
    store, stateDir: config.stateDir, log, policy: { keepRuns: config.keepRuns ?? null, keepDays: config.keepDays ?? null },
  });
  const ctx: RequestContext = { store, coordinator, scheduler, config, uploader, credentials, retention };
  const connections = new Set<Connection>();
  const admission = new Admission(log);

  const onSocket = (socket: Socket): void => {
    const admitted = admission.admit(socket);
    if (!admitted) return;
    // small frames only until the hello has succeeded
    const conn = new Connection(socket, { maxFrame: Math.min(PRE_AUTH_MAX_FRAME, config.maxFrame) });
    connections.add(conn);
    conn.on('close', (reason) => {
      admitted.release();
      connections.delete(conn);
      if (reason.startsWith('bad frame') || reason.startsWith('undecodable')) {
        log.warn('connection closed', { peer: conn.peer, reason });
      }
    });
    void handshake(conn, credentials, log).then((hello) => {
      admitted.release();
      if (!hello || conn.closed) return;
      conn.setLimits({ maxFrame: config.maxFrame, ...(hello.role === 'client' ? { deadAfterMs: CLIENT_DEAD_AFTER_MS } : {}) });
      if (hello.role === 'worker') serveWorker(conn, hello, coordinator, store, log, serverName);
      else {
        conn.send({ t: 'welcome', server: serverName });
        serveClient(conn, ctx, log, credentials.of(conn).kind);
      }
      // what came with the auth frame, now that a handler listens
      conn.release();
    });
  };
  const server: Server = tls ? createTlsServer(tls.options, onSocket) : createServer(onSocket);
  if (tls) {
    // a failed TLS handshake (a plain-TCP peer, a peer that rejects our certificate) ends that
    // socket only; one line says who, so a mis-configured worker is found from the server's log
    server.on('tlsClientError', (err, socket) => {
      log.warn('TLS handshake failed', { peer: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, error: err.message.slice(0, 200) });
      socket.destroy();
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const stopStallMonitor = startStallMonitor(log);
  let loopSeen = performance.eventLoopUtilization();
  const stopMemorySettle = startMemorySettle({
    clock: systemClock,
    rssBytes: () => process.memoryUsage.rss(),
    utilisation: () => {
      const now = performance.eventLoopUtilization();
      const { utilization } = performance.eventLoopUtilization(now, loopSeen);
      loopSeen = now;
      return utilization;
    },
    collect: compactingCollection(),
    collected: (before, after, pauseMs) => log.info('memory given back after a burst', {
      rssMb: Math.round(before / 1048576), nowMb: Math.round(after / 1048576), pauseMs: Math.round(pauseMs),
    }),
  });
  scheduler.start();
  uploader?.start();
  retention.start();
  log.info('listening', { address: `${config.host}:${port}`, state: config.stateDir, ...(tls ? { tls: showFingerprint(tls.fingerprint) } : {}) });
  if (!tls && !isLoopback(config.host)) {
    log.warn('listening without TLS on a non-loopback address: the connections (scripts, consoles, artifacts) are readable on the network; give --tls-cert and --tls-key', { address: config.host });
  }
  const web = config.http === undefined ? undefined : await startWebView({
    host: config.http.host, port: config.http.port, auth: config.httpAuth, store, coordinator, events,
    configDir: config.configDir, stateDir: config.stateDir, listening: () => server.listening, log,
  });

  return {
    address: { host: config.host, port },
    store,
    coordinator,
    events,
    uploader,
    tracker,
    web,
    async close() {
      await web?.close();
      stopStallMonitor();
      stopMemorySettle();
      uploader?.stop();
      await retention.stop();
      sweeper.stop();
      tracker.stop();
      await notifier?.close();
      scheduler.stop();
      coordinator.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.close('server shutting down');
      });
      store.close();
      lock.release();
    },
  };
}
