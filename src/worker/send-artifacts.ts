// Streams a finished run's artifacts to the server: per file a start (path, size, mode), chunks
// read from disk as the socket takes them, and an end with the sha256 computed on the way.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { ArtifactPaths, normaliseArtifactPath } from '../common/names.js';
import type { Refusal } from '../protocol/messages.js';
import type { ArtifactFile } from './sandbox/types.js';
import type { ServerPort } from './server-port.js';

// big enough that per-frame costs vanish, small enough to interleave with other runs' output
const CHUNK = 1024 * 1024;

/**
 * Sends every artifact; returns the ones refused here (a path that cannot be stored, a file that
 * could not be read) with how many were sent, or false when the connection went.
 */
export async function sendArtifacts(conn: Pick<ServerPort, 'send' | 'closed' | 'drained'>, uuid: string, files: ArtifactFile[]): Promise<{ refusals: Refusal[]; sent: number } | false> {
  let sent = 0;
  const refusals: Refusal[] = [];
  const taken = new ArtifactPaths();
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
      for await (const chunk of createReadStream(file.hostPath, { highWaterMark: CHUNK })) {
        if (conn.closed) return false;
        hash.update(chunk as Buffer);
        if (!conn.send({ t: 'chunk', uuid, data: chunk as Buffer })) await conn.drained();
      }
    } catch (err) {
      refusals.push({ path, reason: `read failed: ${(err as Error).message}` });
    }
    if (conn.closed) return false;
    conn.send({ t: 'artifact-end', uuid, sha256: hash.digest('hex') });
  }
  return { refusals, sent };
}
