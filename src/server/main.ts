#!/usr/bin/env node
// builder-server: the schedule, the queues and the result store.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { intFlag, parseArgs } from '../common/args.js';
import { UsageError } from '../common/errors.js';
import { makeLogger } from '../common/log.js';
import { DEFAULT_HOST, DEFAULT_PORT, defaultConfigDir, defaultStateDir } from '../common/paths.js';
import { runMain } from '../common/run-main.js';
import { DEFAULT_MAX_FRAME } from '../protocol/framing.js';
import type { ServerConfig } from './config.js';
import { publicKeyPemOf } from '../provenance/key.js';
import { signingKeyDir } from './attest.js';
import { startServer } from './server.js';
import { offlineCommand } from './offline-commands.js';
import { webFlags } from '../web/flags.js';

const USAGE = `usage: builder-server [options]
       builder-server backup FILE [--dir DIR] [--with-results]
       builder-server restore FILE --dir DIR [--results DIR]
       builder-server import-original OLD_STATEDIR --dir DIR [--merge]

Keeps the build schedule and per-platform queues, hands jobs to workers and stores every result.

options:
  --dir DIR            state directory (default ${defaultStateDir()})
  --config-dir DIR     templates (orb-build.template.PLATFORM), searched before the shipped ones
                       (default ${defaultConfigDir()})
  --ip IP              address to listen on (default ${DEFAULT_HOST})
  --port PORT          port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)
  --token-file FILE    shared secret (default DIR/token, created with mode 0600 on first start)
  --upload URL         send every result to builder-web, e.g. https://user:pass@host/upload
  --upload-backoff SECONDS  first delay before a failed upload is tried again, doubled each time,
                       with jitter, at most an hour (default 10; fractions allowed)
  --lease SECONDS      how long a disconnected worker's runs wait for it (default 30)
  --timeout SECONDS    default job timeout (default 3600)
  --max-frame BYTES    largest protocol frame accepted (default ${DEFAULT_MAX_FRAME})
  --max-attempts N     attempts for jobs failing for infrastructure reasons (default 3)
  --retry-backoff SECONDS  first delay before such a retry, doubled each time (default 10)
  --no-provenance      do not sign and store provenance.json with each result
  --print-public-key   print the public key that signs provenance (PEM) and exit; the key pair
                       is made on first start next to the token (provenance-key.pem, mode 0600)
  --notify-command CMD run CMD (through sh -c) with a JSON summary on stdin when a job stops
                       reproducing, reproduces again, starts failing or recovers
  --notify-timeout SECONDS  how long CMD may run before it is killed (default 30)
  --http IP:PORT       serve the read-only web view, /metrics and /healthz there (off unless
                       given; e.g. 127.0.0.1:8080; port 0 picks a free one)
  --http-auth USER:PASSWORDFILE  basic authentication for every page of the web view (the
                       password is the file's first line)
  --help               this text`;

/** The configuration, or undefined after --help. */
function configFrom(argv: string[]): ServerConfig | undefined {
  const args = parseArgs(argv, {
    values: ['dir', 'config-dir', 'ip', 'port', 'token-file', 'upload', 'upload-backoff', 'lease', 'timeout', 'max-frame', 'max-attempts', 'retry-backoff',
      'notify-command', 'notify-timeout', 'http', 'http-auth'],
    booleans: ['help', 'no-provenance', 'print-public-key'],
  });
  if (args.booleans.has('help')) {
    console.log(USAGE);
    return undefined;
  }
  if (args.booleans.has('print-public-key')) {
    const stateDir = resolve(args.values.dir ?? defaultStateDir());
    const keyDir = signingKeyDir(stateDir, args.values['token-file']);
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    process.stdout.write(publicKeyPemOf(keyDir));
    return undefined;
  }
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const upload = args.values.upload;
  if (upload !== undefined) {
    let url: URL;
    try {
      url = new URL(upload);
    } catch {
      throw new UsageError(`--upload: not a URL: ${upload.replace(/\/\/[^@/]*@/, '//***@')}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--upload: only http and https URLs');
  }
  const port = intFlag(args, 'port', DEFAULT_PORT, 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  return Object.freeze({
    stateDir: resolve(args.values.dir ?? defaultStateDir()),
    configDir: resolve(args.values['config-dir'] ?? defaultConfigDir()),
    host: args.values.ip ?? DEFAULT_HOST,
    port,
    tokenFile: args.values['token-file'],
    upload,
    uploadBackoffMs: secondsFlag(args.values['upload-backoff'], 'upload-backoff', 10) * 1000,
    maxFrame: intFlag(args, 'max-frame', DEFAULT_MAX_FRAME, 1024),
    leaseMs: intFlag(args, 'lease', 30, 1) * 1000,
    timeoutSec: intFlag(args, 'timeout', 3600, 1),
    maxAttempts: intFlag(args, 'max-attempts', 3, 1),
    retryBackoffMs: intFlag(args, 'retry-backoff', 10, 0) * 1000,
    provenance: !args.booleans.has('no-provenance'),
    notifyCommand: notifyCommandFlag(args.values['notify-command']),
    notifyTimeoutMs: Math.max(1, secondsFlag(args.values['notify-timeout'], 'notify-timeout', 30) * 1000),
    ...webFlags(args.values.http, args.values['http-auth']),
  });
}

function notifyCommandFlag(raw: string | undefined): string | undefined {
  if (raw !== undefined && raw.trim() === '') throw new UsageError('--notify-command must not be empty');
  return raw;
}

/** A non-negative number of seconds, fractions allowed (tests use short delays). */
function secondsFlag(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number of seconds >= 0, got "${raw}"`);
  return n;
}

async function main(): Promise<number | void> {
  const argv = process.argv.slice(2);
  const offline = await offlineCommand(argv[0]);
  if (offline) return offline(argv.slice(1));
  const log = makeLogger('builder-server');
  const config = configFrom(argv);
  if (config === undefined) return 0;
  const server = await startServer(config, log);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: shutting down; running jobs carry on and re-attach after the restart`);
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

runMain('builder-server', main);
