// `builder-server backup` and `builder-server restore`: a consistent copy of the state database
// while the server runs, and putting one back in place with the server stopped.
//
// Why the database and the results are copied in this order: a run's result directory is written
// completely and renamed into results/<job>/<uuid> before the transaction that records the run
// commits (run-ledger.ts), and is never changed afterwards. So after a snapshot of the database,
// every result that snapshot knows is already complete on disk, and copying results/ afterwards
// (with this command's --with-results, or rsync/cp) gives a restorable pair; results newer than
// the snapshot come along too and are simply not referenced.
import Database from 'better-sqlite3';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from '../common/args.js';
import { BuilderError, UsageError } from '../common/errors.js';
import { defaultStateDir } from '../common/paths.js';
import { openStore } from './store/index.js';

export const STATE_DB = 'state.db';

/** Transfer every page in one step: one read transaction, so a busy server cannot restart the copy. */
const ALL_PAGES = 0x7fffffff;

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** fsync a file or directory, so a rename is durable before we say it is done. */
function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `PRAGMA integrity_check` of a database file; throws unless "ok". */
export function checkIntegrity(file: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
    if (problems.length > 0) throw new BuilderError('STORE', `${file}: integrity check failed: ${problems.slice(0, 5).join('; ')}`);
  } finally {
    db.close();
  }
}

/**
 * Copies STATEDIR/state.db to `target` with SQLite's online backup: written to TARGET.tmp (mode
 * 0600: it holds every script), checked, then renamed. Safe while the server writes.
 */
export async function backupDatabase(stateDir: string, target: string): Promise<{ pages: number; schema: number }> {
  const source = join(stateDir, STATE_DB);
  if (!(await exists(source))) throw new BuilderError('NOT_FOUND', `${source}: no state database (is ${stateDir} a builder-server state directory?)`);
  const tmp = `${target}.tmp`;
  await rm(tmp, { force: true });
  await rm(`${tmp}-journal`, { force: true });
  // created empty with the mode we want; SQLite keeps the mode of a file it opens
  closeSync(openSync(tmp, 'wx', 0o600));
  const db = new Database(source, { fileMustExist: true });
  let pages: number;
  let schema: number;
  try {
    db.pragma('busy_timeout = 5000');
    schema = db.pragma('user_version', { simple: true }) as number;
    pages = (await db.backup(tmp, { progress: () => ALL_PAGES })).totalPages;
  } catch (err) {
    await rm(tmp, { force: true });
    throw new BuilderError('STORE', `backup of ${source} to ${tmp} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
  checkIntegrity(tmp);
  syncPath(tmp);
  await rename(tmp, target);
  syncPath(dirname(target));
  return { pages, schema };
}

/**
 * Copies the result directories of `fromResults` that `toResults` lacks. Each one is copied under
 * a dot-name and renamed, so an interrupted copy never looks complete; existing ones are kept,
 * since a result directory never changes once in place.
 */
export async function copyResults(fromResults: string, toResults: string): Promise<{ copied: number; present: number }> {
  let copied = 0;
  let present = 0;
  const jobs = await readdir(fromResults, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) =>
    err.code === 'ENOENT' ? [] : Promise.reject(err));
  for (const job of jobs) {
    if (!job.isDirectory()) continue;
    const runs = await readdir(join(fromResults, job.name), { withFileTypes: true });
    await mkdir(join(toResults, job.name), { recursive: true, mode: 0o700 });
    for (const run of runs) {
      if (!run.isDirectory() || run.name.startsWith('.')) continue;
      const dest = join(toResults, job.name, run.name);
      if (await exists(dest)) {
        present++;
        continue;
      }
      const partial = join(toResults, job.name, `.${run.name}.partial`);
      await rm(partial, { recursive: true, force: true });
      await cp(join(fromResults, job.name, run.name), partial, { recursive: true, preserveTimestamps: true });
      await rename(partial, dest);
      copied++;
    }
  }
  return { copied, present };
}

/**
 * Puts a backup in place as STATEDIR/state.db (which must not exist yet), with no stale -wal or
 * -shm beside it, copies results from `resultsFrom` if given, and points every stored result
 * path into STATEDIR/results/. The database is opened exclusively, so a server cannot be using it.
 */
export async function restoreBackup(backup: string, stateDir: string, resultsFrom: string | undefined): Promise<{ relocated: number; copied: number }> {
  const target = join(stateDir, STATE_DB);
  if (await exists(target)) {
    throw new BuilderError('STORE', `${target} exists; move it (and its -wal and -shm) away first, with the server stopped`);
  }
  checkIntegrity(backup);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const tmp = `${target}.tmp`;
  await rm(tmp, { force: true });
  await cp(backup, tmp);
  // WAL files belong to one database file: beside another one they would be replayed into it
  for (const stale of ['-wal', '-shm', '-journal']) await rm(`${target}${stale}`, { force: true });
  syncPath(tmp);
  await rename(tmp, target);
  let copied = 0;
  if (resultsFrom !== undefined) copied = (await copyResults(resultsFrom, join(stateDir, 'results'))).copied;
  // opening migrates an older backup to the current schema
  const store = openStore(target, { exclusive: true });
  let relocated: number;
  try {
    relocated = store.tx(() => store.relocateResults(resolve(stateDir)));
  } finally {
    store.close();
  }
  checkIntegrity(target);
  return { relocated, copied };
}

const BACKUP_USAGE = `usage: builder-server backup FILE [--dir STATEDIR] [--with-results]

Copies the state database (schedule, queues, runs, upload outbox) to FILE while the server runs,
with SQLite's online backup: a consistent snapshot, written to FILE.tmp (mode 0600), checked
with PRAGMA integrity_check, then renamed to FILE.

options:
  --dir STATEDIR    the server's state directory (default ${defaultStateDir()})
  --with-results    then copy STATEDIR/results/ to results/ beside FILE: only result directories
                    not there yet (they never change once written), so repeated backups are cheap
  --help            this text

The token (STATEDIR/token) is not copied. Restore with builder-server restore.`;

const RESTORE_USAGE = `usage: builder-server restore FILE --dir STATEDIR [--results DIR]

Puts a backup made by builder-server backup in place as STATEDIR/state.db, with the server
stopped. STATEDIR/state.db must not exist. Stale state.db-wal/-shm files are removed, results are
copied from DIR (e.g. the results/ that backup --with-results wrote), and every stored result
path is pointed into STATEDIR/results/. Refuses while a server uses STATEDIR.

options:
  --dir STATEDIR    the state directory to restore into (required)
  --results DIR     copy result directories from DIR into STATEDIR/results/
  --help            this text`;

export async function backupCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['dir'], booleans: ['help', 'with-results'] });
  if (args.booleans.has('help')) {
    console.log(BACKUP_USAGE);
    return 0;
  }
  const [file, extra] = args.positionals;
  if (file === undefined) throw new UsageError('backup needs the FILE to write', { hint: 'try builder-server backup --help' });
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`, { hint: 'try builder-server backup --help' });
  const stateDir = resolve(args.values.dir ?? defaultStateDir());
  const target = resolve(file);
  if (basename(target) === STATE_DB && dirname(target) === stateDir) throw new UsageError('FILE is the state database itself');
  const { pages, schema } = await backupDatabase(stateDir, target);
  console.log(`backed up ${join(stateDir, STATE_DB)} to ${target} (${pages} pages, schema version ${schema})`);
  if (args.booleans.has('with-results')) {
    const to = join(dirname(target), 'results');
    const { copied, present } = await copyResults(join(stateDir, 'results'), to);
    console.log(`copied ${copied} result directories to ${to} (${present} were there already)`);
  }
  return 0;
}

export async function restoreCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['dir', 'results'], booleans: ['help'] });
  if (args.booleans.has('help')) {
    console.log(RESTORE_USAGE);
    return 0;
  }
  const [file, extra] = args.positionals;
  const hint = { hint: 'try builder-server restore --help' };
  if (file === undefined) throw new UsageError('restore needs the backup FILE', hint);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`, hint);
  if (args.values.dir === undefined) throw new UsageError('restore needs --dir STATEDIR', hint);
  const stateDir = resolve(args.values.dir);
  const results = args.values.results === undefined ? undefined : resolve(args.values.results);
  const { relocated, copied } = await restoreBackup(resolve(file), stateDir, results);
  console.log(`restored ${resolve(file)} to ${join(stateDir, STATE_DB)}; ${copied} result directories copied, ${relocated} result paths now under ${join(stateDir, 'results')}`);
  return 0;
}
