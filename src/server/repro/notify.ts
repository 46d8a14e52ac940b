// builder-server --notify-command CMD: tells someone when a job's state changes (it stops
// reproducing, reproduces again, starts failing, recovers). CMD is run through the shell
// (`sh -c CMD`, so it may carry arguments, pipes and redirections) with the change's summary as
// one JSON object on stdin, in the background: a run never waits for it. A command that fails,
// hangs past the timeout (killed then) or cannot start is logged in one line and forgotten; a
// change is notified once, never retried, so a broken command cannot loop.
import { execa } from 'execa';
import type { Logger } from '../../common/log.js';
import type { RunResult } from '../../protocol/messages.js';

export type StateChange = 'stops-reproducing' | 'reproduces-again' | 'starts-failing' | 'recovers';

/** What the command reads on stdin. */
export interface NotifySummary {
  event: StateChange;
  job: string;
  platform: string;
  uuid: string;
  worker: string;
  finished: string;
  result: RunResult;
  /** for the reproducibility changes: the comparison */
  verdict: 'reproduced' | 'differs' | null;
  against: string | null;
  changed: string[];
  added: string[];
  removed: string[];
  /** the stored result directory and diff report, when there are */
  dir: string | null;
  report: string | null;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** more commands than this at once (a burst of changes, a hanging command) are skipped, logged */
const MAX_RUNNING = 8;

export class Notifier {
  private running = new Set<Promise<void>>();
  private readonly abort = new AbortController();

  constructor(private readonly command: string, private readonly log: Logger, private readonly timeoutMs = DEFAULT_TIMEOUT_MS) {}

  send(summary: NotifySummary): void {
    const facts = { job: summary.job, platform: summary.platform, run: summary.uuid, event: summary.event };
    if (this.abort.signal.aborted) return;
    if (this.running.size >= MAX_RUNNING) {
      this.log.warn(`notify command not run: ${MAX_RUNNING} still running`, facts);
      return;
    }
    const p = execa(this.command, {
      shell: true, input: JSON.stringify(summary) + '\n', timeout: this.timeoutMs, reject: false,
      stdout: 'ignore', stderr: 'pipe', cancelSignal: this.abort.signal, forceKillAfterDelay: 2000,
    }).then((r) => {
      if (r.failed) {
        const why = r.timedOut ? `timed out after ${this.timeoutMs} ms`
          : r.exitCode !== undefined ? `exit ${r.exitCode}` : (r.signal ?? r.originalMessage ?? 'failed');
        const stderr = typeof r.stderr === 'string' ? r.stderr.trim().split('\n').pop() : '';
        this.log.warn(`notify command failed: ${why}${stderr ? `: ${stderr}` : ''}`, facts);
      } else this.log.info('notified', facts);
    }, (err: unknown) => {
      this.log.warn(`notify command failed: ${String(err)}`, facts);
    });
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Ends commands still running (server shutdown). */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.running]);
  }
}
