// Every process a test file starts carries BUILDER_TEST_MARK=<id> in its environment: children
// inherit it, and so do the jobs a worker runs with the process backend. Finding the mark in
// /proc is how a timed-out test, a harness cleanup and the runner's leak check reach processes
// that left their parent's process group or outlived their parent (a job's `sleep 1000` after its
// worker was killed with -9), which neither a pid list nor a group kill can.
// Processes that start from a scrubbed environment (docker containers, the btrfs-ns namespace)
// carry no mark; their backends' own tests check that nothing of theirs is left.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

export const MARK_VAR = 'BUILDER_TEST_MARK';

/** This test process's mark, set for everything it starts (run-all sets one per test file). */
export function testMark(): string {
  process.env[MARK_VAR] ??= randomUUID();
  return process.env[MARK_VAR]!;
}

export interface MarkedProcess {
  pid: number;
  pgid: number;
  args: string;
}

function parentOf(pid: number): { ppid: number; pgid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name in parentheses may hold spaces: the fields after it are fixed
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), pgid: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

/** pid and its ancestors: never reported as leaked, never killed. */
function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  for (let pid = process.pid; pid > 1 && !out.has(pid); pid = parentOf(pid)?.ppid ?? 0) out.add(pid);
  return out;
}

/** Live processes (not zombies, not this one or its ancestors) whose environment holds the mark. */
export function markedProcesses(mark: string): MarkedProcess[] {
  const needle = Buffer.from(`${MARK_VAR}=${mark}\0`);
  const skip = selfAndAncestors();
  const found: MarkedProcess[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return found; // no /proc: nothing we can find
  }
  for (const name of pids) {
    const pid = Number(name);
    if (skip.has(pid)) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`);
      const at = env.indexOf(needle);
      if (at < 0 || (at > 0 && env[at - 1] !== 0)) continue;
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      if (!args) continue; // a zombie: already dead, waiting for its parent
      found.push({ pid, pgid: parentOf(pid)?.pgid ?? pid, args });
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  return found;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * SIGKILLs every marked process (except those `keep` accepts) until none is left, since a dying
 * shell may still fork; returns what it found the first time.
 */
export function killMarked(mark: string, keep: (p: MarkedProcess) => boolean = () => false): MarkedProcess[] {
  let first: MarkedProcess[] | undefined;
  for (let round = 0; round < 20; round++) {
    const now = markedProcesses(mark).filter((p) => !keep(p));
    first ??= now;
    if (now.length === 0) break;
    if (round > 0) Atomics.wait(pause, 0, 0, 20); // let the kills land before looking again
    for (const p of now) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // ESRCH: it ended by itself
      }
    }
  }
  return first ?? [];
}
