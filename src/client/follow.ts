// Prints a followed run: its console lines with the time since the run started, then its
// result. Resolves with the exit status the CLI should end with.
import { describeResult, exitStatusOf } from '../protocol/describe.js';
import type { ClientContext } from './command.js';
import { linePrefix } from './format.js';
import type { Stream } from './session.js';

export function printer(ctx: ClientContext): { onEvent(ev: Stream): void; ended: Promise<number> } {
  let resolveEnded!: (code: number) => void;
  const ended = new Promise<number>((r) => (resolveEnded = r));
  return {
    ended,
    onEvent(ev) {
      switch (ev.t) {
        case 'started':
          ctx.err(`following run ${ev.uuid} of ${ev.job} on ${ev.platform}`);
          return;
        case 'line':
          ctx.write(Buffer.concat([Buffer.from(linePrefix(ev.ms)), ev.data, Buffer.from('\n')]));
          return;
        case 'skipped':
          ctx.err(`[${ev.count} lines skipped: this observer fell behind, or they never reached the server]`);
          return;
        case 'end':
          ctx.err(`run ${ev.uuid}: ${describeResult(ev.result)}`);
          resolveEnded(exitStatusOf(ev.result));
          return;
      }
    },
  };
}
