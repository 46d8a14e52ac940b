// Group commit. A transaction committed at synchronous = NORMAL is in the WAL file (the page
// cache) but not yet on disk; one fsync of the WAL file makes every such commit made before it
// durable, which is all a FULL commit adds in WAL mode (SQLite pads nothing with the default
// powersafe overwrite, and fsync flushes the file whichever descriptor it is called on). So
// commits whose callers can wait share one fsync, run in libuv's thread pool instead of
// blocking the event loop: with eight workers finishing runs, one fsync covers several runs.
// What a caller tells anyone about such a commit waits for synced() (see index.ts).
import { close, fsync, open } from 'node:fs';
import { promisify } from 'node:util';

const openAsync = promisify(open);
const fsyncAsync = promisify(fsync);

export class WalSync {
  /** commits made without their own fsync, counted */
  private written = 0;
  /** how many of them are known to be on disk */
  private durable = 0;
  private fd: number | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  /** walFile: undefined for a store without a file (tests), whose commits need no fsync */
  constructor(private readonly walFile: string | undefined) {}

  /** A commit was made at NORMAL: it is on disk after the next fsync. */
  noteCommit(): void {
    if (this.walFile !== undefined) this.written++;
  }

  /** How far commits go now; synced(mark) waits for the ones up to here. */
  mark(): number {
    return this.written;
  }

  /** Whether the commits up to mark are on disk already. */
  isDurable(mark = this.written): boolean {
    return mark <= this.durable;
  }

  /**
   * Resolves once every commit up to `mark` (default: every one so far) is on disk; undefined
   * when they are already, so a caller with nothing to wait for stays synchronous. Callers
   * waiting together share one fsync. It rejects when the fsync fails (a storage fault): nothing
   * is then known to be durable, and the next call tries again.
   */
  synced(mark = this.written): Promise<void> | undefined {
    if (mark <= this.durable) return undefined;
    return this.waitFor(mark);
  }

  private async waitFor(mark: number): Promise<void> {
    while (mark > this.durable) {
      // an fsync already under way may have started before this commit: wait for it, then go again
      if (this.running) {
        await this.running;
        continue;
      }
      const upTo = this.written;
      this.running = this.fsyncWal().then(
        () => {
          this.durable = Math.max(this.durable, upTo);
        },
      ).finally(() => {
        this.running = undefined;
      });
      await this.running;
    }
  }

  private async fsyncWal(): Promise<void> {
    if (this.closed) throw Object.assign(new Error('the state database is closed'), { code: 'SQLITE_MISUSE' });
    // opened once: the WAL file lives as long as the database connection that wrote the commits
    this.fd ??= await openAsync(this.walFile!, 'r');
    await fsyncAsync(this.fd);
  }

  close(): void {
    this.closed = true;
    if (this.fd !== undefined) close(this.fd, () => undefined);
    this.fd = undefined;
  }
}
