// The results the original kept: OLD_STATEDIR/JOB/UUID/full, each one builder-web exec record
// (decoded with the builder-web decoder), turned into our stored result (src/results/) and a
// finished run in the store.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkName, artifactPathProblem } from '../../common/names.js';
import { decodeExec, type BuildResult, type ExecRecord } from '../../builder-web/format.js';
import { describeResult } from '../../protocol/describe.js';
import type { Refusal, RunResult } from '../../protocol/messages.js';
import { incomingDir, writeResult, type ArtifactRow, type ConsoleRow, type RunMeta } from '../../results/index.js';
import type { Store } from '../store/index.js';

/** The worker name imported runs carry: no worker of ours ran them. */
export const ORIGINAL_WORKER = 'original-builder';
/** The original's one fixed timeout, an hour. */
export const ORIGINAL_TIMEOUT_SEC = 3600;

/** Every OLD/JOB/UUID directory, sorted, whether or not it holds a `full` file. */
export async function findResultDirs(oldDir: string): Promise<string[]> {
  const dirs: string[] = [];
  for (const job of (await readdir(oldDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    for (const run of (await readdir(join(oldDir, job), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
      dirs.push(join(oldDir, job, run));
    }
  }
  return dirs;
}

/** builder-web's results in ours; its free-text message is a failure of the build, not of us. */
export function resultOf(r: BuildResult): RunResult {
  switch (r.kind) {
    case 'exited': return { kind: 'exited', code: r.value };
    case 'signalled': return { kind: 'signalled', signal: r.value };
    case 'stopped': return { kind: 'stopped', signal: r.value };
    case 'msg': {
      const message = r.value.toString('utf8');
      // what our own exporter writes for these two (builder-web/exec-from-result.ts)
      if (message === 'timeout') return { kind: 'timeout', reason: 'timeout (recorded by the original builder)' };
      if (message === 'cancelled') return { kind: 'cancelled', reason: 'cancelled (recorded by the original builder)' };
      return { kind: 'failed', message, infra: false };
    }
    default: {
      const never: never = r;
      return never;
    }
  }
}

/** builder-web keeps the console newest first; a file from elsewhere may not (as builder-inspect reads it). */
function oldestFirst(lines: ExecRecord['console']): ExecRecord['console'] {
  const d = lines.map(([delta]) => delta);
  if (d.every((v, i) => i === 0 || v <= d[i - 1]!)) return [...lines].reverse();
  if (d.every((v, i) => i === 0 || v >= d[i - 1]!)) return lines;
  return [...lines].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const utf8 = (b: Buffer, what: string): string => {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw new Error(`${what} is not UTF-8`);
  }
};

/**
 * Imports one `full` file as a finished run; returns the line to print. Throws (with the reason)
 * when it cannot; then nothing of it is left in the store or under results/.
 */
export async function importFull(store: Store, stateDir: string, file: string): Promise<string> {
  const record = decodeExec(await readFile(file));
  const job = checkName('job', utf8(record.job.name, 'the job name'));
  const platform = checkName('platform', utf8(record.job.platform, 'the platform'));
  if (store.run(record.uuid)) throw new Error(`run ${record.uuid} is in the store already`);
  const staging = incomingDir(stateDir, record.uuid);
  await rm(staging, { recursive: true, force: true });
  try {
    const artifacts: ArtifactRow[] = [];
    const refusals: Refusal[] = [];
    for (const [rawPath, data] of record.artifacts) {
      const path = rawPath.toString('utf8');
      const problem = rawPath.equals(Buffer.from(path)) ? artifactPathProblem(path) : 'path is not UTF-8';
      if (problem) {
        refusals.push({ path, reason: problem });
        continue;
      }
      const dest = join(staging, 'artifacts', path);
      await mkdir(dirname(dest), { recursive: true });
      await writeFile(dest, data, { mode: 0o644 });
      artifacts.push({ path, size: data.length, mode: 0o644, sha256: createHash('sha256').update(data).digest('hex') });
    }
    artifacts.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const lines: ConsoleRow[] = oldestFirst(record.console).map(([ns, data], seq) => ({ seq, ms: Number(ns / 1_000_000n), data }));
    const result = resultOf(record.result);
    const meta: RunMeta = {
      uuid: record.uuid, job, platform, worker: ORIGINAL_WORKER, attempt: 1,
      started: record.started.toISOString(), finished: record.finished.toISOString(),
      result, stats: {}, refusals, artifacts,
    };
    // the original's script bytes as they were: scripts are bytes here too
    const script = record.job.script;
    const dir = await writeResult(stateDir, meta, script, lines);
    try {
      store.tx(() => store.addFinishedRun(
        { uuid: record.uuid, job, platform, worker: ORIGINAL_WORKER, script, attempt: 1, timeout_sec: ORIGINAL_TIMEOUT_SEC, started: record.started.getTime() },
        { uuid: record.uuid, finished: record.finished.getTime(), result, stats: {}, refusals, dir, artifacts },
      ));
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const refused = refusals.length > 0 ? `, ${refusals.length} artifact path${refusals.length === 1 ? '' : 's'} refused` : '';
    return `run ${record.uuid} of ${job} on ${platform} (${describeResult(result)}, finished ${meta.finished}, ` +
      `${lines.length} console line${lines.length === 1 ? '' : 's'}, ${artifacts.length} artifact${artifacts.length === 1 ? '' : 's'}${refused})`;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
