// Receives one run's artifacts as they stream in: each lands on disk chunk by chunk and is
// hashed on the way, so no artifact is ever held whole in memory. Chunks are gathered into
// buffers of BATCH bytes, each written (in pieces of WRITE_PIECE) and hashed on a thread of its
// own (common/sha256-thread.ts) while it is written; an artifact smaller than that is hashed
// here. Every SYNC_EVERY bytes a datasync starts, so the final fsync has little left to do.
//
// What reaches the finished result is only what arrived whole and checked: an artifact whose
// path is unacceptable, whose file cannot be written (disk full, a name the file system refuses),
// that arrived short or corrupted, or that was still incomplete when the next one began, the run
// finished, or the worker went away, is removed from disk and listed as refused with its reason
// (and, when incomplete, how much of it arrived). Every file handle is closed on each of those
// paths; a failed write never stops the messages that follow (the run's result, other runs).
import { createHash } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ArtifactPaths, normaliseArtifactPath } from '../common/names.js';
import type { Refusal } from '../protocol/messages.js';
import type { ArtifactRow } from '../results/index.js';
import { sharedBuffer, ThreadHash } from '../common/sha256-thread.js';

/** chunks are gathered this many bytes at a time, one hash update on the thread each */
const BATCH = 4 * 1024 * 1024;
/**
 * ... and written in calls of at most this many bytes: the kernel caches a bigger write in bigger
 * page-cache folios, and on our test machine (Linux 6.18, ext4) writes of 2 MiB and more cost
 * 4-10 times the system time per GiB of 1 MiB ones (0.8-2.4 s against 0.2 s; 256 KiB 0.3-0.6 s
 * and 64 KiB 0.5-0.8 s, more calls)
 */
const WRITE_PIECE = 1024 * 1024;
/**
 * After this many bytes of an artifact are written, a datasync of them starts (without waiting
 * for it), so that the disk takes the artifact while it arrives instead of all of it in the
 * fsync before it is recorded: that fsync, some 0.5-0.8 s for 1 GiB here, then finds little
 * left to write. The same final fsync still comes before the artifact counts as stored.
 */
const SYNC_EVERY = 64 * 1024 * 1024;
/** buffers of BATCH bytes whose write and hash are done, for the next ones (at most SPARE kept: 16 MiB) */
const spare: Buffer[] = [];
const SPARE = 4;
/** bytes handed to the disk and not yet written before a chunk waits: receiving and writing overlap */
const WRITE_AHEAD = 8 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

interface Open {
  /** the normalised path; the path as sent when it was refused */
  path: string;
  file: string | undefined;
  size: number;
  mode: number;
  received: number;
  /** set once a whole batch went to the thread; until then the artifact is hashed at its end */
  hash: ThreadHash | undefined;
  handle: FileHandle | undefined;
  /** why it cannot be stored: set on the first failed open or write; later chunks are only counted */
  failed: string | undefined;
  /** the open and every write so far, in order; never rejects */
  writing: Promise<void>;
  /** bytes in writes queued and not yet done */
  queued: number;
  /** the bytes gathered for the next write (a spare buffer of BATCH bytes) */
  batch: Buffer | undefined;
  batchBytes: number;
  /** bytes written so far, and up to where a datasync was started last */
  written: number;
  syncedTo: number;
  /** a datasync under way (see SYNC_EVERY); never rejects */
  syncing: Promise<void> | undefined;
}

/** An error from the file system as one short reason, without the (long) path it names. */
function fsReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = (e.message ?? String(err)).replace(/, \w+ '.*$/s, '');
  return e.code && !text.startsWith(e.code) ? `${e.code}: ${text}` : text;
}

export class IncomingArtifacts {
  readonly stored: ArtifactRow[] = [];
  readonly refusals: Refusal[] = [];
  private paths = new ArtifactPaths();
  private current: Open | undefined;
  /** abandoned artifacts being cleared away */
  private settling: Promise<void> = Promise.resolve();

  constructor(private readonly root: string) {}

  private get dir(): string {
    return join(this.root, 'artifacts');
  }

  /**
   * Starts an artifact; one with an unacceptable path is refused and its chunks are dropped. It
   * is current at once (chunks may follow before the returned promise settles); the promise
   * settles when an artifact still incomplete before it has been cleared away.
   */
  begin(rawPath: string, size: number, mode: number): Promise<void> {
    const before = this.abandon('the next artifact began');
    const normal = normaliseArtifactPath(rawPath);
    const problem = 'problem' in normal ? normal.problem : this.paths.take(normal.path);
    const path = 'path' in normal ? normal.path : rawPath;
    const cur: Open = {
      path, file: undefined, size, mode, received: 0, hash: undefined, handle: undefined,
      failed: problem, writing: Promise.resolve(), queued: 0, batch: undefined, batchBytes: 0,
      written: 0, syncedTo: 0, syncing: undefined,
    };
    this.current = cur;
    if (problem !== undefined) {
      this.refusals.push({ path: rawPath, reason: problem });
      return before;
    }
    const file = join(this.dir, path);
    cur.file = file;
    cur.writing = (async () => {
      try {
        await mkdir(dirname(file), { recursive: true, mode: 0o700 });
        // 'wx': a file already there is a bug or a race, never something to append to; only the
        // owner may read a stored artifact (its mode as sent is kept in run.json)
        cur.handle = await open(file, 'wx', (mode & 0o700) | 0o600);
      } catch (err) {
        cur.failed = fsReason(err);
      }
    })();
    return before;
  }

  /**
   * Takes a chunk; resolves when the disk has (nearly) caught up, so the caller can pause its
   * socket. Chunks (the slices of the socket reads they came in, 64 KiB each, see
   * Connection.emitChunkParts) are gathered into a buffer of BATCH bytes, written in one call
   * when full. Gathering copies, but into buffers used again and again: the socket's buffers
   * are let go at once instead of living until their write, which the garbage collector
   * charged for more than the copy costs (measured by bench/upload.ts).
   */
  async chunk(data: Buffer): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    cur.received += data.length;
    // what will not be stored need not be hashed: its digest is never compared
    if (cur.file === undefined || cur.failed !== undefined) return;
    let off = 0;
    while (off < data.length) {
      if (!cur.batch) {
        cur.batch = spare.pop() ?? sharedBuffer(BATCH);
        cur.batchBytes = 0;
      }
      const n = data.copy(cur.batch, cur.batchBytes, off);
      cur.batchBytes += n;
      off += n;
      if (cur.batchBytes === BATCH) {
        cur.hash ??= new ThreadHash();
        this.flush(cur);
      }
    }
    if (cur.queued > WRITE_AHEAD) await cur.writing;
  }

  /** Queues the gathered bytes as one write after those before it. */
  private flush(cur: Open): void {
    const batch = cur.batch;
    const bytes = cur.batchBytes;
    cur.batch = undefined;
    cur.batchBytes = 0;
    if (!batch) return;
    cur.queued += bytes;
    const hashed = cur.hash?.update(batch.buffer as SharedArrayBuffer, bytes).catch((err: Error) => {
      cur.failed ??= err.message;
    });
    cur.writing = cur.writing.then(async () => {
      try {
        if (cur.failed !== undefined || !cur.handle) return;
        let off = 0;
        while (off < bytes) off += (await cur.handle.write(batch, off, Math.min(WRITE_PIECE, bytes - off))).bytesWritten;
        cur.written += bytes;
        this.startSync(cur);
      } catch (err) {
        cur.failed = fsReason(err);
        // what could not be written is useless, and on a full disk it holds the space others need
        await this.discard(cur);
      } finally {
        cur.queued -= bytes;
        await hashed;
        if (spare.length < SPARE) spare.push(batch);
      }
    });
  }

  /**
   * Starts a datasync of what was written so far, once SYNC_EVERY bytes more were written since
   * the last, and none is under way: the disk writes while more arrives, instead of all of it
   * in the fsync before the artifact is recorded (the same bytes, the same final fsync).
   */
  private startSync(cur: Open): void {
    if (cur.syncing !== undefined || !cur.handle || cur.written - cur.syncedTo < SYNC_EVERY) return;
    cur.syncedTo = cur.written;
    cur.syncing = cur.handle.datasync().then(() => {
      cur.syncing = undefined;
    }, (err: unknown) => {
      cur.syncing = undefined;
      cur.failed ??= fsReason(err);
    });
  }

  async end(sha256: string): Promise<void> {
    const cur = this.current;
    this.current = undefined;
    if (!cur) return;
    if (cur.file === undefined) return; // refused at begin
    // a small artifact (no whole batch) is hashed here: a round trip to the thread costs more
    const small = cur.hash === undefined ? createHash('sha256').update(cur.batch?.subarray(0, cur.batchBytes) ?? EMPTY).digest('hex') : undefined;
    this.flush(cur);
    await cur.writing;
    await cur.syncing;
    let digest = small ?? '';
    if (cur.hash && cur.failed === undefined) {
      try {
        digest = await cur.hash.digest();
      } catch (err) {
        cur.failed = (err as Error).message;
      }
    } else cur.hash?.drop();
    if (cur.failed === undefined && (cur.received !== cur.size || digest !== sha256)) {
      cur.failed = `corrupted in transfer: expected ${cur.size} bytes sha256 ${sha256}, got ${cur.received} bytes sha256 ${digest}`;
    } else if (cur.failed !== undefined) {
      cur.failed = `cannot store: ${cur.failed}`;
    }
    if (cur.failed === undefined) {
      try {
        // on disk before the run's record says it is: the result is acknowledged after this
        await cur.handle!.sync();
      } catch (err) {
        cur.failed = `cannot store: ${fsReason(err)}`;
      }
    }
    if (cur.failed !== undefined) {
      this.refusals.push({ path: cur.path, reason: cur.failed });
      await this.discard(cur);
      return;
    }
    await this.close(cur);
    this.stored.push({ path: cur.path, size: cur.size, mode: cur.mode, sha256: digest });
  }

  get inProgress(): boolean {
    return this.current !== undefined;
  }

  /**
   * The artifact being received will not be completed (the run finished, the next one began,
   * the worker went away): its file goes and it is listed as refused with what arrived.
   */
  abandon(why: string): Promise<void> {
    const cur = this.current;
    if (!cur) return this.settling;
    this.current = undefined;
    const done = (async () => {
      await cur.writing;
      cur.hash?.drop();
      if (cur.file === undefined) return; // refused at begin already
      const reason = cur.failed !== undefined ? `cannot store: ${cur.failed}` : `incomplete: ${cur.received} of ${cur.size} bytes arrived (${why})`;
      this.refusals.push({ path: cur.path, reason });
      await this.discard(cur);
    })();
    // a reset waits for this, so the refusal cannot land after it
    this.settling = this.settling.then(() => done);
    return this.settling;
  }

  /** Throws away everything received so far (the worker will send again). */
  async reset(): Promise<void> {
    const cur = this.current;
    this.current = undefined;
    await this.settling;
    if (cur) {
      await cur.writing;
      cur.hash?.drop();
      await this.close(cur);
    }
    this.stored.length = 0;
    this.refusals.length = 0;
    this.paths = new ArtifactPaths();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async close(cur: Open): Promise<void> {
    await cur.syncing;
    const handle = cur.handle;
    cur.handle = undefined;
    await handle?.close().catch(() => undefined);
  }

  private async discard(cur: Open): Promise<void> {
    await this.close(cur);
    if (cur.file !== undefined) await rm(cur.file, { force: true }).catch(() => undefined);
  }
}
