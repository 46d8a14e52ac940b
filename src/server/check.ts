// `builder-server check [--dir DIR]`: verifies the stored results against the database, as
// builder-web's `builder-db verify-data-dir` does for its own. Problems, one line each:
//   - a finished run's result directory is missing, elsewhere than results/JOB/UUID, or has no
//     run.json (half-written);
//   - a recorded artifact is missing, not a file, or has another size or sha256 than recorded;
//   - a file under artifacts/ that no record lists;
//   - a directory under results/ that no run knows;
//   - a leftover under incoming/ that belongs to no running run (half-written, never finished).
// It opens the database read-only and may run while the server runs: anything that looks wrong
// because the server changed it meanwhile (a run finished or deleted after the listing) is
// looked up again before it is reported. Exit status 1 when there is any problem.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from '../common/args.js';
import { UsageError } from '../common/errors.js';
import { defaultStateDir } from '../common/paths.js';
import { artifactFile, resultDir } from '../results/index.js';
import { openStoreReadOnly, type ReadOnlyStore } from './store/read-only.js';

const USAGE = `usage: builder-server check [--dir DIR]

Verifies the stored results of the state directory DIR (default ${defaultStateDir()}) against its
database: every recorded artifact exists with its recorded size and sha256, every run directory
is known, nothing is left half-written. Prints one line per problem; exit status 1 if there is
any, 0 if none. Safe while the server runs (the database is opened read-only).`;

export interface CheckSummary { runs: number; artifacts: number; bytes: number; problems: string[] }

const entries = (dir: string): Promise<string[]> =>
  readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

/** Every file under dir, as paths relative to it. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of await entries(join(dir, prefix))) {
    const rel = prefix === '' ? name : `${prefix}/${name}`;
    const st = await lstat(join(dir, rel));
    if (st.isDirectory()) out.push(...(await filesUnder(dir, rel)));
    else out.push(rel);
  }
  return out;
}

export async function checkStateDir(stateDir: string, report: (problem: string) => void = () => undefined): Promise<CheckSummary> {
  const store = openStoreReadOnly(join(stateDir, 'state.db'));
  const summary: CheckSummary = { runs: 0, artifacts: 0, bytes: 0, problems: [] };
  const problem = (p: string): void => {
    summary.problems.push(p);
    report(p);
  };
  try {
    const since = Date.now();
    const running = new Set(store.running().map((r) => r.uuid));
    const known = new Set<string>();
    for (const run of store.storedRuns()) {
      known.add(`${run.job}/${run.uuid}`);
      summary.runs++;
      await checkRun(store, stateDir, run, summary, problem);
    }
    await checkUnknownDirs(store, stateDir, known, problem);
    for (const name of await entries(join(stateDir, 'incoming'))) {
      if (running.has(name)) continue;
      const st = await stat(join(stateDir, 'incoming', name)).catch(() => undefined);
      // gone meanwhile (a run finished), or made after the listing (a run that started since)
      if (!st || st.mtimeMs >= since || store.runNow(name)?.state === 'running') continue;
      problem(`incoming/${name}: half-written result of no running run (left by a crash; safe to delete)`);
    }
  } finally {
    store.close();
  }
  return summary;
}

async function checkRun(store: ReadOnlyStore, stateDir: string, run: { uuid: string; job: string; dir: string },
  summary: CheckSummary, problem: (p: string) => void): Promise<void> {
  const where = `run ${run.uuid} (${run.job})`;
  const expected = resultDir(stateDir, run.job, run.uuid);
  if (resolve(run.dir) !== resolve(expected)) {
    problem(`${where}: recorded directory ${run.dir} is not ${expected}`);
    return;
  }
  const dirStat = await stat(expected).catch(() => undefined);
  if (!dirStat?.isDirectory()) {
    // deleted by retention since the listing is no problem
    if (store.runNow(run.uuid)) problem(`${where}: result directory ${relative(stateDir, expected)} is missing`);
    return;
  }
  if (!(await stat(join(expected, 'run.json')).catch(() => undefined))) problem(`${where}: run.json is missing (half-written result)`);
  const recorded = store.artifacts(run.uuid);
  const listed = new Set(recorded.map((a) => a.path));
  for (const a of recorded) {
    summary.artifacts++;
    const file = artifactFile(expected, a.path);
    const st = await lstat(file).catch(() => undefined);
    if (!st) {
      if (store.runNow(run.uuid)) problem(`${where}: artifact ${a.path} is missing`);
      continue;
    }
    if (!st.isFile()) {
      problem(`${where}: artifact ${a.path} is not a regular file`);
      continue;
    }
    if (st.size !== a.size) {
      problem(`${where}: artifact ${a.path} has ${st.size} bytes, recorded ${a.size}`);
      continue;
    }
    summary.bytes += st.size;
    const digest = await sha256Of(file).catch((err: Error) => `unreadable (${err.message})`);
    if (digest !== a.sha256) problem(`${where}: artifact ${a.path} has sha256 ${digest}, recorded ${a.sha256}`);
  }
  for (const path of await filesUnder(join(expected, 'artifacts'))) {
    if (!listed.has(path)) problem(`${where}: artifacts/${path} is not recorded`);
  }
}

async function checkUnknownDirs(store: ReadOnlyStore, stateDir: string, known: Set<string>, problem: (p: string) => void): Promise<void> {
  const results = join(stateDir, 'results');
  for (const job of await entries(results)) {
    const jobStat = await lstat(join(results, job));
    if (!jobStat.isDirectory()) {
      problem(`results/${job}: not a job directory`);
      continue;
    }
    for (const uuid of await entries(join(results, job))) {
      if (known.has(`${job}/${uuid}`)) continue;
      // a run that finished after the listing is known now
      const now = store.runNow(uuid);
      if (now?.job === job && now.dir !== null) continue;
      problem(`results/${job}/${uuid}: no run in the database has this directory`);
    }
  }
}

export async function checkCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['dir'], booleans: ['help'] });
  if (args.booleans.has('help')) {
    console.log(USAGE);
    return 0;
  }
  if (args.positionals.length > 0) throw new UsageError(`check: unexpected argument "${args.positionals[0]}"`, { hint: 'try builder-server check --help' });
  const stateDir = resolve(args.values.dir ?? defaultStateDir());
  const s = await checkStateDir(stateDir, (p) => process.stdout.write(`${p}\n`));
  process.stderr.write(`checked ${s.runs} runs, ${s.artifacts} artifacts (${s.bytes} bytes): ${s.problems.length === 0 ? 'no problems' : `${s.problems.length} problem${s.problems.length === 1 ? '' : 's'}`}\n`);
  return s.problems.length === 0 ? 0 : 1;
}
