// Processes a worker killed with -9 left running in its sandboxes. A btrfs-ns job runs chrooted
// into its snapshot, in pid and mount namespaces that outlive the worker (unshare ends them
// only when it dies itself, and nothing kills unshare when its parent is SIGKILLed). Such a
// process is recognised by its root directory (/proc/PID/root) being one of the worker's
// snapshots: a fact the kernel keeps for every process, whatever namespace it is in, that no
// job can change (chroot needs privileges the job does not have), and never a stored pid
// that may have been reused. Killing them ends the namespace's PID 1 too (its child is gone),
// and with it unshare.
import { readdir, readlink } from 'node:fs/promises';
import { InfraError } from './types.js';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** pid and root directory of every process whose root `owns` accepts */
export async function processesRootedIn(owns: (root: string) => boolean): Promise<Array<{ pid: number; root: string }>> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return []; // no procfs: no process of ours can be found, nor can any have been left
  }
  const found: Array<{ pid: number; root: string }> = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let root: string;
    try {
      // a deleted snapshot (an older worker swept it without ending its processes) shows as "PATH (deleted)"
      root = (await readlink(`/proc/${name}/root`)).replace(/ \(deleted\)$/, '');
    } catch {
      continue; // gone meanwhile, a zombie, or not ours to look at
    }
    if (owns(root)) found.push({ pid: Number(name), root });
  }
  return found;
}

/**
 * SIGKILLs every process whose root `owns` accepts, again and again until none is left (one may
 * fork while we look); returns one line per killed process. Throws InfraError when some
 * outlive timeoutMs (a process stuck in the kernel), since their snapshot cannot go then.
 */
export async function endProcessesRootedIn(owns: (root: string) => boolean, timeoutMs = 10_000): Promise<string[]> {
  const killed = new Map<number, string>();
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = await processesRootedIn(owns);
    if (left.length === 0) return [...killed].map(([pid, root]) => `process ${pid} in ${root}`);
    if (Date.now() > until) {
      throw new InfraError(`processes left by an earlier worker do not end: ${left.map((p) => `${p.pid} in ${p.root}`).join(', ')}`);
    }
    for (const { pid, root } of left) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.set(pid, root);
      } catch {
        // ESRCH: it ended by itself
      }
    }
    await sleep(50);
  }
}
