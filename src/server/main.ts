#!/usr/bin/env node
// builder-server: the schedule, the queues and the result store.
import './threadpool.js';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { intFlag, parseArgs } from '../common/args.js';
import { BuilderError, UsageError } from '../common/errors.js';
import { makeLogger } from '../common/log.js';
import { DEFAULT_HOST, DEFAULT_PORT, defaultConfigDir, defaultStateDir } from '../common/paths.js';
import { runMain } from '../common/run-main.js';
import { versionLine } from '../common/version.js';
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
       builder-server check [--dir DIR]

Keeps the build schedule and per-platform queues, hands jobs to workers and stores every result.

options:
  --dir DIR            state directory (default ${defaultStateDir()})
  --config-dir DIR     templates (orb-build.template.PLATFORM), searched before the shipped ones
                       (default ${defaultConfigDir()})
  --ip IP              address to listen on (default ${DEFAULT_HOST})
  --port PORT          port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)
  --token-file FILE    shared secret (default DIR/token, created with mode 0600 on first start)
  --upload URL         send every result to builder-web, e.g. https://user@host/upload, with the
                       password from --upload-password-file or $BUILDER_UPLOAD_PASSWORD (a password
                       inside the URL still works, but every local user sees it in ps: a warning)
  --upload-password-file FILE  the builder-web password (its first line)
  --tls-cert FILE      serve TLS only, with this PEM certificate (chain) ...
  --tls-key FILE       ... and its PEM private key; peers connect with --tls and --tls-ca FILE
                       or --server-fingerprint SHA256:... (printed at start as tls=)
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
  --keep-runs N        keep the newest N finished runs of each job, delete older ones (default: all)
  --keep-days D        delete finished runs older than D days (default: never); with either, the
                       newest successful run of a job on each platform, runs whose upload is
                       pending and the runs kept runs were compared against always stay
  --http IP:PORT       serve the read-only web view, /metrics and /healthz there (off unless
                       given; e.g. 127.0.0.1:8080; port 0 picks a free one)
  --http-auth USER:PASSWORDFILE  basic authentication for every page of the web view (the
                       password is the file's first line)
  --version            the version of builder
  -h, --help           this text`;

/** The configuration, or undefined after --help. */
function configFrom(argv: string[]): ServerConfig | undefined {
  const args = parseArgs(argv, {
    values: ['dir', 'config-dir', 'ip', 'port', 'token-file', 'upload', 'upload-password-file', 'tls-cert', 'tls-key', 'upload-backoff', 'lease', 'timeout', 'max-frame', 'max-attempts', 'retry-backoff',
      'notify-command', 'notify-timeout', 'keep-runs', 'keep-days', 'http', 'http-auth'],
    booleans: ['help', 'no-provenance', 'print-public-key', 'version'],
  });
  if (args.booleans.has('help')) {
    console.log(USAGE);
    return undefined;
  }
  if (args.booleans.has('version')) {
    console.log(versionLine('builder-server'));
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
  const certFile = args.values['tls-cert'];
  const keyFile = args.values['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const uploadPassword = uploadPasswordFrom(args.values['upload-password-file']);
  if (uploadPassword !== undefined && upload === undefined) throw new UsageError('an upload password is given, but no --upload URL');
  const port = intFlag(args, 'port', DEFAULT_PORT, 0, 65535);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  return Object.freeze({
    stateDir: resolve(args.values.dir ?? defaultStateDir()),
    configDir: resolve(args.values['config-dir'] ?? defaultConfigDir()),
    host: args.values.ip ?? DEFAULT_HOST,
    port,
    tokenFile: args.values['token-file'],
    upload,
    uploadPassword,
    tls: certFile !== undefined && keyFile !== undefined ? { certFile: resolve(certFile), keyFile: resolve(keyFile) } : undefined,
    uploadBackoffMs: secondsFlag(args.values['upload-backoff'], 'upload-backoff', 10) * 1000,
    maxFrame: intFlag(args, 'max-frame', DEFAULT_MAX_FRAME, 1024),
    leaseMs: intFlag(args, 'lease', 30, 1) * 1000,
    timeoutSec: intFlag(args, 'timeout', 3600, 1),
    maxAttempts: intFlag(args, 'max-attempts', 3, 1),
    retryBackoffMs: intFlag(args, 'retry-backoff', 10, 0) * 1000,
    provenance: !args.booleans.has('no-provenance'),
    notifyCommand: notifyCommandFlag(args.values['notify-command']),
    notifyTimeoutMs: Math.max(1, secondsFlag(args.values['notify-timeout'], 'notify-timeout', 30) * 1000),
    keepRuns: args.values['keep-runs'] === undefined ? undefined : intFlag(args, 'keep-runs', 0, 1),
    keepDays: args.values['keep-days'] === undefined ? undefined : intFlag(args, 'keep-days', 0, 1),
    ...webFlags(args.values.http, args.values['http-auth']),
  });
}

/**
 * The builder-web password, from a file or the environment, never from the command line (which
 * every local user can read in ps). The variable is removed once read, so that nothing the server
 * starts (notify-command, diffoscope) inherits it.
 */
function uploadPasswordFrom(file: string | undefined): string | undefined {
  const env = process.env.BUILDER_UPLOAD_PASSWORD;
  delete process.env.BUILDER_UPLOAD_PASSWORD;
  let password: string | undefined;
  if (file !== undefined) {
    try {
      password = readFileSync(file, 'utf8').split(/\r?\n/)[0];
    } catch (err) {
      throw new BuilderError('UPLOAD_URL', `cannot read --upload-password-file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    if (!password) throw new BuilderError('UPLOAD_URL', `--upload-password-file ${file} is empty`);
  } else if (env !== undefined && env !== '') {
    password = env;
  }
  return password;
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
  if (config.upload !== undefined && config.uploadPassword === undefined && /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(config.upload)) {
    log.warn('the --upload URL holds a password, which every local user can read in ps: use --upload-password-file FILE or BUILDER_UPLOAD_PASSWORD');
  }
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
