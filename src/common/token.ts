// The shared secret. The server always has one: given with --token-file, or made on first start
// in its state directory with mode 0600. Peers take --token-file, then BUILDER_TOKEN, then the
// server's default file when they can read it (same host).
import { randomBytes } from 'node:crypto';
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
  const token = randomBytes(32).toString('hex');
  // 'wx': never overwrite a token another server process wrote a moment ago
  writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
  return { token, file, created: true };
}

export function peerToken(tokenFile: string | undefined): string {
  if (tokenFile) return read(tokenFile);
  const env = process.env.BUILDER_TOKEN?.trim();
  if (env) return env;
  const fallback = join(process.env.BUILDER_DIR ?? defaultStateDir(), 'token');
  try {
    return read(fallback);
  } catch {
    throw new BuilderError(
      'TOKEN',
      `no token: give --token-file FILE or set BUILDER_TOKEN (the server's token is in its state directory, e.g. ${fallback})`,
    );
  }
}
