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

const fmt = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s"=]/.test(s ?? '') ? JSON.stringify(s) : (s ?? 'undefined');
};

export function makeLogger(name: string, scope: Record<string, unknown> = {}): Logger {
  const write = (level: Level, msg: string, facts: Record<string, unknown> = {}): void => {
    if (order[level] < threshold) return;
    const all = { ...scope, ...facts };
    const kv = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${fmt(v)}`)
      .join(' ');
    process.stderr.write(`${new Date().toISOString()} ${name} ${level}: ${msg}${kv ? ' ' + kv : ''}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (more) => makeLogger(name, { ...scope, ...more }),
  };
}
