// The one definition of the environment a job's script runs with, on every sandbox backend.
// Nothing of the worker's own environment (its token, its PATH, its locale, its HOME) reaches a
// job: what a build sees must not depend on which worker, or which user on it, ran it. Each
// backend starts the script with exactly buildEnv()'s map and `umask UMASK` (sandbox/*.ts).

/**
 * Fixed for every job. Same values on Linux and FreeBSD, in a container and on the host.
 */
export const FIXED_ENV = Object.freeze({
  // Timestamps that tools format (tar listings, `date`, log lines, generated docs) must not
  // depend on the worker's time zone.
  TZ: 'UTC',
  // Sort order (ls, sort, glob expansion in some shells), character classes and messages must
  // not depend on the worker's locale. C.UTF-8 is byte order like C, but keeps UTF-8 text
  // intact; glibc (>= 2.35 built in, Debian's libc-bin before) and FreeBSD >= 13 have it. LC_ALL overrides
  // every LC_* a tool might look at; LANG is set too for tools that read only LANG.
  LC_ALL: 'C.UTF-8',
  LANG: 'C.UTF-8',
  // Docker's and Debian's root default, a superset of FreeBSD's (pkg installs to /usr/local):
  // the same commands are found whoever runs the worker.
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  // The same path on every backend, so no worker's or user's home directory can end up in an
  // artifact. /tmp exists and is writable by anyone (1777) in every root we run in, is outside
  // /work (dot-files there are never collected as artifacts), and is the job's own where the
  // backend isolates (docker, btrfs-ns, zfs-jail). The process backend shares the host's /tmp
  // between jobs: it runs trusted scripts without isolation anyway. A per-job directory would
  // not be a fixed path, and a home that does not exist (as Nix and sbuild do) would break
  // tools that insist on one (opam).
  HOME: '/tmp',
});

/** The script's first action, before any line of it runs: files it creates are rw-r--r--. */
export const UMASK = '022';

/**
 * Variables the shell running the script sets and exports itself (dash: PWD, OLDPWD; busybox
 * ash: SHLVL; bash: SHLVL and _). They describe that shell, not the worker, and no backend can
 * keep them out; extra variables may not use these names because the shell would overwrite them.
 */
export const SHELL_VARIABLES: readonly string[] = Object.freeze(['PWD', 'OLDPWD', 'SHLVL', '_']);

/** The per-job variables, besides SOURCE_DATE_EPOCH, that tell the script what it is building. */
export const JOB_VARIABLES: readonly string[] = Object.freeze(['BUILDER_JOB', 'BUILDER_PLATFORM', 'BUILDER_UUID']);

/** Every name buildEnv() sets by itself, in the order the README lists them. */
export const RESERVED_NAMES: readonly string[] = Object.freeze([
  'SOURCE_DATE_EPOCH',
  ...Object.keys(FIXED_ENV),
  ...JOB_VARIABLES,
]);

/** What a variable's name may be: also safe to write unquoted into a shell command. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface BuildEnvJob {
  uuid: string;
  name: string;
  platform: string;
  /** seconds since 1970, chosen by the server per job and stable across its runs */
  sourceDateEpoch?: number | undefined;
  /** more variables for this job alone (secrets); never one of RESERVED_NAMES */
  extraEnv?: Readonly<Record<string, string>> | undefined;
}

/** A job whose extra variables or SOURCE_DATE_EPOCH cannot be given to a script. */
export class BuildEnvError extends Error {
  readonly code = 'BUILD_ENV';
  constructor(message: string) {
    super(message);
    this.name = 'BuildEnvError';
  }
}

/**
 * The exact environment of one run of `job`. `startedMs` is the run's start, used only when the
 * server sent no SOURCE_DATE_EPOCH (servers before it was part of the job): then the start time,
 * floored to seconds. That is the instant tools would stamp anyway without SOURCE_DATE_EPOCH, so
 * it pretends no reproducibility that is not there (a build embedding it shows up as `differs`),
 * yet every tool in the run agrees on one instant. A constant such as 0 would make such builds
 * look reproducible while stamping 1970 into them; leaving the variable out would make the set
 * of variables depend on the server's version.
 */
export function buildEnv(job: BuildEnvJob, startedMs: number = Date.now()): Record<string, string> {
  const epoch = job.sourceDateEpoch ?? Math.floor(startedMs / 1000);
  if (!Number.isSafeInteger(epoch) || epoch < 0) {
    throw new BuildEnvError(`job ${job.name} (${job.uuid}): SOURCE_DATE_EPOCH must be a whole number of seconds >= 0, got ${String(epoch)}`);
  }
  const env: Record<string, string> = {
    SOURCE_DATE_EPOCH: String(epoch),
    ...FIXED_ENV,
    BUILDER_JOB: job.name,
    BUILDER_PLATFORM: job.platform,
    BUILDER_UUID: job.uuid,
  };
  for (const [name, value] of Object.entries(job.extraEnv ?? {})) {
    const where = `job ${job.name} (${job.uuid}): extra variable "${name}"`;
    if (!ENV_NAME.test(name)) throw new BuildEnvError(`${where}: a name is letters, digits and _, not starting with a digit`);
    if (RESERVED_NAMES.includes(name)) throw new BuildEnvError(`${where}: set by the builder for every job; choose another name`);
    if (SHELL_VARIABLES.includes(name)) throw new BuildEnvError(`${where}: the job's shell sets it; choose another name`);
    if (typeof value !== 'string') throw new BuildEnvError(`${where}: expected a string value, got ${typeof value}`);
    if (value.includes('\0')) throw new BuildEnvError(`${where}: a value cannot contain a NUL byte`);
    env[name] = value;
  }
  return env;
}
