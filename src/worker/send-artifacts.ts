// Streams a finished run's artifacts to the server: per file a start (path, size, mode), chunks
// read from disk as the socket takes them, and an end with the sha256 computed on the way.
//
// Chunks are read into a few buffers used over and over, instead of a fresh one per read:
// the socket holds a chunk until it is written (the connection sends its bytes without a
// copy), so a buffer is read into again only after the socket drained, which means that every
// byte handed to it before has been written. Up to WINDOW bytes are sent before waiting for
// that, so reading the next chunk overlaps with sending the last ones.
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { ArtifactPaths, normaliseArtifactPath } from '../common/names.js';
import type { Refusal } from '../protocol/messages.js';
import type { ArtifactFile } from './sandbox/types.js';
import type { ServerPort } from './server-port.js';

// big enough that per-frame costs vanish, small enough to interleave with other runs' output
const CHUNK = 1024 * 1024;
/** bytes sent and not known to be written before the next read waits for the socket */
const WINDOW = 4 * CHUNK;

/**
 * Sends every artifact; returns the ones refused here (a path that cannot be stored, a file that
 * could not be read) with how many were sent, or false when the connection went.
 */
export async function sendArtifacts(conn: Pick<ServerPort, 'send' | 'closed' | 'drained'>, uuid: string, files: ArtifactFile[]): Promise<{ refusals: Refusal[]; sent: number } | false> {
  let sent = 0;
  const refusals: Refusal[] = [];
  const taken = new ArtifactPaths();
  // buffers the socket is done with, and those it may still hold (see the header)
  const free: Buffer[] = [];
  let sending: Buffer[] = [];
  let inFlight = 0;
  for (const file of files) {
    // normalised here, once, so the server stores what it is sent (it checks again)
    const normal = normaliseArtifactPath(file.path);
    const problem = 'problem' in normal ? normal.problem : taken.take(normal.path);
    if (problem !== undefined) {
      refusals.push({ path: file.path, reason: problem });
      continue;
    }
    const path = (normal as { path: string }).path;
    let size: number;
    try {
      size = (await stat(file.hostPath)).size;
    } catch (err) {
      refusals.push({ path: file.path, reason: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` });
      continue;
    }
    conn.send({ t: 'artifact', uuid, path, size, mode: file.mode });
    sent++;
    const hash = createHash('sha256');
    try {
      const handle = await open(file.hostPath, 'r');
      try {
        for (;;) {
          if (conn.closed) return false;
          const buf = free.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
          const { bytesRead } = await handle.read(buf, 0, CHUNK, null);
          if (bytesRead === 0) {
            free.push(buf);
            break;
          }
          const data = buf.subarray(0, bytesRead);
          hash.update(data);
          sending.push(buf);
          inFlight += bytesRead;
          if (!conn.send({ t: 'chunk', uuid, data }) && inFlight >= WINDOW) {
            await conn.drained();
            if (conn.closed) return false;
            free.push(...sending);
            sending = [];
            inFlight = 0;
          }
        }
      } finally {
        await handle.close();
      }
    } catch (err) {
      refusals.push({ path, reason: `read failed: ${(err as Error).message}` });
    }
    if (conn.closed) return false;
    conn.send({ t: 'artifact-end', uuid, sha256: hash.digest('hex') });
  }
  return { refusals, sent };
}
