// Job and platform names become directory names and log scopes, so they are kept to a safe set.
import { BuilderError } from './errors.js';
import { quote } from './quote.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export function checkName(kind: 'job' | 'platform', name: string): string {
  if (!NAME.test(name)) {
    throw new BuilderError(
      'BAD_NAME',
      `invalid ${kind} name ${quote(name)}: use letters, digits and . _ + - (up to 128, not starting with a symbol)`,
    );
  }
  return name;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const isUuid = (s: string): boolean => UUID.test(s);

/** The checks every artifact path must pass, wherever it came from (a walk, a tar stream, the wire). */
// (Kept as it was for the readers of stored results; new artifacts go through normaliseArtifactPath.)
export function artifactPathProblem(path: string): string | undefined {
  if (path === '' || path.includes('\0')) return 'empty path or NUL byte';
  if (path.startsWith('/')) return 'absolute path';
  if (path.split('/').some((part) => part === '..')) return 'path contains ".."';
  return undefined;
}

/** Longest name of one path component most file systems store (ext4, btrfs, ZFS, UFS: 255 bytes). */
export const MAX_NAME_BYTES = 255;
/** Longest path the kernel takes (PATH_MAX on Linux; FreeBSD's is 1024, checked when writing). */
export const MAX_PATH_BYTES = 4096;

/**
 * An artifact path in its one stored form, or the reason it cannot be one. Done once on the
 * worker before sending, and again on the server on arrival, so the record in run.json and the
 * file under artifacts/ always name the same thing: `./x`, `d//x` and `d/./x` become `x`, `d/x`;
 * empty, `.`, absolute and `..` paths, a trailing slash (a directory, not a file), and names or
 * paths too long to create are refused.
 */
export function normaliseArtifactPath(raw: string): { path: string } | { problem: string } {
  if (raw === '' || raw.includes('\0')) return { problem: 'empty path or NUL byte' };
  if (raw.startsWith('/')) return { problem: 'absolute path' };
  if (raw.endsWith('/')) return { problem: 'path ends with "/" (a directory, not a file)' };
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.some((part) => part === '..')) return { problem: 'path contains ".."' };
  if (parts.length === 0) return { problem: 'path names no file (".")' };
  const long = parts.find((part) => Buffer.byteLength(part) > MAX_NAME_BYTES);
  if (long !== undefined) return { problem: `a name in the path is longer than ${MAX_NAME_BYTES} bytes (${Buffer.byteLength(long)})` };
  const path = parts.join('/');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return { problem: `path longer than ${MAX_PATH_BYTES} bytes (${Buffer.byteLength(path)})` };
  return { path };
}

/**
 * The artifact paths of one run so far, to refuse one that cannot sit beside them: the same path
 * twice, a file where another's directory is (`d` after `d/x`), or under another file (`d/x`
 * after `d`). Linear in the path's depth, whatever the number of artifacts.
 */
export class ArtifactPaths {
  private readonly files = new Set<string>();
  private readonly dirs = new Set<string>();

  /** The reason `path` clashes, or undefined (and it is taken from now on). */
  take(path: string): string | undefined {
    if (this.files.has(path)) return 'sent twice (after normalisation)';
    if (this.dirs.has(path)) return 'a file where a directory is (other artifacts are inside it)';
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.files.has(dir)) return `a directory where a file is (${dir} is a file)`;
    }
    this.files.add(path);
    for (let i = 1; i < parts.length; i++) this.dirs.add(parts.slice(0, i).join('/'));
    return undefined;
  }
}
