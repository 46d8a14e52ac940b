// What builder-inspect reads, in one shape: a stored result directory (results/<job>/<uuid>/,
// artifacts read from disk when needed) or a builder-web `full` file (the exec record, decoded).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { BuilderError } from '../common/errors.js';
import { isUuid } from '../common/names.js';
import { decodeExec, type BuildResult, type ExecRecord } from '../builder-web/format.js';
import type { ExecBody } from '../builder-web/stream-encode.js';
import { bytesToJson } from '../builder-web/json-form.js';
import { describeResult } from '../protocol/describe.js';
import { bodyFromResult } from '../builder-web/exec-from-result.js';
import { parseConsole, readMeta } from '../results/index.js';

export interface SourceArtifact {
  /** relative path as recorded (bytes: a `full` file may hold any) */
  path: Buffer;
  size: number;
  /** permission bits to write it with */
  mode: number;
  open(): AsyncIterable<Buffer>;
}

export interface Source {
  kind: 'stored' | 'full';
  where: string;
  uuid: string;
  job: Buffer;
  platform: Buffer;
  started: Date;
  finished: Date;
  result: string;
  script(): Promise<Buffer>;
  /** [milliseconds since the start, line], oldest first */
  console(): Promise<Array<[number, Buffer]>>;
  artifacts: SourceArtifact[];
  /** the run.json-like description (--job --json) */
  json(): unknown;
  /** the builder-web upload body */
  exportBody(): Promise<ExecBody>;
}

const badInput = (message: string, cause?: unknown): BuilderError =>
  new BuilderError('BAD_INPUT', message, cause === undefined ? undefined : { cause });

/** PATH: a result directory, its run.json, or a `full` file. */
export async function openSource(path: string): Promise<Source> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw badInput(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`, err);
  }
  if (st.isDirectory()) return storedSource(path);
  if (basename(path) === 'run.json') return storedSource(dirname(path));
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw badInput(`${path}: ${(err as Error).message}`, err);
  }
  let record: ExecRecord;
  try {
    record = decodeExec(bytes);
  } catch (err) {
    throw badInput(`${path}: not a stored result directory nor a builder-web exec record: ${(err as Error).message}`, err);
  }
  return fullSource(path, bytes, record);
}

/** --dir STATEDIR UUID: the result directory results/<job>/<uuid>. */
export async function findResult(stateDir: string, uuid: string): Promise<string> {
  if (!isUuid(uuid)) throw new BuilderError('USAGE_UUID', `expected a run uuid (8-4-4-4-12 lowercase hex), got "${uuid}"`);
  const results = join(stateDir, 'results');
  let jobs: string[];
  try {
    jobs = await readdir(results);
  } catch (err) {
    throw badInput(`${results}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no results in this state directory' : (err as Error).message}`, err);
  }
  for (const job of jobs) {
    const dir = join(results, job, uuid);
    if (await stat(dir).then((s) => s.isDirectory(), () => false)) return dir;
  }
  throw badInput(`no stored result ${uuid} under ${results}`);
}

async function storedSource(dir: string): Promise<Source> {
  let meta;
  try {
    meta = await readMeta(dir);
  } catch (err) {
    throw badInput(`${dir}: not a stored result: ${(err as Error).message}`, err);
  }
  return {
    kind: 'stored',
    where: dir,
    uuid: meta.uuid,
    job: Buffer.from(meta.job),
    platform: Buffer.from(meta.platform ?? ''),
    started: new Date(meta.started),
    finished: new Date(meta.finished),
    result: describeResult(meta.result),
    script: () => readFile(join(dir, 'script')),
    async console() {
      const file = join(dir, 'console');
      const text = await readFile(file).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? Buffer.alloc(0) : Promise.reject(err)));
      return parseConsole(text, file);
    },
    artifacts: meta.artifacts.map((a) => ({
      path: Buffer.from(a.path),
      size: a.size,
      mode: a.mode & 0o777,
      open: () => createReadStream(join(dir, 'artifacts', a.path), { highWaterMark: 1 << 20 }),
    })),
    json: () => meta,
    exportBody: () => bodyFromResult(dir, { anyResult: true }),
  };
}

function fullSource(file: string, bytes: Buffer, r: ExecRecord): Source {
  return {
    kind: 'full',
    where: file,
    uuid: r.uuid,
    job: r.job.name,
    platform: r.job.platform,
    started: r.started,
    finished: r.finished,
    result: describeWebResult(r.result),
    script: async () => r.job.script,
    console: async () => oldestFirst(r.console).map(([ns, line]) => [Number(ns / 1_000_000n), line]),
    artifacts: r.artifacts.map(([path, data]) => ({
      path,
      size: data.length,
      mode: 0o644,
      open: () => (async function* () { yield data; })(),
    })),
    json: () => ({
      uuid: r.uuid,
      job: bytesToJson(r.job.name),
      platform: bytesToJson(r.job.platform),
      started: r.started.toISOString(),
      finished: r.finished.toISOString(),
      result: webResultJson(r.result),
      console: r.console.length,
      artifacts: r.artifacts.map(([path, data]) => ({
        path: bytesToJson(path), size: data.length, sha256: createHash('sha256').update(data).digest('hex'),
      })),
    }),
    // the file is the upload body already
    exportBody: async () => ({ length: bytes.length, body: Readable.from([bytes]) }),
  };
}

/** builder-web stores the console newest first; a file from elsewhere may not. */
function oldestFirst(lines: ExecRecord['console']): ExecRecord['console'] {
  const deltas = lines.map(([d]) => d);
  if (deltas.every((d, i) => i === 0 || d <= deltas[i - 1]!)) return [...lines].reverse();
  if (deltas.every((d, i) => i === 0 || d >= deltas[i - 1]!)) return lines;
  return [...lines].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function describeWebResult(r: BuildResult): string {
  switch (r.kind) {
    case 'exited': return `exited ${r.value}`;
    case 'signalled': return `killed by signal ${r.value}`;
    case 'stopped': return `stopped by signal ${r.value}`;
    case 'msg': return r.value.toString('utf8');
    default: {
      const never: never = r;
      return String(never);
    }
  }
}

function webResultJson(r: BuildResult): unknown {
  switch (r.kind) {
    case 'exited': return { kind: 'exited', code: r.value };
    case 'signalled': return { kind: 'signalled', signal: r.value };
    case 'stopped': return { kind: 'stopped', signal: r.value };
    case 'msg': return { kind: 'msg', message: bytesToJson(r.value) };
    default: {
      const never: never = r;
      return never;
    }
  }
}
