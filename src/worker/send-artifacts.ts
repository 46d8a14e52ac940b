// Streams a finished run's artifacts to the server: per file a start (path, size, mode), chunks
// read from disk as the socket takes them, and an end with the sha256 computed on the way (the
// server compares it with its own, so that what was corrupted on the way is refused).
//
// Chunks are read into a few buffers used over and over, instead of a fresh one per read:
// the socket holds a chunk until it is written (the connection sends its bytes without a
// copy), so a buffer is read into again only after the socket drained, which means that every
// byte handed to it before has been written. Up to WINDOW bytes are sent before waiting for
// that, so reading the next chunk overlaps with sending the last ones. The buffers are shared
// with the hashing thread (common/sha256-thread.ts), which hashes each while it is sent: this
// loop only reads and sends, and a buffer is read into again once its hash is done too.
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { ArtifactPaths, normaliseArtifactPath } from '../common/names.js';
import { sharedBuffer, ThreadHash } from '../common/sha256-thread.js';
import type { Refusal } from '../protocol/messages.js';
import type { ArtifactFile } from './sandbox/types.js';
import type { ServerPort } from './server-port.js';

// big enough that per-frame costs vanish, small enough to interleave with other runs' output
const CHUNK = 1024 * 1024;
/** bytes sent and not known to be written before the next read waits for the socket */
const WINDOW = 4 * CHUNK;

/** The connection went: the thread forgets the artifact's hash. */
function gone(thread: ThreadHash | undefined): false {
  thread?.drop();
  return false;
}

/**
 * Sends every artifact; returns the ones refused here (a path that cannot be stored, a file that
 * could not be read) with how many were sent, or false when the connection went.
 */
export async function sendArtifacts(conn: Pick<ServerPort, 'send' | 'closed' | 'drained'>, uuid: string, files: ArtifactFile[]): Promise<{ refusals: Refusal[]; sent: number } | false> {
  let sent = 0;
  const refusals: Refusal[] = [];
  const taken = new ArtifactPaths();
  // buffers the socket is done with, and those it (or the hashing thread) may still hold
  const free: Buffer[] = [];
  let sending: Array<{ buf: Buffer; hashed: Promise<void> | undefined }> = [];
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
    // an artifact of one chunk is hashed here: a round trip to the thread would cost more
    const thread = size > CHUNK ? new ThreadHash() : undefined;
    const here = thread ? undefined : createHash('sha256');
    let hashFailed: string | undefined;
    try {
      const handle = await open(file.hostPath, 'r');
      try {
        for (;;) {
          if (conn.closed) return gone(thread);
          const buf = free.pop() ?? sharedBuffer(CHUNK);
          const { bytesRead } = await handle.read(buf, 0, CHUNK, null);
          if (bytesRead === 0) {
            free.push(buf);
            break;
          }
          const data = buf.subarray(0, bytesRead);
          here?.update(data);
          const hashed = thread?.update(buf.buffer as SharedArrayBuffer, bytesRead).catch((err: Error) => {
            hashFailed ??= err.message;
          });
          sending.push({ buf, hashed });
          inFlight += bytesRead;
          if (!conn.send({ t: 'chunk', uuid, data }) && inFlight >= WINDOW) {
            await conn.drained();
            if (conn.closed) return gone(thread);
            for (const s of sending) await s.hashed;
            free.push(...sending.map((s) => s.buf));
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
    let digest = '';
    try {
      digest = here ? here.digest('hex') : await thread!.digest();
    } catch (err) {
      hashFailed ??= (err as Error).message;
    }
    // the server finds the digest wrong and refuses the artifact; this says why
    if (hashFailed !== undefined) refusals.push({ path, reason: `cannot hash: ${hashFailed}` });
    if (conn.closed) return gone(thread);
    conn.send({ t: 'artifact-end', uuid, sha256: digest });
  }
  return { refusals, sent };
}
