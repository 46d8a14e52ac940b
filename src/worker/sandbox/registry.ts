// The named sandbox backends `builder-worker --sandbox NAME` can select.
import { processBackend } from './process.js';
import type { BackendFactory } from './types.js';

export const backends: readonly BackendFactory[] = [processBackend];

export function findBackend(name: string): BackendFactory {
  const found = backends.find((b) => b.name === name);
  if (!found) throw new Error(`unknown sandbox "${name}"; known: ${backends.map((b) => b.name).join(', ')}`);
  return found;
}
