// execute, observe, observe-latest, cancel: acting on and watching runs.
import { describeResult, exitStatusOf } from '../../protocol/describe.js';
import type { Command, ClientContext } from '../command.js';
import { printer } from '../follow.js';
import type { ClientSession, RequestBody, Stream } from '../session.js';

async function watch(ctx: ClientContext, session: ClientSession, body: RequestBody<'observe' | 'observe-latest'>): Promise<number> {
  const p = printer(ctx);
  const { data } = await session.request(body, p.onEvent);
  if (data.live) return p.ended;
  // a finished run: say where its stored result is
  const { run } = data;
  ctx.err(`run ${run.uuid} is finished: ${run.result ? describeResult(run.result) : 'no result'}`);
  if (run.dir) ctx.err(`console: builder-inspect ${run.dir} --console`);
  return run.result ? exitStatusOf(run.result) : 1;
}

export const execute: Command = {
  name: 'execute',
  summary: 'move a job to the front of its queue(s); --follow streams the run and exits with its status',
  usage: `builder-client execute NAME [--platform P] [--follow]

  --platform P   only this platform's queue
  --follow       wait for the run to start, print its console live, exit with the job's exit status`,
  flags: { values: ['platform'], booleans: ['follow'] },
  positionals: [1, 1],
  async run(args, ctx) {
    const name = args.positionals[0]!;
    const session = await ctx.connect();
    const follow = args.booleans.has('follow');
    const p = printer(ctx);
    // the run's events wait until the answer is printed: the server sends the answer first, but
    // both may arrive in one read, and the answer is taken up a turn after the events are
    let early: Stream[] | undefined = [];
    const { data } = await session.request(
      { op: 'execute', name, follow, ...(args.values.platform ? { platform: args.values.platform } : {}) },
      follow ? (ev) => (early ? early.push(ev) : p.onEvent(ev)) : undefined,
    );
    ctx.err(`queued ${name} first on: ${data.queued.join(', ')}`);
    // said at once; a follow keeps waiting, since a worker may connect later
    for (const p of data.noWorker ?? []) ctx.err(`queued for ${p}; no worker of that platform is connected`);
    const events = early;
    early = undefined;
    events.forEach(p.onEvent);
    return follow ? p.ended : 0;
  },
};

export const observe: Command = {
  name: 'observe',
  summary: 'print the console of a run so far, then live, then its result',
  usage: 'builder-client observe UUID',
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    return watch(ctx, await ctx.connect(), { op: 'observe', uuid: args.positionals[0]! });
  },
};

export const observeLatest: Command = {
  name: 'observe-latest',
  summary: 'observe the most recently started matching run',
  usage: 'builder-client observe-latest [--platform P] [--job NAME]',
  flags: { values: ['platform', 'job'] },
  positionals: [0, 0],
  async run(args, ctx) {
    return watch(ctx, await ctx.connect(), {
      op: 'observe-latest',
      ...(args.values.platform ? { platform: args.values.platform } : {}),
      ...(args.values.job ? { job: args.values.job } : {}),
    });
  },
};

export const cancel: Command = {
  name: 'cancel',
  summary: 'end a running job (its process tree is killed)',
  usage: 'builder-client cancel UUID',
  flags: {},
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    await session.request({ op: 'cancel', uuid: args.positionals[0]! });
    ctx.out(`cancel sent to run ${args.positionals[0]}`);
    return 0;
  },
};
