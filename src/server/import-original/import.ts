// Brings an original builder's state directory into ours: dropped platforms, the schedule (with
// periods and next runs), the queues in order, then every stored `full` result as a finished run.
// The state file goes in as one transaction (all of it or, on an error of the store, none); each
// result is its own step. Whatever cannot come over is reported with its reason and the rest
// still imported.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuilderError, errorMessage } from '../../common/errors.js';
import { checkName } from '../../common/names.js';
import { PACKAGE } from '../requests.js';
import type { JobRow, Store } from '../store/index.js';
import { ORIGINAL_TIMEOUT_SEC, findResultDirs, importFull } from './full-results.js';
import { decodeOriginalState, type OriginalItem, type OriginalJob } from './state-file.js';

export interface ImportLine {
  /** imported: it is in our store now; failed: it could not be; ignored: the original ignores it too */
  status: 'imported' | 'failed' | 'ignored';
  text: string;
}

/** The original's state file in its state directory. */
export const ORIGINAL_STATE_FILE = 'state';

export async function importOriginal(store: Store, oldDir: string, stateDir: string, now = Date.now()): Promise<ImportLine[]> {
  const out: ImportLine[] = [];
  const stateFile = join(oldDir, ORIGINAL_STATE_FILE);
  let bytes: Buffer | undefined;
  try {
    bytes = await readFile(stateFile);
  } catch (err) {
    out.push({ status: 'failed', text: `${stateFile}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no state file (no schedule to import)' : errorMessage(err)}` });
  }
  if (bytes !== undefined) {
    let items: OriginalItem[] | undefined;
    try {
      items = decodeOriginalState(bytes);
    } catch (err) {
      out.push({ status: 'failed', text: `${stateFile}: not the original's state file: ${errorMessage(err)}` });
    }
    if (items) store.tx(() => out.push(...importState(store, items, now)));
  }
  for (const dir of await findResultDirs(oldDir)) {
    const full = join(dir, 'full');
    try {
      out.push({ status: 'imported', text: await importFull(store, stateDir, full) });
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no full file' : errorMessage(err);
      out.push({ status: 'failed', text: `result ${full}: ${why}` });
    }
  }
  return out;
}

const jobWhat = (j: OriginalJob): string => (j.kind === 'script' ? `script on ${j.platform}` : `orb-build of ${j.opamPackage}`);

/** The state file's items, in the order that lets each depend on the one before. */
function importState(store: Store, items: OriginalItem[], now: number): ImportLine[] {
  const out: ImportLine[] = [];
  const ok = (text: string) => out.push({ status: 'imported', text });
  const fail = (text: string) => out.push({ status: 'failed', text });
  for (const item of items) if (item.kind === 'ignored') out.push({ status: 'ignored', text: item.what });

  for (const item of items) {
    if (item.kind !== 'dropped') continue;
    try {
      checkName('platform', item.platform);
      store.setDropped(item.platform, true);
      ok(`dropped platform ${item.platform}`);
    } catch (err) {
      fail(`dropped platform ${JSON.stringify(item.platform)}: ${errorMessage(err)}`);
    }
  }

  for (const item of items) {
    if (item.kind !== 'schedule') continue;
    const j = item.job;
    const what = `job ${j.name} (${jobWhat(j)}, ${item.period}${item.period === 'never' ? '' : `, next ${item.next.toISOString()}`})`;
    try {
      const row = jobRow(store, item, now);
      store.insertJob(row);
      if (row.kind === 'script' && row.platform) store.addPlatform(row.platform);
      ok(what);
    } catch (err) {
      fail(`${what}: ${errorMessage(err)}`);
    }
  }

  for (const item of items) {
    if (item.kind !== 'queue') continue;
    try {
      checkName('platform', item.platform);
      if (store.isDropped(item.platform)) throw new Error('the platform is dropped');
    } catch (err) {
      fail(`queue ${item.platform} (${item.jobs.length} entries): ${errorMessage(err)}`);
      continue;
    }
    // every platform with a queue is a known platform, as in the original (orb-build jobs use them)
    store.addPlatform(item.platform);
    const queued: string[] = [];
    for (const j of item.jobs) {
      const known = store.job(j.name);
      // our queues name jobs; the original's hold whole jobs, even unscheduled ones
      if (!known) fail(`queue entry ${j.name} on ${item.platform}: no such job in the schedule (unscheduled after it was queued)`);
      else if (known.kind !== (j.kind === 'script' ? 'script' : 'orb')) fail(`queue entry ${j.name} on ${item.platform}: the scheduled job of that name is of another kind`);
      else if (!store.enqueue(item.platform, j.name)) fail(`queue entry ${j.name} on ${item.platform}: queued there already`);
      else queued.push(j.name);
    }
    ok(`queue ${item.platform}: ${queued.length === 0 ? '(empty)' : queued.join(', ')}`);
  }
  return out;
}

function jobRow(store: Store, item: OriginalItem & { kind: 'schedule' }, now: number): JobRow {
  const j = item.job;
  checkName('job', j.name);
  if (store.job(j.name)) throw new BuilderError('NAME_USED', 'a job of that name exists already');
  // 9999-12-31 is how the original writes "never"; ours has no next run then
  const timing = { period: item.period, cron: null, tz: null, timeout_sec: ORIGINAL_TIMEOUT_SEC,
    next_run: item.period === 'never' ? null : item.next.getTime(), created: now,
    // the import's time, as for a job scheduled now: stable across the job's runs from here on
    source_date_epoch: Math.floor(now / 1000) };
  if (j.kind === 'script') {
    checkName('platform', j.platform);
    if (store.isDropped(j.platform)) throw new BuilderError('DROPPED', `platform ${j.platform} is dropped`);
    return { name: j.name, kind: 'script', platform: j.platform, script: j.script, package: null, ...timing };
  }
  if (!PACKAGE.test(j.opamPackage)) throw new BuilderError('BAD_NAME', `invalid opam package name "${j.opamPackage}"`);
  return { name: j.name, kind: 'orb', platform: null, script: null, package: j.opamPackage, ...timing };
}
