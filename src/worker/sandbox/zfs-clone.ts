// The ZFS half of the zfs-jail backend: a clone of a configured snapshot per job, its mount
// point, its removal, and the list of leftovers. Isolation is not done here (see jail.ts).
import { runTool, toolStderr } from './run-tool.js';
import { InfraError } from './types.js';
import { isOwnSandbox } from './sandbox-names.js';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

export async function createClone(snapshot: string, dataset: string): Promise<void> {
  await runTool('zfs', ['clone', snapshot, dataset]);
}

export async function cloneMountpoint(dataset: string): Promise<string> {
  const out = (await runTool('zfs', ['get', '-H', '-o', 'value', 'mountpoint', dataset])).trim();
  if (!out.startsWith('/')) throw new InfraError(`clone ${dataset} is not mounted (mountpoint "${out}")`);
  return out;
}

/**
 * `zfs destroy -rf`, retried while the dataset is busy (a process or a devfs mount that is
 * still going away); a dataset that does not exist counts as destroyed, so this is safe to
 * call after a clone that failed half-way.
 */
export async function destroyClone(dataset: string, attempts = 5, delayMs = 200): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await runTool('zfs', ['destroy', '-rf', dataset]);
      return;
    } catch (err) {
      const text = toolStderr(err) || (err as Error).message;
      if (/does not exist|dataset not found/i.test(text)) return;
      if (!/busy/i.test(text) || i >= attempts) throw err;
      await sleep(delayMs * i);
    }
  }
}

/** whether `zfs list` knows the snapshot; a zfs that cannot be run is an InfraError, not "no" */
export async function snapshotExists(snapshot: string): Promise<boolean> {
  try {
    await runTool('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', snapshot]);
    return true;
  } catch (err) {
    if (/does not exist|dataset not found/i.test(toolStderr(err))) return false;
    throw err;
  }
}

/** datasets directly or indirectly under parent whose last component is one of prefix's sandboxes */
export async function listClones(parent: string, prefix: string): Promise<string[]> {
  const out = await runTool('zfs', ['list', '-H', '-o', 'name', '-r', parent]);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((name) => name.startsWith(`${parent}/`) && isOwnSandbox(name.split('/').pop() ?? '', prefix));
}
