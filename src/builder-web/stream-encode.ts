// Streaming upload body for builds with large artifacts. DER puts every length before its
// content, so all lengths are computed from the artifacts' sizes first; then the body is produced
// piece by piece, each file read chunk by chunk when its turn comes. Memory stays at one chunk
// plus the (small) console and headers, however big the artifacts are. The bytes are exactly
// encodeExec's for the same data (the headers come from the same functions).
import { artifactHeader, recordHeaders, BuilderWebFormatError, type Bytes, type ExecRecordInput } from './format.js';

export interface StreamArtifact {
  /** Path relative to the build directory, as builder-web will show it. */
  path: Bytes;
  /** Exact byte count `open()` will produce; a file that changed size fails the upload. */
  size: number;
  /** Opens the content afresh; called once, when the artifact's turn comes. */
  open: () => NodeJS.ReadableStream | AsyncIterable<Uint8Array>;
}

export interface StreamExecInput extends Omit<ExecRecordInput, 'artifacts'> {
  artifacts: ReadonlyArray<StreamArtifact>;
}

export interface ExecBody {
  /** Total byte count, for Content-Length. */
  length: number;
  /** The body; iterate once. */
  body: AsyncIterable<Buffer>;
}

export function streamExec(r: StreamExecInput): ExecBody {
  for (const a of r.artifacts) {
    if (!Number.isSafeInteger(a.size) || a.size < 0) throw new BuilderWebFormatError(`expected a byte size for artifact ${showPath(a.path)}, got ${a.size}`);
  }
  // Headers are built up front: this validates the whole record before the first byte is sent.
  const artHeaders = r.artifacts.map((a) => artifactHeader(a.path, a.size));
  const artifactsLength = artHeaders.reduce((n, h, i) => n + h.length + r.artifacts[i]!.size, 0);
  const head = recordHeaders({ ...r, artifacts: [] }, artifactsLength);
  const length = head.reduce((n, b) => n + b.length, 0) + artifactsLength;

  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.concat(head);
    for (const [i, a] of r.artifacts.entries()) {
      yield artHeaders[i]!;
      let seen = 0;
      for await (const chunk of a.open() as AsyncIterable<Uint8Array | string>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        seen += buf.length;
        // Checked before yielding: the lengths already sent cannot be taken back, so stop at once.
        if (seen > a.size) throw sizeChanged(a, `at least ${seen}`);
        yield buf;
      }
      if (seen !== a.size) throw sizeChanged(a, `only ${seen}`);
    }
  }
  return { length, body: body() };
}

const showPath = (p: Bytes): string => (typeof p === 'string' ? p : Buffer.from(p).toString());

function sizeChanged(a: StreamArtifact, got: string): BuilderWebFormatError {
  return new BuilderWebFormatError(`artifact ${showPath(a.path)} was announced as ${a.size} bytes but produced ${got} (file changed during upload?)`);
}
