// The free-space check run before jobs: below the threshold the worker prunes what it owns and,
// if still short, reports itself short of disk and takes no job.
import { statfs } from 'node:fs/promises';
import type { Logger } from '../common/log.js';
import type { SandboxBackend } from './sandbox/types.js';

export async function freePercent(path: string): Promise<number> {
  const s = await statfs(path);
  return s.blocks === 0 ? 100 : (s.bavail / s.blocks) * 100;
}

export function makeDiskCheck(backend: SandboxBackend, minFree: number, log: Logger) {
  return async (): Promise<{ short: boolean; freePercent: number }> => {
    let free = await freePercent(backend.storagePath);
    if (free >= minFree) return { short: false, freePercent: free };
    if (backend.prune) {
      const removed = await backend.prune();
      for (const line of removed) log.info(`pruned ${line}`);
      free = await freePercent(backend.storagePath);
    }
    return { short: free < minFree, freePercent: free };
  };
}
