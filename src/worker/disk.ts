// The free-space check run before jobs: below the threshold the worker prunes what it owns and,
// if still short, reports itself short of disk and takes no job.
import { statfs } from 'node:fs/promises';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { SandboxBackend } from './sandbox/types.js';

export async function freePercent(path: string): Promise<number> {
  const s = await statfs(path);
  return s.blocks === 0 ? 100 : (s.bavail / s.blocks) * 100;
}

export function makeDiskCheck(backend: SandboxBackend, minFree: number, log: Logger) {
  // the least free of every file system the backend fills
  const lowest = async (): Promise<number> => {
    const extra = backend.diskPaths
      ? await backend.diskPaths().catch((err: unknown) => {
        log.warn('cannot tell where the sandboxes\' data lives; checking the worker\'s own directory only', { error: errorMessage(err) });
        return [];
      })
      : [];
    const frees = await Promise.all([backend.storagePath, ...extra].map((p) => freePercent(p).catch(() => 100)));
    return Math.min(...frees);
  };
  // one check at a time: the 30 s timer and a job's own check must not prune the same things at once
  let running: Promise<{ short: boolean; freePercent: number }> | undefined;
  const check = async (): Promise<{ short: boolean; freePercent: number }> => {
    let free = await lowest();
    if (free >= minFree) return { short: false, freePercent: free };
    if (backend.prune) {
      log.info(`${Math.round(free)}% free, below --min-free ${minFree}%: pruning`);
      const removed = await backend.prune();
      for (const line of removed) log.info(`pruned ${line}`);
      free = await lowest();
    }
    return { short: free < minFree, freePercent: free };
  };
  return (): Promise<{ short: boolean; freePercent: number }> =>
    (running ??= check().finally(() => {
      running = undefined;
    }));
}
