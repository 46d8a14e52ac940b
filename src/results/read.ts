// Reads a result directory back: run.json checked into a RunMeta, the console file into lines.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuilderError } from '../common/errors.js';
import type { RunMeta } from './types.js';

/** Parses the stored console file ("<ms> <raw bytes>\n" per line, oldest first). */
export function parseConsole(file: Buffer, where: string): Array<[number, Buffer]> {
  const lines: Array<[number, Buffer]> = [];
  let start = 0;
  while (start < file.length) {
    let end = file.indexOf(0x0a, start);
    if (end < 0) end = file.length;
    const space = file.indexOf(0x20, start);
    const ms = space < 0 || space > end ? NaN : Number(file.toString('latin1', start, space));
    if (!Number.isSafeInteger(ms)) {
      throw new BuilderError('BAD_RESULT', `${where}: line ${lines.length + 1}: expected "<ms> <text>", got ${JSON.stringify(file.toString('utf8', start, Math.min(end, start + 40)))}`);
    }
    lines.push([ms, file.subarray(space + 1, end)]);
    start = end + 1;
  }
  return lines;
}

/** The console file of a result directory; a result without one (written before any line) has none. */
export async function readConsole(dir: string): Promise<Buffer> {
  return readFile(join(dir, 'console')).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? Buffer.alloc(0) : Promise.reject(err)));
}

export async function readMeta(dir: string): Promise<RunMeta> {
  const file = join(dir, 'run.json');
  let meta: RunMeta;
  try {
    meta = JSON.parse(await readFile(file, 'utf8')) as RunMeta;
  } catch (err) {
    throw new BuilderError('BAD_RESULT', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`, { cause: err });
  }
  if (typeof meta !== 'object' || meta === null || typeof meta.uuid !== 'string' || typeof meta.job !== 'string' ||
    typeof meta.started !== 'string' || typeof meta.finished !== 'string' || typeof meta.result?.kind !== 'string' ||
    !Array.isArray(meta.artifacts)) {
    throw new BuilderError('BAD_RESULT', `${file}: not a run record (expected uuid, job, started, finished, result, artifacts)`);
  }
  return meta;
}
