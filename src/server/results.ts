// The result store on disk: results/<job>/<uuid>/ holds console, script, run.json and
// artifacts/<path>. Files are assembled under incoming/<uuid>/ and renamed into place, so a
// result directory is either complete or absent.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import type { Refusal, RunResult, RunStats } from '../protocol/messages.js';
import type { ArtifactRow, ConsoleRow } from './store.js';

export interface RunMeta {
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  attempt: number;
  started: string;
  finished: string;
  result: RunResult;
  stats: RunStats;
  refusals: Refusal[];
  artifacts: ArtifactRow[];
}

export const incomingDir = (stateDir: string, uuid: string): string => join(stateDir, 'incoming', uuid);
export const resultDir = (stateDir: string, job: string, uuid: string): string => join(stateDir, 'results', job, uuid);

/** One console line in the stored file: milliseconds, a space, the raw bytes, a newline. */
export function consoleFileLine(ms: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${ms} `), data, Buffer.from('\n')]);
}

export async function writeResult(
  stateDir: string,
  meta: RunMeta,
  script: string,
  lines: Iterable<ConsoleRow>,
): Promise<string> {
  const staging = incomingDir(stateDir, meta.uuid);
  await mkdir(staging, { recursive: true });
  const out = createWriteStream(join(staging, 'console'));
  for (const line of lines) {
    if (!out.write(consoleFileLine(line.ms, line.data))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  await writeFile(join(staging, 'script'), script);
  await writeFile(join(staging, 'run.json'), JSON.stringify(meta, null, 2) + '\n');
  const final = resultDir(stateDir, meta.job, meta.uuid);
  await mkdir(join(stateDir, 'results', meta.job), { recursive: true });
  await rm(final, { recursive: true, force: true });
  await rename(staging, final);
  return final;
}
