// --http-auth USER:PASSWORDFILE: HTTP basic authentication for every page of the web view. The
// password is the file's first line, read once at start (a file, not the command line, so it
// shows in no process listing). Compared in constant time, through hashes of equal length.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { UsageError } from '../common/errors.js';

export interface BasicAuth {
  user: string;
  password: string;
}

/** Parses the flag and reads the password file; a usage error names what is wrong. */
export function readHttpAuth(flag: string): BasicAuth {
  const colon = flag.indexOf(':');
  if (colon <= 0 || colon === flag.length - 1) throw new UsageError(`--http-auth must be USER:PASSWORDFILE, got "${flag}"`);
  const user = flag.slice(0, colon);
  const file = flag.slice(colon + 1);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--http-auth: cannot read the password file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const password = text.split(/\r?\n/, 1)[0] ?? '';
  if (password === '') throw new UsageError(`--http-auth: the password file ${file} is empty`);
  return { user, password };
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Whether the request carries the right user and password. */
export function authorized(req: IncomingMessage, auth: BasicAuth): boolean {
  const header = req.headers.authorization ?? '';
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return false;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const userOk = timingSafeEqual(digest(decoded.slice(0, colon)), digest(auth.user));
  const passOk = timingSafeEqual(digest(decoded.slice(colon + 1)), digest(auth.password));
  return userOk && passOk;
}
