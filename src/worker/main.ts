#!/usr/bin/env node
// builder-worker PLATFORM --remote HOST:PORT: takes jobs of one platform and runs each in a
// fresh sandbox.
import { mkdirSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { intFlag, parseArgs } from '../common/args.js';
import { BuilderError, UsageError, errorMessage } from '../common/errors.js';
import { makeLogger } from '../common/log.js';
import { checkName } from '../common/names.js';
import { DEFAULT_HOST, DEFAULT_PORT, parseRemote } from '../common/paths.js';
import { runMain } from '../common/run-main.js';
import { versionLine } from '../common/version.js';
import { peerToken } from '../common/token.js';
import { makeDiskCheck } from './disk.js';
import { backends, findBackend } from './sandbox/registry.js';
import { Uplink } from './uplink.js';
import { namedTokenName } from '../protocol/auth.js';
import { peerTlsFrom } from '../protocol/tls.js';
import { checkWorkerName, MAX_CAPACITY } from './worker-name.js';

/** sysexits.h EX_CONFIG: the configuration is wrong; restarting will not help */
const EX_CONFIG = 78;

/** A check of the command line that throws a plain error (a backend's options): a usage error. */
function asUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError(errorMessage(err));
  }
}

const backendHelp = (): string =>
  backends
    .map((b) => [`  ${b.name}: ${b.description}`, ...b.options.map((o) =>
      `      --${o.flag.replace(/^--/, '')} ${o.value}  ${o.description}${o.default ? ` (default ${o.default})` : ''}`)].join('\n'))
    .join('\n');

const usage = (): string => `usage: builder-worker PLATFORM [options]

Connects to a builder-server and runs the jobs of PLATFORM, each in a fresh sandbox.

options:
  --remote HOST:PORT         the server (default ${DEFAULT_HOST}:${DEFAULT_PORT}, or $BUILDER_REMOTE)
  --token-file FILE          the token: the admin token or this worker's own (token add-worker NAME);
                             else $BUILDER_TOKEN, else $BUILDER_TOKEN_FILE, else the server's token
                             file when readable. A refused token ends the worker with status 78.
  --tls                      connect with TLS, checking the server against the system's CAs ...
  --tls-ca FILE              ... or against this CA (PEM; implies --tls) ...
  --server-fingerprint SHA256:HEX  ... or by its certificate's pinned fingerprint (implies --tls)
  --name NAME                this worker's name, unique per host, up to 64 bytes (default: a worker
                             token's name, else HOSTNAME-PLATFORM)
  --sandbox NAME             one of: ${backends.map((b) => b.name).join(', ')} (default process)
  --capacity N               jobs at once, each in its own sandbox (1 to ${MAX_CAPACITY}, default 1);
                             a finished job's sandbox is kept until the server has stored its
                             result, while the next job runs (so up to 2N sandboxes at a time)
  --once                     run one job, then exit (for service managers that restart it)
  --work-dir DIR             where the worker keeps its files (default ${join(tmpdir(), 'builder-worker')})
  --min-free PERCENT         take no job below this much free space where sandboxes live (default 5)
  --no-output-timeout SECS   end a job that prints nothing for this long (default 1800)
  --output-cap BYTES         console bytes kept per run (default 67108864)
  --version                  the version of builder
  -h, --help                 this text

sandboxes and their options:
${backendHelp()}`;

async function main(): Promise<number | void> {
  const backendFlags = backends.flatMap((b) => b.options.map((o) => o.flag.replace(/^--/, '')));
  const args = parseArgs(process.argv.slice(2), {
    values: ['remote', 'token-file', 'tls-ca', 'server-fingerprint', 'name', 'sandbox', 'capacity', 'work-dir', 'min-free', 'no-output-timeout', 'output-cap', ...backendFlags],
    booleans: ['help', 'once', 'tls', 'version'],
  });
  if (args.booleans.has('help')) {
    console.log(usage());
    return 0;
  }
  if (args.booleans.has('version')) {
    console.log(versionLine('builder-worker'));
    return 0;
  }
  const platform = args.positionals[0];
  if (!platform) throw new UsageError('missing PLATFORM');
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument "${args.positionals[1]}"`);
  asUsage(() => checkName('platform', platform));
  const { host, port } = parseRemote(args.values.remote ?? process.env.BUILDER_REMOTE ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`);
  const factory = asUsage(() => findBackend(args.values.sandbox ?? 'process'));
  const own = new Set(factory.options.map((o) => o.flag.replace(/^--/, '')));
  const options: Record<string, string> = {};
  for (const flag of backendFlags) {
    const value = args.values[flag];
    if (value === undefined) continue;
    if (!own.has(flag)) throw new UsageError(`--${flag} is not an option of the ${factory.name} sandbox`);
    options[flag] = value;
  }
  const tls = peerTlsFrom(args.values, args.booleans);
  if (args.values.name !== undefined) checkWorkerName(args.values.name, true);
  // the token is needed only to connect, so a missing one is reported after the checks of the
  // command line and the sandbox; a worker token, when there is one, names the worker
  let token: string | undefined;
  let tokenError: unknown;
  try {
    token = peerToken(args.values['token-file']);
  } catch (err) {
    tokenError = err;
  }
  const name = checkWorkerName(
    args.values.name ?? (token === undefined ? undefined : namedTokenName(token)) ?? `${hostname()}-${platform}`,
    args.values.name !== undefined,
  );
  const capacity = intFlag(args, 'capacity', 1, 1, MAX_CAPACITY);
  const limits = {
    noOutputTimeoutMs: intFlag(args, 'no-output-timeout', 1800, 1) * 1000,
    outputCapBytes: intFlag(args, 'output-cap', 64 * 1024 * 1024, 1024),
  };
  const minFree = intFlag(args, 'min-free', 5, 0, 100);
  const workDir = resolve(args.values['work-dir'] ?? join(tmpdir(), 'builder-worker'), name);
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const log = makeLogger('builder-worker', { worker: name });
  const backend = asUsage(() => factory.create(Object.freeze(options), { workerId: name, workDir, log: (line) => log.info(line) }));

  // a sandbox that cannot work as configured (no such image, base or snapshot) will not start
  // working by itself: say so and exit EX_CONFIG, which the service units do not restart
  try {
    await backend.check?.();
  } catch (err) {
    if (!(err instanceof BuilderError && err.code === 'SANDBOX_CONFIG')) throw err;
    process.stderr.write(`builder-worker: ${err.message}\n`);
    return EX_CONFIG;
  }

  // after every check of the command line and the sandbox: those are usage and config errors
  if (token === undefined) throw tokenError;

  // a crashed predecessor's sandboxes go before any new job comes
  for (const line of await backend.sweep()) log.info(`swept leftover ${line}`);

  const uplink = new Uplink({
    host, port, token, tls, name, platform, log, backend,
    capacity,
    once: args.booleans.has('once'),
    limits,
    diskShort: makeDiskCheck(backend, minFree, log),
  });
  await uplink.checkDisk();
  const diskTimer = setInterval(() => void uplink.checkDisk().catch((err) => log.warn('disk check failed', { error: errorMessage(err) })), 30_000);
  diskTimer.unref();

  let interrupts = 0;
  process.on('SIGTERM', () => {
    log.info('SIGTERM: finishing held runs, then exiting', { held: uplink.runs });
    uplink.drain();
  });
  process.on('SIGINT', () => {
    if (++interrupts === 1) {
      log.info('SIGINT: finishing held runs, then exiting (SIGINT again stops at once)', { held: uplink.runs });
      uplink.drain();
    } else {
      log.info('second SIGINT: killing running jobs and cleaning up');
      void uplink.abort();
    }
  });
  void uplink.start();
  await uplink.done;
  clearInterval(diskTimer);
  process.exit(uplink.exitCode);
}

runMain('builder-worker', main);
