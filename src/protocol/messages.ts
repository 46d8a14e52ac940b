// The closed set of protocol messages. Each is a CBOR map with a `t` field; the comment on each
// says who sends it. Each message is written once, as the spec its frames are checked against
// (schema.ts), and its TypeScript type is inferred from that spec. Every decoded frame goes
// through parseMessage (parse.ts), so nothing untyped from the network reaches the programs.
import {
  arrayOf, bool, bytes, int, literal, mapOf, oneOf, opt, record, str, tagged, tuple, unknown, type Infer, type RecordOf, type Schema,
} from './schema.js';

export const PROTOCOL_VERSION = 1;

const role = oneOf(['client', 'worker']);
export type Role = Infer<typeof role>;

export const PERIODS = ['hourly', 'daily', 'weekly', 'never'] as const;
const period = oneOf(PERIODS);
export type Period = Infer<typeof period>;

/** What became of a run. `failed` with infra=true is the sandbox's fault, not the build's. */
export const runResult = tagged('kind', {
  exited: record({ kind: literal('exited'), code: int }),
  signalled: record({ kind: literal('signalled'), signal: int }),
  stopped: record({ kind: literal('stopped'), signal: int }),
  timeout: record({ kind: literal('timeout'), reason: str }),
  cancelled: record({ kind: literal('cancelled'), reason: str }),
  failed: record({ kind: literal('failed'), message: str, infra: bool }),
});
export type RunResult = Infer<typeof runResult>;

const runStats = record({ peakMemoryBytes: opt(int), cpuMs: opt(int) });
export type RunStats = Infer<typeof runStats>;
const refusal = record({ path: str, reason: str });
export type Refusal = Infer<typeof refusal>;
/** A run a worker still holds when it (re)connects, with the secret its job came with. */
const heldRun = record({ uuid: str, lastSeq: int, finished: bool, secret: opt(str) });
export type HeldRun = Infer<typeof heldRun>;
const workerHelloInfo = record({ name: str, platform: str, capacity: int, running: arrayOf(heldRun) });
export type WorkerHelloInfo = Infer<typeof workerHelloInfo>;

// ---- handshake (both roles) ----
/** peer -> server, first frame */
const hello = record({
  t: literal('hello'), role, version: int, nonce: bytes, worker: opt(workerHelloInfo),
  // the name of a named token (worker or reader, see auth.ts); absent: the admin token
  credential: opt(str),
});
/** server -> peer: proof = HMAC(token, "server" | peer nonce), nonce for the peer to answer */
const challenge = record({ t: literal('challenge'), version: int, nonce: bytes, proof: bytes });
/** peer -> server: mac = HMAC(token, "peer" | role | server nonce | peer nonce) */
const auth = record({ t: literal('auth'), mac: bytes });
/** server -> peer: accepted. For workers: which held runs to go on with and which to abandon. */
const welcome = record({
  t: literal('welcome'), server: str, dropped: opt(bool),
  attach: opt(arrayOf(record({ uuid: str, haveSeq: int }))), abandon: opt(arrayOf(str)),
});
/**
 * server -> peer: a refusal; with id when it answers a request, else fatal for the connection.
 * The code stays a plain string on the wire: a newer server may know codes we do not.
 */
const error = record({ t: literal('error'), code: str, message: str, id: opt(int) });
/** either way, when nothing else was sent for a while */
const ping = record({ t: literal('ping') });

/**
 * A script is bytes, run as given (a binary script, or text in any encoding). A sender may give
 * a string (older peers send a CBOR text string), which stands for its UTF-8 bytes; what is
 * decoded is always a Buffer, typed as ScriptBytes so senders may keep passing text.
 */
export type ScriptBytes = Buffer | string;
const scriptBytes: Schema<ScriptBytes> = (v) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : bytes(v));
/** A script's bytes, whichever form it came in. */
export const scriptBuffer = (s: ScriptBytes): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

// ---- client -> server requests (each one's reply type: replies.ts) ----
const timing = { period: opt(period), cron: opt(str), tz: opt(str), timeoutSec: opt(int) } as const;
/** a secret's value travels once, client -> server, and is given to that job's runs alone */
const secret = record({ name: str, value: str });
export type SecretArg = Infer<typeof secret>;
/** SOURCE_DATE_EPOCH (seconds; default: the job's creation) and secrets, for schedule and orb-build */
const buildEnvArgs = { sourceDateEpoch: opt(int), secrets: opt(arrayOf(secret)) } as const;
const scheduleArgs = { name: str, platform: str, script: scriptBytes, ...timing, ...buildEnvArgs } as const;
export type ScheduleArgs = RecordOf<typeof scheduleArgs>;
const req = <const O extends string>(op: O) => ({ t: literal('req'), id: int, op: literal(op) });

export const requests = {
  schedule: record({ ...req('schedule'), ...scheduleArgs }),
  'orb-build': record({ ...req('orb-build'), name: str, package: str, ...timing, ...buildEnvArgs }),
  unschedule: record({ ...req('unschedule'), name: str }),
  reschedule: record({ ...req('reschedule'), name: str, next: str, period: opt(period), cron: opt(str) }),
  execute: record({ ...req('execute'), name: str, platform: opt(str), follow: opt(bool) }),
  // info: the whole schedule, queues, running jobs, workers (its size grows with the schedule);
  // info-summary: counts per platform, the next runs due, running jobs (its size does not);
  // info-page: the schedule by name, `limit` jobs after the job named `after` (default: the first)
  info: record(req('info')),
  'info-summary': record({ ...req('info-summary'), due: opt(int) }),
  'info-page': record({ ...req('info-page'), limit: int, after: opt(str) }),
  observe: record({ ...req('observe'), uuid: str }),
  'observe-latest': record({ ...req('observe-latest'), platform: opt(str), job: opt(str) }),
  'drop-platform': record({ ...req('drop-platform'), platform: str }),
  'undrop-platform': record({ ...req('undrop-platform'), platform: str }),
  history: record({ ...req('history'), job: opt(str), limit: opt(int) }),
  cancel: record({ ...req('cancel'), uuid: str }),
  workers: record(req('workers')),
  drain: record({ ...req('drain'), worker: str }),
  uploads: record({ ...req('uploads'), failed: opt(bool) }),
  'upload-retry': record({ ...req('upload-retry'), uuid: opt(str), all: opt(bool) }),
  // templates: which platforms have one; render: the script a job would run now, not run
  templates: record(req('templates')),
  render: record({ ...req('render'), name: str, platform: opt(str) }),
  // reproducibility: a is the reference run, b the one judged
  compare: record({ ...req('compare'), a: str, b: str }),
  verify: record({ ...req('verify'), name: str, platform: opt(str) }),
  'repro-record': record({ ...req('repro-record'), job: str, platform: opt(str) }),
  // credentials per role (admin only): a worker's or a reader's token, listed, revoked
  'token-add': record({ ...req('token-add'), kind: oneOf(['worker', 'reader']), name: str }),
  'token-list': record(req('token-list')),
  'token-revoke': record({ ...req('token-revoke'), name: str }),
  // finished runs from anywhere (read-only): the stored console streamed as line messages and
  // console-end (follow: a running run goes on live until end); the run's record and artifacts;
  // the artifacts' bytes (all, or the named paths) as artifact-file/artifact-data/artifacts-end
  'run-console': record({ ...req('run-console'), uuid: str, follow: opt(bool) }),
  'run-result': record({ ...req('run-result'), uuid: str }),
  'fetch-artifacts': record({ ...req('fetch-artifacts'), uuid: str, paths: opt(arrayOf(str)) }),
  // retention: what a pass would delete (read-only), and a pass now; the limits default to the server's
  'prune-plan': record({ ...req('prune-plan'), keepRuns: opt(int), keepDays: opt(int) }),
  prune: record({ ...req('prune'), keepRuns: opt(int), keepDays: opt(int) }),
};
export type Request = Infer<(typeof requests)[keyof typeof requests]>;

// ---- server -> client ----
/** The answer to request `id`. `data` is typed by the request's op: see replies.ts. */
const response = tagged('ok', {
  true: record({ t: literal('res'), id: int, ok: literal(true), data: opt(unknown) }),
  false: record({ t: literal('res'), id: int, ok: literal(false), code: str, message: str }),
});
/** a run an observer follows has started (execute --follow, observe-latest) */
const started = record({ t: literal('started'), id: int, uuid: str, job: str, platform: str });
/** one console line of an observed run, ms since the run started */
const line = record({ t: literal('line'), id: int, uuid: str, ms: int, data: bytes });
/** the observer was too slow and this many lines were not sent */
const skipped = record({ t: literal('skipped'), id: int, uuid: str, count: int });
/** the observed run ended */
const end = record({ t: literal('end'), id: int, uuid: str, result: runResult });
/** run-console: every stored line was sent (the run may still be running); error: the rest is unreadable */
const consoleEnd = record({ t: literal('console-end'), id: int, uuid: str, error: opt(str) });
/** fetch-artifacts: one artifact begins, as stored (size, sha256); its bytes follow */
const artifactFile = record({ t: literal('artifact-file'), id: int, path: str, size: int, mode: int, sha256: str });
/** fetch-artifacts: the next bytes of the current artifact, read from disk as the socket drains */
const artifactData = record({ t: literal('artifact-data'), id: int, data: bytes });
/** fetch-artifacts: the last artifact was sent; with error when the server could not read one */
const artifactsEnd = record({ t: literal('artifacts-end'), id: int, error: opt(str) });

// ---- server <-> worker ----
/** server -> worker */
const job = record({
  t: literal('job'), uuid: str, name: str, platform: str, script: scriptBytes, timeoutMs: int,
  // the job's SOURCE_DATE_EPOCH (seconds) and its extra environment (its secrets), never in the script
  sourceDateEpoch: int, env: opt(mapOf(str)),
  // the run's own secret: shown back in the hello to re-attach the run after a reconnect
  secret: opt(str),
});
/** worker -> server: console lines, numbered from seq on */
const output = record({ t: literal('output'), uuid: str, seq: int, lines: arrayOf(tuple(int, bytes)) });
/** worker -> server: an artifact begins; chunks follow, then artifact-end */
const artifactStart = record({ t: literal('artifact'), uuid: str, path: str, size: int, mode: int });
const chunk = record({ t: literal('chunk'), uuid: str, data: bytes });
const artifactEnd = record({ t: literal('artifact-end'), uuid: str, sha256: str });
/**
 * What the run ran in, for its provenance: the backend's kind, and for docker the image name and
 * its engine id (sha256:...), for btrfs-ns the base snapshot's path, for zfs-jail the snapshot.
 */
const sandboxDescription = record({ kind: str, image: opt(str), imageDigest: opt(str), snapshot: opt(str) });
export type SandboxDescription = Infer<typeof sandboxDescription>;
/** worker -> server: the run is over and all its artifacts were sent */
const finished = record({
  t: literal('finished'), uuid: str, result: runResult, lastSeq: int, stats: runStats, refusals: arrayOf(refusal), artifacts: int,
  sandbox: opt(sandboxDescription),
});
/** server -> worker: the result is stored durably; the worker may forget the run */
const ack = record({ t: literal('ack'), uuid: str });
/** server -> worker: this run is not (or no longer) yours; stop it and forget it */
const refused = record({ t: literal('refused'), uuid: str, reason: str });
/** server -> worker: end this run (cancel by a user, or the server's own timeout) */
const cancel = record({ t: literal('cancel'), uuid: str, reason: str });
/** worker -> server: changes of the worker's own state */
const workerStatus = record({ t: literal('status'), draining: bool, diskShort: bool, freePercent: opt(int), sandbox: opt(str) });
/** server -> worker: finish what you hold, take nothing new */
const drain = record({ t: literal('drain') });

/** Every message but requests, by its `t` (requests are told apart by `op`: `requests`). */
export const messages = {
  hello, challenge, auth, welcome, error, ping,
  res: response, started, line, skipped, end,
  'console-end': consoleEnd, 'artifact-file': artifactFile, 'artifact-data': artifactData, 'artifacts-end': artifactsEnd,
  job, output, artifact: artifactStart, chunk, 'artifact-end': artifactEnd, finished, ack, refused, cancel, status: workerStatus, drain,
};

export type Hello = Infer<typeof hello>;
export type Challenge = Infer<typeof challenge>;
export type Auth = Infer<typeof auth>;
export type Welcome = Infer<typeof welcome>;
export type ErrorMsg = Infer<typeof error>;
export type Ping = Infer<typeof ping>;
export type Response = Infer<typeof response>;
export type Started = Infer<typeof started>;
export type Line = Infer<typeof line>;
export type Skipped = Infer<typeof skipped>;
export type End = Infer<typeof end>;
export type ConsoleEnd = Infer<typeof consoleEnd>;
export type ArtifactFile = Infer<typeof artifactFile>;
export type ArtifactData = Infer<typeof artifactData>;
export type ArtifactsEnd = Infer<typeof artifactsEnd>;
export type Job = Infer<typeof job>;
export type Output = Infer<typeof output>;
export type ArtifactStart = Infer<typeof artifactStart>;
export type Chunk = Infer<typeof chunk>;
export type ArtifactEnd = Infer<typeof artifactEnd>;
export type Finished = Infer<typeof finished>;
export type Ack = Infer<typeof ack>;
export type Refused = Infer<typeof refused>;
export type Cancel = Infer<typeof cancel>;
export type WorkerStatus = Infer<typeof workerStatus>;
export type Drain = Infer<typeof drain>;

export type Message = Request | Infer<(typeof messages)[keyof typeof messages]>;
