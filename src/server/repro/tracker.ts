// Reproducibility tracking. When a run has finished and is stored (run:finished), a successful
// run (exited 0) is compared artifact by artifact (sha256) with the previous successful run of
// the same job on the same platform; the verdict is stored with the run in its own short
// transaction and announced as run:compared once on disk. For `differs`, the diff report of each changed
// artifact is made in the background (bounded) and stored as RESULT/compare.txt, never in
// run.json. The job's state (last outcome, last verdict) is kept beside, and each change of it
// goes to the notify command. A run that failed has no verdict; cancelled runs and
// infrastructure failures say nothing about the job and change no state.
import type { Logger } from '../../common/log.js';
import { errorMessage } from '../../common/errors.js';
import type { RunResult } from '../../protocol/messages.js';
import { compareArtifacts, type Comparison } from '../../repro/compare.js';
import type { EventMap, ServerEvents } from '../events.js';
import type { JobStateRow, Outcome, Store, SuccessfulRun } from '../store/index.js';
import type { NotifySummary, Notifier, StateChange } from './notify.js';
import { artifactDiffs, makeLimit, reportText, storeReport } from './reports.js';

export interface TrackerParts {
  store: Store;
  events: ServerEvents;
  log: Logger;
  notifier?: Notifier | undefined;
  /** diffoscope executable; undefined: look on PATH; false: never */
  diffoscope?: string | false | undefined;
  /** diff reports made at once (default 2: the machine builds too) */
  concurrency?: number;
}

/** ok, failing, or undefined for a result that says nothing about the job. */
export function outcomeOf(r: RunResult): Outcome | undefined {
  if (r.kind === 'cancelled' || (r.kind === 'failed' && r.infra)) return undefined;
  return r.kind === 'exited' && r.code === 0 ? 'ok' : 'failing';
}

/** The changes of a job's state that this run makes, in the order they are told. */
export function stateChanges(prev: JobStateRow | undefined, outcome: Outcome, verdict: Comparison['verdict'] | undefined): StateChange[] {
  const changes: StateChange[] = [];
  if (outcome === 'failing') {
    if (prev?.outcome !== 'failing') changes.push('starts-failing');
    return changes;
  }
  if (prev?.outcome === 'failing') changes.push('recovers');
  // the first differs is news even when nothing reproduced before it
  if (verdict === 'differs' && prev?.verdict !== 'differs') changes.push('stops-reproducing');
  if (verdict === 'reproduced' && prev?.verdict === 'differs') changes.push('reproduces-again');
  return changes;
}

type Finished = EventMap['run:finished'];

export class ReproTracker {
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private readonly pending = new Set<Promise<void>>();
  private readonly off: () => void;

  constructor(private readonly parts: TrackerParts) {
    this.limit = makeLimit(parts.concurrency ?? 2);
    this.off = parts.events.on('run:finished', (run) => this.track(run));
  }

  /** The diff reports still being made (tests and shutdown wait for them). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  stop(): void {
    this.off();
  }

  private track(run: Finished): void {
    const { store, log } = this.parts;
    const outcome = run.retried ? undefined : outcomeOf(run.result);
    if (outcome === undefined) return;
    const prev = store.jobState(run.job, run.platform);
    let reference: SuccessfulRun | undefined;
    let comparison: Comparison | undefined;
    if (outcome === 'ok') {
      reference = store.lastSuccess(run.job, run.platform, run.finished, run.uuid);
      if (reference) comparison = compareArtifacts(store.artifacts(reference.uuid), store.artifacts(run.uuid));
    }
    // group commit (store/index.ts): the verdict is told once the fsync it shares with the runs
    // finishing and starting meanwhile has returned
    store.txDeferred(() => {
      if (reference && comparison) store.addComparison(run, reference.uuid, comparison, run.finished);
      store.setJobState({
        job: run.job, platform: run.platform, outcome, verdict: comparison?.verdict ?? prev?.verdict ?? null,
        uuid: run.uuid, updated: run.finished,
      });
    });
    const synced = store.synced();
    if (!synced) return this.announce(run, outcome, prev, reference, comparison);
    // pending like a report, so idle() also waits for what is yet to be announced
    void this.background(synced).then(
      () => this.announce(run, outcome, prev, reference, comparison),
      (err: unknown) => log.error('cannot flush the run\'s verdict to disk; it is not announced', { run: run.uuid, job: run.job, error: errorMessage(err) }),
    );
  }

  /** Tells the verdict and the job's state changes, once they are stored. */
  private announce(run: Finished, outcome: Outcome, prev: JobStateRow | undefined, reference: SuccessfulRun | undefined,
    comparison: Comparison | undefined): void {
    const { log } = this.parts;
    if (reference && comparison) {
      log.info(`run ${comparison.verdict}`, {
        run: run.uuid, job: run.job, platform: run.platform, against: reference.uuid,
        ...(comparison.verdict === 'differs' ? { changed: comparison.changed.length, new: comparison.added.length, gone: comparison.removed.length } : {}),
      });
    }
    if (outcome === 'ok') {
      this.parts.events.emit('run:compared', {
        uuid: run.uuid, job: run.job, platform: run.platform, worker: run.worker, attempt: run.attempt,
        against: reference?.uuid ?? null, comparison: comparison ?? null, dir: run.dir,
      });
    }
    const changes = stateChanges(prev, outcome, comparison?.verdict);
    const summary = (event: StateChange, report: string | null): NotifySummary => ({
      event, job: run.job, platform: run.platform, uuid: run.uuid, worker: run.worker,
      finished: new Date(run.finished).toISOString(), result: run.result, verdict: comparison?.verdict ?? null,
      against: reference?.uuid ?? null,
      changed: comparison?.verdict === 'differs' ? comparison.changed : [],
      added: comparison?.verdict === 'differs' ? comparison.added : [],
      removed: comparison?.verdict === 'differs' ? comparison.removed : [],
      dir: run.dir, report,
    });
    let report: Promise<string | null> = Promise.resolve(null);
    if (comparison?.verdict === 'differs' && reference?.dir && run.dir) {
      report = this.background(this.writeReport(run, reference, comparison));
    }
    for (const change of changes) {
      log.info(`job ${change.replace(/-/g, ' ')}`, { run: run.uuid, job: run.job, platform: run.platform });
      // a change that comes with a report is told once the report is there, so it can name it
      if (this.parts.notifier) void report.then((file) => this.parts.notifier?.send(summary(change, file)));
    }
  }

  private background<T>(p: Promise<T>): Promise<T> {
    const done = p.then(() => undefined, () => undefined);
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
    return p;
  }

  private async writeReport(run: Finished, reference: SuccessfulRun, c: Comparison & { verdict: 'differs' }): Promise<string | null> {
    const a = { uuid: reference.uuid, dir: reference.dir! };
    const b = { uuid: run.uuid, dir: run.dir! };
    try {
      const diffs = await artifactDiffs(a, b, c.changed, { limit: this.limit, diffoscope: this.parts.diffoscope });
      const file = await storeReport(b.dir, reportText(a, b, c, diffs));
      this.parts.store.setComparisonReport(run.uuid, file);
      return file;
    } catch (err) {
      this.parts.log.error('cannot store the diff report', { run: run.uuid, job: run.job, error: errorMessage(err) });
      return null;
    }
  }
}
