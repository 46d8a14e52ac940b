// A stored result directory (results/<job>/<uuid>/, see results.ts) in builder-web's form: the
// record builder-web's POST /upload decodes, with the artifacts streamed from disk. Used by the
// uploader and by `builder-inspect --export`, so both write the same bytes.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuilderError } from '../../common/errors.js';
import { artifactPathProblem } from '../../common/names.js';
import type { BuildResultInput } from '../../builder-web/format.js';
import { streamExec, type ExecBody, type StreamExecInput } from '../../builder-web/stream-encode.js';
import type { RunResult } from '../../protocol/messages.js';
import type { RunMeta } from '../results.js';

/** Large reads: fewer, bigger chunks move a 1 GiB artifact faster, and 1 MiB is still small. */
const READ_CHUNK = 1 << 20;

/**
 * Our result in builder-web's terms; undefined for infrastructure failures, which are runs we
 * retry, not builds, and so are never uploaded.
 */
export function builderWebResult(r: RunResult): BuildResultInput | undefined {
  switch (r.kind) {
    case 'exited':
      return { kind: 'exited', value: r.code };
    case 'signalled':
      return { kind: 'signalled', value: r.signal };
    case 'stopped':
      return { kind: 'stopped', value: r.signal };
    case 'timeout':
      return { kind: 'msg', value: 'timeout' };
    case 'cancelled':
      return { kind: 'msg', value: 'cancelled' };
    case 'failed':
      return r.infra ? undefined : { kind: 'msg', value: r.message };
    default: {
      const never: never = r;
      throw new BuilderError('BAD_RESULT', `unknown result ${JSON.stringify(never)}`);
    }
  }
}

export const isUploadable = (r: RunResult): boolean => builderWebResult(r) !== undefined;

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

/**
 * The exec record of a stored result, artifacts still on disk. Throws for an infrastructure
 * failure unless `anyResult` (export writes those too, as a message).
 */
export async function execFromResult(dir: string, opts: { anyResult?: boolean } = {}): Promise<{ meta: RunMeta; input: StreamExecInput }> {
  const meta = await readMeta(dir);
  const result = builderWebResult(meta.result) ??
    (opts.anyResult && meta.result.kind === 'failed' ? { kind: 'msg' as const, value: meta.result.message } : undefined);
  if (!result) throw new BuilderError('NOT_A_BUILD', `${meta.uuid} ended with an infrastructure failure: a retried run, not a build`);
  const [script, consoleFile] = await Promise.all([
    readFile(join(dir, 'script')),
    readFile(join(dir, 'console')).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? Buffer.alloc(0) : Promise.reject(err))),
  ]);
  // builder-web stores newest first, in nanoseconds since the start
  const lines = parseConsole(consoleFile, join(dir, 'console')).reverse()
    .map(([ms, text]) => [BigInt(ms) * 1_000_000n, text] as const);
  const artifacts = await Promise.all(meta.artifacts.map(async (a) => {
    const problem = artifactPathProblem(a.path);
    if (problem) throw new BuilderError('BAD_RESULT', `${dir}: artifact ${JSON.stringify(a.path)}: ${problem}`);
    const file = join(dir, 'artifacts', a.path);
    const st = await stat(file);
    if (st.size !== a.size) throw new BuilderError('BAD_RESULT', `${file}: recorded as ${a.size} bytes, is ${st.size} on disk`);
    return { path: a.path, size: a.size, open: () => createReadStream(file, { highWaterMark: READ_CHUNK }) };
  }));
  const input: StreamExecInput = {
    job: { name: meta.job, script, platform: meta.platform },
    uuid: meta.uuid,
    console: lines,
    started: new Date(meta.started),
    finished: new Date(meta.finished),
    result,
    artifacts,
  };
  return { meta, input };
}

/** The upload body of a stored result: its length first, then the bytes, read as they are sent. */
export async function bodyFromResult(dir: string, opts: { anyResult?: boolean } = {}): Promise<ExecBody & { meta: RunMeta }> {
  const { meta, input } = await execFromResult(dir, opts);
  return { ...streamExec(input), meta };
}
