// Whether a run reproduced another: the same set of artifact paths, each with the same sha256.
// Sizes come along for display only; a digest decides.
import { BuilderError } from '../common/errors.js';

export interface ArtifactDigest {
  path: string;
  size: number;
  sha256: string;
}

export type Comparison =
  | { verdict: 'reproduced' }
  | {
      verdict: 'differs';
      /** in both runs, with different contents */
      changed: string[];
      /** only in the current run */
      added: string[];
      /** only in the previous run */
      removed: string[];
    };

export type Verdict = Comparison['verdict'];

const byPath = (list: readonly ArtifactDigest[], which: string): Map<string, ArtifactDigest> => {
  const map = new Map<string, ArtifactDigest>();
  for (const a of list) {
    if (map.has(a.path)) throw new BuilderError('BAD_ARTIFACTS', `${which} run lists artifact ${a.path} twice`);
    map.set(a.path, a);
  }
  return map;
};

const sorted = (xs: string[]): string[] => xs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** `previous` is the earlier (reference) run, `current` the one being judged; lists come back sorted. */
export function compareArtifacts(previous: readonly ArtifactDigest[], current: readonly ArtifactDigest[]): Comparison {
  const before = byPath(previous, 'previous');
  const after = byPath(current, 'current');
  const changed: string[] = [];
  const added: string[] = [];
  const removed: string[] = [];
  for (const [path, a] of after) {
    const b = before.get(path);
    if (!b) added.push(path);
    else if (b.sha256.toLowerCase() !== a.sha256.toLowerCase()) changed.push(path);
  }
  for (const path of before.keys()) if (!after.has(path)) removed.push(path);
  if (changed.length + added.length + removed.length === 0) return { verdict: 'reproduced' };
  return { verdict: 'differs', changed: sorted(changed), added: sorted(added), removed: sorted(removed) };
}

/** Lines for `compare` and `info`: "reproduced", or one line per changed / new / gone artifact. */
export function formatComparison(c: Comparison): string[] {
  switch (c.verdict) {
    case 'reproduced':
      return ['reproduced: every artifact identical'];
    case 'differs':
      return [
        `differs: ${c.changed.length} changed, ${c.added.length} new, ${c.removed.length} gone`,
        ...c.changed.map((p) => `  changed ${p}`),
        ...c.added.map((p) => `  new     ${p}`),
        ...c.removed.map((p) => `  gone    ${p}`),
      ];
    default: {
      const never: never = c;
      throw new Error(`unknown verdict ${JSON.stringify(never)}`);
    }
  }
}
