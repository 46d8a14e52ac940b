// One line per event on stderr, with a timestamp, a scope (program, run, job...) and key=value
// facts, so that logs can be grepped by run id.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const threshold = order[(process.env.BUILDER_LOG_LEVEL as Level | undefined) ?? 'info'] ?? 1;

export interface Logger {
  debug(msg: string, facts?: Record<string, unknown>): void;
  info(msg: string, facts?: Record<string, unknown>): void;
  warn(msg: string, facts?: Record<string, unknown>): void;
  error(msg: string, facts?: Record<string, unknown>): void;
  child(scope: Record<string, unknown>): Logger;
}

/** Longest text of one fact or message in a log line; the rest is counted, not written. */
export const MAX_LOGGED_CHARS = 2048;

/**
 * Text from the network made safe to print: control characters (newlines above all, which
 * would forge log lines) and other invisible ones escaped, and at most `max` characters kept,
 * with the length of what was cut said. For log lines and error messages alike.
 */
export function printable(s: string, max = MAX_LOGGED_CHARS): string {
  const cut = s.length > max ? s.slice(0, max) : s;
  // C0 and C1 controls, DEL, line/paragraph separators, bidi overrides, BOM
  const escaped = cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g, (c) => {
    const code = c.charCodeAt(0);
    return code === 10 ? '\\n' : code === 13 ? '\\r' : code === 9 ? '\\t' : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return s.length > max ? `${escaped}...(${s.length - max} more chars)` : escaped;
}

/** A string from the network for an error message: quoted, escaped, truncated. */
export function quoted(s: string, max = 80): string {
  return `"${printable(s, max)}"`;
}

const fmt = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s === undefined) return 'undefined';
  const safe = s.length > MAX_LOGGED_CHARS ? `${s.slice(0, MAX_LOGGED_CHARS)}...(${s.length - MAX_LOGGED_CHARS} more chars)` : s;
  return /[\s"=\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(safe) ? JSON.stringify(safe) : safe;
};

export function makeLogger(name: string, scope: Record<string, unknown> = {}): Logger {
  const write = (level: Level, msg: string, facts: Record<string, unknown> = {}): void => {
    if (order[level] < threshold) return;
    const all = { ...scope, ...facts };
    const kv = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${fmt(v)}`)
      .join(' ');
    process.stderr.write(`${new Date().toISOString()} ${name} ${level}: ${printable(msg)}${kv ? ' ' + kv : ''}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (more) => makeLogger(name, { ...scope, ...more }),
  };
}
