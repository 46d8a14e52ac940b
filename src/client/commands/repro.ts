// compare, verify, and history --repro: whether builds reproduce.
// compare and verify exit as diff and cmp do: 0 every artifact identical, 1 they differ,
// 2 trouble (no such run or job, a rebuild that failed, nothing to compare with, the server
// refused, or a usage error).
import { BuilderError, errorMessage } from '../../common/errors.js';
import { describeResult } from '../../protocol/describe.js';
import type { CompareReply, JobInfo, ReproRecord } from '../../protocol/replies.js';
import type { ClientContext, Command } from '../command.js';

/** The exit status for trouble, distinct from "differs" (1). */
const TROUBLE = 2;

async function orTrouble(ctx: ClientContext, program: string, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof BuilderError) || err.code === 'USAGE') throw err;
    ctx.err(`builder-client ${program}: ${errorMessage(err)}`);
    return TROUBLE;
  }
}

/** The comparison as text: verdict, changed / new / gone, then each changed artifact's report. */
export function printComparison(ctx: ClientContext, c: CompareReply): void {
  ctx.out(`${c.b.uuid} (${c.b.job} on ${c.b.platform}, worker ${c.b.worker})`);
  ctx.out(`  against ${c.a.uuid} (${c.a.job} on ${c.a.platform}, worker ${c.a.worker})`);
  if (c.verdict === 'reproduced') {
    ctx.out('reproduced: every artifact identical');
    return;
  }
  ctx.out(`differs: ${c.changed.length} changed, ${c.added.length} new, ${c.removed.length} gone`);
  for (const p of c.changed) ctx.out(`  changed ${p}`);
  for (const p of c.added) ctx.out(`  new     ${p}`);
  for (const p of c.removed) ctx.out(`  gone    ${p}`);
  for (const d of c.diffs) {
    ctx.out(`\n=== ${d.path} (${d.tool}${d.truncated ? ', truncated' : ''})`);
    ctx.write(d.text.endsWith('\n') ? d.text : `${d.text}\n`);
  }
}

export const compare: Command = {
  name: 'compare',
  summary: 'compare two runs\' artifacts (UUID2 judged against UUID1); exit 0 reproduced, 1 differs, 2 error',
  usage: `builder-client compare UUID1 UUID2 [--json]

  Compares the artifacts of two finished runs by sha256: "reproduced" when both have the same
  set of artifacts with the same contents, else which changed, which are new in UUID2 and which
  are gone. For each changed artifact it prints what changed: diffoscope's report when the server
  has diffoscope installed, else a unified line diff for text and the first differing byte for
  anything else.

  --json   the comparison as JSON
  exit status: 0 reproduced, 1 differs, 2 error (no such run, not finished, refused)`,
  flags: { booleans: ['json'] },
  positionals: [2, 2],
  async run(args, ctx) {
    return orTrouble(ctx, 'compare', async () => {
      const session = await ctx.connect();
      const { data } = await session.request({ op: 'compare', a: args.positionals[0]!, b: args.positionals[1]! });
      if (args.booleans.has('json')) ctx.out(JSON.stringify(data, null, 2));
      else printComparison(ctx, data);
      return data.verdict === 'reproduced' ? 0 : 1;
    });
  },
};

export const verify: Command = {
  name: 'verify',
  summary: 'rebuild a job now on another worker and compare; exit 0 reproduced, 1 differs, 2 error',
  usage: `builder-client verify NAME [--platform P] [--json]

  Rebuilds the job now (first in its queue), on another worker of the platform than the one that
  built its last successful run when one is connected (else on any, saying so), waits for the
  run, and compares its artifacts with that last successful run.

  --platform P   the platform (needed for templated jobs that run on several)
  --json         the answer as JSON
  exit status: 0 every artifact matched, 1 they differ, 2 error (no such job, no successful run
               to compare with, the rebuild did not exit 0, refused)`,
  flags: { values: ['platform'], booleans: ['json'] },
  positionals: [1, 1],
  async run(args, ctx) {
    return orTrouble(ctx, 'verify', async () => {
      const session = await ctx.connect();
      const name = args.positionals[0]!;
      ctx.err(`rebuilding ${name}${args.values.platform ? ` on ${args.values.platform}` : ''}...`);
      const { data } = await session.request({ op: 'verify', name, ...(args.values.platform ? { platform: args.values.platform } : {}) });
      if (args.booleans.has('json')) ctx.out(JSON.stringify(data, null, 2));
      if (!data.otherWorker) {
        ctx.err(`no other worker of ${data.platform} was connected: rebuilt on ${data.worker}, the worker of the run compared with`);
      }
      if (!data.comparison) {
        ctx.err(`the rebuild ${data.uuid} on ${data.worker} did not succeed: ${describeResult(data.result)}`);
        return TROUBLE;
      }
      if (!args.booleans.has('json')) printComparison(ctx, data.comparison);
      return data.comparison.verdict === 'reproduced' ? 0 : 1;
    });
  },
};

/** history NAME --repro */
export function printRecord(ctx: ClientContext, job: string, platforms: ReproRecord[]): void {
  if (platforms.length === 0) {
    ctx.out(`${job}: no successful run has been compared with an earlier one yet`);
    return;
  }
  for (const r of platforms) {
    ctx.out(`${job} on ${r.platform}${r.outcome === 'failing' ? ' (failing now)' : ''}:`);
    ctx.out(`  ${r.reproduced} of ${r.compared} compared runs reproduced the one before, ${r.differs} differed`);
    ctx.out(r.streak
      ? `  reproducing ${r.streak.count} time${r.streak.count === 1 ? '' : 's'} in a row, since ${r.streak.since} (run ${r.streak.sinceUuid})`
      : '  not reproducing now');
    if (r.lastBreak) {
      const what = [...r.lastBreak.changed.map((p) => `${p} changed`), ...r.lastBreak.added.map((p) => `${p} new`),
        ...r.lastBreak.removed.map((p) => `${p} gone`)];
      ctx.out(`  last broken ${r.lastBreak.at} by run ${r.lastBreak.uuid} (against ${r.lastBreak.against}): ${what.join(', ')}`);
    } else ctx.out('  never broken');
  }
}

/** info's REPRO column: the latest verdict per platform. */
export function reproCell(j: JobInfo): string {
  const states = j.repro ?? [];
  if (states.length === 0) return '-';
  const one = (s: NonNullable<JobInfo['repro']>[number]): string =>
    `${s.verdict ?? '-'}${s.outcome === 'failing' ? ' (failing)' : ''}`;
  if (states.length === 1 && (j.platform !== null)) return one(states[0]!);
  return states.map((s) => `${s.platform}: ${one(s)}`).join(', ');
}
