// A stored console file ("<ms> <raw bytes>\n" per line, src/results/) read a page at a time, so a
// console of millions of lines is never held whole: one streaming pass notes where every
// PAGE_LINES-th line starts (kept per file while its size and mtime stay the same), and a page
// is then one read of the bytes between two such offsets.
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { parseConsole } from '../results/read.js';
import type { StoredLine, StoredLines } from '../server/console-follow.js';

export const PAGE_LINES = 1000;

export interface ConsoleIndex {
  /** how many lines the file holds */
  lines: number;
  /** offsets[k]: where line k * PAGE_LINES starts */
  offsets: number[];
  size: number;
}

const MAX_CACHED = 64;
const cache = new Map<string, { key: string; index: ConsoleIndex }>();

/** The file's page index; an absent file is an empty console. */
export async function consoleIndex(file: string): Promise<ConsoleIndex> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { lines: 0, offsets: [0], size: 0 };
    throw err;
  }
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = cache.get(file);
  if (hit?.key === key) return hit.index;
  const offsets = [0];
  let lines = 0;
  let pos = 0;
  let lastByte = 0x0a;
  for await (const chunk of createReadStream(file, { end: st.size - 1, highWaterMark: 1 << 16 }) as AsyncIterable<Buffer>) {
    let i = chunk.indexOf(0x0a);
    while (i >= 0) {
      lines++;
      if (lines % PAGE_LINES === 0) offsets.push(pos + i + 1);
      i = chunk.indexOf(0x0a, i + 1);
    }
    pos += chunk.length;
    lastByte = chunk[chunk.length - 1] ?? lastByte;
  }
  // a last line without its newline still counts
  if (lastByte !== 0x0a) lines++;
  if (offsets.length > 1 && offsets.at(-1) === st.size) offsets.pop();
  const index = { lines, offsets, size: st.size };
  cache.delete(file);
  cache.set(file, { key, index });
  if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value as string);
  return index;
}

/** Lines [page * PAGE_LINES, (page + 1) * PAGE_LINES) as [ms, bytes]. */
export async function readConsolePage(file: string, index: ConsoleIndex, page: number): Promise<Array<[number, Buffer]>> {
  const start = index.offsets[page];
  if (start === undefined || start >= index.size) return [];
  const end = index.offsets[page + 1] ?? index.size;
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(end - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    return parseConsole(buf.subarray(0, bytesRead), file);
  } finally {
    await fh.close();
  }
}

/**
 * The file's lines from number `from` (0-based) on, in batches, read as a stream: what a live
 * console still has to send once its run has finished, or the raw console.
 */
export async function* consoleLinesFrom(file: string, index: ConsoleIndex, from: number): AsyncGenerator<Array<[number, number, Buffer]>> {
  if (from >= index.lines) return;
  const page = Math.floor(from / PAGE_LINES);
  let n = page * PAGE_LINES;
  let rest: Buffer = Buffer.alloc(0);
  const stream = createReadStream(file, { start: index.offsets[page] ?? 0, highWaterMark: 1 << 16 }) as AsyncIterable<Buffer>;
  for await (const chunk of stream) {
    const buf: Buffer = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    const cut = buf.lastIndexOf(0x0a);
    if (cut < 0) {
      rest = buf;
      continue;
    }
    rest = buf.subarray(cut + 1);
    const batch: Array<[number, number, Buffer]> = [];
    for (const [ms, data] of parseConsole(buf.subarray(0, cut + 1), file)) {
      if (n >= from) batch.push([n, ms, data]);
      n++;
    }
    if (batch.length) yield batch;
  }
  if (rest.length) {
    const last = parseConsole(rest, file)[0];
    if (last && n >= from) yield [[n, last[0], last[1]]];
  }
}

/**
 * The file's lines as pages of stored lines for console-follow.ts, read on as one stream: each
 * read goes on from where the last stopped (`from` is where the follower is, that is where the last
 * page ended). close() lets go of the file when the follower stops before its end.
 */
export function consolePages(file: string): { read: StoredLines; close(): void } {
  let batches: AsyncGenerator<Array<[number, number, Buffer]>> | undefined;
  const held: StoredLine[] = [];
  return {
    read: async (from, limit) => {
      batches ??= consoleLinesFrom(file, await consoleIndex(file), from);
      while (held.length < limit) {
        const next = await batches.next();
        if (next.done) break;
        for (const [seq, ms, data] of next.value) held.push({ seq, ms, data });
      }
      return held.splice(0, limit);
    },
    close: () => void batches?.return(undefined),
  };
}

/**
 * The file's text without the times ("<ms> " at the start of each line dropped), one buffer per
 * chunk read: the raw console, streamed with one allocation per 64 KiB rather than per line.
 */
export async function* consoleText(file: string): AsyncGenerator<Buffer> {
  let inPrefix = true;
  let stream: AsyncIterable<Buffer>;
  try {
    await stat(file);
    stream = createReadStream(file, { highWaterMark: 1 << 16 }) as AsyncIterable<Buffer>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for await (const chunk of stream) {
    const out = Buffer.allocUnsafe(chunk.length);
    let o = 0;
    let i = 0;
    while (i < chunk.length) {
      if (inPrefix) {
        const space = chunk.indexOf(0x20, i);
        if (space < 0) break;
        i = space + 1;
        inPrefix = false;
      } else {
        const nl = chunk.indexOf(0x0a, i);
        const end = nl < 0 ? chunk.length : nl + 1;
        o += chunk.copy(out, o, i, end);
        i = end;
        if (nl >= 0) inPrefix = true;
      }
    }
    if (o > 0) yield out.subarray(0, o);
  }
}
