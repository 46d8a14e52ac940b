// GET /metrics in the Prometheus text exposition format (version 0.0.4). Everything is read at
// each scrape: the gauges from the schedule, queues, live runs, workers and the outbox; the
// counters and the duration histogram from the totals the store keeps in the transaction that
// writes a run (migration 10), a few rows whatever the history's size, so neither the view's
// start nor a scrape reads the runs themselves (the start read all of them: 3.3 s at a million).
import type { Coordinator } from '../server/coordinator.js';
import type { Store } from '../server/store/index.js';
import { workerState } from './pages.js';

/**
 * run-duration buckets, seconds: from a quick check to the longest timeout a job may have. The
 * store counts runs into the same bounds (migration 10 in src/server/store/migrations.ts).
 */
export const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400];
const WORKER_STATES = ['idle', 'busy', 'draining', 'short_of_disk'] as const;
const UPLOAD_STATES = ['pending', 'uploaded', 'refused', 'failed'] as const;

/** A label value as the exposition format wants it: backslash, double quote and newline escaped. */
export const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

export class Metrics {
  constructor(private readonly store: Store, private readonly coordinator: Coordinator) {}

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
      store.views.finishedTotals().sort((a, b) => byKeys('platform', 'kind')(a, b) || a.success - b.success).map((c) => [{ platform: c.platform, kind: c.kind, success: String(c.success === 1) }, c.n]));

    out.push('# HELP builder_run_duration_seconds Wall time of finished runs.', '# TYPE builder_run_duration_seconds histogram');
    const histograms = new Map<string, { perLe: Map<string, number>; ms: number; count: number }>();
    for (const d of store.views.durationTotals()) {
      let h = histograms.get(d.platform);
      if (!h) histograms.set(d.platform, (h = { perLe: new Map(), ms: 0, count: 0 }));
      h.perLe.set(d.le, d.n);
      h.ms += d.ms;
      h.count += d.n;
    }
    for (const [platform, h] of [...histograms.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      let cumulative = 0;
      for (const le of DURATION_BUCKETS) {
        cumulative += h.perLe.get(String(le)) ?? 0;
        out.push(`builder_run_duration_seconds_bucket${labels({ platform, le: String(le) })} ${cumulative}`);
      }
      out.push(`builder_run_duration_seconds_bucket${labels({ platform, le: '+Inf' })} ${h.count}`);
      out.push(`builder_run_duration_seconds_sum${labels({ platform })} ${formatNumber(h.ms / 1000)}`);
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

    family('builder_artifact_bytes_received_total', 'counter', 'Bytes of artifacts stored with finished runs.', [[{}, store.views.artifactBytesTotal()]]);

    family('builder_repro_comparisons_total', 'counter',
      'Successful runs compared with the previous successful run of their job on their platform, by verdict.',
      store.views.verdictTotals().sort(byKeys('platform', 'verdict')).map((c) => [{ platform: c.platform, verdict: c.verdict }, c.n]));
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
