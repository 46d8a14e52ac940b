// Writes a result directory: everything is assembled under incoming/<uuid>/ and renamed into
// place last (see index.ts for the contract).
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
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

/**
 * Adds console, script and run.json (and provenance.json) to the run's incoming directory (whose
 * artifacts/ the server filled as they arrived) and renames it to results/<job>/<uuid>; returns
 * that path.
 */
export async function writeResult(
  stateDir: string,
  meta: RunMeta,
  script: ScriptBytes,
  lines: Iterable<ConsoleRow>,
  extras: ResultExtras = {},
): Promise<string> {
  const staging = incomingDir(stateDir, meta.uuid);
  await mkdir(staging, { recursive: true });
  const out = createWriteStream(join(staging, 'console'));
  for (const line of lines) {
    if (!out.write(consoleFileLine(line.ms, line.data))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  // the script's exact bytes (a string stands for its UTF-8 bytes)
  await writeFile(join(staging, 'script'), script);
  await writeFile(join(staging, 'run.json'), JSON.stringify(meta, null, 2) + '\n');
  const provenance = extras.provenance?.(meta, script);
  if (provenance !== undefined) await writeFile(join(staging, PROVENANCE_FILE), JSON.stringify(provenance, null, 2) + '\n');
  const final = resultDir(stateDir, meta.job, meta.uuid);
  await mkdir(join(stateDir, 'results', meta.job), { recursive: true });
  await rm(final, { recursive: true, force: true });
  await rename(staging, final);
  return final;
}
