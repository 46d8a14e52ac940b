// The state database opened read-only, for builder-server check: it may run beside a live
// server (WAL lets a reader see one consistent snapshot per statement while the server writes),
// never migrates and never writes.
import Database from 'better-sqlite3';
import { BuilderError } from '../../common/errors.js';
import type { ArtifactRow } from '../../results/index.js';
import { migrations } from './migrations.js';

/** A finished run whose result should be on disk. */
export interface StoredRunRow { uuid: string; job: string; dir: string }

export function openStoreReadOnly(file: string) {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    throw new BuilderError('STORE', `cannot open state database ${file} read-only: ${(err as Error).message}`, { cause: err });
  }
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > migrations.length) {
    db.close();
    throw new BuilderError('STORE', `state database ${file} has schema version ${version}, newer than this builder-server knows (${migrations.length})`);
  }
  const q = {
    storedRuns: db.prepare<[], StoredRunRow>("SELECT uuid, job, dir FROM runs WHERE state = 'finished' AND dir IS NOT NULL ORDER BY job, finished"),
    run: db.prepare<[string], { uuid: string; job: string; state: string; dir: string | null }>('SELECT uuid, job, state, dir FROM runs WHERE uuid = ?'),
    running: db.prepare<[], { uuid: string; started: number }>("SELECT uuid, started FROM runs WHERE state = 'running'"),
    artifacts: db.prepare<[string], ArtifactRow>('SELECT path, size, mode, sha256 FROM artifacts WHERE uuid = ? ORDER BY path'),
  };
  return {
    close: () => db.close(),
    storedRuns: () => q.storedRuns.all(),
    /** one run as it is now (a live server may have finished or deleted it since a listing) */
    runNow: (uuid: string) => q.run.get(uuid),
    running: () => q.running.all(),
    artifacts: (uuid: string) => q.artifacts.all(uuid),
  };
}

export type ReadOnlyStore = ReturnType<typeof openStoreReadOnly>;
