// A job's secrets: values given with `schedule --secret NAME=@FILE`, handed to that job's runs
// alone as environment variables and masked wherever the server stores or shows output.
//
// They live in STATEDIR/secrets/ (mode 0700), one file per job (mode 0600, JSON NAME -> value),
// and nowhere else: not in the database, whose file and backups are easier to leak and whose
// job rows info and history show, not in the script, not in run.json. Only the names are kept
// in memory, so info with thousands of jobs reads no file.
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuilderError, errorMessage } from '../common/errors.js';
import type { SecretArg } from '../protocol/messages.js';
import { MIN_SECRET_BYTES } from '../secrets/mask.js';

const SECRET_NAME = /^[A-Z_][A-Z0-9_]*$/;
/**
 * What every job's environment already fixes (SOURCE_DATE_EPOCH, TZ, LC_ALL, LANG, HOME, PATH,
 * BUILDER_*), and what the shell sets or reads itself: a secret under one of these names would
 * change the build environment or be overwritten.
 */
const RESERVED = new Set(['SOURCE_DATE_EPOCH', 'TZ', 'LC_ALL', 'LANG', 'HOME', 'PATH', 'PWD', 'OLDPWD', 'SHLVL', '_', 'IFS', 'ENV']);
const isReserved = (name: string): boolean => RESERVED.has(name) || name.startsWith('BUILDER_');
/** an environment variable, not a file store: a secret larger than this is a mistake */
const MAX_SECRET_BYTES = 64 * 1024;
const MAX_SECRETS = 64;

export type Secrets = Readonly<Record<string, string>>;

/** Refuses what cannot be a secret, with the secret's name; values are never put in messages. */
export function checkSecrets(list: readonly SecretArg[]): Secrets {
  if (list.length > MAX_SECRETS) throw new BuilderError('BAD_SECRET', `at most ${MAX_SECRETS} secrets per job, got ${list.length}`);
  const out: Record<string, string> = {};
  for (const { name, value } of list) {
    if (!SECRET_NAME.test(name)) {
      throw new BuilderError('BAD_SECRET', `invalid secret name "${name}": use A-Z, 0-9 and _, not starting with a digit`);
    }
    if (isReserved(name)) {
      throw new BuilderError('BAD_SECRET', `secret name ${name} is reserved: the build environment sets it (SOURCE_DATE_EPOCH, TZ, LC_ALL, LANG, HOME, PATH, BUILDER_*)`);
    }
    if (Object.hasOwn(out, name)) throw new BuilderError('BAD_SECRET', `secret ${name} given twice`);
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes < MIN_SECRET_BYTES) {
      // too short to mask without wrecking ordinary output (see secrets/mask.ts)
      throw new BuilderError('BAD_SECRET', `secret ${name} is shorter than ${MIN_SECRET_BYTES} bytes and could not be masked`);
    }
    if (bytes > MAX_SECRET_BYTES) throw new BuilderError('BAD_SECRET', `secret ${name} is larger than ${MAX_SECRET_BYTES} bytes`);
    if (value.includes('\0')) throw new BuilderError('BAD_SECRET', `secret ${name} contains a NUL byte, which no environment variable can hold`);
    out[name] = value;
  }
  return out;
}

export class JobSecrets {
  /** job -> secret names */
  private readonly index = new Map<string, string[]>();

  constructor(readonly dir: string) {
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return; // no job has had secrets yet
    }
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      const job = f.slice(0, -'.json'.length);
      try {
        this.index.set(job, Object.keys(this.read(job) ?? {}).sort());
      } catch {
        // get() reports it when the job runs; a listing must not fail for it
        this.index.set(job, []);
      }
    }
  }

  private file(job: string): string {
    return join(this.dir, `${job}.json`);
  }

  /** Stores (replaces) a job's secrets; nothing for an empty set. */
  put(job: string, secrets: Secrets): void {
    const names = Object.keys(secrets).sort();
    if (names.length === 0) return this.remove(job);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      chmodSync(this.dir, 0o700);
      const tmp = `${this.file(job)}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(secrets), { mode: 0o600 });
      renameSync(tmp, this.file(job));
    } catch (err) {
      throw new BuilderError('STORE', `cannot store the secrets of job ${job} in ${this.dir}: ${errorMessage(err)}`, { cause: err });
    }
    this.index.set(job, names);
  }

  /** The job's secrets, or undefined when it has none. Throws STORE when the file is unreadable. */
  get(job: string): Secrets | undefined {
    if (!this.index.has(job)) return undefined;
    try {
      return this.read(job);
    } catch (err) {
      throw new BuilderError('STORE', `cannot read the secrets of job ${job}: ${errorMessage(err)}`, { cause: err });
    }
  }

  private read(job: string): Secrets | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(job), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Object.values(parsed).some((v) => typeof v !== 'string')) {
      throw new Error(`${this.file(job)} is not a map of names to strings`);
    }
    return parsed as Secrets;
  }

  names(job: string): string[] {
    return this.index.get(job) ?? [];
  }

  remove(job: string): void {
    this.index.delete(job);
    try {
      rmSync(this.file(job), { force: true });
    } catch (err) {
      throw new BuilderError('STORE', `cannot delete the secrets of job ${job}: ${errorMessage(err)}`, { cause: err });
    }
  }
}
