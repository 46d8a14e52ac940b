// uploads, upload-retry: the state of results sent to builder-web.
import { UsageError } from '../../common/errors.js';
import type { UploadState } from '../../protocol/replies.js';
import type { Command } from '../command.js';
import { table } from '../format.js';

const STATE_LABEL: Record<UploadState, string> = {
  pending: 'pending', uploaded: 'uploaded', refused: 'REFUSED', failed: 'FAILED',
};

export const uploads: Command = {
  name: 'uploads',
  summary: 'results sent (or waiting to be sent) to builder-web, newest first',
  usage: `builder-client uploads [--failed] [--json]

  --failed   only uploads with a problem: refused (401/403), failed (not retried on their own)
             and pending ones whose last attempt failed
  --json     the server's answer as JSON

Refused and failed uploads stay until 'builder-client upload-retry UUID|--all'.`,
  flags: { booleans: ['failed', 'json'] },
  positionals: [0, 0],
  async run(args, ctx) {
    const session = await ctx.connect();
    const failed = args.booleans.has('failed');
    const { data: d } = await session.request({ op: 'uploads', ...(failed ? { failed: true } : {}) });
    if (args.booleans.has('json')) {
      ctx.out(JSON.stringify(d, null, 2));
      return 0;
    }
    const c = d.counts;
    ctx.out(`builder-web: ${d.url}`);
    ctx.out(`${c.uploaded} uploaded, ${c.pending} pending, ${c.refused} refused, ${c.failed} failed`);
    if (d.uploads.length === 0) {
      ctx.out(failed ? '(no uploads with problems)' : '(no uploads yet)');
      return 0;
    }
    ctx.out(table(['UUID', 'JOB', 'STATE', 'ATTEMPTS', 'NEXT ATTEMPT', 'LAST ERROR'],
      d.uploads.map((u) => [u.uuid, u.job, STATE_LABEL[u.state], u.attempts, u.nextAttempt, u.lastError])));
    if (d.uploads.length >= d.limit) ctx.err(`(only the newest ${d.limit} shown)`);
    return 0;
  },
};

export const uploadRetry: Command = {
  name: 'upload-retry',
  summary: 'try refused, failed or waiting uploads again now',
  usage: `builder-client upload-retry UUID|--all

  UUID    this run's upload (also a run finished while uploads were off)
  --all   every upload that is not uploaded yet

example: after fixing the password in --upload: builder-client upload-retry --all`,
  flags: { booleans: ['all'] },
  positionals: [0, 1],
  async run(args, ctx) {
    const all = args.booleans.has('all');
    const uuid = args.positionals[0];
    if (all === (uuid !== undefined)) throw new UsageError('upload-retry: give either a UUID or --all');
    const session = await ctx.connect();
    const { data } = await session.request({ op: 'upload-retry', ...(all ? { all: true } : { uuid: uuid! }) });
    const n = data.queued;
    ctx.out(n === 0 ? 'nothing to retry' : `queued ${n} upload${n === 1 ? '' : 's'} again`);
    return 0;
  },
};

export const uploadCommands: Command[] = [uploads, uploadRetry];
