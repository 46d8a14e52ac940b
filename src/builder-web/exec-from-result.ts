// A stored result directory (results/<job>/<uuid>/, see src/results/) in builder-web's form: the
// record builder-web's POST /upload decodes, with the artifacts streamed from disk. Used by the
// uploader and by `builder-inspect --export`, so both write the same bytes.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuilderError } from '../common/errors.js';
import { artifactPathProblem } from '../common/names.js';
import type { RunResult } from '../protocol/messages.js';
import { parseConsole, readConsole, readMeta, type RunMeta } from '../results/index.js';
import type { BuildResultInput } from './format.js';
import { streamExec, type ExecBody, type StreamExecInput } from './stream-encode.js';

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
    readConsole(dir),
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
