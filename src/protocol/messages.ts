// The closed set of protocol messages. Each is a CBOR map with a `t` field; the comment on each
// says who sends it. Every decoded frame goes through parseMessage, so nothing untyped from
// the network reaches the programs.

export const PROTOCOL_VERSION = 1;

export type Role = 'client' | 'worker';

/** What became of a run. `failed` with infra=true is the sandbox's fault, not the build's. */
export type RunResult =
  | { kind: 'exited'; code: number }
  | { kind: 'signalled'; signal: number }
  | { kind: 'stopped'; signal: number }
  | { kind: 'timeout'; reason: string }
  | { kind: 'cancelled'; reason: string }
  | { kind: 'failed'; message: string; infra: boolean };

export interface RunStats { peakMemoryBytes?: number; cpuMs?: number }
export interface Refusal { path: string; reason: string }
/** A run a worker still holds when it (re)connects. */
export interface HeldRun { uuid: string; lastSeq: number; finished: boolean }
export interface WorkerHelloInfo { name: string; platform: string; capacity: number; running: HeldRun[] }

export type Period = 'hourly' | 'daily' | 'weekly' | 'never';
export const PERIODS: readonly Period[] = ['hourly', 'daily', 'weekly', 'never'];

// ---- handshake (both roles) ----
/** peer -> server, first frame */
export interface Hello { t: 'hello'; role: Role; version: number; nonce: Buffer; worker?: WorkerHelloInfo }
/** server -> peer: proof = HMAC(token, "server" | peer nonce), nonce for the peer to answer */
export interface Challenge { t: 'challenge'; version: number; nonce: Buffer; proof: Buffer }
/** peer -> server: mac = HMAC(token, "peer" | role | server nonce | peer nonce) */
export interface Auth { t: 'auth'; mac: Buffer }
/** server -> peer: accepted. For workers: which held runs to go on with and which to abandon. */
export interface Welcome {
  t: 'welcome'; server: string; dropped?: boolean;
  attach?: Array<{ uuid: string; haveSeq: number }>; abandon?: string[];
}
/** server -> peer: a refusal; with id when it answers a request, else fatal for the connection */
export interface ErrorMsg { t: 'error'; code: string; message: string; id?: number }
/** either way, when nothing else was sent for a while */
export interface Ping { t: 'ping' }

// ---- client -> server requests ----
export interface ScheduleArgs {
  name: string; platform: string; script: string; period?: Period; cron?: string; tz?: string; timeoutSec?: number;
}
export type Request =
  | ({ t: 'req'; id: number; op: 'schedule' } & ScheduleArgs)
  | { t: 'req'; id: number; op: 'orb-build'; name: string; package: string; period?: Period; cron?: string; tz?: string; timeoutSec?: number }
  | { t: 'req'; id: number; op: 'unschedule'; name: string }
  | { t: 'req'; id: number; op: 'reschedule'; name: string; next: string; period?: Period; cron?: string }
  | { t: 'req'; id: number; op: 'execute'; name: string; platform?: string; follow?: boolean }
  | { t: 'req'; id: number; op: 'info' }
  | { t: 'req'; id: number; op: 'observe'; uuid: string }
  | { t: 'req'; id: number; op: 'observe-latest'; platform?: string; job?: string }
  | { t: 'req'; id: number; op: 'drop-platform'; platform: string }
  | { t: 'req'; id: number; op: 'undrop-platform'; platform: string }
  | { t: 'req'; id: number; op: 'history'; job?: string; limit?: number }
  | { t: 'req'; id: number; op: 'cancel'; uuid: string }
  | { t: 'req'; id: number; op: 'workers' }
  | { t: 'req'; id: number; op: 'drain'; worker: string }
  | { t: 'req'; id: number; op: 'uploads'; failed?: boolean }
  | { t: 'req'; id: number; op: 'upload-retry'; uuid?: string; all?: boolean };

// ---- server -> client ----
export type Response =
  | { t: 'res'; id: number; ok: true; data: unknown }
  | { t: 'res'; id: number; ok: false; code: string; message: string };
/** a run an observer follows has started (execute --follow, observe-latest) */
export interface Started { t: 'started'; id: number; uuid: string; job: string; platform: string }
/** one console line of an observed run, ms since the run started */
export interface Line { t: 'line'; id: number; uuid: string; ms: number; data: Buffer }
/** the observer was too slow and this many lines were not sent */
export interface Skipped { t: 'skipped'; id: number; uuid: string; count: number }
/** the observed run ended */
export interface End { t: 'end'; id: number; uuid: string; result: RunResult }

// ---- server <-> worker ----
/** server -> worker */
export interface Job { t: 'job'; uuid: string; name: string; platform: string; script: string; timeoutMs: number }
/** worker -> server: console lines, numbered from seq on */
export interface Output { t: 'output'; uuid: string; seq: number; lines: Array<[number, Buffer]> }
/** worker -> server: an artifact begins; chunks follow, then artifact-end */
export interface ArtifactStart { t: 'artifact'; uuid: string; path: string; size: number; mode: number }
export interface Chunk { t: 'chunk'; uuid: string; data: Buffer }
export interface ArtifactEnd { t: 'artifact-end'; uuid: string; sha256: string }
/** worker -> server: the run is over and all its artifacts were sent */
export interface Finished {
  t: 'finished'; uuid: string; result: RunResult; lastSeq: number; stats: RunStats; refusals: Refusal[]; artifacts: number;
}
/** server -> worker: the result is stored durably; the worker may forget the run */
export interface Ack { t: 'ack'; uuid: string }
/** server -> worker: this run is not (or no longer) yours; stop it and forget it */
export interface Refused { t: 'refused'; uuid: string; reason: string }
/** server -> worker: end this run (cancel by a user, or the server's own timeout) */
export interface Cancel { t: 'cancel'; uuid: string; reason: string }
/** worker -> server: changes of the worker's own state */
export interface WorkerStatus { t: 'status'; draining: boolean; diskShort: boolean; freePercent?: number; sandbox?: string }
/** server -> worker: finish what you hold, take nothing new */
export interface Drain { t: 'drain' }

export type Message =
  | Hello | Challenge | Auth | Welcome | ErrorMsg | Ping
  | Request | Response | Started | Line | Skipped | End
  | Job | Output | ArtifactStart | Chunk | ArtifactEnd | Finished | Ack | Refused | Cancel | WorkerStatus | Drain;
