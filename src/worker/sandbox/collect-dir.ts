// Turns a job's directory into artifacts. Shared by every backend whose job directory is
// readable from the host (process, btrfs snapshot, zfs clone, docker's extracted copy).
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Refusal } from '../../protocol/messages.js';
import type { ArtifactFile, ArtifactSet } from './types.js';

const inside = (root: string, p: string): boolean => p === root || p.startsWith(root + sep);

export async function collectDir(root: string): Promise<ArtifactSet> {
  // the job directory's real path is needed only to tell where a link points: found at the first
  // link, so a job that leaves plain files (or nothing) costs no realpath (a readlink per component)
  let realRoot: Promise<string> | undefined;
  const files: ArtifactFile[] = [];
  const refusals: Refusal[] = [];
  const walk = async (abs: string): Promise<void> => {
    const entries = await readdir(abs, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = join(abs, entry.name);
      const rel = relative(root, full).split(sep).join('/');
      if (entry.isDirectory()) {
        await walk(full);
      } else if (entry.isFile()) {
        const st = await lstat(full);
        files.push({ path: rel, hostPath: full, size: st.size, mode: st.mode & 0o7777 });
      } else if (entry.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(full);
        } catch {
          refusals.push({ path: rel, reason: 'dangling symbolic link' });
          continue;
        }
        if (!inside(await (realRoot ??= realpath(root)), target)) {
          refusals.push({ path: rel, reason: 'symbolic link points outside the job directory' });
          continue;
        }
        const st = await stat(target);
        if (st.isFile()) files.push({ path: rel, hostPath: target, size: st.size, mode: st.mode & 0o7777 });
        else if (!st.isDirectory()) refusals.push({ path: rel, reason: 'not a regular file' });
        // a link to a directory inside the job is skipped: its files are collected under their own path
      } else {
        refusals.push({ path: rel, reason: 'not a regular file' });
      }
    }
  };
  await walk(root);
  return { files, refusals };
}
