// The server's state directory at start: made private (0700) when it is new, checked to be a
// directory the server can use, and held by one server alone.
//
// The hold is an exclusive SQLite lock on DIR/server.lock (a POSIX record lock, which the
// kernel drops when the process dies however it dies, so a crash never leaves a stale lock),
// with the holder's pid beside it in DIR/server.pid for the message a second server prints.
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { BuilderError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { holdExclusively } from './store/index.js';

const LOCK_FILE = 'server.lock';
const PID_FILE = 'server.pid';

const unusable = (dir: string, why: string, cause?: unknown): BuilderError =>
  new BuilderError('STORE', `cannot use state directory ${dir}: ${why}`, { cause });

/** An errno as a short reason: "no such file or directory (ENOENT)". */
function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = (e.message ?? String(err)).replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*$/s, '');
  return e.code ? `${text} (${e.code})` : text;
}

/**
 * Creates the directory (and missing parents) one level at a time: Node's recursive mkdir spins
 * for ever on some paths (/proc/nope), where a plain mkdir fails at once.
 */
function makeDirs(dir: string): void {
  const parent = dirname(dir);
  let exists = true;
  try {
    statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    exists = false;
  }
  if (exists) return;
  if (parent !== dir) makeDirs(parent);
  mkdirSync(dir, { mode: 0o700 });
  // the umask may have taken bits away, never added them; the owner needs all three
  chmodSync(dir, 0o700);
}

/** Makes or checks DIR; warns when others can read an existing one. */
export function prepareStateDir(dir: string, log: Logger): void {
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unusable(dir, reason(err), err);
  }
  if (st === undefined) {
    try {
      makeDirs(dir);
    } catch (err) {
      throw unusable(dir, `cannot create it: ${reason(err)}`, err);
    }
    return;
  }
  if (!st.isDirectory()) throw unusable(dir, 'not a directory');
  try {
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw unusable(dir, `no permission to read and write in it: ${reason(err)}`, err);
  }
  if ((st.mode & 0o077) !== 0) {
    log.warn('the state directory is open to other users, who may read schedules, scripts and results; chmod 700 it', {
      dir, mode: (st.mode & 0o777).toString(8).padStart(4, '0'),
    });
  }
}

/** Holds DIR for this process; throws "state directory in use by pid N" when another server does. */
export function lockStateDir(dir: string): { release(): void } {
  const lockFile = join(dir, LOCK_FILE);
  const pidFile = join(dir, PID_FILE);
  let db: Database.Database;
  try {
    writeFileSync(lockFile, '', { flag: 'a', mode: 0o600 });
    db = new Database(lockFile, { timeout: 0 });
  } catch (err) {
    throw unusable(dir, `cannot open ${LOCK_FILE}: ${reason(err)}`, err);
  }
  let held: boolean;
  try {
    held = holdExclusively(db);
  } catch (err) {
    db.close();
    throw unusable(dir, `cannot lock ${LOCK_FILE}: ${reason(err)}`, err);
  }
  if (!held) {
    db.close();
    let pid = 'unknown';
    try {
      pid = readFileSync(pidFile, 'utf8').trim() || pid;
    } catch {
      // written a moment after the lock is taken: a server starting right now
    }
    throw new BuilderError('STORE', `state directory in use by pid ${pid}: ${dir} (one server per state directory)`);
  }
  try {
    writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  } catch {
    // a full disk must not keep the server from starting (it serves reads and waits for space);
    // a stale pid is worse than none in the message a second server prints
    rmSync(pidFile, { force: true });
  }
  return {
    release() {
      rmSync(pidFile, { force: true });
      db.close();
    },
  };
}
