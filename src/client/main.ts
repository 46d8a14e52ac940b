#!/usr/bin/env node
// builder-client: schedules, changes and watches jobs on a builder-server.
// Exit status: 0 success, 1 the server refused (or the followed job failed), 2 usage errors;
// compare and verify: 0 reproduced, 1 differs, 2 error (commands/repro.ts).
import { parseArgs } from '../common/args.js';
import { UsageError } from '../common/errors.js';
import { DEFAULT_HOST, DEFAULT_PORT, parseRemote } from '../common/paths.js';
import { runMain } from '../common/run-main.js';
import { versionLine } from '../common/version.js';
import type { ClientContext, Command } from './command.js';
import { execute, observe, observeLatest, cancel } from './commands/runs.js';
import { orbBuild, reschedule, schedule, unschedule } from './commands/schedule.js';
import { drain, dropPlatform, history, undropPlatform, workers } from './commands/state.js';
import { info } from './commands/info.js';
import type { ClientSession } from './session.js';
import { uploadCommands } from './commands/uploads.js';
import { render, templates } from './commands/templates.js';
import { compare, verify } from './commands/repro.js';
import { token } from './commands/tokens.js';
import { resultCommands } from './commands/results.js';
import { prune } from './commands/prune.js';

const commands: Command[] = [
  schedule, orbBuild, unschedule, reschedule, execute, info, observe, observeLatest,
  dropPlatform, undropPlatform, history, cancel, workers, drain, ...uploadCommands, templates, render, compare, verify, token,
  ...resultCommands, prune,
];

const GLOBAL = `global options (before or after the sub-command):
  --remote HOST:PORT   the server (default $BUILDER_REMOTE or ${DEFAULT_HOST}:${DEFAULT_PORT})
  --token-file FILE    the token; else $BUILDER_TOKEN, else $BUILDER_TOKEN_FILE, else the server's
                       token file when readable (DIR/token with --dir DIR)
  --dir DIR            the server's state directory, on the server's host (for its token)
  --tls                connect with TLS, checking the server against the system's CAs ...
  --tls-ca FILE        ... or against this CA (PEM; implies --tls) ...
  --server-fingerprint SHA256:HEX  ... or by its certificate's pinned fingerprint (implies --tls)
  --version            the version of builder, then exit
  -h, --help           this text, or a command's`;

const mainUsage = (): string => `usage: builder-client [--remote HOST:PORT] [--token-file FILE] [--tls ...] COMMAND [args]

commands:
${commands.map((c) => `  ${c.name.padEnd(16)} ${c.summary}`).join('\n')}

${GLOBAL}
'builder-client COMMAND --help' shows a command's arguments.`;

/** global flags that take a value */
const GLOBAL_VALUES = ['remote', 'token-file', 'dir', 'tls-ca', 'server-fingerprint'];

async function main(argv: string[]): Promise<number> {
  const name = argv.find((a, i) => !a.startsWith('-') && !GLOBAL_VALUES.map((v) => `--${v}`).includes(argv[i - 1] ?? ''));
  if (!name && argv.includes('--version')) {
    console.log(versionLine('builder-client'));
    return 0;
  }
  if (!name || name === 'help') {
    if (argv.includes('--help') || argv.includes('-h') || name === 'help') {
      console.log(mainUsage());
      return 0;
    }
    throw new UsageError('missing command');
  }
  const command = commands.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command "${name}"`);
  try {
    return await runCommand(command, argv, name);
  } catch (err) {
    // a usage error of a command points to that command's help
    if (err instanceof UsageError && err.hint === undefined) throw new UsageError(err.message, { hint: `try builder-client ${name} --help` });
    throw err;
  }
}

async function runCommand(command: Command, argv: string[], name: string): Promise<number> {
  const at = argv.indexOf(name);
  const rest = [...argv.slice(0, at), ...argv.slice(at + 1)];
  const spec = command.flags;
  const args = parseArgs(rest, {
    values: [...(spec.values ?? []), ...GLOBAL_VALUES],
    booleans: [...(spec.booleans ?? []), 'help', 'tls', 'version'],
    lists: spec.lists ?? [],
  });
  if (args.booleans.has('help')) {
    console.log(`usage: ${command.usage}\n\n${GLOBAL}`);
    return 0;
  }
  if (args.booleans.has('version')) {
    console.log(versionLine('builder-client'));
    return 0;
  }
  const [min, max] = command.positionals;
  if (args.positionals.length < min || args.positionals.length > max) {
    throw new UsageError(`${command.name}: wrong number of arguments`, { hint: `usage: ${command.usage.split('\n')[0]}` });
  }
  const remote = parseRemote(args.values.remote ?? process.env.BUILDER_REMOTE ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`);
  // what is not needed before the first byte is sent is loaded when needed: node:tls with a TLS
  // flag only, and the token and the session (cbor-x, node:crypto) by commands that connect, so
  // --help and usage errors cost no more than node's own start-up (see scripts/bundle.ts)
  const tlsWanted = args.booleans.has('tls') || args.values['tls-ca'] !== undefined || args.values['server-fingerprint'] !== undefined;
  const tls = tlsWanted ? (await import('../protocol/tls.js')).peerTlsFrom(args.values, args.booleans) : undefined;
  let session: ClientSession | undefined;
  const ctx: ClientContext = {
    async connect() {
      const { peerToken } = await import('../common/token.js');
      const token = peerToken(args.values['token-file'], args.values.dir);
      const { ClientSession } = await import('./session.js');
      session = await ClientSession.open(remote.host, remote.port, token, tls);
      return session;
    },
    out: (text) => process.stdout.write(text + '\n'),
    write: (bytes) => process.stdout.write(bytes),
    err: (text) => process.stderr.write(text + '\n'),
  };
  try {
    return await command.run(args, ctx);
  } finally {
    session?.close();
  }
}

runMain('builder-client', () => main(process.argv.slice(2)));
