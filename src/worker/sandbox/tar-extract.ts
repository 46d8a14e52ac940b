// A small tar reader and writer, because no tar library is among our dependencies and the
// docker backend moves files in and out of containers as tar streams. The reader is the
// security boundary between a job's files and the worker's disk, so it is strict: only regular
// files, directories and symbolic links are written; absolute paths, '..' and links that lead
// out of the destination are refused (reported, not written); nothing is ever written through
// a symbolic link. Formats: ustar (with prefix), GNU long names (L/K) and pax path/linkpath/size.
import { createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, realpath, symlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Refusal } from '../../protocol/messages.js';
import { artifactPathProblem } from '../../common/names.js';

const BLOCK = 512;
/** Long names and pax records are held in memory: none honest comes near this. */
const MAX_META_ENTRY = 1 << 20;

/** Reads exact byte counts from a stream of chunks without holding more than one chunk. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, next.value]) : Buffer.from(next.value);
    return true;
  }

  /** exactly n bytes, or undefined at a clean end of stream */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n) if (!(await this.fill())) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** passes n bytes to sink piece by piece (a file's content is never held whole) */
  async pipe(n: number, sink: (piece: Buffer) => Promise<void> | void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) throw new Error('tar stream ends inside a file');
      const piece = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(piece.length);
      left -= piece.length;
      await sink(piece);
    }
  }
}

const str = (b: Buffer, off: number, len: number): string => {
  const s = b.subarray(off, off + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? len : end).toString('utf8');
};

function num(b: Buffer, off: number, len: number): number {
  // GNU base-256 for big values: high bit of the first byte set
  if ((b[off]! & 0x80) !== 0) {
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = str(b, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = parseInt(data.subarray(i, space).toString('ascii'), 10);
    if (!(len > 0)) break;
    const rec = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

export interface ExtractResult {
  refusals: Refusal[];
  files: number;
}

/**
 * Extracts a tar stream into dest (which must exist). Every entry's path is checked; refused
 * entries are skipped and listed. Hard links are copied (from an entry already extracted).
 */
export async function extractTar(stream: AsyncIterable<Buffer>, dest: string): Promise<ExtractResult> {
  const root = await realpath(dest);
  const reader = new ByteReader(stream[Symbol.asyncIterator]());
  const refusals: Refusal[] = [];
  let files = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  const skip = (n: number) => reader.pipe(n, () => undefined);

  // the parent directory must be a real directory inside root, reached without symbolic links:
  // made one component at a time, so mkdir never follows a link the archive planted
  const goodDirs = new Set<string>(['']);
  const safeParent = async (rel: string): Promise<boolean> => {
    const parts = rel.split('/').slice(0, -1);
    let cur = '';
    for (const part of parts) {
      cur = cur ? `${cur}/${part}` : part;
      if (goodDirs.has(cur)) continue;
      const abs = join(root, cur);
      const st = await lstat(abs).catch(() => undefined);
      if (!st) await mkdir(abs, { mode: 0o755 });
      else if (!st.isDirectory()) return false;
      goodDirs.add(cur);
    }
    return true;
  };

  for (;;) {
    const header = await reader.read(BLOCK);
    if (!header || header.every((b) => b === 0)) break;
    const type = String.fromCharCode(header[156]!) || '0';
    const size = pax.size !== undefined ? Number(pax.size) : num(header, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`tar entry with a bad size (${String(pax.size ?? size).slice(0, 40)})`);
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      if (size > MAX_META_ENTRY) throw new Error(`tar header entry of ${size} bytes is larger than ${MAX_META_ENTRY}`);
      const data = (await reader.read(padded))?.subarray(0, size);
      if (!data) throw new Error('tar stream ends inside a header');
      if (type === 'L') longName = str(data, 0, data.length);
      else if (type === 'K') longLink = str(data, 0, data.length);
      else if (type === 'x') pax = parsePax(data);
      continue; // 'g' (global pax) holds nothing we use
    }

    const prefix = str(header, 345, 155);
    const ustarName = str(header, 0, 100);
    let name = pax.path ?? longName ?? (prefix ? `${prefix}/${ustarName}` : ustarName);
    const linkName = pax.linkpath ?? longLink ?? str(header, 157, 100);
    const mode = num(header, 100, 8) & 0o777;
    longName = longLink = undefined;
    pax = {};

    name = name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
    if (name === '' || name === '.') {
      await skip(padded);
      continue;
    }
    const problem = artifactPathProblem(name) ?? (posix.normalize(name) !== name ? 'path is not normal' : undefined);
    if (problem) {
      refusals.push({ path: name, reason: problem });
      await skip(padded);
      continue;
    }
    if (!(await safeParent(name))) {
      refusals.push({ path: name, reason: 'path leads through a symbolic link' });
      await skip(padded);
      continue;
    }
    const target = join(root, name);
    const existing = await lstat(target).catch(() => undefined);

    if (type === '5') {
      if (existing && !existing.isDirectory()) refusals.push({ path: name, reason: 'directory over a non-directory' });
      else if (!existing) await mkdir(target, { mode: mode | 0o700 });
      await skip(padded);
    } else if (type === '0' || type === '\0' || type === '7') {
      if (existing) {
        refusals.push({ path: name, reason: 'duplicate entry' });
        await skip(padded);
        continue;
      }
      const out = createWriteStream(target, { flags: 'wx', mode: mode | 0o600 });
      await new Promise<void>((res, rej) => out.once('open', () => res()).once('error', rej));
      await reader.pipe(size, (piece) =>
        out.write(piece) ? undefined : new Promise<void>((res) => out.once('drain', () => res())),
      );
      await new Promise<void>((res, rej) => out.end(() => res()).once('error', rej));
      await skip(padded - size);
      files++;
    } else if (type === '2') {
      // resolved lexically against the link's own directory: a link may only point inside
      const resolved = posix.normalize(posix.join(posix.dirname(name), linkName));
      if (linkName.startsWith('/') || resolved === '..' || resolved.startsWith('../')) {
        refusals.push({ path: name, reason: 'symbolic link points outside the job directory' });
      } else if (existing) {
        refusals.push({ path: name, reason: 'duplicate entry' });
      } else {
        await symlink(linkName, target);
      }
      await skip(padded);
    } else if (type === '1') {
      const from = linkName.replace(/^(\.\/)+/, '');
      const fromProblem = artifactPathProblem(from);
      const fromPath = join(root, from);
      const fromStat = fromProblem ? undefined : await lstat(fromPath).catch(() => undefined);
      if (!fromStat?.isFile() || existing || (await realpath(fromPath)) !== fromPath) {
        refusals.push({ path: name, reason: 'hard link to something not extracted as a file' });
      } else {
        await copyFile(fromPath, target);
        files++;
      }
      await skip(padded);
    } else {
      refusals.push({ path: name, reason: 'not a regular file' });
      await skip(padded);
    }
  }
  // the rest of the stream (end-of-archive blocks) must still be read so the sender finishes
  while (await reader.read(BLOCK)) {
    /* drain */
  }
  return { refusals, files };
}

export interface TarEntry {
  name: string;
  type: 'file' | 'dir';
  mode: number;
  uid?: number;
  gid?: number;
  data?: Buffer;
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

/** A ustar archive in memory; used for the few small files we put into a container. */
export function tarOf(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    const h = Buffer.alloc(BLOCK);
    const name = e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
    if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
    h.write(name, 0, 100, 'utf8');
    h.write(octal(e.mode, 8), 100, 'ascii');
    h.write(octal(e.uid ?? 0, 8), 108, 'ascii');
    h.write(octal(e.gid ?? 0, 8), 116, 'ascii');
    h.write(octal(e.type === 'file' ? data.length : 0, 12), 124, 'ascii');
    h.write(octal(Math.floor(Date.now() / 1000), 12), 136, 'ascii');
    h.write('        ', 148, 'ascii');
    h.write(e.type === 'file' ? '0' : '5', 156, 'ascii');
    h.write('ustar\u000000', 257, 'binary');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(octal(sum, 7) + ' ', 148, 'ascii');
    blocks.push(h);
    if (e.type === 'file') {
      blocks.push(data);
      const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
      if (pad) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(blocks);
}
