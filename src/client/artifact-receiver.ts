// Writes a fetch-artifacts stream into a directory. Each artifact goes to a hidden temporary file
// beside its place, hashed on the way, and is renamed into place only once its size and sha256
// are the ones the server recorded; on a mismatch, an error from the server or a lost connection
// the temporary file is removed, so DIR never holds a partial artifact. Files already renamed
// were checked whole and stay.
//
// Messages are handled in order through one promise chain; while more than PAUSE_AT bytes wait
// for the disk the socket is paused, so TCP holds the server back instead of this process
// buffering the artifact.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BuilderError, errorMessage } from '../common/errors.js';
import { artifactPathProblem } from '../common/names.js';
import type { Connection } from '../protocol/connection.js';
import type { Stream } from './session.js';

const PAUSE_AT = 8 * 1024 * 1024;
const RESUME_AT = 2 * 1024 * 1024;

interface Current {
  path: string;
  size: number;
  mode: number;
  sha256: string;
  target: string;
  temp: string;
  out: WriteStream;
  hash: Hash;
  received: number;
}

export class ArtifactReceiver {
  /** the files written, in order */
  readonly written: Array<{ path: string; file: string; size: number }> = [];
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private current: Current | undefined;
  private failed = false;
  private readonly root: string;

  constructor(private readonly conn: Connection, outDir: string, private readonly uuid: string) {
    this.root = resolve(outDir);
    this.done = new Promise((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.done.catch(() => undefined); // a refused request ends the command first; the close after it is no news
    conn.on('close', (reason) => this.fail(`connection lost before every artifact arrived: ${reason}`));
  }

  /** The request's stream handler. */
  onEvent = (ev: Stream): void => {
    if (this.failed) return;
    const size = ev.t === 'artifact-data' ? ev.data.length : 64;
    this.pending += size;
    if (this.pending >= PAUSE_AT) this.conn.pauseReading('artifacts');
    this.chain = this.chain
      .then(() => (this.failed ? undefined : this.handle(ev)))
      .catch((err: unknown) => this.fail(errorMessage(err)))
      .finally(() => {
        this.pending -= size;
        if (this.pending <= RESUME_AT) this.conn.resumeReading('artifacts');
      });
  };

  private async handle(ev: Stream): Promise<void> {
    switch (ev.t) {
      case 'artifact-file':
        await this.finish();
        return this.begin(ev.path, ev.size, ev.mode, ev.sha256);
      case 'artifact-data': {
        const cur = this.current;
        if (!cur) throw new BuilderError('PROTOCOL', 'artifact data before any artifact-file');
        cur.received += ev.data.length;
        if (cur.received > cur.size) throw this.mismatch(cur, 'more bytes than recorded');
        cur.hash.update(ev.data);
        // once() rejects on the stream's error event too
        if (!cur.out.write(ev.data)) await once(cur.out, 'drain');
        return;
      }
      case 'artifacts-end':
        if (ev.error !== undefined) throw new BuilderError('FETCH', `the server could not send every artifact: ${ev.error}`);
        await this.finish();
        this.resolveDone();
        return;
      default:
        return;
    }
  }

  private async begin(path: string, size: number, mode: number, sha256: string): Promise<void> {
    const problem = artifactPathProblem(path);
    const target = join(this.root, path);
    if (problem || !resolve(target).startsWith(this.root + sep)) {
      throw new BuilderError('FETCH', `refusing artifact path "${path}" from the server: ${problem ?? 'outside the output directory'}`);
    }
    await mkdir(dirname(target), { recursive: true });
    const temp = join(dirname(target), `.${basename(target)}.part-${process.pid}`);
    const out = createWriteStream(temp, { mode: 0o600 });
    // a stream error surfaces on the next write or at the end; keep it from becoming uncaught
    out.on('error', () => undefined);
    this.current = { path, size, mode, sha256, target, temp, out, hash: createHash('sha256'), received: 0 };
  }

  /** Closes the current file and renames it into place if it is whole and intact. */
  private async finish(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    cur.out.end();
    await once(cur.out, 'close');
    this.current = undefined;
    const digest = cur.hash.digest('hex');
    if (cur.received !== cur.size || digest !== cur.sha256) {
      await rm(cur.temp, { force: true });
      throw this.mismatch(cur, `got ${cur.received} bytes sha256 ${digest}`);
    }
    await chmod(cur.temp, (cur.mode & 0o777) | 0o600);
    await rename(cur.temp, cur.target);
    this.written.push({ path: cur.path, file: cur.target, size: cur.size });
  }

  private mismatch(cur: Current, got: string): BuilderError {
    return new BuilderError('FETCH',
      `artifact ${cur.path} of run ${this.uuid} does not match its record (expected ${cur.size} bytes sha256 ${cur.sha256}; ${got}); not written`);
  }

  private fail(message: string): void {
    if (this.failed) return;
    this.failed = true;
    const cur = this.current;
    this.current = undefined;
    // the server stops reading from disk once the connection is gone
    this.conn.close('fetch failed');
    const cleanup = cur ? (cur.out.destroy(), rm(cur.temp, { force: true })) : Promise.resolve();
    void cleanup.finally(() => this.rejectDone(new BuilderError('FETCH', message)));
  }
}
