#!/usr/bin/env node
// builder-worker PLATFORM --remote HOST:PORT: takes jobs of one platform and runs each in a
// fresh sandbox.
import { mkdirSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { intFlag, parseArgs } from '../common/args.js';
import { UsageError, errorMessage } from '../common/errors.js';
import { makeLogger } from '../common/log.js';
import { checkName } from '../common/names.js';
import { DEFAULT_HOST, DEFAULT_PORT, parseRemote } from '../common/paths.js';
import { runMain } from '../common/run-main.js';
import { peerToken } from '../common/token.js';
import { makeDiskCheck } from './disk.js';
import { backends, findBackend } from './sandbox/registry.js';
import { Uplink } from './uplink.js';
import { namedTokenName } from '../protocol/auth.js';
import { peerTlsFrom } from '../protocol/tls.js';

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
  --name NAME                this worker's name, unique per host (default: a worker token's name,
                             else HOSTNAME-PLATFORM)
  --sandbox NAME             one of: ${backends.map((b) => b.name).join(', ')} (default process)
  --capacity N               jobs at once, each in its own sandbox (default 1)
  --once                     run one job, then exit (for service managers that restart it)
  --work-dir DIR             where the worker keeps its files (default ${join(tmpdir(), 'builder-worker')})
  --min-free PERCENT         take no job below this much free space where sandboxes live (default 5)
  --no-output-timeout SECS   end a job that prints nothing for this long (default 1800)
  --output-cap BYTES         console bytes kept per run (default 67108864)
  --help                     this text

sandboxes and their options:
${backendHelp()}`;

async function main(): Promise<number | void> {
  const backendFlags = backends.flatMap((b) => b.options.map((o) => o.flag.replace(/^--/, '')));
  const args = parseArgs(process.argv.slice(2), {
    values: ['remote', 'token-file', 'tls-ca', 'server-fingerprint', 'name', 'sandbox', 'capacity', 'work-dir', 'min-free', 'no-output-timeout', 'output-cap', ...backendFlags],
    booleans: ['help', 'once', 'tls'],
  });
  if (args.booleans.has('help')) {
    console.log(usage());
    return 0;
  }
  const platform = args.positionals[0];
  if (!platform) throw new UsageError('missing PLATFORM');
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument "${args.positionals[1]}"`);
  checkName('platform', platform);
  const { host, port } = parseRemote(args.values.remote ?? process.env.BUILDER_REMOTE ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`);
  const factory = findBackend(args.values.sandbox ?? 'process');
  const own = new Set(factory.options.map((o) => o.flag.replace(/^--/, '')));
  const options: Record<string, string> = {};
  for (const flag of backendFlags) {
    const value = args.values[flag];
    if (value === undefined) continue;
    if (!own.has(flag)) throw new UsageError(`--${flag} is not an option of the ${factory.name} sandbox`);
    options[flag] = value;
  }
  const token = peerToken(args.values['token-file']);
  const tls = peerTlsFrom(args.values, args.booleans);
  // a worker token is tied to one name: without --name, that is the name
  const name = args.values.name ?? namedTokenName(token) ?? `${hostname()}-${platform}`;
  checkName('job', name);
  const workDir = resolve(args.values['work-dir'] ?? join(tmpdir(), 'builder-worker'), name);
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const log = makeLogger('builder-worker', { worker: name });
  const backend = factory.create(Object.freeze(options), { workerId: name, workDir, log: (line) => log.info(line) });

  // a crashed predecessor's sandboxes go before any new job comes
  for (const line of await backend.sweep()) log.info(`swept leftover ${line}`);

  const uplink = new Uplink({
    host, port, token, tls, name, platform, log, backend,
    capacity: intFlag(args, 'capacity', 1, 1),
    once: args.booleans.has('once'),
    limits: {
      noOutputTimeoutMs: intFlag(args, 'no-output-timeout', 1800, 1) * 1000,
      outputCapBytes: intFlag(args, 'output-cap', 64 * 1024 * 1024, 1024),
    },
    diskShort: makeDiskCheck(backend, intFlag(args, 'min-free', 5, 0, 100), log),
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
