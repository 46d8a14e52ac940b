// console, artifacts, result: a run's stored result read over the protocol, from any machine
// (builder-inspect reads the same files on the server's disk).
import { mkdirSync } from 'node:fs';
import { BuilderError } from '../../common/errors.js';
import { describeResult } from '../../protocol/describe.js';
import type { RunResultReply } from '../../protocol/replies.js';
import type { Command } from '../command.js';
import { bytes, duration, linePrefix, table } from '../format.js';
import type { Stream } from '../session.js';

export const consoleCommand: Command = {
  name: 'console',
  summary: 'print the stored console of a run (finished or running); --follow goes on live',
  usage: `builder-client console UUID [--follow]

  Prints every console line of the run with its time since the run started, as observe does.
  A finished run's lines come from its stored result; a running run's are those so far.
  --follow   for a running run, go on printing lines as they come until it ends`,
  flags: { booleans: ['follow'] },
  positionals: [1, 1],
  async run(args, ctx) {
    const uuid = args.positionals[0]!;
    const session = await ctx.connect();
    let settle!: (code: number) => void;
    let fail!: (err: Error) => void;
    const ended = new Promise<number>((res, rej) => ((settle = res), (fail = rej)));
    ended.catch(() => undefined); // a refused request ends the command first; the close after it is no news
    session.conn.on('close', (reason) => fail(new BuilderError('CONNECT', `connection lost before the console's end: ${reason}`)));
    const onEvent = (ev: Stream): void => {
      switch (ev.t) {
        case 'line':
          ctx.write(Buffer.concat([Buffer.from(linePrefix(ev.ms)), ev.data, Buffer.from('\n')]));
          return;
        case 'skipped':
          ctx.err(`[${ev.count} lines skipped: this reader fell behind, or they never reached the server]`);
          return;
        case 'end':
          ctx.err(`run ${ev.uuid}: ${describeResult(ev.result)}`);
          settle(0);
          return;
        case 'console-end':
          if (ev.error !== undefined) fail(new BuilderError('BAD_RESULT', ev.error));
          else settle(0);
          return;
        default:
      }
    };
    const { data } = await session.request({ op: 'run-console', uuid, ...(args.booleans.has('follow') ? { follow: true } : {}) }, onEvent);
    const code = await ended;
    if (!data.live) ctx.err(data.result ? `run ${uuid}: ${describeResult(data.result)}` : `run ${uuid} is still running`);
    return code;
  },
};

export const artifactsCommand: Command = {
  name: 'artifacts',
  summary: 'download a finished run\'s artifacts (all, or the named ones), each checked by sha256',
  usage: `builder-client artifacts UUID [--output DIR] [PATH...]

  Streams the artifacts of a finished run into DIR (default: the current directory), keeping their
  paths. PATH names an artifact or a directory of them. Each file is written under a temporary
  name and renamed into place only when its size and sha256 are the ones the server recorded;
  a mismatch or a lost connection leaves no partial file and exits 1.
  Prints the path of each file written.`,
  flags: { values: ['output'] },
  positionals: [1, Infinity],
  async run(args, ctx) {
    const [uuid, ...paths] = args.positionals as [string, ...string[]];
    const out = args.values.output ?? '.';
    mkdirSync(out, { recursive: true });
    const session = await ctx.connect();
    const { ArtifactReceiver } = await import('../artifact-receiver.js');
    const receiver = new ArtifactReceiver(session.conn, out, uuid);
    const { data } = await session.request({ op: 'fetch-artifacts', uuid, ...(paths.length > 0 ? { paths } : {}) }, receiver.onEvent);
    ctx.err(`fetching ${data.artifacts.length} artifact${data.artifacts.length === 1 ? '' : 's'} (${bytes(data.bytes)}) of run ${uuid} (${data.job})`);
    await receiver.done;
    for (const w of receiver.written) ctx.out(w.file);
    return 0;
  },
};

function printResult(d: RunResultReply, out: (text: string) => void): void {
  const r = d.run;
  const took = r.finished === null ? '' : ` (${duration(Date.parse(r.finished) - Date.parse(r.started))})`;
  out(table(['', ''], [
    ['run', r.uuid], ['job', r.job], ['platform', r.platform], ['worker', r.worker], ['attempt', r.attempt],
    ['started', r.started], ['finished', r.finished === null ? 'running' : `${r.finished}${took}`],
    ['result', r.result ? describeResult(r.result) : 'running'], ['stored', r.dir],
  ]).split('\n').slice(1).join('\n'));
  for (const f of r.refusals) out(`refused  ${f.path}: ${f.reason}`);
  const total = d.artifacts.reduce((n, a) => n + a.size, 0);
  out(`artifacts: ${d.artifacts.length} (${bytes(total)})`);
  if (d.artifacts.length > 0) out(table(['PATH', 'SIZE', 'SHA256'], d.artifacts.map((a) => [a.path, a.size, a.sha256])));
}

export const resultCommand: Command = {
  name: 'result',
  summary: 'a run\'s job, platform, worker, times, result and artifacts (size, sha256)',
  usage: `builder-client result UUID [--json]

  --json   the run and its artifacts as JSON`,
  flags: { booleans: ['json'] },
  positionals: [1, 1],
  async run(args, ctx) {
    const session = await ctx.connect();
    const { data } = await session.request({ op: 'run-result', uuid: args.positionals[0]! });
    if (args.booleans.has('json')) ctx.out(JSON.stringify(data, null, 2));
    else printResult(data, ctx.out);
    return 0;
  },
};

export const resultCommands: Command[] = [consoleCommand, artifactsCommand, resultCommand];
