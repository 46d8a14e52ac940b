// prune: delete old runs now by the server's retention policy (or the limits given), or with
// --dry-run list what would go.
import { intFlag } from '../../common/args.js';
import type { Command } from '../command.js';
import { bytes, table } from '../format.js';

export const prune: Command = {
  name: 'prune',
  summary: 'delete old runs now by the retention policy; --dry-run lists what would go',
  usage: `builder-client prune [--dry-run] [--keep-runs N] [--keep-days D] [--json]

  Applies the server's retention (builder-server --keep-runs/--keep-days) now, or these limits
  instead. The newest successful run of a job on each platform, runs whose upload is pending and
  runs a kept run was compared against always stay.
  --dry-run   list the runs that would be deleted, delete nothing
  --json      the answer as JSON`,
  flags: { values: ['keep-runs', 'keep-days'], booleans: ['dry-run', 'json'] },
  positionals: [0, 0],
  async run(args, ctx) {
    const limits = {
      ...(args.values['keep-runs'] !== undefined ? { keepRuns: intFlag(args, 'keep-runs', 0, 1) } : {}),
      ...(args.values['keep-days'] !== undefined ? { keepDays: intFlag(args, 'keep-days', 0, 1) } : {}),
    };
    const dry = args.booleans.has('dry-run');
    const session = await ctx.connect();
    const { data } = await session.request({ op: dry ? 'prune-plan' : 'prune', ...limits });
    if (args.booleans.has('json')) {
      ctx.out(JSON.stringify(data, null, 2));
      return 0;
    }
    if (data.runs.length > 0) {
      ctx.out(table(['UUID', 'JOB', 'PLATFORM', 'FINISHED', 'REASON', 'ARTIFACTS'],
        data.runs.map((r) => [r.uuid, r.job, r.platform, r.finished, r.reason, bytes(r.artifactBytes)])));
    }
    const total = bytes(data.runs.reduce((n, r) => n + r.artifactBytes, 0));
    const policy = [data.keepRuns !== null ? `keep-runs ${data.keepRuns}` : '', data.keepDays !== null ? `keep-days ${data.keepDays}` : '']
      .filter(Boolean).join(', ');
    ctx.err(dry ? `${data.runs.length} runs (${total} of artifacts) would be deleted (${policy})`
      : `deleted ${data.deleted} runs (${total} of artifacts) (${policy})`);
    return 0;
  },
};
