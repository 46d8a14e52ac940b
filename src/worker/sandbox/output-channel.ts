// One connected pair of Unix stream sockets per job: the child gets one end as both stdout and
// stderr, the worker reads the other. That is what `exec 2>&1` in a wrapper shell gave (one
// channel shared by both descriptors, so the kernel keeps the order of every byte), without
// the wrapper: one process image fewer per job, and on a busy machine an exec costs several
// milliseconds. The child sees what it saw before, a Unix stream socket (libuv's 'pipe' stdio
// is a socketpair too), made blocking by libuv in the child as its stdio always is.
//
// Node has no socketpair(), so each pair is made by connecting to a listener of this process,
// in a directory only this user can enter (mkdtemp makes it 0700), and pairs are made one at a
// time, so the connection accepted is the one just made.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OutputPair {
  /** handed to the child as fds 1 and 2; destroyed here once the child has it */
  childEnd: Socket;
  /** what the child writes arrives here; it ends when every copy of the child's end is closed */
  ourEnd: Socket;
}

const PREFIX = 'builder-output-';

/** Directories of workers that were killed (-9) before they could remove theirs. */
function removeLeftovers(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^builder-output-(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    } catch {
      // another user's (a sticky /tmp): theirs to remove
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

class OutputChannels {
  private path = '';
  private listening: Promise<void> | undefined;
  private accepted: Array<(s: Socket) => void> = [];
  /** pairs are made one after the other (see the header) */
  private queue: Promise<unknown> = Promise.resolve();

  private listen(): Promise<void> {
    this.listening ??= new Promise<void>((resolve, reject) => {
      removeLeftovers();
      const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
      this.path = join(dir, 'sock');
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      const server = createServer((s) => {
        const take = this.accepted.shift();
        // nobody else can reach the directory; a connection nobody waits for is not ours
        if (take) take(s);
        else s.destroy();
      });
      server.once('error', (err) => reject(new Error(`cannot listen for job output on ${this.path}: ${err.message}`, { cause: err })));
      server.listen(this.path, () => {
        server.unref();
        resolve();
      });
    });
    return this.listening;
  }

  pair(): Promise<OutputPair> {
    const made = this.queue.then(async () => {
      await this.listen();
      let take: (s: Socket) => void = () => undefined;
      const ours = new Promise<Socket>((resolve) => (take = resolve));
      this.accepted.push(take);
      const childEnd = connect(this.path);
      try {
        await new Promise<void>((resolve, reject) => {
          childEnd.once('connect', resolve);
          childEnd.once('error', reject);
        });
      } catch (err) {
        this.accepted = this.accepted.filter((t) => t !== take);
        throw new Error(`cannot connect to the job output listener ${this.path}: ${(err as Error).message}`, { cause: err });
      }
      const ourEnd = await ours;
      return { childEnd, ourEnd };
    });
    this.queue = made.catch(() => undefined);
    return made;
  }
}

export const outputChannels = new OutputChannels();
