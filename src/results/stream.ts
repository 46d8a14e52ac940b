// Reads a stored result piece by piece, for the server's remote readers (run-console,
// fetch-artifacts) and builder-server check: the console as lines and each artifact as a
// stream of chunks, so neither a long console nor a 1 GiB artifact is ever held whole.
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { BuilderError } from '../common/errors.js';
import { artifactPathProblem } from '../common/names.js';

/** Yields the stored console's lines, oldest first; a result without a console yields none. */
export async function* consoleLines(dir: string): AsyncGenerator<[number, Buffer]> {
  const file = join(dir, 'console');
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
  let rest: Buffer = Buffer.alloc(0);
  let n = 0;
  const parse = (line: Buffer): [number, Buffer] => {
    n++;
    const space = line.indexOf(0x20);
    const ms = space < 0 ? NaN : Number(line.toString('latin1', 0, space));
    if (!Number.isSafeInteger(ms)) {
      throw new BuilderError('BAD_RESULT', `${file}: line ${n}: expected "<ms> <text>", got ${JSON.stringify(line.toString('utf8', 0, 40))}`);
    }
    return [ms, line.subarray(space + 1)];
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (let end = buf.indexOf(0x0a); end >= 0; end = buf.indexOf(0x0a, start)) {
        yield parse(buf.subarray(start, end));
        start = end + 1;
      }
      // a copy, so the chunk it came from can be freed
      rest = Buffer.from(buf.subarray(start));
      buf = rest;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  } finally {
    stream.destroy();
  }
  if (rest.length > 0) yield parse(rest);
}

/** An artifact's file in a result directory; the path was checked on arrival, and is again here. */
export function artifactFile(dir: string, path: string): string {
  const problem = artifactPathProblem(path);
  if (problem) throw new BuilderError('BAD_RESULT', `${dir}: artifact "${path}": ${problem}`);
  return join(dir, 'artifacts', path);
}
