// Peak memory and CPU of a process tree, sampled from /proc (Linux). The tree is walked from its
// root through /proc/PID/task/TID/children: a few reads per sample instead of one per process on
// the host. The first sample comes after FIRST_SAMPLE_MS, so a no-op job costs nothing (and
// reports nothing), while a build of a fraction of a second still gets its figures (a first sample
// only after the whole interval missed jobs of 0.2 s); the root's cutime/cstime still counts the
// CPU of children it reaped.
import { readdir, readFile } from 'node:fs/promises';
import type { RunStats } from '../../protocol/messages.js';

const PAGE = 4096;
const TICKS_PER_SECOND = 100;
const FIRST_SAMPLE_MS = 50;

async function sampleOnce(root: number): Promise<{ rss: number; ticks: number }> {
  let rss = 0;
  let ticks = 0;
  const todo = [root];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    try {
      const stat = await readFile(`/proc/${p}/stat`, 'utf8');
      // fields after the command name, which may itself contain spaces and parentheses
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      rss += Number(f[21]) * PAGE;
      for (const tid of await readdir(`/proc/${p}/task`)) {
        const kids = await readFile(`/proc/${p}/task/${tid}/children`, 'utf8');
        for (const k of kids.split(' ')) if (k.trim()) todo.push(Number(k));
      }
    } catch {
      // the process ended while we looked
    }
  }
  return { rss, ticks };
}

export function sampleTree(root: number, everyMs = 250): { stop(): Promise<RunStats> } {
  let peakRss = 0;
  let peakTicks = 0;
  let running: Promise<void> = Promise.resolve();
  const sample = (): void => {
    running = running.then(async () => {
      const { rss, ticks } = await sampleOnce(root);
      peakRss = Math.max(peakRss, rss);
      peakTicks = Math.max(peakTicks, ticks);
    });
  };
  let timer: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    sample();
    timer = setInterval(sample, everyMs);
    timer.unref();
  }, Math.min(FIRST_SAMPLE_MS, everyMs));
  first.unref();
  return {
    async stop() {
      clearTimeout(first);
      clearInterval(timer);
      await running;
      if (peakRss === 0) return {};
      return { peakMemoryBytes: peakRss, cpuMs: Math.round((peakTicks * 1000) / TICKS_PER_SECOND) };
    },
  };
}
