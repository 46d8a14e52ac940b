// builder-server's --http and --http-auth, checked once at start.
import { UsageError } from '../common/errors.js';
import { readHttpAuth, type BasicAuth } from './auth.js';

export function webFlags(http: string | undefined, httpAuth: string | undefined): { http?: { host: string; port: number }; httpAuth?: BasicAuth } {
  if (http === undefined) {
    if (httpAuth !== undefined) throw new UsageError('--http-auth needs --http IP:PORT');
    return {};
  }
  // IPv6 in brackets ([::1]:8080) or IPv4/host:port
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(http);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--http must be IP:PORT (e.g. 127.0.0.1:8080), got "${http}"`);
  return { http: { host: (m[1] ?? m[2])!, port }, ...(httpAuth !== undefined ? { httpAuth: readHttpAuth(httpAuth) } : {}) };
}
