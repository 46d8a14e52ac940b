// Finished runs read from anywhere: run-console (the stored console, or a running run's lines so
// far, then live with follow), run-result (the record and its artifacts) and fetch-artifacts
// (the artifacts' bytes). All three only read.
//
// The conversation of a streamed request, after its `res`:
//   run-console      line {ms, data} ... then console-end {error?}   (live: line ... end {result})
//   fetch-artifacts  per artifact: artifact-file {path, size, mode, sha256}, artifact-data {data} ...;
//                    then artifacts-end {error?}
// Streams start after the reply has gone (setImmediate: the reply is sent as soon as the
// request's handler returns). Once more than WINDOW bytes wait in the socket, the next chunk is
// read from disk only after it drained, so a slow client holds the server to a few chunks in
// memory, never the file.
import { createReadStream } from 'node:fs';
import { BuilderError, errorMessage, type ErrorCode } from '../common/errors.js';
import { isUuid } from '../common/names.js';
import type { Connection } from '../protocol/connection.js';
import type { Message } from '../protocol/messages.js';
import type { ArtifactInfo, FetchArtifactsReply, RunConsoleReply, RunInfo, RunResultReply } from '../protocol/replies.js';
import { artifactFile, consoleLines } from '../results/index.js';
import type { Coordinator } from './coordinator.js';
import { connectionPort } from './port.js';
import type { RunRow, Store } from './store/index.js';

/** bytes per artifact-data message: large enough for throughput, small next to the frame limit */
export const ARTIFACT_CHUNK = 256 * 1024;

const refuse = (code: ErrorCode, message: string): never => {
  throw new BuilderError(code, message);
};

function runOf(store: Store, uuid: string): RunRow {
  if (!isUuid(uuid)) refuse('BAD_UUID', `invalid uuid "${uuid}"`);
  return store.run(uuid) ?? refuse('NO_RUN', `no run with uuid ${uuid}`);
}

function storedDir(row: RunRow): string {
  if (row.state !== 'finished') return refuse('NOT_STORED', `run ${row.uuid} of ${row.job} is still running`);
  return row.dir ?? refuse('NOT_STORED', `run ${row.uuid} of ${row.job} finished but its result could not be stored`);
}

/**
 * Bytes that may wait in the socket before the next message waits for it to drain: enough to
 * keep the connection busy while the next chunk is read from disk, small enough that a slow
 * client holds the server to a few chunks of memory.
 */
const WINDOW = 4 * 1024 * 1024;

/** Sends one message; past WINDOW waits until the socket has taken it all (false: the client is gone). */
async function paced(conn: Connection, msg: Message): Promise<boolean> {
  conn.send(msg);
  if (conn.backlog > WINDOW) await conn.drained();
  return !conn.closed;
}

const after = (fn: () => Promise<void>): void => void setImmediate(() => void fn());

export function runConsole(store: Store, coordinator: Coordinator, conn: Connection, req: { id: number; uuid: string; follow?: boolean }): RunConsoleReply {
  const row = runOf(store, req.uuid);
  const reply = (live: boolean, r: RunRow): RunConsoleReply => ({
    uuid: r.uuid, job: r.job, platform: r.platform, started: new Date(r.started).toISOString(), live,
    result: r.result ? JSON.parse(r.result) : null,
  });
  const running = row.state === 'running';
  // live: the observers' path (lines so far, then as they come, then end)
  if (running && req.follow && coordinator.observe(connectionPort(conn), req.id, row.uuid)) return reply(true, row);
  // a finished run's console is its result's file (refused now if it could not be stored)
  const stored = running ? undefined : storedDir(row);
  after(async () => {
    const line = (ms: number, data: Buffer): Promise<boolean> => paced(conn, { t: 'line', id: req.id, uuid: row.uuid, ms, data });
    try {
      // a running run's lines stored so far, a page at a time as the client reads them
      let next = 0;
      if (running) {
        for (const l of store.pagedLines(row.uuid)) {
          if (!(await line(l.ms, l.data))) return;
          next = l.seq + 1;
        }
      }
      // ... and of one that finished meanwhile, the rest from its result's file, whose lines
      // may have left the database (console-sweeper.ts) before they were read
      const now = running ? store.run(row.uuid) : undefined;
      const dir = stored ?? (now?.state === 'finished' ? now.dir : null);
      if (dir) {
        let n = 0;
        for await (const [ms, data] of consoleLines(dir)) {
          if (n++ < next) continue;
          if (!(await line(ms, data))) return;
        }
      }
      conn.send({ t: 'console-end', id: req.id, uuid: row.uuid });
    } catch (err) {
      conn.send({ t: 'console-end', id: req.id, uuid: row.uuid, error: `cannot read the console of ${row.uuid}: ${errorMessage(err)}` });
    }
  });
  return reply(false, row);
}

export function runResult(store: Store, uuid: string, info: (r: RunRow) => RunInfo): RunResultReply {
  const row = runOf(store, uuid);
  return { run: info(row), artifacts: store.artifacts(row.uuid) };
}

/** The artifacts named (an exact path, or a directory: everything under it), or all of them. */
function selectArtifacts(uuid: string, all: ArtifactInfo[], paths: string[] | undefined): ArtifactInfo[] {
  if (paths === undefined || paths.length === 0) return all;
  const chosen = new Set<ArtifactInfo>();
  const missing: string[] = [];
  for (const p of paths) {
    const dir = p.replace(/\/+$/, '') + '/';
    const hits = all.filter((a) => a.path === p || a.path.startsWith(dir));
    if (hits.length === 0) missing.push(p);
    hits.forEach((a) => chosen.add(a));
  }
  if (missing.length > 0) refuse('NO_ARTIFACT', `run ${uuid} has no artifact ${missing.map((m) => JSON.stringify(m)).join(', ')}`);
  return all.filter((a) => chosen.has(a));
}

export function fetchArtifacts(store: Store, conn: Connection, req: { id: number; uuid: string; paths?: string[] }): FetchArtifactsReply {
  const row = runOf(store, req.uuid);
  const dir = storedDir(row);
  const artifacts = selectArtifacts(row.uuid, store.artifacts(row.uuid), req.paths);
  after(() => streamArtifacts(conn, req.id, dir, artifacts));
  return { uuid: row.uuid, job: row.job, artifacts, bytes: artifacts.reduce((n, a) => n + a.size, 0) };
}

async function streamArtifacts(conn: Connection, id: number, dir: string, artifacts: ArtifactInfo[]): Promise<void> {
  for (const a of artifacts) {
    if (!(await paced(conn, { t: 'artifact-file', id, path: a.path, size: a.size, mode: a.mode, sha256: a.sha256 }))) return;
    const stream = createReadStream(artifactFile(dir, a.path), { highWaterMark: ARTIFACT_CHUNK });
    try {
      // one chunk read, sent, and drained before the next is read
      for await (const data of stream as AsyncIterable<Buffer>) {
        if (!(await paced(conn, { t: 'artifact-data', id, data }))) return;
      }
    } catch (err) {
      conn.send({ t: 'artifacts-end', id, error: `cannot read artifact ${a.path}: ${errorMessage(err)}` });
      return;
    } finally {
      stream.destroy();
    }
  }
  conn.send({ t: 'artifacts-end', id });
}
