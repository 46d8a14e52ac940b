// The JSON form of an exec record used by the golden vectors (and handy for `builder-inspect`):
// text that is valid UTF-8 is a JSON string, anything else is {"b64": ...}, so bytes survive.
// Artifact data is always base64; times are RFC 3339 in UTC with ".fff" only when non-zero.
import { BuilderWebFormatError, type ExecRecord } from './format.js';

export type JsonBytes = string | { b64: string };

export interface ExecJson {
  job: { name: JsonBytes; platform: JsonBytes; script: JsonBytes };
  uuid: string;
  /** Deltas are JSON numbers while exact (< 2^53 ns, about 104 days), decimal strings beyond. */
  console: Array<[number | string, JsonBytes]>;
  started: string;
  finished: string;
  result: { kind: 'exited' | 'signalled' | 'stopped'; value: number } | { kind: 'msg'; value: JsonBytes };
  artifacts: Array<[JsonBytes, string]>;
}

// fatal: invalid UTF-8 must become b64; ignoreBOM: a leading U+FEFF is content and must stay.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function bytesToJson(b: Uint8Array): JsonBytes {
  try {
    return strictUtf8.decode(b);
  } catch {
    return { b64: Buffer.from(b).toString('base64') };
  }
}

export function bytesFromJson(j: JsonBytes): Buffer {
  if (typeof j === 'string') return Buffer.from(j, 'utf8');
  if (j !== null && typeof j === 'object' && typeof j.b64 === 'string') return Buffer.from(j.b64, 'base64');
  throw new BuilderWebFormatError(`expected a string or {"b64": ...}, got ${JSON.stringify(j)}`);
}

/** `2024-03-05T10:15:30.250Z`, or without the fraction when the milliseconds are zero. */
export const timeToJson = (d: Date): string => d.toISOString().replace(/\.000Z$/, 'Z');

function timeFromJson(s: string): Date {
  const d = new Date(s);
  if (typeof s !== 'string' || Number.isNaN(d.getTime())) throw new BuilderWebFormatError(`expected an RFC 3339 time, got ${JSON.stringify(s)}`);
  return d;
}

export function execToJson(r: ExecRecord): ExecJson {
  return {
    job: { name: bytesToJson(r.job.name), platform: bytesToJson(r.job.platform), script: bytesToJson(r.job.script) },
    uuid: r.uuid,
    console: r.console.map(([delta, line]) => [
      delta >= BigInt(Number.MIN_SAFE_INTEGER) && delta <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(delta) : delta.toString(),
      bytesToJson(line),
    ]),
    started: timeToJson(r.started),
    finished: timeToJson(r.finished),
    result: r.result.kind === 'msg' ? { kind: 'msg', value: bytesToJson(r.result.value) } : { ...r.result },
    artifacts: r.artifacts.map(([path, data]) => [bytesToJson(path), data.toString('base64')]),
  };
}

export function execFromJson(j: ExecJson): ExecRecord {
  return {
    job: { name: bytesFromJson(j.job.name), script: bytesFromJson(j.job.script), platform: bytesFromJson(j.job.platform) },
    uuid: j.uuid,
    console: j.console.map(([delta, line]) => [BigInt(delta), bytesFromJson(line)]),
    started: timeFromJson(j.started),
    finished: timeFromJson(j.finished),
    result: j.result.kind === 'msg' ? { kind: 'msg', value: bytesFromJson(j.result.value) } : { kind: j.result.kind, value: j.result.value },
    artifacts: j.artifacts.map(([path, data]) => [bytesFromJson(path), Buffer.from(data, 'base64')]),
  };
}
