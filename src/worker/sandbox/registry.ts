// The named sandbox backends `builder-worker --sandbox NAME` can select.
import { btrfsNsBackend } from './btrfs-ns.js';
import { dockerBackend } from './docker.js';
import { processBackend } from './process.js';
import { zfsJailBackend } from './zfs-jail.js';
import type { BackendFactory } from './types.js';

export const backends: readonly BackendFactory[] = [processBackend, dockerBackend, zfsJailBackend, btrfsNsBackend];

export function findBackend(name: string): BackendFactory {
  const found = backends.find((b) => b.name === name);
  if (!found) throw new Error(`unknown sandbox "${name}"; known: ${backends.map((b) => b.name).join(', ')}`);
  return found;
}
