// Writes a result directory: everything is assembled under incoming/<uuid>/ and renamed into
// place last (see index.ts for the contract).
import { closeSync, fsync, open as openCb, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import type { ScriptBytes } from '../protocol/messages.js';
import type { ConsoleRow, RunMeta } from './types.js';

export const incomingDir = (stateDir: string, uuid: string): string => join(stateDir, 'incoming', uuid);
export const resultDir = (stateDir: string, job: string, uuid: string): string => join(stateDir, 'results', job, uuid);

/** One console line in the stored file: milliseconds, a space, the raw bytes, a newline. */
export function consoleFileLine(ms: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${ms} `), data, Buffer.from('\n')]);
}

/** The signed provenance of the run (a DSSE envelope), beside run.json. */
export const PROVENANCE_FILE = 'provenance.json';

export interface ResultExtras {
  /**
   * Made from meta and script once they are final; written into the incoming directory before the
   * rename, so a result never exists without its provenance. Undefined: none (--no-provenance).
   */
  provenance?: ((meta: RunMeta, script: ScriptBytes) => object | undefined) | undefined;
}

const fsyncFd = promisify(fsync);
const openFd = promisify(openCb);

/** files up to this size are written from the event loop in one write */
const SMALL_FILE = 64 * 1024;

/** A file being written: `created` once it exists (named in its directory), `done` once on disk. */
interface DurableWrite {
  created: Promise<unknown>;
  done: Promise<void>;
}

/**
 * Writes a file (0600) and flushes it to disk. A small file (a run's script, run.json, most
 * consoles) costs two trips to the thread pool, its open and its fsync, instead of four: writing
 * a few KiB into the page cache and closing take microseconds, while each trip costs two context
 * switches.
 */
function writeDurable(file: string, data: string | Buffer | Iterable<Buffer>): DurableWrite {
  const iter = (typeof data === 'string' || Buffer.isBuffer(data) ? [Buffer.from(data)] : data)[Symbol.iterator]();
  // the first pieces tell whether the file is small; a large one is not gathered in memory whole
  const pieces: Buffer[] = [];
  let size = 0;
  let next = iter.next();
  for (; !next.done && size <= SMALL_FILE; next = iter.next()) {
    pieces.push(next.value);
    size += next.value.length;
  }
  if (next.done && size <= SMALL_FILE) {
    // opened in the thread pool: creating a file waits for the file system's journal when it is busy
    const created = openFd(file, 'w', 0o600);
    const done = created.then(async (fd) => {
      try {
        writeAll(fd, pieces);
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    });
    return { created, done };
  }
  const created = open(file, 'w', 0o600);
  const done = created.then(async (handle) => {
    try {
      // large consoles in large writes: one syscall per line would cost more than the disk
      let batch: Buffer[] = [];
      let batchSize = 0;
      const rest = function* (): Generator<Buffer> {
        yield* pieces;
        for (; !next.done; next = iter.next()) yield next.value;
      };
      for (const piece of rest()) {
        batch.push(piece);
        batchSize += piece.length;
        if (batchSize >= 256 * 1024) {
          await handle.writeFile(Buffer.concat(batch));
          batch = [];
          batchSize = 0;
        }
      }
      if (batchSize > 0) await handle.writeFile(Buffer.concat(batch));
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
  return { created, done };
}

/** Writes the pieces, going on after a short write where it stopped. */
function writeAll(fd: number, pieces: Buffer[]): void {
  const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  for (let off = 0; off < data.length;) off += writeSync(fd, data, off);
}

/** Flushes a directory's entries (files created or renamed in it) to disk. */
async function syncDir(dir: string): Promise<void> {
  const fd = await openFd(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Every directory under dir, dir included (artifacts/ and its subdirectories). */
async function dirsUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) =>
    (err.code === 'ENOENT' ? null : Promise.reject(err)));
  if (entries === null) return [];
  const below = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => dirsUnder(join(dir, e.name))));
  return [dir, ...below.flat()];
}

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/**
 * Adds console, script and run.json (and provenance.json) to the run's incoming directory (whose
 * artifacts/ the server filled as they arrived) and renames it to results/<job>/<uuid>; returns
 * that path. Everything is on disk (files, their directories, the rename) when it returns, since
 * the server acknowledges the run after this. Files are 0600 and directories 0700 whatever the
 * umask. It may be called again after it failed (a full disk): it starts over from what is there,
 * moving an already renamed result back first, so no artifact is lost on the way.
 */
export async function writeResult(
  stateDir: string,
  meta: RunMeta,
  script: ScriptBytes,
  lines: Iterable<ConsoleRow>,
  extras: ResultExtras = {},
): Promise<string> {
  const staging = incomingDir(stateDir, meta.uuid);
  const final = resultDir(stateDir, meta.job, meta.uuid);
  if (!(await exists(staging)) && (await exists(final))) await rename(final, staging);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  const provenance = extras.provenance?.(meta, script);
  // the files are written and flushed side by side (their fsyncs run in parallel in the thread
  // pool), and the directories that name them with them, once every file exists: one round of
  // fsyncs, not two, and all of it on disk before the rename
  const writes = [
    writeDurable(join(staging, 'console'), (function* () {
      for (const line of lines) yield consoleFileLine(line.ms, line.data);
    })()),
    writeDurable(join(staging, 'script'), script),
    writeDurable(join(staging, 'run.json'), JSON.stringify(meta, null, 2) + '\n'),
    ...(provenance !== undefined ? [writeDurable(join(staging, PROVENANCE_FILE), JSON.stringify(provenance, null, 2) + '\n')] : []),
  ];
  // the artifacts' own data was flushed as each arrived; their names live in these directories
  const dirsSynced = Promise.all(writes.map((w) => w.created)).then(async () => {
    await Promise.all([...(await dirsUnder(join(staging, 'artifacts'))), staging].map(syncDir));
  });
  await Promise.all([...writes.map((w) => w.done), dirsSynced]);
  const parent = join(stateDir, 'results', meta.job);
  const created = await mkdir(parent, { recursive: true, mode: 0o700 });
  try {
    await rename(staging, final);
  } catch (err) {
    // a result renamed by an earlier attempt that moved back failed half-way: the new one wins
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    await rm(final, { recursive: true, force: true });
    await rename(staging, final);
  }
  await syncDir(parent);
  // a directory made here is named in its own parent: those are flushed too (once per job, not per run)
  if (created !== undefined) {
    for (let d = dirname(parent); ; d = dirname(d)) {
      await syncDir(d);
      if (d === dirname(created) || d === dirname(d)) break;
    }
  }
  return final;
}
