// Platform defaults, as the original has them.
import { UsageError } from './errors.js';

export const defaultStateDir = (): string => (process.platform === 'freebsd' ? '/var/db/builder' : '/var/lib/builder');
export const defaultConfigDir = (): string =>
  process.platform === 'freebsd' ? '/usr/local/etc/builder' : '/etc/builder';
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 1234;

/** "HOST:PORT" (IPv6 as [::1]:PORT) into its parts. */
export function parseRemote(remote: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(remote);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || !(port > 0 && port < 65536)) throw new UsageError(`invalid remote "${remote}": expected HOST:PORT`);
  return { host: m[1], port };
}
