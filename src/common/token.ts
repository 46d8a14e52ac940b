// The shared secret. The server always has one: given with --token-file, or made on first start
// in its state directory with mode 0600. Peers take --token-file, then BUILDER_TOKEN, then
// BUILDER_TOKEN_FILE, then the server's default file when they can read it (same host). A peer's
// token is the admin token or a named one (builder:NAME:HEX, see src/protocol/auth.ts).
import { randomBytesLight } from '../protocol/light-crypto.js';
import { readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BuilderError } from './errors.js';
import { defaultStateDir } from './paths.js';

const read = (file: string): string => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new BuilderError('TOKEN', `cannot read token file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (text.length < 16) throw new BuilderError('TOKEN', `token in ${file} is too short (at least 16 characters)`);
  return text;
};

/**
 * The server refuses a token file that other users may read or write: anyone who reads it is an
 * admin of the server. (Its group may: a shared group is how workers on the host read it.)
 */
function checkPrivate(file: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return; // read() names the problem
  }
  if ((mode & 0o006) !== 0) {
    throw new BuilderError('TOKEN', `token file ${file} is readable or writable by other users (mode ${mode.toString(8).padStart(4, '0')}): chmod o-rw ${file}`);
  }
}

export function serverToken(stateDir: string, tokenFile: string | undefined): { token: string; file: string; created: boolean } {
  if (tokenFile) {
    checkPrivate(tokenFile);
    return { token: read(tokenFile), file: tokenFile, created: false };
  }
  const file = join(stateDir, 'token');
  if (existsSync(file)) {
    checkPrivate(file);
    return { token: read(file), file, created: false };
  }
  const token = randomBytesLight(32).toString('hex');
  // 'wx': never overwrite a token another server process wrote a moment ago
  writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
  return { token, file, created: true };
}

/**
 * A peer's token, from the first of: --token-file, $BUILDER_TOKEN, $BUILDER_TOKEN_FILE, then the
 * server's default file (DIR/token for --dir DIR, else $BUILDER_DIR/token or the platform's state
 * directory), which works on the server's host for users who may read it. A place that was
 * given but does not work (an unreadable --token-file) is an error at once, not skipped; when no
 * place gives a token, the one-line error names each place looked at and what was found there.
 */
export function peerToken(tokenFile: string | undefined, stateDir?: string): string {
  const looked: string[] = [];
  const fail = (why: string): never => {
    throw new BuilderError('TOKEN', `no usable token: ${[...looked, why].join('; ')} (give --token-file FILE or set BUILDER_TOKEN)`);
  };
  const readOr = (label: string, file: string): string => {
    try {
      return read(file);
    } catch (err) {
      return fail(`${label} ${file}: ${reason(err)}`);
    }
  };
  if (tokenFile !== undefined && tokenFile !== '') return readOr('--token-file', tokenFile);
  looked.push('no --token-file');
  const env = process.env.BUILDER_TOKEN?.trim();
  if (env) return env;
  looked.push('BUILDER_TOKEN not set');
  const envFile = process.env.BUILDER_TOKEN_FILE;
  if (envFile) return readOr('BUILDER_TOKEN_FILE', envFile);
  looked.push('BUILDER_TOKEN_FILE not set');
  const fallback = join(stateDir ?? process.env.BUILDER_DIR ?? defaultStateDir(), 'token');
  return readOr('default file', fallback);
}

/** Why a token file did not do: the errno code, or the message of our own checks. */
function reason(err: unknown): string {
  const m = /^cannot read token file .*: (\S+)$/.exec((err as Error).message);
  return m ? m[1]! : (err as Error).message.replace(/^token in \S+ is /, '');
}
