// Checks a decoded CBOR value into a typed Message. Every rule says what was expected and what
// came, so a peer speaking a different dialect gets a message it can act on.
import { PERIODS, type Message, type RunResult } from './messages.js';

export class ProtocolError extends Error {
  readonly code = 'PROTOCOL';
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

type Check = (v: unknown, where: string) => unknown;

const fail = (where: string, expected: string, v: unknown): never => {
  const got = v === null ? 'null' : Buffer.isBuffer(v) ? 'bytes' : Array.isArray(v) ? 'array' : typeof v;
  throw new ProtocolError(`${where}: expected ${expected}, got ${got}`);
};
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Uint8Array);

const str: Check = (v, w) => (typeof v === 'string' ? v : fail(w, 'a string', v));
const int: Check = (v, w) => (Number.isSafeInteger(v) ? v : fail(w, 'an integer', v));
const bool: Check = (v, w) => (typeof v === 'boolean' ? v : fail(w, 'a boolean', v));
const bytes: Check = (v, w) =>
  Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.length) : fail(w, 'bytes', v);
const period: Check = (v, w) =>
  typeof v === 'string' && (PERIODS as readonly string[]).includes(v) ? v : fail(w, `one of ${PERIODS.join('|')}`, v);
const any: Check = (v) => v;
const arrayOf = (item: Check): Check => (v, w) =>
  Array.isArray(v) ? v.map((x, i) => item(x, `${w}[${i}]`)) : fail(w, 'an array', v);
const tuple = (...items: Check[]): Check => (v, w) =>
  Array.isArray(v) && v.length === items.length ? items.map((c, i) => c(v[i], `${w}[${i}]`)) : fail(w, `an array of ${items.length}`, v);

type Spec = Record<string, Check | [Check, 'optional']>;
const opt = (c: Check): [Check, 'optional'] => [c, 'optional'];
const record = (spec: Spec): Check => (v, w) => {
  if (!isObj(v)) return fail(w, 'a map', v);
  const out: Record<string, unknown> = {};
  for (const [key, rule] of Object.entries(spec)) {
    const [check, optional] = Array.isArray(rule) ? [rule[0], true] : [rule, false];
    const value = v[key];
    if (value === undefined || value === null) {
      if (!optional) throw new ProtocolError(`${w}: field "${key}" is missing`);
      continue;
    }
    out[key] = check(value, `${w}.${key}`);
  }
  return out;
};

const runResult: Check = (v, w) => {
  if (!isObj(v)) return fail(w, 'a result map', v);
  const kinds: Record<RunResult['kind'], Spec> = {
    exited: { kind: str, code: int },
    signalled: { kind: str, signal: int },
    stopped: { kind: str, signal: int },
    timeout: { kind: str, reason: str },
    cancelled: { kind: str, reason: str },
    failed: { kind: str, message: str, infra: bool },
  };
  const spec = typeof v.kind === 'string' ? kinds[v.kind as RunResult['kind']] : undefined;
  if (!spec) return fail(`${w}.kind`, Object.keys(kinds).join('|'), v.kind);
  return record(spec)(v, w);
};

const held = record({ uuid: str, lastSeq: int, finished: bool });
const base = { t: str };
const req = { t: str, id: int, op: str };
const sched = { period: opt(period), cron: opt(str), tz: opt(str), timeoutSec: opt(int) };

const requests: Record<string, Spec> = {
  schedule: { ...req, name: str, platform: str, script: str, ...sched },
  'orb-build': { ...req, name: str, package: str, ...sched },
  unschedule: { ...req, name: str },
  reschedule: { ...req, name: str, next: str, period: opt(period), cron: opt(str) },
  execute: { ...req, name: str, platform: opt(str), follow: opt(bool) },
  info: req,
  observe: { ...req, uuid: str },
  'observe-latest': { ...req, platform: opt(str), job: opt(str) },
  'drop-platform': { ...req, platform: str },
  'undrop-platform': { ...req, platform: str },
  history: { ...req, job: opt(str), limit: opt(int) },
  cancel: { ...req, uuid: str },
  workers: req,
  drain: { ...req, worker: str },
  uploads: { ...req, failed: opt(bool) },
  'upload-retry': { ...req, uuid: opt(str), all: opt(bool) },
};

const specs: Record<Exclude<Message['t'], 'req'>, Spec> = {
  hello: {
    ...base, role: str, version: int, nonce: bytes,
    worker: opt(record({ name: str, platform: str, capacity: int, running: arrayOf(held) })),
  },
  challenge: { ...base, version: int, nonce: bytes, proof: bytes },
  auth: { ...base, mac: bytes },
  welcome: {
    ...base, server: str, dropped: opt(bool),
    attach: opt(arrayOf(record({ uuid: str, haveSeq: int }))), abandon: opt(arrayOf(str)),
  },
  error: { ...base, code: str, message: str, id: opt(int) },
  ping: base,
  res: { ...base, id: int, ok: bool, data: opt(any), code: opt(str), message: opt(str) },
  started: { ...base, id: int, uuid: str, job: str, platform: str },
  line: { ...base, id: int, uuid: str, ms: int, data: bytes },
  skipped: { ...base, id: int, uuid: str, count: int },
  end: { ...base, id: int, uuid: str, result: runResult },
  job: { ...base, uuid: str, name: str, platform: str, script: str, timeoutMs: int },
  output: { ...base, uuid: str, seq: int, lines: arrayOf(tuple(int, bytes)) },
  artifact: { ...base, uuid: str, path: str, size: int, mode: int },
  chunk: { ...base, uuid: str, data: bytes },
  'artifact-end': { ...base, uuid: str, sha256: str },
  finished: {
    ...base, uuid: str, result: runResult, lastSeq: int, artifacts: int,
    stats: record({ peakMemoryBytes: opt(int), cpuMs: opt(int) }),
    refusals: arrayOf(record({ path: str, reason: str })),
  },
  ack: { ...base, uuid: str },
  refused: { ...base, uuid: str, reason: str },
  cancel: { ...base, uuid: str, reason: str },
  status: { ...base, draining: bool, diskShort: bool, freePercent: opt(int), sandbox: opt(str) },
  drain: base,
};

export function parseMessage(value: unknown): Message {
  if (!isObj(value)) return fail('message', 'a map', value);
  const t = value.t;
  if (typeof t !== 'string') return fail('message.t', 'a string', t);
  if (t === 'req') {
    const op = value.op;
    const spec = typeof op === 'string' ? requests[op] : undefined;
    if (!spec) return fail('request.op', `one of ${Object.keys(requests).join('|')}`, op);
    return record(spec)(value, `request ${op}`) as Message;
  }
  const spec = specs[t as keyof typeof specs];
  if (!spec) throw new ProtocolError(`message.t: unknown message type "${t}"`);
  return record(spec)(value, t) as Message;
}
