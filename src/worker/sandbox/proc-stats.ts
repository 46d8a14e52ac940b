// Samples the memory and CPU of a process group from /proc (Linux). Sampling misses processes
// that live shorter than the interval; the root shell's cutime/cstime still counts their CPU
// once they are reaped, which is why those fields are read too.
import { readdir, readFile } from 'node:fs/promises';
import type { RunStats } from '../../protocol/messages.js';

const PAGE = 4096;
const TICKS = 100;

export function sampleProcessGroup(pgid: number, everyMs = 250): { stop(): Promise<RunStats> } {
  let peakRss = 0;
  let cpuTicks = 0;
  let stopped = false;
  const sample = async (): Promise<void> => {
    let names: string[];
    try {
      names = await readdir('/proc');
    } catch {
      return;
    }
    let rss = 0;
    let ticks = 0;
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      let stat: string;
      try {
        stat = await readFile(`/proc/${name}/stat`, 'utf8');
      } catch {
        continue;
      }
      // fields after the command name, which may itself contain spaces and parentheses
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) !== pgid) continue;
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      rss += Number(f[21]) * PAGE;
    }
    peakRss = Math.max(peakRss, rss);
    cpuTicks = Math.max(cpuTicks, ticks);
  };
  let running = sample();
  const timer = setInterval(() => {
    running = running.then(sample);
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        await running;
      }
      // a job shorter than one sample was never seen: say nothing rather than 0
      if (peakRss === 0) return {};
      return { peakMemoryBytes: peakRss, cpuMs: Math.round((cpuTicks * 1000) / TICKS) };
    },
  };
}
