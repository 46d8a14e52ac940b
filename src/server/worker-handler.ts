// The server's side of a worker connection, after the hello:
//   1. server -> welcome {attach: held runs it goes on with, abandon: runs it must drop, dropped}
//   2. server -> job, cancel, drain   /   worker -> output, artifact/chunk/artifact-end, finished, status
//   3. server -> ack once a result is stored (the worker keeps the run until then)
// Messages are handled strictly in order; when disk writes fall behind, the socket is paused.
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import { checkName } from '../common/names.js';
import type { Connection } from '../protocol/connection.js';
import type { Hello, Message } from '../protocol/messages.js';
import type { Coordinator } from './coordinator.js';
import type { Store } from './store/index.js';
import type { WorkerSession } from './worker-session.js';
import { afterCommits, connectionPort } from './port.js';

// bytes of received but not yet handled messages: past this the socket is paused, so a fast
// worker cannot make the server buffer an artifact in memory
const PAUSE_AT = 8 * 1024 * 1024;
const RESUME_AT = 2 * 1024 * 1024;

export function serveWorker(conn: Connection, hello: Hello, coordinator: Coordinator, store: Store, log: Logger, serverName: string): void {
  const info = hello.worker!;
  try {
    checkName('platform', info.platform);
  } catch (err) {
    conn.fail({ t: 'error', code: 'BAD_NAME', message: errorMessage(err) }, errorMessage(err));
    return;
  }
  const w: WorkerSession = {
    // a job (and what follows it) leaves once its run's row is on disk: see afterCommits
    port: afterCommits(connectionPort(conn), store, (err) => log.error('cannot flush the state database; messages to the worker wait', {
      worker: info.name, error: errorMessage(err),
    })),
    peer: conn.peer, name: info.name, platform: info.platform, capacity: Math.max(1, info.capacity), runs: new Set(), storing: new Set(),
    draining: false, diskShort: false, freePercent: undefined, sandbox: undefined, since: Date.now(),
  };
  const wlog = log.child({ worker: w.name, platform: w.platform, peer: conn.peer });
  const { attach, abandon, ready } = coordinator.workerJoined(w, info.running);
  const dropped = store.isDropped(w.platform);
  conn.send({ t: 'welcome', server: serverName, dropped, attach, abandon });
  wlog.info(dropped ? 'worker connected; its platform is dropped, it gets no jobs' : 'worker connected', {
    capacity: w.capacity, attached: attach.length, abandoned: abandon.length,
  });

  // nothing the worker sends is handled before re-attached runs are ready for it
  let chain: Promise<void> = ready.catch((err) => wlog.error('cannot prepare re-attached runs', { error: errorMessage(err) }));
  let pending = 0;
  const handle = async (msg: Message): Promise<void> => {
    switch (msg.t) {
      case 'output': return coordinator.output(w, msg);
      case 'artifact': return coordinator.artifactStart(w, msg);
      case 'chunk': return coordinator.artifactChunk(w, msg);
      case 'artifact-end': return coordinator.artifactEnd(w, msg);
      case 'finished': return coordinator.finished(w, msg);
      case 'status':
        w.draining = msg.draining;
        w.diskShort = msg.diskShort;
        w.freePercent = msg.freePercent;
        w.sandbox = msg.sandbox;
        if (msg.diskShort) wlog.warn('worker is short of disk space and takes no job', { freePercent: msg.freePercent });
        coordinator.dispatch(w.platform);
        return;
      default:
        wlog.warn(`unexpected message from worker: ${msg.t}`);
    }
  };
  conn.on('message', (msg) => {
    const size = msg.t === 'chunk' ? msg.data.length : 256;
    pending += size;
    if (pending >= PAUSE_AT) conn.pauseReading('backlog');
    chain = chain
      .then(() => handle(msg))
      .catch((err) => wlog.error('cannot handle worker message', { type: msg.t, error: errorMessage(err) }))
      .finally(() => {
        pending -= size;
        if (pending <= RESUME_AT) conn.resumeReading('backlog');
      });
  });
  conn.on('close', (reason) => {
    wlog.info('worker disconnected', { reason });
    coordinator.workerLeft(w, reason);
  });
  coordinator.dispatch(w.platform);
}
