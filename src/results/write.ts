// Writes a result directory: everything is assembled under incoming/<uuid>/ and renamed into
// place last (see index.ts for the contract).
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
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

/** Writes a file (0600) and flushes it to disk before returning. */
async function writeDurable(file: string, data: string | Buffer | Iterable<Buffer>): Promise<void> {
  const handle = await open(file, 'w', 0o600);
  try {
    if (typeof data === 'string' || Buffer.isBuffer(data)) await handle.writeFile(data);
    else {
      // console lines gathered into large writes: one syscall per line would cost more than the disk
      let batch: Buffer[] = [];
      let size = 0;
      for (const piece of data) {
        batch.push(piece);
        size += piece.length;
        if (size >= 256 * 1024) {
          await handle.writeFile(Buffer.concat(batch));
          batch = [];
          size = 0;
        }
      }
      if (size > 0) await handle.writeFile(Buffer.concat(batch));
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a directory's entries (files created or renamed in it) to disk. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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
  await writeDurable(join(staging, 'console'), (function* () {
    for (const line of lines) yield consoleFileLine(line.ms, line.data);
  })());
  await writeDurable(join(staging, 'script'), script);
  await writeDurable(join(staging, 'run.json'), JSON.stringify(meta, null, 2) + '\n');
  const provenance = extras.provenance?.(meta, script);
  if (provenance !== undefined) await writeDurable(join(staging, PROVENANCE_FILE), JSON.stringify(provenance, null, 2) + '\n');
  // the artifacts' own data was flushed as each arrived; their names live in these directories
  for (const dir of [...(await dirsUnder(join(staging, 'artifacts'))), staging]) await syncDir(dir);
  const parent = join(stateDir, 'results', meta.job);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  await rm(final, { recursive: true, force: true });
  await rename(staging, final);
  await syncDir(parent);
  await syncDir(dirname(parent));
  return final;
}
