// Whether a job's timing can be used: --period or --cron (not both), --tz only with --cron and
// a zone this Node knows, a cron expression node-cron accepts with 5 or 6 fields. The server
// checks every request with it; the client checks its command line with it first, so a typo is
// a usage error (exit 2) that names the bad word, without a round trip.
import { validateDetailed } from 'node-cron';
import { BuilderError } from './errors.js';
import { quote } from './quote.js';

/** what checkTiming looks at (the period's own values are checked where they are parsed) */
export interface TimingFlags {
  period?: string | undefined;
  cron?: string | undefined;
  tz?: string | undefined;
}

export function checkTiming(t: TimingFlags): void {
  if (t.cron !== undefined && t.period !== undefined) {
    throw new BuilderError('BAD_TIMING', 'give either --period or --cron, not both');
  }
  if (t.tz !== undefined && t.cron === undefined) throw new BuilderError('BAD_TIMING', '--tz only applies to --cron');
  if (t.tz !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: t.tz });
    } catch {
      throw new BuilderError('BAD_TIMING', `unknown time zone ${quote(t.tz)}`);
    }
  }
  if (t.cron !== undefined) {
    const fields = t.cron.trim().split(/\s+/).length;
    const check = validateDetailed(t.cron);
    if (!check.valid || fields < 5) {
      const why = check.errors.map((e) => e.message).join('; ') || `expected 5 fields, got ${fields}`;
      throw new BuilderError('BAD_TIMING', `invalid cron expression ${quote(t.cron)}: ${quote(why, 200).slice(1, -1)}`);
    }
  }
}

