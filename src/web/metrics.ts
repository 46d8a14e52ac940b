// GET /metrics in the Prometheus text exposition format (version 0.0.4). Gauges are read at each
// scrape (the schedule's size, queue lengths, live runs, workers, the outbox); the counters and
// the duration histogram are read from the store once, when the view starts, and then follow
// run:finished and run:compared, so a scrape costs the same on a history of a million runs.
import type { Coordinator } from '../server/coordinator.js';
import type { ServerEvents } from '../server/events.js';
import type { Store } from '../server/store/index.js';
import { workerState } from './pages.js';

/** run-duration buckets, seconds: from a quick check to the longest timeout a job may have */
export const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400];
const WORKER_STATES = ['idle', 'busy', 'draining', 'short_of_disk'] as const;
const UPLOAD_STATES = ['pending', 'uploaded', 'refused', 'failed'] as const;

/** A label value as the exposition format wants it: backslash, double quote and newline escaped. */
export const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

interface Histogram { buckets: number[]; sum: number; count: number }

export class Metrics {
  private readonly finished = new Map<string, { platform: string; kind: string; success: boolean; n: number }>();
  private readonly durations = new Map<string, Histogram>();
  private readonly verdicts = new Map<string, { platform: string; verdict: string; n: number }>();
  private artifactBytes = 0;
  private readonly unsubscribe: Array<() => void>;

  constructor(private readonly store: Store, private readonly coordinator: Coordinator, events: ServerEvents) {
    for (const c of store.views.finishedCounts()) this.countFinished(c.platform, c.kind ?? 'unknown', c.ok === 1, c.n);
    for (const d of store.views.durations()) this.observeDuration(d.platform, d.ms);
    for (const v of store.views.verdictCounts()) this.countVerdict(v.platform, v.verdict, v.n);
    this.artifactBytes = store.views.artifactBytes();
    this.unsubscribe = [
      events.on('run:finished', (e) => {
        const r = e.result;
        this.countFinished(e.platform, r.kind, r.kind === 'exited' && r.code === 0, 1);
        const row = store.run(e.uuid);
        if (row) this.observeDuration(e.platform, e.finished - row.started);
        this.artifactBytes += store.views.runArtifactBytes(e.uuid);
      }),
      events.on('run:compared', (e) => {
        if (e.comparison) this.countVerdict(e.platform, e.comparison.verdict, 1);
      }),
    ];
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
  }

  private countFinished(platform: string, kind: string, success: boolean, n: number): void {
    const key = JSON.stringify([platform, kind, success]);
    const c = this.finished.get(key) ?? { platform, kind, success, n: 0 };
    c.n += n;
    this.finished.set(key, c);
  }

  private observeDuration(platform: string, ms: number): void {
    let h = this.durations.get(platform);
    if (!h) this.durations.set(platform, (h = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    const s = Math.max(0, ms) / 1000;
    // per bucket, not cumulative: summed up when written out
    const i = DURATION_BUCKETS.findIndex((le) => s <= le);
    if (i >= 0) h.buckets[i]!++;
    h.sum += s;
    h.count++;
  }

  private countVerdict(platform: string, verdict: string, n: number): void {
    const key = JSON.stringify([platform, verdict]);
    const c = this.verdicts.get(key) ?? { platform, verdict, n: 0 };
    c.n += n;
    this.verdicts.set(key, c);
  }

  /** The whole exposition, read now. */
  render(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, samples: Array<[Record<string, string>, number]>, suffix = ''): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [l, v] of samples) out.push(`${name}${suffix}${labels(l)} ${formatNumber(v)}`);
    };
    const { store, coordinator } = this;
    const platforms = store.platforms().filter((p) => !p.dropped).map((p) => p.name);

    family('builder_jobs_scheduled', 'gauge', 'Jobs in the schedule.', [[{}, store.jobCount()]]);

    const lengths = new Map(store.views.queueLengths().map((q) => [q.platform, q.n]));
    family('builder_queue_length', 'gauge', 'Jobs waiting in each platform\'s queue.',
      [...new Set([...platforms, ...lengths.keys()])].sort().map((p) => [{ platform: p }, lengths.get(p) ?? 0]));

    const running = new Map<string, number>();
    for (const r of coordinator.live.values()) running.set(r.platform, (running.get(r.platform) ?? 0) + 1);
    family('builder_runs_running', 'gauge', 'Runs in progress (a worker holds them or they wait for it to re-attach).',
      [...new Set([...platforms, ...running.keys()])].sort().map((p) => [{ platform: p }, running.get(p) ?? 0]));

    family('builder_runs_finished_total', 'counter', 'Runs finished, by platform and result kind (success: exited 0).',
      [...this.finished.values()].sort(byKeys('platform', 'kind')).map((c) => [{ platform: c.platform, kind: c.kind, success: String(c.success) }, c.n]));

    out.push('# HELP builder_run_duration_seconds Wall time of finished runs.', '# TYPE builder_run_duration_seconds histogram');
    for (const [platform, h] of [...this.durations.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += h.buckets[i]!;
        out.push(`builder_run_duration_seconds_bucket${labels({ platform, le: String(le) })} ${cumulative}`);
      });
      out.push(`builder_run_duration_seconds_bucket${labels({ platform, le: '+Inf' })} ${h.count}`);
      out.push(`builder_run_duration_seconds_sum${labels({ platform })} ${formatNumber(h.sum)}`);
      out.push(`builder_run_duration_seconds_count${labels({ platform })} ${h.count}`);
    }

    const workers = new Map<string, number>();
    const workerPlatforms = new Set(platforms);
    for (const w of coordinator.workers) {
      workerPlatforms.add(w.platform);
      const key = JSON.stringify([w.platform, workerState(w).replace(/ /g, '_')]);
      workers.set(key, (workers.get(key) ?? 0) + 1);
    }
    family('builder_workers_connected', 'gauge', 'Connected workers, by platform and state.',
      [...workerPlatforms].sort().flatMap((p) => WORKER_STATES.map((s): [Record<string, string>, number] =>
        [{ platform: p, state: s }, workers.get(JSON.stringify([p, s])) ?? 0])));

    const outbox = store.uploads.counts();
    family('builder_upload_outbox', 'gauge', 'Results in the upload outbox to builder-web, by state.',
      UPLOAD_STATES.map((s) => [{ state: s }, outbox[s]]));

    family('builder_artifact_bytes_received_total', 'counter', 'Bytes of artifacts stored with finished runs.', [[{}, this.artifactBytes]]);

    family('builder_repro_comparisons_total', 'counter',
      'Successful runs compared with the previous successful run of their job on their platform, by verdict.',
      [...this.verdicts.values()].sort(byKeys('platform', 'verdict')).map((c) => [{ platform: c.platform, verdict: c.verdict }, c.n]));
    return `${out.join('\n')}\n`;
  }
}

const byKeys = <K extends string>(...keys: K[]) => (a: Record<K, string>, b: Record<K, string>): number => {
  for (const k of keys) {
    const c = a[k].localeCompare(b[k]);
    if (c !== 0) return c;
  }
  return 0;
};

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  return String(n);
}
