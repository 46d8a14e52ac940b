// The data of each page, as plain JSON-able values: the JSON API returns them as they are and
// the HTML templates render them, so the two never disagree. Everything is read through the
// store's paged views and the coordinator's in-memory state; nothing here changes anything.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeResult } from '../protocol/describe.js';
import type { RunResult, RunStats, Refusal, SandboxDescription } from '../protocol/messages.js';
import { PROVENANCE_FILE } from '../results/index.js';
import type { RunMeta } from '../results/types.js';
import type { Coordinator } from '../server/coordinator.js';
import type { RunCursor, RunViewRow, Store } from '../server/store/index.js';
import { listTemplates } from '../templates/render.js';
import { consoleIndex, PAGE_LINES, readConsolePage } from './console-file.js';

export const JOBS_PER_PAGE = 100;
export const RUNS_PER_PAGE = 50;
/** queued jobs shown per platform on the front page; the rest is a count */
const QUEUE_HEAD = 20;

export interface ViewContext {
  store: Store;
  coordinator: Coordinator;
  configDir: string;
}

export interface Paging { page: number; pages: number; total: number; perPage: number }

export interface ResultView { kind: RunResult['kind']; text: string; ok: boolean; detail: RunResult }

export interface RunSummary {
  uuid: string; job: string; platform: string; worker: string; attempt: number;
  state: 'running' | 'finished'; started: string; finished: string | null; durationMs: number | null;
  result: ResultView | null; artifacts: number; artifactBytes: number;
  repro: { verdict: string; against: string | null } | null;
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function resultView(json: string | null): ResultView | null {
  if (json === null) return null;
  const r = JSON.parse(json) as RunResult;
  return { kind: r.kind, text: describeResult(r), ok: r.kind === 'exited' && r.code === 0, detail: r };
}

/** 1-based page numbers; out-of-range pages clamp (a page that shrank still shows something). */
export function paging(total: number, perPage: number, requested: number | 'last'): Paging {
  const pages = Math.max(1, Math.ceil(total / perPage));
  const page = requested === 'last' ? pages : Math.min(Math.max(1, requested), pages);
  return { page, pages, total, perPage };
}

const runSummary = (r: RunViewRow): RunSummary => ({
  uuid: r.uuid, job: r.job, platform: r.platform, worker: r.worker, attempt: r.attempt, state: r.state,
  started: iso(r.started)!, finished: iso(r.finished), durationMs: r.finished === null ? null : r.finished - r.started,
  result: resultView(r.result), artifacts: r.artifacts, artifactBytes: r.artifact_bytes,
  repro: r.verdict ? { verdict: r.verdict, against: r.against_uuid } : null,
});

type WorkerState = 'idle' | 'busy' | 'draining' | 'short of disk';

export function workerState(w: { draining: boolean; diskShort: boolean; runs: { size: number } }): WorkerState {
  if (w.draining) return 'draining';
  if (w.diskShort) return 'short of disk';
  return w.runs.size > 0 ? 'busy' : 'idle';
}

// ---- / ----

export function frontPage(ctx: ViewContext, requestedPage: number) {
  const { store, coordinator } = ctx;
  const p = paging(store.jobCount(), JOBS_PER_PAGE, requestedPage);
  const templated = listTemplates({ configDir: ctx.configDir }).map((t) => t.platform);
  const platforms = store.platforms();
  const dropped = new Set(platforms.filter((x) => x.dropped).map((x) => x.name));
  const jobs = store.views.jobs(p.perPage, (p.page - 1) * p.perPage).map((j) => ({
    name: j.name, kind: j.kind,
    platforms: j.kind === 'script' ? (j.platform ? [j.platform] : []) : templated.filter((x) => !dropped.has(x)),
    package: j.package, period: j.period, cron: j.cron, tz: j.tz, next: iso(j.next_run),
    last: j.last_uuid === null ? null : {
      uuid: j.last_uuid, result: resultView(j.last_result), started: iso(j.last_started), finished: iso(j.last_finished),
      durationMs: j.last_finished !== null && j.last_started !== null ? j.last_finished - j.last_started : null,
    },
    repro: store.views.jobStatesOf(j.name).map((s) => ({ platform: s.platform, outcome: s.outcome, verdict: s.verdict, uuid: s.uuid })),
  }));
  const lengths = new Map(store.views.queueLengths().map((q) => [q.platform, q.n]));
  const queues = platforms.filter((x) => !x.dropped).map((x) => ({
    platform: x.name, length: lengths.get(x.name) ?? 0,
    head: store.views.queueHead(x.name, QUEUE_HEAD).map((e) => ({ job: e.job, attempt: e.attempt, notBefore: e.not_before > 0 ? iso(e.not_before) : null })),
  }));
  const running = [...coordinator.live.values()].sort((a, b) => a.started - b.started).map((r) => ({
    uuid: r.uuid, job: r.job, platform: r.platform, worker: r.workerName, attempt: r.attempt, started: iso(r.started),
    attached: r.worker !== undefined,
  }));
  const workers = [...coordinator.workers].map((w) => ({
    name: w.name, platform: w.platform, address: w.peer, state: workerState(w), running: w.runs.size, capacity: w.capacity,
    freePercent: w.freePercent ?? null, sandbox: w.sandbox ?? null, since: iso(w.since),
  })).sort((a, b) => a.name.localeCompare(b.name));
  return { jobs: { ...p, items: jobs }, queues, running, workers, dropped: [...dropped] };
}

// ---- /job/NAME ----

/**
 * Which page of a job's runs: the newest, the oldest, the page just older (`before`) or newer
 * (`after`) than a cursor, or a page number (its start found from the index alone).
 */
export type RunsFrom = 'newest' | 'oldest' | { before: RunCursor } | { after: RunCursor } | { page: number };

/** A run's place in its job's listing as a query value: "finished,rowid". */
export const formatCursor = (c: RunCursor): string => `${c.finished},${c.rowid}`;

/** undefined when it is not two whole numbers "finished,rowid" */
export function parseCursor(raw: string): RunCursor | undefined {
  const m = /^(-?\d{1,16}),(\d{1,19})$/.exec(raw);
  if (!m) return undefined;
  const c = { finished: Number(m[1]), rowid: Number(m[2]) };
  return Number.isSafeInteger(c.finished) && Number.isSafeInteger(c.rowid) ? c : undefined;
}

/**
 * A page of a job's finished runs, newest first, with the cursors of the pages on either side
 * (null at either end): `older` goes to ?before=, `newer` to ?after=.
 */
export interface RunsPage { total: number; perPage: number; newer: string | null; older: string | null; items: RunSummary[] }

function jobRunsPage(store: Store, name: string, from: RunsFrom): RunsPage {
  const total = store.views.jobRunCount(name);
  let rows: RunViewRow[];
  if (typeof from === 'object' && 'page' in from) {
    // past the end: the oldest page, as a numbered page that shrank shows the last one
    const start = from.page > 1 ? store.views.jobRunAt(name, (from.page - 1) * RUNS_PER_PAGE - 1) : undefined;
    rows = from.page <= 1 ? store.views.jobRuns(name, RUNS_PER_PAGE, 'newest')
      : start ? store.views.jobRuns(name, RUNS_PER_PAGE, { before: start }) : [];
    if (from.page > 1 && rows.length === 0) rows = store.views.jobRuns(name, RUNS_PER_PAGE, 'oldest');
  } else {
    rows = store.views.jobRuns(name, RUNS_PER_PAGE, from);
    // older than every run left (retention deleted the ones the link pointed past): the oldest
    if (rows.length === 0 && typeof from === 'object' && total > 0) rows = store.views.jobRuns(name, RUNS_PER_PAGE, 'oldest');
  }
  const first = rows[0];
  const last = rows.at(-1);
  const cursor = (r: RunViewRow): RunCursor => ({ finished: r.finished!, rowid: r.rowid });
  return {
    total, perPage: RUNS_PER_PAGE,
    newer: first && store.views.jobRunsNewerThan(name, cursor(first)) ? formatCursor(cursor(first)) : null,
    older: last && store.views.jobRunsOlderThan(name, cursor(last)) ? formatCursor(cursor(last)) : null,
    items: rows.map(runSummary),
  };
}

/** undefined when there is no such job and it never ran */
export function jobPage(ctx: ViewContext, name: string, from: RunsFrom = 'newest') {
  const { store } = ctx;
  const job = store.job(name);
  const running = store.views.runningOf(name).map(runSummary);
  const runs = jobRunsPage(store, name, from);
  if (!job && runs.total === 0 && running.length === 0) return undefined;
  return {
    name,
    job: job ? {
      kind: job.kind, platform: job.platform, package: job.package, period: job.period, cron: job.cron, tz: job.tz,
      next: iso(job.next_run), timeoutSec: job.timeout_sec, created: iso(job.created), sourceDateEpoch: job.source_date_epoch,
      secrets: ctx.coordinator.secrets.names(name),
    } : null,
    repro: store.views.jobStatesOf(name).map((s) => ({ platform: s.platform, outcome: s.outcome, verdict: s.verdict, uuid: s.uuid })),
    running,
    runs,
  };
}

// ---- /run/UUID ----

export interface ConsolePage extends Paging { lines: Array<{ n: number; ms: number; text: string }>; lastSeq: number }

/** A page of a run's console: from the store while it runs, from its console file once stored. */
export async function consolePage(ctx: ViewContext, uuid: string, dir: string | null, running: boolean, requested: number | 'last'): Promise<ConsolePage> {
  if (running) {
    // pages by line number (a line's seq), each found through the index: counting the lines or
    // skipping to an offset would read every line before it, a million of them in a long build
    const lastSeq = ctx.store.lastSeq(uuid);
    const p = paging(lastSeq + 1, PAGE_LINES, requested);
    const rows = ctx.store.views.consoleAfter(uuid, (p.page - 1) * PAGE_LINES - 1, PAGE_LINES);
    // the live console goes on after the newest line the run has stored, whatever page is shown
    return { ...p, lines: rows.map((r) => ({ n: r.seq + 1, ms: r.ms, text: r.data.toString('utf8') })), lastSeq };
  }
  if (dir === null) return { ...paging(0, PAGE_LINES, 1), lines: [], lastSeq: -1 };
  const file = join(dir, 'console');
  const index = await consoleIndex(file);
  const p = paging(index.lines, PAGE_LINES, requested);
  const first = (p.page - 1) * PAGE_LINES;
  const lines = (await readConsolePage(file, index, p.page - 1)).map(([ms, data], i) => ({ n: first + i + 1, ms, text: data.toString('utf8') }));
  return { ...p, lines, lastSeq: index.lines - 1 };
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** The DSSE envelope's statement, decoded for reading (verification is builder-inspect's job). */
function provenanceView(envelope: unknown) {
  if (typeof envelope !== 'object' || envelope === null) return null;
  const e = envelope as { payloadType?: unknown; payload?: unknown; signatures?: unknown };
  let statement: unknown = null;
  if (typeof e.payload === 'string') {
    try {
      statement = JSON.parse(Buffer.from(e.payload, 'base64').toString('utf8'));
    } catch {
      statement = null;
    }
  }
  const keyids = Array.isArray(e.signatures) ? e.signatures.map((s) => String((s as { keyid?: unknown }).keyid ?? '')) : [];
  return { payloadType: typeof e.payloadType === 'string' ? e.payloadType : null, keyids, statement };
}

export async function runPage(ctx: ViewContext, uuid: string, requestedConsolePage: number | 'last') {
  const { store, coordinator } = ctx;
  const row = store.run(uuid);
  if (!row) return undefined;
  const running = row.state === 'running';
  const meta = running || row.dir === null ? undefined : (await readJson(join(row.dir, 'run.json'))) as Partial<RunMeta> | undefined;
  const comparison = store.comparison(uuid);
  const upload = store.uploads.get(uuid);
  const envelope = row.dir === null ? undefined : await readJson(join(row.dir, PROVENANCE_FILE));
  const stats: RunStats = row.stats ? JSON.parse(row.stats) as RunStats : {};
  return {
    uuid, job: row.job, platform: row.platform, worker: row.worker, attempt: row.attempt, state: row.state,
    live: coordinator.live.has(uuid),
    started: iso(row.started)!, finished: iso(row.finished), durationMs: row.finished === null ? null : row.finished - row.started,
    result: resultView(row.result),
    stats: { peakMemoryBytes: stats.peakMemoryBytes ?? null, cpuMs: stats.cpuMs ?? null },
    sandbox: (meta?.sandbox ?? null) as SandboxDescription | null,
    script: row.script,
    console: await consolePage(ctx, uuid, row.dir, running, requestedConsolePage),
    artifacts: store.artifacts(uuid).map((a) => ({ path: a.path, size: a.size, mode: a.mode, sha256: a.sha256 })),
    refusals: (row.refusals ? JSON.parse(row.refusals) : []) as Refusal[],
    comparison: comparison ? {
      verdict: comparison.verdict, against: comparison.against_uuid,
      changed: JSON.parse(comparison.changed) as string[], added: JSON.parse(comparison.added) as string[],
      removed: JSON.parse(comparison.removed) as string[], report: comparison.report !== null,
    } : null,
    provenance: provenanceView(envelope),
    upload: upload ? { state: upload.state, attempts: upload.attempts, lastError: upload.last_error, updated: iso(upload.updated) } : null,
  };
}

export type FrontPage = ReturnType<typeof frontPage>;
export type JobPage = NonNullable<ReturnType<typeof jobPage>>;
export type RunPage = NonNullable<Awaited<ReturnType<typeof runPage>>>;
