// What the server answers to each request op, declared once. On the wire a reply is the `data`
// of a `res` message and stays `unknown` to the frame checker (parse.ts): the server builds each
// reply with these types (src/server/requests.ts and the upload handlers are annotated with
// them), and the client's ClientSession.request(op) returns Replies[op]. Client and server come
// from the same tree, so the contract is kept by the compiler, not re-checked per reply.
import type { Period, Refusal, Request, RunResult, RunStats } from './messages.js';

/** A job of the schedule (info's schedule, reschedule's answer). Times are ISO 8601 in UTC. */
export interface JobInfo {
  name: string;
  kind: 'script' | 'orb';
  platform: string | null;
  package: string | null;
  period: Period | null;
  cron: string | null;
  tz: string | null;
  timeoutSec: number;
  /** null: runs only by execute */
  next: string | null;
  /** SOURCE_DATE_EPOCH of every run of the job (Unix seconds) */
  sourceDateEpoch: number;
  /** the names of the job's secrets; their values are never shown */
  secrets: string[];
  /** a script job of a dropped platform: kept, not queued, until undrop-platform (absent: not paused) */
  paused?: boolean;
  /** info only: per platform, the latest verdict */
  repro?: Array<{ platform: string; verdict: 'reproduced' | 'differs' | null; outcome: 'ok' | 'failing'; uuid: string }>;
}

/**
 * What every view of a run holds: the run as the wire shows it (RunInfo) and as its stored
 * result's run.json has it (RunMeta, src/results/types.ts).
 */
export interface RunCore {
  uuid: string;
  job: string;
  platform: string;
  worker: string;
  attempt: number;
  /** ISO 8601 */
  started: string;
  stats: RunStats;
  refusals: Refusal[];
}

/** A run, running or finished (history, observe of a finished run). */
export interface RunInfo extends RunCore {
  finished: string | null;
  result: RunResult | null;
  /** the stored result's directory, once stored */
  dir: string | null;
  /** a successful run's comparison with the previous successful run (history only; absent otherwise) */
  repro?: ReproInfo | null;
}

/** How a successful run compares with the previous successful run of its job on its platform. */
export interface ReproInfo {
  verdict: 'reproduced' | 'differs';
  /** the reference run's uuid */
  against: string;
  changed: string[];
  added: string[];
  removed: string[];
  /** the stored diff report (RESULT/compare.txt) once written, for differs */
  report: string | null;
}

/** What changed in one artifact: the report of diffoscope, a line diff, or the first differing byte. */
export interface ArtifactDiff {
  path: string;
  tool: 'identical' | 'diffoscope' | 'line-diff' | 'first-byte' | 'error';
  text: string;
  truncated: boolean;
}

export interface RunRef { uuid: string; job: string; platform: string; worker: string; finished: string | null }

/** compare: b judged against a. */
export interface CompareReply {
  a: RunRef;
  b: RunRef;
  verdict: 'reproduced' | 'differs';
  changed: string[];
  added: string[];
  removed: string[];
  diffs: ArtifactDiff[];
}

/** verify: the rebuild, where it ran, and how it compares (null when it did not succeed). */
export interface VerifyReply {
  job: string;
  platform: string;
  uuid: string;
  worker: string;
  /** the reference run and the worker that built it */
  against: RunRef;
  /** whether the rebuild ran on another worker than the reference's */
  otherWorker: boolean;
  result: RunResult;
  comparison: CompareReply | null;
}

/** repro-record: per platform, how the job's successful runs compared with the one before. */
export interface ReproRecord {
  platform: string;
  compared: number;
  reproduced: number;
  differs: number;
  /** the current run of consecutive reproduced verdicts */
  streak: { count: number; since: string; sinceUuid: string } | null;
  /** the last differs verdict: which artifacts broke it */
  lastBreak: { uuid: string; against: string; at: string; changed: string[]; added: string[]; removed: string[] } | null;
  /** the job's state: its last outcome and verdict */
  outcome: 'ok' | 'failing' | null;
}

export type RunningInfo = Pick<RunInfo, 'uuid' | 'job' | 'platform' | 'worker' | 'started'>;

/** A connected worker. */
export interface WorkerInfo {
  name: string;
  platform: string;
  address: string;
  capacity: number;
  /** uuids of the runs it holds */
  running: string[];
  draining: boolean;
  diskShort: boolean;
  freePercent: number | null;
  sandbox: string | null;
  since: string;
  dropped: boolean;
}

export interface Info {
  schedule: JobInfo[];
  /** platform -> job names, first due first (dropped platforms left out) */
  queues: Record<string, string[]>;
  running: RunningInfo[];
  dropped: string[];
  workers: WorkerInfo[];
}

/** A platform in info-summary: its jobs, queue, running runs and workers, counted. */
export interface PlatformSummary {
  platform: string;
  /** its script jobs, paused ones included (orb-build jobs are counted in InfoSummary.orbJobs) */
  jobs: number;
  /** its queue entries, orb-build jobs' included */
  queued: number;
  /** the first queued job names, first due first (at most INFO_QUEUE_HEAD) */
  head: string[];
  running: number;
  /** connected workers and their slots */
  workers: number;
  capacity: number;
  dropped: boolean;
}

/** info-summary: what a person at a terminal asks first, the same size at 10 jobs or 100,000. */
export interface InfoSummary {
  jobs: number;
  orbJobs: number;
  /** script jobs of dropped platforms: kept, not run */
  paused: number;
  /** jobs whose last run failed on at least one platform */
  failing: number;
  /** every platform known to the schedule, the queues, the running runs or the workers, by name */
  platforms: PlatformSummary[];
  /** how many runs are running; `running` lists the oldest of them (at most INFO_RUNNING_SHOWN) */
  runningCount: number;
  running: RunningInfo[];
  /** the jobs due next, soonest first (paused jobs and jobs run only by execute left out) */
  nextDue: Array<{ name: string; platform: string | null; next: string }>;
  dropped: string[];
  workers: number;
}

/** info-page: a page of the schedule by name; `next` is the `after` of the following page (null: the last). */
export interface InfoPage { schedule: JobInfo[]; next: string | null }

export type UploadState = 'pending' | 'uploaded' | 'refused' | 'failed';

/** A result in the upload outbox. */
export interface UploadInfo {
  uuid: string;
  job: string;
  state: UploadState;
  attempts: number;
  lastError: string | null;
  /** only for pending uploads */
  nextAttempt: string | null;
  updated: string;
  dir: string;
}

export interface UploadsReply {
  /** builder-web's upload URL, without credentials */
  url: string;
  counts: Record<UploadState, number>;
  /** at most this many uploads are listed */
  limit: number;
  uploads: UploadInfo[];
}

/** schedule and orb-build: the new job's next run, and the platforms it was queued on at once. */
export interface Scheduled { name: string; next: string | null; queued: string[] }
/** observe: a live run is streamed; a finished one is described. observe-latest is always live. */
export type Observed = { uuid: string; live: true } | { uuid: string; live: false; run: RunInfo };

/** A platform with an orb-build template, and where it comes from. */
export interface TemplateInfo { platform: string; source: 'config' | 'shipped'; path: string }

export interface TemplatesReply {
  /** searched first, then shippedDir */
  configDir: string;
  shippedDir: string;
  templates: TemplateInfo[];
  /** known platforms (a worker connected once, or a script job) that have none: orb-build jobs skip them */
  without: string[];
}

/** render: the script a job would run now on one platform, or why it cannot be made. */
export interface RenderedScript {
  platform: string;
  /** absent when rendering failed; a script job's script comes as its bytes, exactly as stored */
  script?: string | Uint8Array;
  /** FILE:LINE: what is wrong (templated jobs only) */
  error?: string;
  template?: TemplateInfo & { sha256: string };
}

export interface RenderReply {
  name: string;
  kind: 'script' | 'orb';
  /** what {{uuid}} was rendered as: a run's uuid is made when it starts */
  uuid: string;
  sourceDateEpoch: number;
  scripts: RenderedScript[];
}

/** A named credential (token list); its secret is never stored, so never shown again. */
export interface TokenInfo {
  name: string;
  kind: 'worker' | 'reader';
  created: string;
  /** the live connections authenticated with it */
  connections: number;
}

/** An artifact of a stored run, as recorded when it arrived. */
export interface ArtifactInfo { path: string; size: number; mode: number; sha256: string }

/** run-console: the run whose stored lines follow as `line` messages, then console-end (or, live, end). */
export interface RunConsoleReply {
  uuid: string;
  job: string;
  platform: string;
  started: string;
  /** true when lines go on live until the run's end (follow of a running run) */
  live: boolean;
  /** null while running */
  result: RunResult | null;
}

/** run-result: a run's record and its artifacts. */
export interface RunResultReply { run: RunInfo; artifacts: ArtifactInfo[] }

/** fetch-artifacts: what will be sent, in this order, as artifact-file/artifact-data, then artifacts-end. */
export interface FetchArtifactsReply { uuid: string; job: string; artifacts: ArtifactInfo[]; bytes: number }

/** A run a retention pass deletes (or would), and why it may go. */
export interface PrunedRun {
  uuid: string;
  job: string;
  platform: string;
  finished: string;
  /** 'count': beyond --keep-runs newer runs of its job; 'age': finished more than --keep-days ago */
  reason: 'count' | 'age';
  /** the sum of its recorded artifacts' sizes */
  artifactBytes: number;
}

/** prune-plan and prune: the limits applied and the runs (to be) deleted, oldest first. */
export interface PruneReply {
  keepRuns: number | null;
  keepDays: number | null;
  runs: PrunedRun[];
  /** prune only: how many were deleted (prune-plan: 0) */
  deleted: number;
}

/** The reply type of each request op. */
export interface Replies {
  schedule: Scheduled;
  'orb-build': Scheduled;
  unschedule: { name: string };
  reschedule: JobInfo;
  /** noWorker: the platforms among `queued` that no connected worker serves (absent from older servers) */
  execute: { name: string; queued: string[]; noWorker?: string[] };
  info: Info;
  'info-summary': InfoSummary;
  'info-page': InfoPage;
  observe: Observed;
  'observe-latest': { uuid: string; live: true };
  /** removedJobs: always empty since jobs are paused, not deleted (kept for older clients) */
  'drop-platform': { platform: string; removedJobs: string[]; pausedJobs?: string[] };
  /** resumedJobs: the platform's paused jobs, queued again or due at their next run */
  'undrop-platform': { platform: string; resumedJobs?: string[] };
  history: RunInfo[];
  cancel: { uuid: string };
  workers: WorkerInfo[];
  drain: { worker: string; running: string[] };
  uploads: UploadsReply;
  'upload-retry': { queued: number };
  templates: TemplatesReply;
  render: RenderReply;
  compare: CompareReply;
  verify: VerifyReply;
  'repro-record': { job: string; platforms: ReproRecord[] };
  'token-add': { name: string; kind: 'worker' | 'reader'; token: string };
  'token-list': TokenInfo[];
  'token-revoke': { name: string; closed: number };
  'run-console': RunConsoleReply;
  'run-result': RunResultReply;
  'fetch-artifacts': FetchArtifactsReply;
  'prune-plan': PruneReply;
  prune: PruneReply;
}

export type Op = Request['op'];
/** The reply to any request: what handleRequest returns. */
export type Reply = Replies[Op];

// every op has a reply type, and no reply type is left without its op
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const everyOp: Exact<keyof Replies, Op> = true;
void everyOp;
