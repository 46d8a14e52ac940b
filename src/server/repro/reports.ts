// The diff reports of a comparison: for each changed artifact, what changed (diffoscope when
// installed, else a line diff or the first differing byte: src/repro/diff-report.ts). Reports
// are made off the event loop's critical path (diffoscope is a child process, the built-in
// comparison reads in chunks) and at most `concurrency` at a time, so a run with many changed
// artifacts cannot starve the server or start a hundred diffoscopes.
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../common/errors.js';
import type { ArtifactDiff } from '../../protocol/replies.js';
import { formatComparison, type Comparison } from '../../repro/compare.js';
import { diffReport } from '../../repro/diff-report.js';

/** The stored report's file name in a run's result directory. */
export const REPORT_FILE = 'compare.txt';

/** Runs at most n tasks at once, the others in order of arrival. */
export function makeLimit(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export interface ReportSide { uuid: string; dir: string }

export interface ReportOptions {
  limit: <T>(task: () => Promise<T>) => Promise<T>;
  /** diffoscope executable; undefined: look on PATH; false: never */
  diffoscope?: string | false | undefined;
}

/** One report per changed artifact, `a` the reference run and `b` the one judged. */
export async function artifactDiffs(a: ReportSide, b: ReportSide, changed: readonly string[], opts: ReportOptions): Promise<ArtifactDiff[]> {
  return Promise.all(changed.map((path) => opts.limit(async (): Promise<ArtifactDiff> => {
    try {
      const r = await diffReport(join(a.dir, 'artifacts', path), join(b.dir, 'artifacts', path), {
        labelA: `${a.uuid}/${path}`, labelB: `${b.uuid}/${path}`,
        ...(opts.diffoscope !== undefined ? { diffoscope: opts.diffoscope } : {}),
      });
      return { path, tool: r.tool, text: r.text, truncated: r.truncated };
    } catch (err) {
      return { path, tool: 'error', text: `cannot compare ${path}: ${errorMessage(err)}\n`, truncated: false };
    }
  })));
}

/** The text of compare.txt (and of `builder-client compare`). */
export function reportText(a: ReportSide, b: ReportSide, c: Comparison, diffs: readonly ArtifactDiff[]): string {
  const lines = [`comparison of run ${b.uuid} with run ${a.uuid}`, ...formatComparison(c), ''];
  for (const d of diffs) {
    lines.push(`=== ${d.path} (${d.tool}${d.truncated ? ', truncated' : ''})`, d.text.replace(/\n$/, ''), '');
  }
  return lines.join('\n');
}

/** Writes the report into the judged run's result directory in one step (temporary file, rename). */
export async function storeReport(dir: string, text: string): Promise<string> {
  const file = join(dir, REPORT_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, file);
  return file;
}
