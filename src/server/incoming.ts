// Receives one run's artifacts as they stream in: each lands on disk chunk by chunk and is
// hashed on the way, so no artifact is ever held whole in memory.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { artifactPathProblem } from '../common/names.js';
import type { Refusal } from '../protocol/messages.js';
import type { ArtifactRow } from '../results/index.js';

const WRITE_AHEAD = 4 * 1024 * 1024;

interface Open {
  path: string;
  size: number;
  mode: number;
  received: number;
  hash: Hash;
  out: WriteStream | undefined;
  failed: string | undefined;
  ready: Promise<void>;
}

export class IncomingArtifacts {
  readonly stored: ArtifactRow[] = [];
  readonly refusals: Refusal[] = [];
  private current: Open | undefined;

  constructor(private readonly root: string) {}

  /** Starts an artifact; returns a refusal reason when its path is unacceptable. */
  begin(path: string, size: number, mode: number): void {
    this.abortCurrent();
    const problem = artifactPathProblem(path) ?? (this.stored.some((a) => a.path === path) ? 'sent twice' : undefined);
    const file = join(this.root, 'artifacts', path);
    const cur: Open = { path, size, mode, received: 0, hash: createHash('sha256'), out: undefined, failed: undefined, ready: Promise.resolve() };
    if (problem) {
      this.refusals.push({ path, reason: problem });
    } else {
      // the stream opens its file at once, so the directory must exist first
      cur.ready = mkdir(dirname(file), { recursive: true }).then(
        () => {
          // a few chunks in flight to the disk, so receiving and writing overlap
          cur.out = createWriteStream(file, { mode: (mode & 0o777) | 0o600, highWaterMark: WRITE_AHEAD });
          cur.out.on('error', (err) => (cur.failed = err.message));
        },
        (err: Error) => void (cur.failed = err.message),
      );
    }
    this.current = cur;
  }

  /** Writes a chunk; resolves when the disk has taken it, so the caller can pause its socket. */
  async chunk(data: Buffer): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    cur.received += data.length;
    cur.hash.update(data);
    await cur.ready;
    if (cur.out && !cur.failed && !cur.out.write(data)) await Promise.race([once(cur.out, 'drain'), once(cur.out, 'error')]);
  }

  async end(sha256: string): Promise<void> {
    const cur = this.current;
    this.current = undefined;
    if (!cur) return;
    const digest = cur.hash.digest('hex');
    await cur.ready;
    if (!cur.out) return;
    cur.out.end();
    await once(cur.out, 'close');
    if (cur.failed) {
      this.refusals.push({ path: cur.path, reason: `cannot store: ${cur.failed}` });
      return;
    }
    if (cur.received !== cur.size || digest !== sha256) {
      this.refusals.push({
        path: cur.path,
        reason: `corrupted in transfer: expected ${cur.size} bytes sha256 ${sha256}, got ${cur.received} bytes sha256 ${digest}`,
      });
      await rm(join(this.root, 'artifacts', cur.path), { force: true });
      return;
    }
    this.stored.push({ path: cur.path, size: cur.size, mode: cur.mode, sha256: digest });
  }

  get inProgress(): boolean {
    return this.current !== undefined;
  }

  private abortCurrent(): void {
    if (this.current?.out) this.current.out.destroy();
    this.current = undefined;
  }

  /** Throws away everything received so far (the worker will send again). */
  async reset(): Promise<void> {
    this.abortCurrent();
    this.stored.length = 0;
    this.refusals.length = 0;
    await rm(join(this.root, 'artifacts'), { recursive: true, force: true });
  }
}
