// Wires the parts of builder-server together and listens. The entry point reads as a table of
// contents: state, scheduler, coordinator, then one handler per connection role.
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
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
import { Admission, CLIENT_DEAD_AFTER_MS, PRE_AUTH_MAX_FRAME } from './admission.js';
import type { RequestContext } from './requests.js';
import { Scheduler } from './scheduler.js';
import { openStore, type Store } from './store/index.js';
import { serveWorker } from './worker-handler.js';
import { ServerEvents } from './events.js';
import { parseUploadUrl } from './upload/sender.js';
import { Uploader } from './upload/uploader.js';
import { Notifier } from './repro/notify.js';
import { ReproTracker } from './repro/tracker.js';

/** Upload retries never wait longer than this, however long builder-web has been away. */
const MAX_UPLOAD_DELAY_MS = 3_600_000;

export interface RunningServer {
  address: { host: string; port: number };
  store: Store;
  coordinator: Coordinator;
  events: ServerEvents;
  uploader: Uploader | undefined;
  tracker: ReproTracker;
  close(): Promise<void>;
}

export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const { token, file: tokenFile, created } = serverToken(config.stateDir, config.tokenFile);
  if (created) log.info('created a new token', { file: tokenFile });
  const serverName = `builder-server@${hostname()}`;
  const attester = config.provenance === false ? undefined : attesterFor(signingKeyDir(config.stateDir, config.tokenFile), `urn:builder:server:${hostname()}`);
  if (attester?.created) log.info('created a new provenance signing key', { file: attester.key.privateKeyFile, public: attester.key.publicKeyFile });
  const store = openStore(join(config.stateDir, 'state.db'));
  const events = new ServerEvents(log);
  const uploader = config.upload === undefined ? undefined : new Uploader(store.uploads, {
    target: parseUploadUrl(config.upload),
    baseDelayMs: config.uploadBackoffMs,
    maxDelayMs: Math.max(MAX_UPLOAD_DELAY_MS, config.uploadBackoffMs),
  }, log);
  // the coordinator writes the outbox row with the finished run; this only wakes the sender
  if (uploader) events.on('run:finished', () => uploader.wake());
  const notifier = config.notifyCommand ? new Notifier(config.notifyCommand, log, config.notifyTimeoutMs) : undefined;
  // subscribed before anything can finish a run, so every run:finished is tracked
  const tracker = new ReproTracker({ store, events, log, notifier });
  const coordinator = new Coordinator(store, config, log, { events, uploads: uploader !== undefined, attester });
  coordinator.recover();
  const scheduler = new Scheduler(store, config.configDir, (platforms) => platforms.forEach((p) => coordinator.dispatch(p)), log);
  const ctx: RequestContext = { store, coordinator, scheduler, config, uploader };
  const connections = new Set<Connection>();
  const admission = new Admission(log);

  const server: Server = createServer((socket) => {
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
    void handshake(conn, token, log).then((hello) => {
      admitted.release();
      if (!hello || conn.closed) return;
      conn.setLimits({ maxFrame: config.maxFrame, ...(hello.role === 'client' ? { deadAfterMs: CLIENT_DEAD_AFTER_MS } : {}) });
      if (hello.role === 'worker') serveWorker(conn, hello, coordinator, store, log, serverName);
      else {
        conn.send({ t: 'welcome', server: serverName });
        serveClient(conn, ctx, log);
      }
      // what came with the auth frame, now that a handler listens
      conn.release();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  scheduler.start();
  uploader?.start();
  log.info('listening', { address: `${config.host}:${port}`, state: config.stateDir });

  return {
    address: { host: config.host, port },
    store,
    coordinator,
    events,
    uploader,
    tracker,
    async close() {
      uploader?.stop();
      tracker.stop();
      await notifier?.close();
      scheduler.stop();
      coordinator.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.close('server shutting down');
      });
      store.close();
    },
  };
}
