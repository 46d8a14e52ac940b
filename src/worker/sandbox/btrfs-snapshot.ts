// The btrfs half of the btrfs-ns backend: a writable snapshot of a read-only base subvolume per
// job, and its removal. Isolation is not done here (see namespaces.ts).
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from './run-tool.js';
import { InfraError } from './types.js';
import { isOwnSandbox } from './sandbox-names.js';

export async function createSnapshot(base: string, dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await runTool('btrfs', ['-q', 'subvolume', 'snapshot', base, path]);
  return path;
}

/**
 * Deletes a snapshot. A job may have made subvolumes of its own inside it (unprivileged users
 * may, on btrfs), which makes `subvolume delete` fail; `rm -rf` removes those (an empty
 * subvolume can be rmdir'ed) and then the snapshot itself.
 */
export async function deleteSnapshot(path: string): Promise<void> {
  const exists = await lstat(path).then(() => true, () => false);
  if (!exists) return;
  try {
    await runTool('btrfs', ['-q', 'subvolume', 'delete', path]);
  } catch (err) {
    try {
      await rm(path, { recursive: true, force: true });
    } catch (err2) {
      throw new InfraError(`cannot delete snapshot ${path}: ${(err as Error).message}; rm: ${(err2 as Error).message}`, {
        cause: err2,
      });
    }
  }
}

/** this prefix's snapshots left in dir (a crashed predecessor's), not another worker's */
export async function listSnapshots(dir: string, prefix: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new InfraError(`cannot list ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return names.filter((n) => isOwnSandbox(n, prefix)).sort().map((n) => join(dir, n));
}

/**
 * Waits until the subvolumes deleted on dir's file system are gone and their space is free. A
 * commit first: `subvolume sync` alone waits for the next periodic one (up to 30 s); the last
 * commit makes the freed space show in statfs (16 ms in all for 200 MB on our test machine).
 */
export async function syncDeletions(dir: string): Promise<void> {
  await runTool('btrfs', ['filesystem', 'sync', dir]);
  await runTool('btrfs', ['subvolume', 'sync', dir]);
  await runTool('btrfs', ['filesystem', 'sync', dir]);
}

/** true when path is a read-only btrfs subvolume (the only kind of base we accept) */
export async function checkBase(base: string): Promise<void> {
  const out = await runTool('btrfs', ['property', 'get', '-ts', base, 'ro']).catch((err: Error) => {
    throw new InfraError(`--btrfs-base ${base} is not a btrfs subvolume: ${err.message}`, { cause: err });
  });
  if (!/ro=true/.test(out)) throw new InfraError(`--btrfs-base ${base} is not read-only (btrfs property set -ts ${base} ro true)`);
}
