// --output DIR: writes artifacts under DIR and never outside it. A path from a result (or from a
// `full` file somebody sent us) is refused when absolute or with `..`; every directory on the way
// is checked with lstat, so a symlink already in DIR cannot redirect a write, and the file itself
// is opened with O_NOFOLLOW. Paths are handled as bytes: a `full` file may name files in any
// encoding, and they are written under exactly those names.
import { constants } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { SourceArtifact } from './source.js';

export interface OutputReport {
  written: Array<{ path: string; size: number }>;
  refused: Array<{ path: string; reason: string }>;
}

const SLASH = 0x2f;
const show = (p: Buffer): string => JSON.stringify(p.toString('utf8'));

/** The path's components, or why it may not be written. */
export function safeComponents(path: Buffer): Buffer[] | string {
  if (path.length === 0) return 'empty path';
  if (path.includes(0)) return 'NUL byte in path';
  if (path[0] === SLASH) return 'absolute path';
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] !== SLASH) continue;
    const part = path.subarray(start, i);
    start = i + 1;
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue; // "a//b", "./a"
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) return 'path contains ".."';
    parts.push(part);
  }
  return parts.length === 0 ? 'path names no file' : parts;
}

const join = (dir: Buffer, part: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), part]);

async function kindOf(p: Buffer): Promise<'missing' | 'dir' | 'symlink' | 'file' | 'other'> {
  try {
    const st = await lstat(p);
    if (st.isSymbolicLink()) return 'symlink';
    if (st.isDirectory()) return 'dir';
    return st.isFile() ? 'file' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
}

/** Writes one artifact; returns why not when it may not be written. */
async function writeOne(root: Buffer, a: SourceArtifact): Promise<string | undefined> {
  const parts = safeComponents(a.path);
  if (typeof parts === 'string') return parts;
  let cur = root;
  for (const part of parts.slice(0, -1)) {
    cur = join(cur, part);
    const kind = await kindOf(cur);
    if (kind === 'symlink') return `goes through the symlink ${show(cur)}`;
    if (kind === 'missing') await mkdir(cur, { mode: 0o755 });
    else if (kind !== 'dir') return `${show(cur)} is in the way (not a directory)`;
  }
  const file = join(cur, parts[parts.length - 1]!);
  const kind = await kindOf(file);
  if (kind === 'symlink') return `${show(file)} is a symlink`;
  if (kind !== 'missing' && kind !== 'file') return `${show(file)} is in the way (not a regular file)`;
  // O_NOFOLLOW: a symlink planted since the check is refused, not followed
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, a.mode || 0o644);
  await pipeline(Readable.from(a.open()), handle.createWriteStream());
  return undefined;
}

export async function writeArtifacts(dir: string, artifacts: readonly SourceArtifact[]): Promise<OutputReport> {
  await mkdir(dir, { recursive: true });
  const root = Buffer.from(dir.replace(/\/+$/, '') || '/');
  const report: OutputReport = { written: [], refused: [] };
  for (const a of artifacts) {
    const reason = await writeOne(root, a);
    if (reason === undefined) report.written.push({ path: a.path.toString('utf8'), size: a.size });
    else report.refused.push({ path: a.path.toString('utf8'), reason });
  }
  return report;
}
