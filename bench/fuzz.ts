// `bench fuzz`: the suite's fuzz properties (test/helpers/fuzz-targets.ts) run far longer than the
// suite can afford. BUILDER_BENCH_FUZZ_RUNS (default 20,000; a tenth for the tar extractor, which
// writes files) and BUILDER_BENCH_FUZZ_SEED to replay a failure.
import { FUZZ_TARGETS } from '../test/helpers/fuzz-targets.js';

export async function benchFuzz(): Promise<unknown> {
  const runs = Number(process.env.BUILDER_BENCH_FUZZ_RUNS ?? 20_000);
  const seed = process.env.BUILDER_BENCH_FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.BUILDER_BENCH_FUZZ_SEED);
  const out: Array<Record<string, unknown>> = [];
  for (const target of FUZZ_TARGETS) {
    const n = target.name.startsWith('tar') ? Math.ceil(runs / 10) : runs;
    const t0 = performance.now();
    try {
      await target.check(n, seed);
      out.push({ target: target.name, runs: n, ms: Math.round(performance.now() - t0), ok: true });
    } catch (err) {
      out.push({ target: target.name, runs: n, ms: Math.round(performance.now() - t0), ok: false, failure: String((err as Error).message).slice(0, 2000) });
    }
  }
  return { seed, targets: out, ok: out.every((t) => t.ok) };
}
