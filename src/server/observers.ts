// People watching a run over the protocol (`observe`, `execute --follow`): its console followed
// as console-follow.ts does for every reader, in `line`, `skipped` and `end` frames on the
// observer's port, a batch of lines in one write.
import type { RunResult } from '../protocol/messages.js';
import { ConsoleFollow } from './console-follow.js';
import type { ObserverPort } from './port.js';

export class Observer extends ConsoleFollow<RunResult> {
  constructor(readonly port: ObserverPort, readonly id: number, readonly uuid: string) {
    super({
      get closed() {
        return port.closed;
      },
      get unsent() {
        return port.backlog;
      },
      drained: () => port.drained(),
      batch: (fn) => port.batch(fn),
      line: (_seq, ms, data) => port.send({ t: 'line', id, uuid, ms, data }),
      skipped: (count) => port.send({ t: 'skipped', id, uuid, count }),
      end: (result) => port.send({ t: 'end', id, uuid, result }),
    });
  }

  started(job: string, platform: string): void {
    this.port.send({ t: 'started', id: this.id, uuid: this.uuid, job, platform });
  }
}
